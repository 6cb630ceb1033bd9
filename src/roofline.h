/*
 * roofline.h - this machine's ceilings, measured, and where a benchmark's
 * phases sit under them (`w8a8 bench --roofline`).
 *
 *   int8 peak   ops/s (2 per multiply-accumulate) of the instruction the
 *               int8 kernels use, in a register-only loop on every thread:
 *               vpdpbusd (avx512), vpmaddwd (avx2), a plain C loop (scalar).
 *   bandwidth   bytes/s of a streaming read, on every thread, of a buffer
 *               larger than the caches.
 *
 * Each takes a few hundred milliseconds; the best of a few timed runs is
 * kept (a ceiling, not a mean).  Prefill is compute-bound, so its fraction
 * is its int8 ops/s over the peak; decode reads every weight once per
 * token, so its fraction is weight bytes/s over the bandwidth.
 */
#ifndef W8_ROOFLINE_H
#define W8_ROOFLINE_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef struct {
    double int8_ops;      /* int8 ops/s, all threads */
    double int8_ops_1t;   /* the same loop on one thread (0 when threads == 1): a
                           * machine whose threads each have a core of their own
                           * scales by about the thread count */
    double read_bytes;    /* bytes/s, all threads */
    size_t buffer_bytes;  /* size of the buffer read */
    size_t llc_bytes;     /* last-level cache as the OS reports it (0: unknown) */
    const char *isa;      /* "avx512" ... (the kernels' dispatch) */
    const char *insn;     /* "vpdpbusd", "vpmaddwd", "C loop" */
    int threads;
} w8_roofline;

/* Measure.  0, or -1 with w8_seterr (the read buffer could not be allocated). */
int w8_roofline_measure(w8_roofline *r);

/* What one token costs in the model: the int8 multiply-accumulates of the
 * int8 linear layers a token of a prompt of n_prompt tokens runs, on
 * average (every layer's q/k/v; every layer's o_proj and MLP but the last
 * one's, which the prompt runs for its last row only; not lm_head, run for
 * the last row only), and the bytes of linear-layer weights a decoded token
 * reads (lm_head included; int8 and float, as the kernels store them; the
 * embedding row and the KV cache not counted). */
void w8_roofline_model(const w8_model *m, int n_prompt, double *macs_per_token,
                       double *weight_bytes);

/* Probes for the moment of one benchmark repetition (bench runs one before
 * each and one after the last, so that a repetition is set against the
 * machine as it was then, not only against the best of a few runs at
 * another time; on a shared host the two differ by 10% and more):
 *   w8_roofline_dot_probe      int8 ops/s of one ~0.1 s run of the peak loop
 *   w8_roofline_weights_probe  bytes/s of plain streaming reads (~0.1 s or
 *                              one pass) of the model's linear weights as
 *                              loaded: the bytes a decoded token reads, on the
 *                              same pages, each thread its slice of every
 *                              matrix as the decode team splits them */
double w8_roofline_dot_probe(void);
double w8_roofline_weights_probe(const w8_model *m);

/* A benchmark's repetitions against the probes around them: probe[r] ran
 * right before repetition r and probe[r + 1] right after it (reps + 1
 * probes), rate[r] is the repetition's own (int8 ops/s, or weight bytes/s).
 * A repetition is steady when its two probes differ by at most
 * W8_ROOF_STEADY of the larger: the machine offered the same ceiling on
 * both sides of it.  On a shared host that is not a given: a virtual
 * machine's two CPUs may be moved onto one physical core between two
 * probes, halving the int8 peak for a while.  A repetition's fraction is
 * its rate over the mean of its two probes; the result is the median over
 * the steady repetitions, or over all of them when none is steady. */
#define W8_ROOF_STEADY 0.10
typedef struct {
    double fraction; /* median fraction of the repetitions used */
    double ceiling;  /* median of their probe means */
    int used;        /* repetitions in the medians */
    int steady;      /* steady ones among all (used == steady unless steady == 0) */
} w8_roof_paired;
void w8_roofline_paired(const double *rate, const double *probe, int reps, w8_roof_paired *out);

#endif

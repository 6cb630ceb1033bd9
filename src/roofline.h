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
    double read_bytes;    /* bytes/s, all threads */
    size_t buffer_bytes;  /* size of the buffer read */
    size_t llc_bytes;     /* last-level cache as the OS reports it (0: unknown) */
    const char *isa;      /* "avx512" ... (the kernels' dispatch) */
    const char *insn;     /* "vpdpbusd", "vpmaddwd", "C loop" */
    int threads;
} w8_roofline;

/* Measure.  0, or -1 with w8_seterr (the read buffer could not be allocated). */
int w8_roofline_measure(w8_roofline *r);

/* What one token costs in the model: int8 multiply-accumulates of its int8
 * linear layers, and bytes of linear-layer weights read (int8 and float, as
 * the kernels store them; the embedding row and the KV cache not counted). */
void w8_roofline_model(const w8_model *m, double *int8_macs, double *weight_bytes);

/* The per-ISA loops (roofline_avx2.c, roofline_avx512.c): `iters` rounds of
 * W8_ROOF_ACC independent multiply-accumulate instructions; they return a
 * value that depends on every result so nothing is optimized away. */
#define W8_ROOF_ACC 12
uint64_t w8_roof_dot_avx512(long iters); /* 64 MACs per instruction */
uint64_t w8_roof_dot_avx2(long iters);   /* 16 MACs per instruction */
/* Sum of the 64-bit words of p[0, bytes) (bytes a multiple of 256, p 64-aligned). */
uint64_t w8_roof_read_avx512(const void *p, size_t bytes);
uint64_t w8_roof_read_avx2(const void *p, size_t bytes);

#endif

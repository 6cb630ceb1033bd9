/*
 * generate.h - batch generation: several prompts prefilled together, then
 * decoded together one token per sequence per step (what `w8a8 run` and
 * MindIE's run_pa do).  Each sequence stops on its own (eos, max_new_tokens,
 * context end) and has its own sampler; a sequence's output does not depend
 * on the other sequences of the batch.
 *
 * A thin driver of the scheduler (sched.h) in run's shape: admit all
 * prompts, prefill them all (prefill_first), then decode; KV blocks are
 * reserved row by row (lazy_kv).
 */
#ifndef W8_GENERATE_H
#define W8_GENERATE_H

#include <stdint.h>

#include "sched.h"

typedef struct {
    int max_new_tokens;        /* per sequence */
    float temperature;         /* 0: greedy */
    int top_k;                 /* 0: off */
    float top_p;               /* 1: off */
    float repetition_penalty;  /* 1: off */
    uint64_t seed;             /* sequence i samples with seed + i */
    const int *extra_eos;      /* more stop ids (e.g. the tokenizer's eos), may be NULL */
    int n_extra_eos;
    int ignore_eos;            /* 1: no id stops a sequence early (run_pa --ignore_eos) */
} w8_gen_opts;

/* Fill opts with greedy decoding of max_new_tokens, no extra eos. */
void w8_gen_opts_default(w8_gen_opts *o, int max_new_tokens);

typedef struct {
    int *ids;       /* generated ids (the stop eos included), caller frees with w8_gen_free */
    int n_ids;
    w8_stop_reason stop;
} w8_gen_out;

typedef struct {
    long prefill_tokens;  /* prompt rows run */
    double prefill_s;     /* time of the prefill forward calls (and first samples) */
    long decode_tokens;   /* rows run in decode steps */
    double decode_s;
} w8_gen_stats;

/* Generate for n prompts (prompt i: lens[i] >= 1 ids).  ctx's max_rows bounds
 * the prefill chunk and the number of sequences decoded per step (n must be
 * <= max_rows).  The KV pool must be free enough for all sequences at once;
 * running out is an error.  out[n] is filled (zeroed first); stats may be NULL.
 * Returns 0, or -1 with w8_seterr (bad prompt, cache exhausted, ...), in which
 * case out holds nothing to free and every cache block is returned. */
int w8_generate(const w8_model *m, w8_ctx *ctx, w8_kv *kv, int n, const int *const *prompts,
                const int *lens, const w8_gen_opts *o, w8_gen_out *out, w8_gen_stats *stats);
void w8_gen_free(w8_gen_out *out, int n);

#endif

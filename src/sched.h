/*
 * sched.h - the one generation loop: a synchronous scheduler of sequences
 * over a forward context and a paged KV pool, used by `w8a8 run` (through
 * w8_generate, generate.h) and by `w8a8 serve` (the engine thread drives it
 * behind its request queue, engine.c).
 *
 * A caller makes sequences (w8_sched_seq_new), admits them (their KV blocks
 * are reserved then, or row by row with lazy_kv), and calls w8_sched_step
 * until they finish.  One step runs one w8_forward over
 *   - one decode row per running sequence whose prompt is stored, then
 *   - up to prefill_chunk prompt rows of the sequences still in prefill, laid
 *     end to end (chunked prefill: a prompt may span steps),
 * samples every sequence whose logits came out with its own sampler and
 * seed, and applies the stop rules in this order: eos id, stop string (the
 * text is detokenized only when the scheduler has a tokenizer), max new
 * tokens, end of context.  A finished sequence keeps its tokens and text
 * until the caller removes it (w8_sched_remove returns its KV blocks; the
 * server does that under its mutex, which guards the pool's accounting).
 *
 * Nothing here locks: one thread owns a scheduler and its sequences while a
 * step runs.  A sequence's output does not depend on the others in its batch
 * (each row's arithmetic is its own), which is what lets run and serve give
 * the same tokens for the same prompt and seed.
 */
#ifndef W8_SCHED_H
#define W8_SCHED_H

#include <stdint.h>

#include "forward.h"
#include "sampler.h"
#include "stop_text.h"
#include "tokenizer/tokenizer.h"

/* Sampling and stopping of one sequence (resolved: see w8_sampling_resolve). */
typedef struct {
    float temperature;        /* 0: greedy */
    int top_k;                /* 0: off */
    float top_p;              /* 1: off */
    float repetition_penalty; /* 1: off */
    uint64_t seed;
    long long max_tokens;     /* new tokens; <= 0: until the context ends */
    char *const *stop;        /* stop strings (copied), used when the scheduler detokenizes */
    int n_stop;
} w8_gen_params;

/* What a request (run's options, an API body) says about sampling; a value
 * counts only with its has_ flag. */
typedef struct {
    int has_temperature;
    float temperature;
    int has_top_k;
    int top_k;
    int has_top_p;
    float top_p;
    int has_repetition_penalty;
    float repetition_penalty;
} w8_sampling_req;

/* The one rule for run and serve: sampling parameters from the request, else
 * from generation_config.json as transformers' generate() reads it.
 *  - do_sample false (or no generation_config): greedy, whatever temperature,
 *    top_k and top_p the config lists; a request turns sampling on only by
 *    giving a temperature > 0, and then the config's top_k/top_p stay unused
 *    (they belong to the config's sampling mode) unless it samples itself;
 *  - do_sample true: the config's temperature (1 if 0), top_k, top_p fill what
 *    the request leaves out;
 *  - repetition_penalty: the request's, else the config's (a logits
 *    processor in transformers, applied whether or not it samples).  OpenAI's
 *    API has no such field; the server takes a non-standard
 *    "repetition_penalty" (as vLLM does), and frequency_penalty maps to it.
 * Sets p's temperature, top_k, top_p and repetition_penalty. */
void w8_sampling_resolve(const w8_config *cfg, const w8_sampling_req *req, w8_gen_params *p);

typedef struct {
    int max_seqs;       /* sequences running at once */
    int prefill_chunk;  /* prompt rows per step (also bounded by the context's max_rows) */
    int max_seq_len;    /* tokens of one sequence (prompt + generated, the last sampled one
                         * included): reaching it stops the sequence (W8_STOP_CONTEXT) */
    int prefill_first;  /* 1: no decode row while a sequence is in prefill (run's phases) */
    int lazy_kv;        /* 1: reserve KV blocks row by row, running out is a step error
                         * (run); 0: reserve at admission, admission waits (serve) */
    const w8_tok *tok;  /* detokenize (stop strings, text): NULL for ids only */
    const int *extra_eos; /* more stop ids than config.json's (the tokenizer's eos) */
    int n_extra_eos;
    int ignore_eos;     /* 1: no id stops a sequence early (run_pa --ignore_eos) */
} w8_sched_opts;

typedef enum {
    W8_STOP_NONE = -1, /* still running */
    W8_STOP_EOS = 0,   /* an eos id (the id is kept) */
    W8_STOP_LENGTH,    /* max_tokens reached */
    W8_STOP_CONTEXT,   /* max_seq_len reached */
    W8_STOP_TEXT,      /* a stop string: the text ends before it */
} w8_stop_reason;

/* A sequence.  Fields are the scheduler's; callers read them between steps. */
typedef struct w8_sched_seq {
    int *tokens;         /* prompt then generated ids */
    int n_tokens, cap;
    int n_prompt;
    int n_prefilled;     /* prompt tokens whose K/V are stored */
    long long max_tokens;
    int reserve;         /* KV tokens reserved at admission */
    w8_gen_params p;     /* (stop strings live in st) */
    w8_seq seq;
    w8_sampler smp;
    w8_tok_stream *ts;   /* when the scheduler detokenizes */
    w8_stop_text st;     /* text so far, stop strings applied */
    int admitted;
    w8_stop_reason stop;
    void *user;          /* the caller's (the server's request) */
} w8_sched_seq;

typedef struct w8_sched w8_sched;

/* The context and pool are borrowed.  NULL with an error on bad options. */
w8_sched *w8_sched_new(const w8_model *m, w8_ctx *ctx, w8_kv *kv, const w8_sched_opts *o);
/* Removes the sequences still in it (their blocks return to the pool); the
 * sequences themselves are the caller's to free. */
void w8_sched_free(w8_sched *s);
int w8_sched_max_seq_len(const w8_sched *s);

/* A sequence for prompt[n] (copied).  Not yet admitted; needs 1 <= n < max_seq_len. */
w8_sched_seq *w8_sched_seq_new(const w8_sched *s, const int *prompt, int n,
                               const w8_gen_params *p);
/* Free a sequence that is not (or no longer) in the scheduler. */
void w8_sched_seq_free(w8_sched_seq *q);

/* Admit q: 0, or -1 when max_seqs run already or (eager KV) the pool lacks
 * blocks now (w8_lasterr says how many it needs). */
int w8_sched_admit(w8_sched *s, w8_sched_seq *q);
/* Take q out of the scheduler (finished or cancelled) and return its KV
 * blocks; its tokens and text stay until w8_sched_seq_free. */
void w8_sched_remove(w8_sched *s, w8_sched_seq *q);
/* Flush q's detokenizer and mark all its text ready (end of its output). */
void w8_sched_seq_end(w8_sched_seq *q);

int w8_sched_n_running(const w8_sched *s);
w8_sched_seq *w8_sched_running(const w8_sched *s, int i);

/* What one step did. */
typedef struct {
    int rows;          /* rows run */
    int prefill_rows;  /* of them, prompt rows */
    int decode_rows;
    int sampled;       /* sequences that got a token */
} w8_step_info;

/* Run one step (see above).  Returns 0 (info filled; nothing to do is a step
 * of 0 rows), or -1 with w8_seterr (the forward pass failed, or a lazy KV
 * reservation ran out); the caller then fails or removes the sequences. */
int w8_sched_step(w8_sched *s, w8_step_info *info);

#endif

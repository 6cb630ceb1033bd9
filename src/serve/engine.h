/*
 * engine.h - the continuous-batching scheduler behind `w8a8 serve`.
 *
 * One scheduler thread owns the model's forward context, the paged KV pool
 * and every running sequence.  Other threads (the HTTP connections) submit
 * tokenized prompts into a bounded FIFO queue and read the generated text back
 * through a w8_req handle.  Each step the scheduler
 *   1. drops cancelled requests (their KV blocks return to the pool at once),
 *   2. admits queued requests while the pool has blocks for them (FIFO: the
 *      head waits for blocks rather than failing anyone),
 *   3. runs one step of the scheduler (sched.h, the loop `w8a8 run` uses
 *      too): one w8_forward over one decode row per running sequence plus
 *      up to prefill_chunk prompt rows of sequences still in prefill
 *      (chunked prefill, so running streams keep flowing while a long prompt
 *      loads), sampling each sequence with its own sampler and seed,
 *      detokenizing, and applying eos, stop strings and length limits,
 *   4. publishes the text to the requests.
 *
 * A sequence reserves KV blocks for min(prompt + max_tokens, max_seq_len)
 * tokens when admitted, so a running sequence never runs out of blocks and no
 * preemption is needed; the cost is that unused reservations idle until the
 * sequence ends.
 */
#ifndef W8_ENGINE_H
#define W8_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "../model.h"
#include "../sched.h"
#include "../tokenizer/tokenizer.h"

typedef struct {
    int max_batch_size; /* running sequences at once (decode rows per step) */
    int max_seq_len;    /* prompt + completion tokens of one sequence */
    int block_size;     /* KV block size in tokens */
    int n_blocks;       /* KV pool size in blocks */
    int max_queue;      /* requests waiting for admission; more are refused */
    int prefill_chunk;  /* prompt rows per step */
    int step_delay_us;  /* tests only: pause after each step, so that a tiny model's
                         * generation outlasts a client's disconnect on any machine */
    int fail_step;      /* tests only: the fail_step-th step (from 1) fails as a forward
                         * pass that runs out of memory would, so that the way an error
                         * reaches the clients (mid-stream too) can be tested; 0: never */
} w8_engine_opts;

typedef struct w8_engine w8_engine;
typedef struct w8_req w8_req;

typedef enum {
    W8_SUBMIT_OK = 0,
    W8_SUBMIT_TOO_LONG,  /* the prompt leaves no room to generate: 400 */
    W8_SUBMIT_FULL,      /* the queue is full: 429 */
    W8_SUBMIT_STOPPED,   /* the engine is shutting down: 503 */
} w8_submit_status;

/* Start the scheduler thread.  The model and tokenizer are borrowed and must
 * outlive the engine.  NULL with an error on bad options. */
w8_engine *w8_engine_new(const w8_model *m, const w8_tok *tok, const w8_engine_opts *o);
/* Finish every request (queued ones end with finish reason "abort", running
 * ones keep the text they have) and join the thread.  Handles stay valid
 * until released.  Idempotent. */
void w8_engine_stop(w8_engine *e);
/* Stop (if needed) and free.  Every w8_req must have been released. */
void w8_engine_free(w8_engine *e);

/* The effective limits (max_seq_len is capped by the pool size). */
int w8_engine_max_seq_len(const w8_engine *e);
int w8_engine_kv_tokens(const w8_engine *e);

/* Queue a prompt.  Returns a handle (release it with w8_req_release) or NULL
 * with *status saying why.  The prompt and params are copied. */
w8_req *w8_engine_submit(w8_engine *e, const int *prompt, int n_prompt, const w8_gen_params *p,
                         w8_submit_status *status);

/* Wait up to timeout_s for new text or the end.  Returns 1 when there is
 * news: *text (malloc'd, NUL-terminated, may be "") holds the text produced
 * since the last call and *done is 1 once the request has finished and all
 * its text was taken; returns 0 on timeout with nothing new (*text NULL). */
int w8_req_wait(w8_req *r, double timeout_s, char **text, size_t *len, int *done);
/* After done: "stop", "length", "abort" (shutdown) or "error". */
const char *w8_req_finish_reason(w8_req *r);
/* After done with "error": why (the scheduler's error message, e.g. the
 * forward pass's), valid until the handle is released; NULL otherwise. */
const char *w8_req_error(w8_req *r);
void w8_req_usage(w8_req *r, int *prompt_tokens, int *completion_tokens);
/* Drop the caller's handle; a request still running is cancelled and its
 * blocks are freed at the scheduler's next step.  r is invalid afterwards. */
void w8_req_release(w8_req *r);

typedef struct {
    int running, waiting;
    int free_blocks, total_blocks, block_size;
    long long requests_done, tokens_generated;
} w8_engine_stats;
void w8_engine_get_stats(w8_engine *e, w8_engine_stats *s);

#endif

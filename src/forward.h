/*
 * forward.h - the transformer forward pass over a batch of tokens.
 *
 * A batch is a flat list of token rows, each with its sequence and position
 * (like llama.cpp's ubatch): prefill of several prompts, decode of many
 * sequences, or a mix (continuous batching, chunked prefill) are all one
 * call.  Linear layers run on all rows at once; attention of each row reads
 * its own sequence's cache up to its position.
 */
#ifndef W8_FORWARD_H
#define W8_FORWARD_H

#include "kv_cache.h"
#include "model.h"

typedef struct {
    int n;              /* rows */
    const int *tokens;  /* [n] token ids */
    const int *pos;     /* [n] positions (rows of one sequence: consecutive, ascending) */
    w8_seq **seq;       /* [n] sequence of each row (blocks must be reserved) */
    const char *want;   /* [n] 1: compute logits for this row; NULL: only the last row */
} w8_batch;

/* Where the observer is called (calibration, compare). */
typedef enum {
    W8_OBS_QKV_IN = 0,   /* input of q/k/v: [m, hidden] */
    W8_OBS_O_IN,         /* input of o_proj: [m, nh*hd] */
    W8_OBS_GATEUP_IN,    /* input of gate/up: [m, hidden] */
    W8_OBS_DOWN_IN,      /* input of down_proj: [m, inter] */
    W8_OBS_LAYER_OUT,    /* residual stream after the layer: [m, hidden] */
    W8_OBS_COUNT
} w8_obs_point;
typedef void (*w8_observer)(void *ud, int layer, w8_obs_point what, const float *x, int m,
                            int k);

typedef struct w8_ctx w8_ctx;

/* Scratch for batches of up to max_rows rows (no allocation in the token loop). */
w8_ctx *w8_ctx_new(const w8_model *m, int max_rows);
void w8_ctx_free(w8_ctx *c);
void w8_ctx_set_observer(w8_ctx *c, w8_observer fn, void *ud);
/* The max_rows the context was made for. */
int w8_ctx_max_rows(const w8_ctx *c);

/* Run the batch: store K/V of every row at its position, update each seq's
 * len, and write the logits of the wanted rows, in row order, to `logits`
 * ([n_wanted, vocab]).  Returns the number of logit rows, or -1 on error
 * (batch larger than max_rows, position past the reserved blocks, ...). */
int w8_forward(w8_ctx *c, const w8_model *m, w8_kv *kv, const w8_batch *b, float *logits);

#endif

/*
 * batch.c - forward rows added one at a time (see batch.h).
 */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void w8_batch_buf_init(w8_batch_buf *bb, int cap) {
    memset(bb, 0, sizeof *bb);
    if (cap < 1) cap = 1;
    bb->cap = cap;
    bb->tokens = w8_xcalloc((size_t)cap, sizeof *bb->tokens);
    bb->pos = w8_xcalloc((size_t)cap, sizeof *bb->pos);
    bb->seq = w8_xcalloc((size_t)cap, sizeof *bb->seq);
    bb->want = w8_xcalloc((size_t)cap, 1);
    bb->b.tokens = bb->tokens;
    bb->b.pos = bb->pos;
    bb->b.seq = bb->seq;
    bb->b.want = bb->want;
}

void w8_batch_buf_free(w8_batch_buf *bb) {
    if (!bb) return;
    free(bb->tokens);
    free(bb->pos);
    free(bb->seq);
    free(bb->want);
    memset(bb, 0, sizeof *bb);
}

void w8_batch_clear(w8_batch_buf *bb) { bb->b.n = 0; }

int w8_batch_add(w8_batch_buf *bb, int token, int pos, w8_seq *seq, int want_logits) {
    int r = bb->b.n;
    if (r >= bb->cap) return w8_seterr("batch: more than %d rows", bb->cap);
    bb->tokens[r] = token;
    bb->pos[r] = pos;
    bb->seq[r] = seq;
    bb->want[r] = (char)(want_logits != 0);
    bb->b.n = r + 1;
    return r;
}

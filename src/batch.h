/*
 * batch.h - a fixed-capacity batch of forward rows that callers add rows to.
 *
 * w8_forward takes a w8_batch (forward.h): parallel arrays of token, position,
 * sequence and want-logits per row.  Every caller used to keep those four
 * arrays itself and fill them by index; a w8_batch_buf owns them, bounded by
 * the forward context's max_rows, and w8_batch_add appends one row, so a row
 * is one call and the arrays cannot disagree.  `b` is the view to pass to
 * w8_forward.
 */
#ifndef W8_BATCH_H
#define W8_BATCH_H

#include "forward.h"

typedef struct {
    w8_batch b;      /* the rows so far (b.n), pointing into the arrays below */
    int cap;
    int *tokens, *pos;
    w8_seq **seq;
    char *want;
} w8_batch_buf;

/* Room for cap >= 1 rows. */
void w8_batch_buf_init(w8_batch_buf *bb, int cap);
void w8_batch_buf_free(w8_batch_buf *bb);
/* Drop all rows. */
void w8_batch_clear(w8_batch_buf *bb);
/* Append a row: token at position pos of sequence seq; want_logits 1 asks
 * for its logits (rows of one sequence must come with ascending positions).
 * Returns the row's index, or -1 with w8_seterr when the buffer is full. */
int w8_batch_add(w8_batch_buf *bb, int token, int pos, w8_seq *seq, int want_logits);

#endif

/*
 * dirtx.h - write a directory under a temporary name, then rename it into place.
 *
 * A writer of a model directory (quant, synth) never leaves a half-written
 * target: it fills TARGET.w8a8-tmp-PID next to the target and renames it at
 * the very end.  A run that is killed leaves only that clearly named temp
 * directory, and the next run for the same target removes it once its
 * process is gone.  With force, an existing target is moved aside only when
 * the new directory is complete, and kept when the run fails.
 *
 *   w8_dirtx tx;
 *   if (w8_dirtx_begin(&tx, target, force, "quant", log) != 0) return -1;
 *   ... write files into tx.tmp ...
 *   if (ok) rc = w8_dirtx_commit(&tx);   (frees tx; on failure the temp is removed)
 *   else w8_dirtx_abort(&tx);
 */
#ifndef W8_DIRTX_H
#define W8_DIRTX_H

#include <stdio.h>

typedef struct {
    char *target; /* the target path, trailing slashes removed */
    char *tmp;    /* TARGET.w8a8-tmp-PID: write here */
} w8_dirtx;

/* Check the target (an existing non-empty directory, or a non-directory, is
 * refused without force; its parent directory must exist), remove
 * TARGET.w8a8-tmp-PID leftovers of processes that are gone (notes on log,
 * naming them "WHO run"s; log may be NULL), and create tx->tmp.  0, or -1
 * with w8_lasterr() and nothing created. */
int w8_dirtx_begin(w8_dirtx *tx, const char *target, int force, const char *who, FILE *log);

/* 0 when target is short enough for its temporary names (PATH_MAX), else -1
 * with w8_lasterr() (w8_dirtx_begin checks it too; a caller that must look at
 * the target first checks it before). */
int w8_dirtx_check_len(const char *target);

/* Rename tx->tmp into place (an existing target is moved aside first and
 * removed once the new one is in place).  Frees tx either way; on failure
 * the temp directory is removed and -1 returned with w8_lasterr(). */
int w8_dirtx_commit(w8_dirtx *tx);

/* Remove tx->tmp and free tx; safe on a zeroed or finished tx. */
void w8_dirtx_abort(w8_dirtx *tx);

#endif

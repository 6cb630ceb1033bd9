/*
 * tok_core.h - the growable containers every tokenizer file uses.  The base
 * of src/tokenizer/: tok_core.c needs nothing else of the folder, and
 * tok_internal.h (the parts) builds on it.
 */
#ifndef W8_TOK_CORE_H
#define W8_TOK_CORE_H

#include <stddef.h>

#include "../buf.h"

/* ---- growable containers (w8_buf itself is the library's, ../buf.h) */

typedef struct {
    int *v;
    size_t n, cap;
} w8_ivec;
void w8_ivec_push(w8_ivec *v, int x);

/* A list of strings stored back to back in one buffer: piece i is
 * buf.s[off[2i] .. off[2i+1]).  Decoders transform lists of token strings. */
typedef struct {
    w8_buf buf;
    size_t *off;
    size_t n, cap;
} w8_strs;
void w8_strs_add(w8_strs *l, const char *s, size_t n);
static inline const char *w8_strs_at(const w8_strs *l, size_t i, size_t *len) {
    *len = l->off[2 * i + 1] - l->off[2 * i];
    return l->buf.s + l->off[2 * i];
}
void w8_strs_free(w8_strs *l);

#endif

/*
 * tok_core.c - the growable containers every tokenizer file uses (w8_ivec,
 * w8_strs, declared in tok_core.h; w8_buf is the library's, ../buf.c).
 * Their own file so that the parts (tok_bpe.c, tok_text.c, tok_fastjson.c,
 * tok_decode.c) need nothing from tokenizer.c, which uses them all.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_core.h"
#include "../util.h"

void w8_ivec_push(w8_ivec *v, int x) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->v = w8_xrealloc(v->v, v->cap * sizeof(int));
    }
    v->v[v->n++] = x;
}

void w8_strs_add(w8_strs *l, const char *s, size_t n) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->off = w8_xrealloc(l->off, 2 * l->cap * sizeof(size_t));
    }
    l->off[2 * l->n] = l->buf.len;
    w8_buf_put(&l->buf, s, n);
    l->off[2 * l->n + 1] = l->buf.len;
    l->n++;
}

void w8_strs_free(w8_strs *l) {
    w8_buf_free(&l->buf);
    free(l->off);
    memset(l, 0, sizeof *l);
}

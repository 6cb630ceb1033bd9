/*
 * buf.c - the growable byte buffer (see buf.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

void w8_buf_put(w8_buf *b, const void *p, size_t n) {
    if (b->over) return;
    if (b->limit && n > b->limit - b->len) {
        b->over = 1;
        return;
    }
    size_t need;
    if (!w8_add_ok(b->len, n, &need) || !w8_add_ok(need, 1, &need)) abort(); /* cannot be held */
    if (need > b->cap) {
        size_t c = b->cap ? b->cap : 64;
        /* doubling, except where doubling would wrap: then exactly what is needed */
        while (c < need) c = c > SIZE_MAX / 2 ? need : c * 2;
        /* a limited buffer never allocates past its limit (need <= limit + 1
         * here): the server's body buffer promises max_body bytes at most */
        if (b->limit && b->limit < SIZE_MAX && c > b->limit + 1) c = b->limit + 1;
        b->s = w8_xrealloc(b->s, c);
        b->cap = c;
    }
    if (n) memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = 0;
}

void w8_buf_puts(w8_buf *b, const char *s) { w8_buf_put(b, s, strlen(s)); }

void w8_buf_free(w8_buf *b) {
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
    b->over = 0;
}

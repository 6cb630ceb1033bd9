/*
 * stop_text.c - stop strings over streamed text (see stop_text.h).
 */
#include "stop_text.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void w8_stop_text_init(w8_stop_text *s, char *const *stop, int n_stop) {
    memset(s, 0, sizeof *s);
    s->stop = w8_xcalloc((size_t)(n_stop > 0 ? n_stop : 1), sizeof(char *));
    for (int i = 0; i < n_stop; i++) {
        size_t n = strlen(stop[i]);
        if (n == 0) continue;
        s->stop[s->n_stop++] = w8_xstrdup(stop[i]);
        if (n > s->max_stop) s->max_stop = n;
    }
    w8_buf_put(&s->text, "", 0); /* text.s is a C string from the start */
}

/* Offset of the first stop string that ends after `from` (one may straddle
 * the old end, so the search starts max_stop - 1 bytes earlier), or -1. */
static long find_stop(const w8_stop_text *s, size_t from) {
    size_t start = from >= s->max_stop ? from - (s->max_stop - 1) : 0;
    long best = -1;
    for (int i = 0; i < s->n_stop; i++) {
        const char *p = memmem(s->text.s + start, s->text.len - start, s->stop[i], strlen(s->stop[i]));
        if (p && (best < 0 || p - s->text.s < best)) best = p - s->text.s;
    }
    return best;
}

/* Longest k < |stop| such that the text ends with the first k bytes of a
 * stop string: those bytes are held back.  Every stop string is non-empty,
 * so k starts at |stop| - 1 >= 0 without wrapping. */
static size_t holdback(const w8_stop_text *s) {
    size_t hold = 0;
    for (int i = 0; i < s->n_stop; i++) {
        size_t n = strlen(s->stop[i]);
        for (size_t k = n - 1; k > hold; k--)
            if (k <= s->text.len && !memcmp(s->text.s + s->text.len - k, s->stop[i], k)) {
                hold = k;
                break;
            }
    }
    return hold;
}

int w8_stop_text_add(w8_stop_text *s, const char *p, size_t n) {
    if (s->stopped) return 1;
    size_t from = s->text.len;
    w8_buf_put(&s->text, p, n); /* aborts on a length that cannot be held */
    long at = s->n_stop ? find_stop(s, from) : -1;
    if (at >= 0) {
        /* the hold-back makes at >= ready; the clamp only guards published text */
        s->text.len = (size_t)at < s->ready ? s->ready : (size_t)at; /* cut in place */
        s->text.s[s->text.len] = 0;
        s->stopped = 1;
        s->ready = s->text.len;
        return 1;
    }
    size_t r = s->text.len - holdback(s);
    if (r > s->ready) s->ready = r;
    return 0;
}

void w8_stop_text_end(w8_stop_text *s) { s->ready = s->text.len; }

void w8_stop_text_free(w8_stop_text *s) {
    for (int i = 0; i < s->n_stop; i++) free(s->stop[i]);
    free(s->stop);
    w8_buf_free(&s->text);
    memset(s, 0, sizeof *s);
}

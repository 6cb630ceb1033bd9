/*
 * fuzz_stop.c - the server's stop-string path without a server: stop
 * strings (empty ones and invalid UTF-8 included) against arbitrary streamed
 * text, checked against a plain model of what the client must see.
 *
 * Input: byte 0 picks the number of stop strings (low 3 bits, mod 5) and
 * where the text comes from (bit 3): raw byte chunks, or token ids streamed
 * through the stories260K detokenizer (w8_tok_stream, as the engine does;
 * its byte-fallback tokens make invalid UTF-8).  The rest is split at NUL
 * bytes: the first fields are the stop strings, the others the chunks; in id
 * mode the bytes after the stop strings are little-endian uint16 ids.
 *
 * After every piece: the published prefix (text[0, ready)) never changes or
 * shrinks; the text is the input cut at the earliest complete stop string,
 * or all of it; what is held back is exactly the longest end that could
 * still become a stop string.
 */
#include <stdio.h>
#include <string.h>

#include "../src/stop_text.h"
#include "../src/tokenizer/tokenizer.h"
#include "../src/util.h"
#include "fuzz.h"

static w8_tok *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char *d = w8_path_join(fuzz_shared(), "models/stories260K-hf-f16");
    tok = w8_tok_load(d);
    free(d);
    if (!tok) {
        fprintf(stderr, "fuzz_stop: %s\n", w8_lasterr());
        abort();
    }
    return 0;
}

typedef struct {
    char *const *stop;
    int n_stop;
    char *all; /* every byte fed so far (until the stop) */
    size_t all_len;
    char *pub; /* the published prefix as last seen */
    size_t pub_len;
} model;

/* Earliest start of a complete non-empty stop string in all, or -1. */
static long earliest_stop(const model *m) {
    long best = -1;
    for (int i = 0; i < m->n_stop; i++) {
        size_t n = strlen(m->stop[i]);
        if (!n || n > m->all_len) continue;
        for (size_t p = 0; p + n <= m->all_len; p++)
            if (!memcmp(m->all + p, m->stop[i], n)) {
                if (best < 0 || (long)p < best) best = (long)p;
                break;
            }
    }
    return best;
}

/* Longest end of all that is a proper prefix of a stop string. */
static size_t longest_partial(const model *m) {
    size_t best = 0;
    for (int i = 0; i < m->n_stop; i++) {
        size_t n = strlen(m->stop[i]);
        for (size_t k = 1; k < n && k <= m->all_len; k++)
            if (k > best && !memcmp(m->all + m->all_len - k, m->stop[i], k)) best = k;
    }
    return best;
}

static void check(model *m, const w8_stop_text *s, int stopped, int ended) {
    if (s->ready > s->text.len || s->text.s[s->text.len] != 0) abort();
    if (s->ready < m->pub_len || memcmp(s->text.s, m->pub, m->pub_len)) abort(); /* taken back */
    long at = earliest_stop(m);
    if (stopped != (at >= 0) || s->stopped != stopped) abort();
    if (stopped) {
        if (s->text.len != (size_t)at || memcmp(s->text.s, m->all, s->text.len) || s->ready != s->text.len) abort();
    } else {
        if (s->text.len != m->all_len || memcmp(s->text.s, m->all, s->text.len)) abort();
        size_t want = ended ? s->text.len : s->text.len - longest_partial(m);
        if (want < m->pub_len) want = m->pub_len;
        if (s->ready != want) abort();
    }
    m->pub = w8_xrealloc(m->pub, s->ready + 1);
    memcpy(m->pub, s->text.s, s->ready);
    m->pub_len = s->ready;
}

static int feed(model *m, w8_stop_text *s, const char *p, size_t n) {
    if (s->stopped) return 1;
    m->all = w8_xrealloc(m->all, m->all_len + n + 1);
    memcpy(m->all + m->all_len, p, n);
    m->all_len += n;
    int stopped = w8_stop_text_add(s, p, n);
    check(m, s, stopped, 0);
    return stopped;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int n_stop = (data[0] & 7) % 5, ids_mode = (data[0] >> 3) & 1;
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    char *stops[4];
    int k = 0;
    while (k < n_stop) { /* a missing field is an empty stop string */
        const char *z = memchr(p, 0, (size_t)(end - p));
        size_t n = z ? (size_t)(z - p) : (size_t)(end - p);
        stops[k++] = w8_xstrndup(p, n);
        p = z ? z + 1 : end;
    }
    w8_stop_text s;
    w8_stop_text_init(&s, stops, n_stop);
    model m = {stops, n_stop, w8_xmalloc(1), 0, w8_xmalloc(1), 0};
    int stopped = 0;
    if (!ids_mode) {
        while (p < end && !stopped) {
            const char *z = memchr(p, 0, (size_t)(end - p));
            size_t n = z ? (size_t)(z - p) : (size_t)(end - p);
            stopped = feed(&m, &s, p, n);
            p = z ? z + 1 : end;
        }
    } else {
        w8_tok_stream *ts = w8_tok_stream_new(tok, 1);
        int vs = w8_tok_vocab_size(tok);
        for (; end - p >= 2 && !stopped; p += 2) {
            int id = ((unsigned char)p[0] | (unsigned char)p[1] << 8) % vs;
            char *t = w8_tok_stream_push(ts, id);
            if (!t) abort(); /* in-range ids always decode */
            stopped = feed(&m, &s, t, strlen(t));
            free(t);
        }
        if (!stopped) {
            char *t = w8_tok_stream_flush(ts);
            if (!t) abort();
            stopped = feed(&m, &s, t, strlen(t));
            free(t);
        }
        w8_tok_stream_free(ts);
    }
    w8_stop_text_end(&s);
    check(&m, &s, stopped, 1);
    w8_stop_text_free(&s);
    for (int i = 0; i < n_stop; i++) free(stops[i]);
    free(m.all);
    free(m.pub);
    return 0;
}

/*
 * tok_decode.c - ids -> text, whole or streamed.
 *
 * Decoding is HF's Tokenizer::decode: each id becomes its token string
 * (added tokens first), special ones are dropped with skip_special, the
 * decoder chain transforms the list, and the pieces are joined.
 *
 * The streaming decoder is HF's DecodeStream: it keeps a short window of ids
 * that starts at a point where decoding is known to be "settled" (the
 * prefix).  Each new id is decoded together with that window, and the text
 * beyond the prefix is emitted only when it does not end in U+FFFD (an
 * incomplete UTF-8 character).  Decoding the window in context is what makes
 * context-dependent decoders right: sentencepiece's Strip removes the leading
 * space of the text, and since prefix and window are decoded alike, only the
 * very first token of the stream loses its space, exactly as a full decode.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"
#include "tokenizer.h"
#include "unicode.h"
#include "../util.h"

/* Decoding a window over this many ids that still ends in U+FFFD cannot
 * complete a character any more (at most 4 bytes): give the text out as is,
 * so a stream of garbage ids cannot grow the window without bound. */
#define STREAM_MAX_PENDING 8

char *w8_tok_decode(const w8_tok *t, const int *ids, size_t n, int skip_special) {
    w8_strs toks = {0};
    for (size_t i = 0; i < n; i++) {
        const char *p = w8_tok_piece(t, ids[i]);
        if (!p) {
            w8_strs_free(&toks);
            if (ids[i] < 0 || ids[i] >= t->vocab_size)
                w8_seterr("%s: decode: id %d out of range [0, %d)", t->label, ids[i], t->vocab_size);
            else w8_seterr("%s: decode: id %d has no token", t->label, ids[i]);
            return NULL;
        }
        if (skip_special && w8_tok_is_special(t, ids[i])) continue;
        int a = t->added_by_id[ids[i]];
        w8_strs_add(&toks, p, a >= 0 ? t->added[a].len : t->bpe.piece_len[ids[i]]);
    }
    if (t->dec && w8_dec_apply(t->dec, &toks) < 0) {
        w8_strs_free(&toks);
        return NULL;
    }
    /* without a decoder HF joins the tokens with spaces */
    w8_buf out = {0};
    for (size_t i = 0; i < toks.n; i++) {
        size_t l;
        const char *q = w8_strs_at(&toks, i, &l);
        if (!t->dec && i > 0) w8_buf_putc(&out, ' ');
        w8_buf_put(&out, q, l);
    }
    w8_strs_free(&toks);
    return out.s ? out.s : w8_xstrdup("");
}

struct w8_tok_stream {
    const w8_tok *t;
    int skip;
    w8_ivec ids;         /* the window */
    char *prefix;        /* decode of ids[0 .. prefix_index) */
    size_t prefix_index;
};

w8_tok_stream *w8_tok_stream_new(const w8_tok *t, int skip_special) {
    w8_tok_stream *s = w8_xcalloc(1, sizeof *s);
    s->t = t;
    s->skip = skip_special;
    s->prefix = w8_xstrdup("");
    return s;
}

static int ends_incomplete(const char *s) {
    size_t n = strlen(s);
    return n >= 3 && !memcmp(s + n - 3, "\xEF\xBF\xBD", 3);
}

char *w8_tok_stream_push(w8_tok_stream *s, int id) {
    if (id < 0 || id >= s->t->vocab_size) {
        w8_seterr("%s: decode: id %d out of range [0, %d)", s->t->label, id, s->t->vocab_size);
        return NULL;
    }
    size_t plen = strlen(s->prefix);
    if (plen == 0 && s->ids.n > 0) {
        char *np = w8_tok_decode(s->t, s->ids.v, s->ids.n, s->skip);
        if (!np) return NULL;
        if (!ends_incomplete(np)) {
            free(s->prefix);
            s->prefix = np;
            s->prefix_index = s->ids.n;
            plen = strlen(np);
        } else {
            free(np);
        }
    }
    w8_ivec_push(&s->ids, id);
    char *str = w8_tok_decode(s->t, s->ids.v, s->ids.n, s->skip);
    if (!str) {
        s->ids.n--;
        return NULL;
    }
    size_t slen = strlen(str);
    int settled = !ends_incomplete(str) || s->ids.n - s->prefix_index > STREAM_MAX_PENDING;
    if (slen <= plen || !settled) {
        free(str);
        return w8_xstrdup("");
    }
    /* the window's text normally extends the prefix; if a decoder ever
     * rewrote it, emit from the first difference on a character boundary */
    size_t from = plen;
    if (memcmp(str, s->prefix, plen)) {
        from = 0;
        while (from < plen && str[from] == s->prefix[from]) from++;
        while (from > 0 && ((unsigned char)str[from] & 0xC0) == 0x80) from--;
    }
    char *out = w8_xstrdup(str + from);
    free(str);
    /* slide the window: keep the ids after the old prefix */
    size_t keep_from = s->prefix_index, new_index = s->ids.n - keep_from;
    memmove(s->ids.v, s->ids.v + keep_from, new_index * sizeof(int));
    s->ids.n = new_index;
    free(s->prefix);
    s->prefix = w8_tok_decode(s->t, s->ids.v, s->ids.n, s->skip);
    if (!s->prefix) s->prefix = w8_xstrdup("");
    s->prefix_index = new_index;
    return out;
}

char *w8_tok_stream_flush(w8_tok_stream *s) {
    char *str = w8_tok_decode(s->t, s->ids.v, s->ids.n, s->skip);
    if (!str) return NULL;
    size_t plen = strlen(s->prefix), slen = strlen(str);
    char *out = w8_xstrdup(slen > plen && !memcmp(str, s->prefix, plen) ? str + plen : "");
    free(str);
    s->ids.n = 0;
    s->prefix_index = 0;
    free(s->prefix);
    s->prefix = w8_xstrdup("");
    return out;
}

void w8_tok_stream_free(w8_tok_stream *s) {
    if (!s) return;
    free(s->ids.v);
    free(s->prefix);
    free(s);
}

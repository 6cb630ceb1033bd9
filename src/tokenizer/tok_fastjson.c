/*
 * tok_fastjson.c - a fast path for the two big members of tokenizer.json.
 *
 * Qwen's tokenizer.json is 11 MB, nearly all of it model.vocab (151k
 * entries) and model.merges (151k pairs).  Building a jansson tree of that
 * (a hashed object key or three allocations per entry) takes ~0.6 s of CPU;
 * reading those two members straight from the text takes a few tens of ms.
 * So the loader first skims the document for the byte ranges of
 * model.vocab and model.merges, lets jansson parse everything else (with
 * those two values blanked to {} and []), and tok_bpe.c reads the two ranges
 * with the scanning primitives here (this file knows nothing of BPE).
 *
 * This is only a fast path: anything unexpected (escapes in key names,
 * duplicate keys, invalid UTF-8, odd nesting...) makes these functions return
 * -1 and the loader parses the whole file with jansson instead, which gives
 * the precise error messages.  Errors found here are not reported.
 */
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"
#include "../util.h"

#define MAX_DEPTH 512

const char *w8_fast_ws(const char *p, const char *e) {
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

/* p at '"': return the position after the closing quote, or NULL. */
const char *w8_fast_skip_string(const char *p, const char *e) {
    for (p++; p < e; p++) {
        if (*p == '\\') {
            if (++p >= e) return NULL;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

/* Characters that matter while skipping a container. */
static const unsigned char special[256] = {['"'] = 1, ['['] = 1, ['{'] = 1, [']'] = 1, ['}'] = 1};

/* Skip any JSON value (not validated in detail: jansson validates the rest). */
static const char *skip_value(const char *p, const char *e) {
    p = w8_fast_ws(p, e);
    if (p >= e) return NULL;
    if (*p == '"') return w8_fast_skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < e) {
            while (p < e && !special[(unsigned char)*p]) p++;
            if (p >= e) break;
            char c = *p;
            if (c == '"') {
                if (!(p = w8_fast_skip_string(p, e))) return NULL;
                continue;
            }
            if (c == '{' || c == '[') {
                if (++depth > MAX_DEPTH) return NULL;
            } else if (--depth == 0) {
                return p + 1;
            }
            p++;
        }
        return NULL;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' &&
           *p != '\t')
        p++;
    return p;
}

/* Walk an object's members; for each key equal to one of names[], store the
 * value's [start, end).  A member named `sub` is walked in turn for
 * subnames[] (instead of being skipped, so the text is scanned once).
 * Returns the end of the object or NULL. */
typedef struct {
    const char *names[2];
    int nn;
    const char *vb[2], *ve[2];
    int sub_seen;
} wanted;

static const char *members(const char *p, const char *e, wanted *w, const char *sub, wanted *subw) {
    p = w8_fast_ws(p, e);
    if (p >= e || *p != '{') return NULL;
    p = w8_fast_ws(p + 1, e);
    if (p < e && *p == '}') return p + 1;
    while (p < e) {
        if (*p != '"') return NULL;
        const char *k = p + 1, *kend = w8_fast_skip_string(p, e);
        if (!kend) return NULL;
        size_t klen = (size_t)(kend - 1 - k);
        p = w8_fast_ws(kend, e);
        if (p >= e || *p != ':') return NULL;
        const char *v = w8_fast_ws(p + 1, e), *vend;
        int is_sub = sub && strlen(sub) == klen && !memcmp(sub, k, klen);
        if (is_sub && !w->sub_seen && v < e && *v == '{') {
            vend = members(v, e, subw, NULL, NULL);
            w->sub_seen = 1;
        } else {
            if (is_sub) return NULL; /* duplicate or not an object: let jansson decide */
            vend = skip_value(v, e);
        }
        if (!vend) return NULL;
        for (int i = 0; i < w->nn; i++)
            if (strlen(w->names[i]) == klen && !memcmp(w->names[i], k, klen)) {
                if (w->vb[i]) return NULL; /* duplicate key: let jansson refuse it */
                w->vb[i] = v, w->ve[i] = vend;
            }
        p = w8_fast_ws(vend, e);
        if (p < e && *p == ',') {
            p = w8_fast_ws(p + 1, e);
            continue;
        }
        if (p < e && *p == '}') return p + 1;
        return NULL;
    }
    return NULL;
}

int w8_fast_skim(const char *buf, size_t len, w8_fast_ranges *r) {
    memset(r, 0, sizeof *r);
    const char *e = buf + len;
    wanted top = {.nn = 0}, model = {.names = {"vocab", "merges"}, .nn = 2};
    const char *end = members(buf, e, &top, "model", &model);
    if (!end || w8_fast_ws(end, e) != e || !top.sub_seen || !model.vb[0] || !model.vb[1]) return -1;
    if (*model.vb[0] != '{' || *model.vb[1] != '[') return -1;
    r->vocab = model.vb[0], r->vocab_end = model.ve[0];
    r->merges = model.vb[1], r->merges_end = model.ve[1];
    return 0;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int hex4(const char *p, const char *e, uint32_t *v) {
    if (e - p < 4) return -1;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        *v = *v * 16 + (uint32_t)h;
    }
    return 0;
}

/* Decode the JSON string at p ('"') into out; returns the position after it. */
const char *w8_fast_read_string(const char *p, const char *e, w8_buf *out) {
    out->len = 0;
    p++;
    const char *run = p;
    while (p < e) {
        char c = *p;
        if (c == '"') {
            w8_buf_put(out, run, (size_t)(p - run));
            if (!w8_utf8_valid(out->s ? out->s : "", out->len)) return NULL;
            if (!out->s) w8_buf_put(out, "", 0);
            return p + 1;
        }
        if ((unsigned char)c < 0x20) return NULL;
        if (c != '\\') {
            p++;
            continue;
        }
        w8_buf_put(out, run, (size_t)(p - run));
        if (++p >= e) return NULL;
        char x = *p++;
        uint32_t cp;
        switch (x) {
        case '"': case '\\': case '/': w8_buf_putc(out, x); break;
        case 'b': w8_buf_putc(out, '\b'); break;
        case 'f': w8_buf_putc(out, '\f'); break;
        case 'n': w8_buf_putc(out, '\n'); break;
        case 'r': w8_buf_putc(out, '\r'); break;
        case 't': w8_buf_putc(out, '\t'); break;
        case 'u':
            if (hex4(p, e, &cp) < 0) return NULL;
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) { /* a surrogate pair */
                uint32_t lo;
                if (e - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, e, &lo) < 0 ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return NULL;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return NULL;
            }
            {
                char enc[4];
                w8_buf_put(out, enc, (size_t)w8_utf8_encode(cp, enc));
            }
            break;
        default: return NULL;
        }
        run = p;
    }
    return NULL;
}

/*
 * tok_fastjson.c - a fast path for the two big members of tokenizer.json.
 *
 * Qwen's tokenizer.json is 11 MB, nearly all of it model.vocab (151k
 * entries) and model.merges (151k pairs).  Building a jansson tree of that
 * (a hashed object key or three allocations per entry) takes ~0.6 s of CPU;
 * reading those two members straight from the text takes a few tens of ms.
 * So the loader first skims the document for the byte ranges of
 * model.vocab and model.merges, lets jansson parse everything else (with
 * those two values blanked to {} and []), and reads the two ranges here.
 *
 * This is only a fast path: anything unexpected (escapes in key names,
 * duplicate keys, invalid UTF-8, odd nesting...) makes these functions return
 * -1 and the loader parses the whole file with jansson instead, which gives
 * the precise error messages.  Errors found here are not reported.
 */
#include <string.h>

#include "tok_internal.h"
#include "unicode.h"
#include "util.h"

#define MAX_DEPTH 512

static const char *ws(const char *p, const char *e) {
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

/* p at '"': return the position after the closing quote, or NULL. */
static const char *skip_string(const char *p, const char *e) {
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
    p = ws(p, e);
    if (p >= e) return NULL;
    if (*p == '"') return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < e) {
            while (p < e && !special[(unsigned char)*p]) p++;
            if (p >= e) break;
            char c = *p;
            if (c == '"') {
                if (!(p = skip_string(p, e))) return NULL;
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
    p = ws(p, e);
    if (p >= e || *p != '{') return NULL;
    p = ws(p + 1, e);
    if (p < e && *p == '}') return p + 1;
    while (p < e) {
        if (*p != '"') return NULL;
        const char *k = p + 1, *kend = skip_string(p, e);
        if (!kend) return NULL;
        size_t klen = (size_t)(kend - 1 - k);
        p = ws(kend, e);
        if (p >= e || *p != ':') return NULL;
        const char *v = ws(p + 1, e), *vend;
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
        p = ws(vend, e);
        if (p < e && *p == ',') {
            p = ws(p + 1, e);
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
    if (!end || ws(end, e) != e || !top.sub_seen || !model.vb[0] || !model.vb[1]) return -1;
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
static const char *read_string(const char *p, const char *e, w8_buf *out) {
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

int w8_fast_vocab(w8_bpe *m, const char *p, const char *e) {
    /* one pass collects the keys (into one buffer) and ids, then the table is built */
    w8_buf keys = {0}, key = {0};
    w8_ivec ent = {0}; /* (id, offset, length) triples */
    long long maxid = -1;
    int rc = -1;
    const char *q = ws(p + 1, e);
    if (q < e && *q == '}') q = NULL; /* empty vocab */
    while (q) {
        if (q >= e || *q != '"' || !(q = read_string(q, e, &key))) goto out;
        q = ws(q, e);
        if (q >= e || *q != ':') goto out;
        q = ws(q + 1, e);
        long long id = 0;
        const char *d = q;
        while (q < e && *q >= '0' && *q <= '9' && q - d < 9) id = id * 10 + (*q++ - '0');
        if (q == d || (q - d > 1 && *d == '0') ||
            (q < e && (*q == '.' || *q == 'e' || *q == 'E' || (*q >= '0' && *q <= '9'))))
            goto out; /* not a plain small non-negative integer */
        if (id > maxid) maxid = id;
        if (keys.len > (size_t)1 << 30) goto out;
        w8_ivec_push(&ent, (int)id);
        w8_ivec_push(&ent, (int)keys.len);
        w8_ivec_push(&ent, (int)key.len);
        w8_buf_put(&keys, key.s, key.len);
        q = ws(q, e);
        if (q < e && *q == ',') q = ws(q + 1, e);
        else if (q < e && *q == '}') q = NULL;
        else goto out;
    }
    if (maxid >= W8_MAX_VOCAB_ID) goto out;
    w8_bpe_vocab_begin(m, (int)(maxid + 1), ent.n / 3, keys.len);
    for (size_t i = 0; i < ent.n; i += 3)
        if (w8_bpe_vocab_add(m, ent.v[i], keys.s + ent.v[i + 1], (size_t)ent.v[i + 2]) < 0) goto out;
    rc = 0;
out:
    free(keys.s);
    free(key.s);
    free(ent.v);
    return rc;
}

int w8_fast_merges(w8_bpe *m, const char *p, const char *e, const char *label, int *syntax) {
    w8_buf a = {0}, b = {0}, joined = {0};
    *syntax = 1;
    int rc = -1;
    size_t n = 0;
    /* size the table first: the top-level commas + 1 entries */
    if (ws(p + 1, e) < e && *ws(p + 1, e) != ']') {
        int depth = 0;
        n = 1;
        for (const char *q = p; q < e; q++) {
            if (*q == '"') {
                if (!(q = skip_string(q, e))) goto out;
                q--;
            } else if (*q == '[') {
                depth++;
            } else if (*q == ']') {
                depth--;
            } else if (*q == ',' && depth == 1) {
                n++;
            }
        }
    }
    w8_bpe_merges_begin(m, n);
    const char *q = ws(p + 1, e);
    if (q < e && *q == ']') q = NULL;
    for (size_t i = 0; q; i++) {
        size_t al, bl;
        if (q < e && *q == '"') {
            if (!(q = read_string(q, e, &a))) goto out;
            const char *sp = memchr(a.s, ' ', a.len);
            if (!sp || memchr(sp + 1, ' ', a.len - (size_t)(sp + 1 - a.s))) {
                *syntax = 0; /* a real error, reported like the jansson path does */
                w8_seterr("%s: model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", label, i);
                goto out;
            }
            al = (size_t)(sp - a.s);
            b.len = 0;
            w8_buf_put(&b, sp + 1, a.len - al - 1);
            bl = b.len;
        } else if (q < e && *q == '[') {
            q = ws(q + 1, e);
            if (q >= e || *q != '"' || !(q = read_string(q, e, &a))) goto out;
            q = ws(q, e);
            if (q >= e || *q != ',') goto out;
            q = ws(q + 1, e);
            if (q >= e || *q != '"' || !(q = read_string(q, e, &b))) goto out;
            q = ws(q, e);
            if (q >= e || *q != ']') goto out;
            q++;
            al = a.len, bl = b.len;
        } else {
            goto out;
        }
        if (w8_bpe_merge_add(m, i, a.s, al, b.s, bl, label, &joined) < 0) {
            *syntax = 0;
            goto out;
        }
        q = ws(q, e);
        if (q < e && *q == ',') q = ws(q + 1, e);
        else if (q < e && *q == ']') q = NULL;
        else goto out;
    }
    rc = 0;
out:
    free(a.s);
    free(b.s);
    free(joined.s);
    return rc;
}

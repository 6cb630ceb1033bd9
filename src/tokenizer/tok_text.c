/*
 * tok_text.c - the text stages of tokenizer.json: patterns, normalizers,
 * pre-tokenizers and decoders, each parsed from its JSON object and applied
 * with the semantics of Hugging Face tokenizers (named after its Rust types).
 *
 * Regexes are compiled with Oniguruma using the Ruby syntax and UTF-8: HF
 * itself uses the `onig` crate with its default syntax (Ruby), so \p{L},
 * \p{N}, (?i:...) and look-ahead behave exactly as there.  Unsupported types
 * are refused at load time with the file and the type in the message.
 */
#include <oniguruma.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "../json.h"
#include "tok_internal.h"
#include "unicode.h"
#include "../util.h"

/* ---- patterns */

/* Oniguruma's rule for threads: searching one compiled regex from several
 * threads is fine, but compiling or freeing regexes must not happen in two
 * threads at once, even for different regexes (its API doc; rust-onig,
 * which HF uses, takes a global lock the same way).  Initialization once. */
static pthread_once_t onig_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t onig_lock = PTHREAD_MUTEX_INITIALIZER;
static void onig_init_once(void) {
    OnigEncoding enc = ONIG_ENCODING_UTF8;
    onig_initialize(&enc, 1);
}

int w8_pat_compile_regex(w8_pat *p, const char *re, size_t len, const char *label, const char *what) {
    pthread_once(&onig_once, onig_init_once);
    regex_t *reg = NULL;
    OnigErrorInfo einfo;
    pthread_mutex_lock(&onig_lock);
    int r = onig_new(&reg, (const UChar *)re, (const UChar *)re + len, ONIG_OPTION_NONE,
                     ONIG_ENCODING_UTF8, ONIG_SYNTAX_RUBY, &einfo);
    pthread_mutex_unlock(&onig_lock);
    if (r != ONIG_NORMAL) {
        UChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(msg, r, &einfo);
        return w8_seterr("%s: %s: bad regex '%.60s': %s", label, what, re, (const char *)msg);
    }
    p->re = reg;
    return 0;
}

int w8_pat_parse(w8_pat *p, const json_t *j, const char *label, const char *what) {
    memset(p, 0, sizeof *p);
    const json_t *s = json_object_get(j, "String"), *r = json_object_get(j, "Regex");
    if (json_is_string(s)) {
        p->litlen = json_string_length(s);
        p->lit = w8_xstrndup(json_string_value(s), p->litlen);
        return 0;
    }
    if (json_is_string(r))
        return w8_pat_compile_regex(p, json_string_value(r), json_string_length(r), label, what);
    return w8_seterr("%s: %s: pattern must be {\"String\": ...} or {\"Regex\": ...}", label, what);
}

void w8_pat_free(w8_pat *p) {
    free(p->lit);
    if (p->re) {
        pthread_mutex_lock(&onig_lock);
        onig_free((regex_t *)p->re);
        pthread_mutex_unlock(&onig_lock);
    }
    memset(p, 0, sizeof *p);
}

/* Non-overlapping matches like the onig crate's find_iter: an empty match
 * right where the previous match ended is skipped by stepping one char.
 * fn gets each match; a non-zero return stops the walk and is returned. */
int w8_pat_each(const w8_pat *p, const char *s, size_t n, w8_match_fn fn, void *ctx) {
    if (p->lit) {
        if (p->litlen == 0) return 0;
        size_t i = 0;
        while (i + p->litlen <= n) {
            const char *f = memmem(s + i, n - i, p->lit, p->litlen);
            if (!f) break;
            size_t st = (size_t)(f - s);
            int r = fn(ctx, st, st + p->litlen);
            if (r) return r;
            i = st + p->litlen;
        }
        return 0;
    }
    const UChar *str = (const UChar *)s, *end = str + n;
    OnigRegion *rg = onig_region_new();
    size_t pos = 0;
    long last_end = -1;
    int rc = 0;
    while (pos <= n && rc == 0) {
        int r = onig_search((regex_t *)p->re, str, end, str + pos, end, rg, ONIG_OPTION_NONE);
        if (r == ONIG_MISMATCH) break;
        if (r < 0) {
            rc = w8_seterr("tokenizer: regex search failed (code %d)", r);
            break;
        }
        long b = rg->beg[0], e = rg->end[0];
        if (b == e && last_end == e) {
            int valid;
            pos += pos < n ? w8_utf8_unit(str + pos, n - pos, &valid) : 1;
            continue;
        }
        pos = (size_t)e;
        last_end = e;
        rc = fn(ctx, (size_t)b, (size_t)e);
    }
    onig_region_free(rg, 1);
    return rc;
}

static int collect_match(void *ctx, size_t b, size_t e) {
    w8_ivec *m = ctx;
    w8_ivec_push(m, (int)b);
    w8_ivec_push(m, (int)e);
    return 0;
}

int w8_pat_find(const w8_pat *p, const char *s, size_t n, w8_ivec *m) {
    size_t before = m->n;
    if (w8_pat_each(p, s, n, collect_match, m)) return -1;
    return (int)((m->n - before) / 2);
}

/* Replace every match of p in s[0..n) by rep, into out (appended). */
static int replace_all(const w8_pat *p, const char *s, size_t n, const char *rep, size_t replen,
                       w8_buf *out) {
    w8_ivec m = {0};
    int k = w8_pat_find(p, s, n, &m);
    if (k < 0) return -1;
    size_t prev = 0;
    for (int i = 0; i < k; i++) {
        size_t b = (size_t)m.v[2 * i], e = (size_t)m.v[2 * i + 1];
        w8_buf_put(out, s + prev, b - prev);
        w8_buf_put(out, rep, replen);
        prev = e;
    }
    w8_buf_put(out, s + prev, n - prev);
    free(m.v);
    return 0;
}

/* ---- small JSON helpers */

static const char *type_of(const json_t *j) {
    const json_t *t = json_object_get(j, "type");
    return json_is_string(t) ? json_string_value(t) : NULL;
}

static int get_flag(const json_t *j, const char *key, int dflt, const char *label, int *out) {
    *out = dflt;
    return w8_json_get_bool(j, key, label, out) < 0 ? -1 : 0;
}

static char *get_text(const json_t *j, const char *key, size_t *len) {
    const json_t *v = json_object_get(j, key);
    if (!json_is_string(v)) return NULL;
    *len = json_string_length(v);
    return w8_xstrndup(json_string_value(v), *len);
}

/* A single character given as a string (Metaspace replacement, Strip content). */
static int get_char(const json_t *j, const char *key, const char *label, const char *what,
                    uint32_t *cp) {
    const json_t *v = json_object_get(j, key);
    if (!json_is_string(v)) return w8_seterr("%s: %s: '%s' must be a string", label, what, key);
    int l = w8_utf8_decode((const unsigned char *)json_string_value(v), json_string_length(v), cp);
    if (l <= 0 || (size_t)l != json_string_length(v))
        return w8_seterr("%s: %s: '%s' must be exactly one character", label, what, key);
    return 0;
}

static int prepend_scheme(const json_t *j, const char *label, const char *what, int *out) {
    const json_t *ps = json_object_get(j, "prepend_scheme");
    if (json_is_string(ps)) {
        const char *s = json_string_value(ps);
        if (!strcmp(s, "always")) *out = W8_PREPEND_ALWAYS;
        else if (!strcmp(s, "first")) *out = W8_PREPEND_FIRST;
        else if (!strcmp(s, "never")) *out = W8_PREPEND_NEVER;
        else return w8_seterr("%s: %s: unknown prepend_scheme '%s'", label, what, s);
        return 0;
    }
    /* older files: add_prefix_space true/false */
    int aps = 1;
    if (get_flag(j, "add_prefix_space", 1, label, &aps) < 0) return -1;
    *out = aps ? W8_PREPEND_ALWAYS : W8_PREPEND_NEVER;
    return 0;
}

/* ---- normalizers */

static int norm_parse_into(w8_norm *nm, const json_t *j, const char *label) {
    memset(nm, 0, sizeof *nm);
    const char *t = type_of(j);
    if (!t) return w8_seterr("%s: normalizer: missing \"type\"", label);
    if (!strcmp(t, "Sequence")) {
        const json_t *a = json_object_get(j, "normalizers");
        if (!json_is_array(a)) return w8_seterr("%s: normalizer Sequence: 'normalizers' must be an array", label);
        nm->kind = W8_NORM_SEQ;
        nm->sub = w8_xcalloc(json_array_size(a) + 1, sizeof(w8_norm));
        for (size_t i = 0; i < json_array_size(a); i++) {
            nm->nsub++;
            if (norm_parse_into(&nm->sub[i], json_array_get(a, i), label) < 0) return -1;
        }
    } else if (!strcmp(t, "NFC")) nm->kind = W8_NORM_NFC;
    else if (!strcmp(t, "NFD")) nm->kind = W8_NORM_NFD;
    else if (!strcmp(t, "NFKC")) nm->kind = W8_NORM_NFKC;
    else if (!strcmp(t, "NFKD")) nm->kind = W8_NORM_NFKD;
    else if (!strcmp(t, "Lowercase")) nm->kind = W8_NORM_LOWER;
    else if (!strcmp(t, "Prepend")) {
        nm->kind = W8_NORM_PREPEND;
        if (!(nm->text = get_text(j, "prepend", &nm->textlen)))
            return w8_seterr("%s: normalizer Prepend: 'prepend' must be a string", label);
    } else if (!strcmp(t, "Replace")) {
        nm->kind = W8_NORM_REPLACE;
        if (w8_pat_parse(&nm->pat, json_object_get(j, "pattern"), label, "normalizer Replace") < 0) return -1;
        if (!(nm->text = get_text(j, "content", &nm->textlen)))
            return w8_seterr("%s: normalizer Replace: 'content' must be a string", label);
    } else if (!strcmp(t, "Strip")) {
        nm->kind = W8_NORM_STRIP;
        if (get_flag(j, "strip_left", 1, label, &nm->left) < 0 ||
            get_flag(j, "strip_right", 1, label, &nm->right) < 0)
            return -1;
    } else {
        return w8_seterr("%s: normalizer type '%s' is not supported", label, t);
    }
    return 0;
}

static void norm_clear(w8_norm *nm) {
    for (int i = 0; i < nm->nsub; i++) norm_clear(&nm->sub[i]);
    free(nm->sub);
    free(nm->text);
    w8_pat_free(&nm->pat);
}

w8_norm *w8_norm_parse(const json_t *j, const char *label) {
    if (!json_is_object(j)) {
        w8_seterr("%s: 'normalizer': expected an object, got %s", label, w8_json_type_name(j));
        return NULL;
    }
    w8_norm *nm = w8_xcalloc(1, sizeof *nm);
    if (norm_parse_into(nm, j, label) < 0) {
        w8_norm_free(nm);
        return NULL;
    }
    return nm;
}

void w8_norm_free(w8_norm *nm) {
    if (!nm) return;
    norm_clear(nm);
    free(nm);
}

static int unicode_form_run(int opt, const char *s, size_t n, w8_buf *out) {
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &res,
                                      (utf8proc_option_t)opt);
    if (r < 0) return w8_seterr("tokenizer: normalization failed: %s", utf8proc_errmsg(r));
    w8_buf_put(out, res, (size_t)r);
    free(res);
    return 0;
}

/* NFC/NFD/NFKC/NFKD.  ASCII is its own normal form, and no ASCII character
 * ever composes with what precedes it or reorders, so the text may be cut
 * before any ASCII character: only each non-ASCII run, together with the one
 * character before it (which may compose with a following mark), goes
 * through utf8proc.  This keeps mostly-ASCII text at memcpy speed. */
static int unicode_form(int kind, const char *s, size_t n, w8_buf *out) {
    int opt = UTF8PROC_STABLE;
    if (kind == W8_NORM_NFC || kind == W8_NORM_NFKC) opt |= UTF8PROC_COMPOSE;
    else opt |= UTF8PROC_DECOMPOSE;
    if (kind == W8_NORM_NFKC || kind == W8_NORM_NFKD) opt |= UTF8PROC_COMPAT;
    size_t i = 0;
    while (i < n) {
        size_t a = i;
        while (i < n && (unsigned char)s[i] < 0x80) i++;
        if (i == n) {
            w8_buf_put(out, s + a, i - a);
            break;
        }
        size_t b = i > a ? i - 1 : i; /* the run starts with its ASCII predecessor */
        w8_buf_put(out, s + a, b - a);
        while (i < n && (unsigned char)s[i] >= 0x80) i++;
        if (unicode_form_run(opt, s + b, i - b, out) < 0) return -1;
    }
    return 0;
}

/* Rust's to_lowercase per character; utf8proc gives the simple (1:1)
 * mapping, which differs only for a handful of characters such as U+0130. */
static void lowercase(const char *s, size_t n, w8_buf *out) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int l = w8_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (l <= 0) {
            w8_buf_putc(out, s[i++]);
            continue;
        }
        char enc[4];
        int el = w8_utf8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), enc);
        w8_buf_put(out, enc, (size_t)el);
        i += (size_t)l;
    }
}

static void strip_ws(const char *s, size_t n, int left, int right, w8_buf *out) {
    size_t b = 0, e = n;
    while (left && b < e) {
        uint32_t cp;
        int l = w8_utf8_decode((const unsigned char *)s + b, e - b, &cp);
        if (l <= 0 || !w8_uni_is_space(cp)) break;
        b += (size_t)l;
    }
    while (right && e > b) {
        size_t k = e - 1;
        while (k > b && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
        uint32_t cp;
        int l = w8_utf8_decode((const unsigned char *)s + k, e - k, &cp);
        if (l <= 0 || (size_t)l != e - k || !w8_uni_is_space(cp)) break;
        e = k;
    }
    w8_buf_put(out, s + b, e - b);
}

int w8_norm_apply(const w8_norm *nm, const char *s, size_t n, w8_buf *out) {
    out->len = 0;
    switch (nm->kind) {
    case W8_NORM_SEQ: {
        w8_buf cur = {0}, nxt = {0};
        w8_buf_put(&cur, s, n);
        for (int i = 0; i < nm->nsub; i++) {
            if (w8_norm_apply(&nm->sub[i], cur.s, cur.len, &nxt) < 0) {
                free(cur.s);
                free(nxt.s);
                return -1;
            }
            w8_buf t = cur;
            cur = nxt;
            nxt = t;
        }
        w8_buf_put(out, cur.s, cur.len);
        free(cur.s);
        free(nxt.s);
        return 0;
    }
    case W8_NORM_NFC:
    case W8_NORM_NFD:
    case W8_NORM_NFKC:
    case W8_NORM_NFKD: return unicode_form(nm->kind, s, n, out);
    case W8_NORM_PREPEND:
        if (n) w8_buf_put(out, nm->text, nm->textlen);
        w8_buf_put(out, s, n);
        return 0;
    case W8_NORM_REPLACE: return replace_all(&nm->pat, s, n, nm->text, nm->textlen, out);
    case W8_NORM_LOWER: lowercase(s, n, out); return 0;
    case W8_NORM_STRIP: strip_ws(s, n, nm->left, nm->right, out); return 0;
    }
    return 0;
}

/* ---- pre-tokenizers */

/* GPT-2's pattern, used by ByteLevel with use_regex = true. */
static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int behavior_of(const json_t *j, const char *label, int *out) {
    const json_t *b = json_object_get(j, "behavior");
    const char *s = json_is_string(b) ? json_string_value(b) : "";
    if (!strcmp(s, "Removed")) *out = W8_SPLIT_REMOVED;
    else if (!strcmp(s, "Isolated")) *out = W8_SPLIT_ISOLATED;
    else if (!strcmp(s, "MergedWithPrevious")) *out = W8_SPLIT_MERGED_PREV;
    else if (!strcmp(s, "MergedWithNext")) *out = W8_SPLIT_MERGED_NEXT;
    else if (!strcmp(s, "Contiguous")) *out = W8_SPLIT_CONTIGUOUS;
    else return w8_seterr("%s: pre_tokenizer Split: unknown behavior '%s'", label, s);
    return 0;
}

static int pretok_parse_into(w8_pretok *p, const json_t *j, const char *label) {
    memset(p, 0, sizeof *p);
    const char *t = type_of(j);
    if (!t) return w8_seterr("%s: pre_tokenizer: missing \"type\"", label);
    if (!strcmp(t, "Sequence")) {
        const json_t *a = json_object_get(j, "pretokenizers");
        if (!json_is_array(a))
            return w8_seterr("%s: pre_tokenizer Sequence: 'pretokenizers' must be an array", label);
        p->kind = W8_PT_SEQ;
        p->sub = w8_xcalloc(json_array_size(a) + 1, sizeof(w8_pretok));
        for (size_t i = 0; i < json_array_size(a); i++) {
            p->nsub++;
            if (pretok_parse_into(&p->sub[i], json_array_get(a, i), label) < 0) return -1;
        }
    } else if (!strcmp(t, "ByteLevel")) {
        p->kind = W8_PT_BYTELEVEL;
        if (get_flag(j, "add_prefix_space", 1, label, &p->add_prefix_space) < 0 ||
            get_flag(j, "use_regex", 1, label, &p->use_regex) < 0)
            return -1;
        if (p->use_regex &&
            w8_pat_compile_regex(&p->pat, gpt2_regex, strlen(gpt2_regex), label, "ByteLevel") < 0)
            return -1;
    } else if (!strcmp(t, "Split")) {
        p->kind = W8_PT_SPLIT;
        if (w8_pat_parse(&p->pat, json_object_get(j, "pattern"), label, "pre_tokenizer Split") < 0 ||
            behavior_of(j, label, &p->behavior) < 0 || get_flag(j, "invert", 0, label, &p->invert) < 0)
            return -1;
    } else if (!strcmp(t, "Metaspace")) {
        p->kind = W8_PT_METASPACE;
        uint32_t cp;
        if (get_char(j, "replacement", label, "pre_tokenizer Metaspace", &cp) < 0 ||
            prepend_scheme(j, label, "pre_tokenizer Metaspace", &p->prepend_scheme) < 0 ||
            get_flag(j, "split", 1, label, &p->split) < 0)
            return -1;
        p->repl_len = w8_utf8_encode(cp, p->repl);
    } else if (!strcmp(t, "Digits")) {
        p->kind = W8_PT_DIGITS;
        if (get_flag(j, "individual_digits", 0, label, &p->individual_digits) < 0) return -1;
    } else {
        return w8_seterr("%s: pre_tokenizer type '%s' is not supported", label, t);
    }
    return 0;
}

static void pretok_clear(w8_pretok *p) {
    for (int i = 0; i < p->nsub; i++) pretok_clear(&p->sub[i]);
    free(p->sub);
    w8_pat_free(&p->pat);
}

w8_pretok *w8_pretok_parse(const json_t *j, const char *label) {
    if (!json_is_object(j)) {
        w8_seterr("%s: 'pre_tokenizer': expected an object, got %s", label, w8_json_type_name(j));
        return NULL;
    }
    w8_pretok *p = w8_xcalloc(1, sizeof *p);
    if (pretok_parse_into(p, j, label) < 0) {
        w8_pretok_free(p);
        return NULL;
    }
    return p;
}

void w8_pretok_free(w8_pretok *p) {
    if (!p) return;
    pretok_clear(p);
    free(p);
}

/* Pre-tokenizers run depth-first: each piece a stage cuts off goes at once
 * through the following stages and on to the sink (BPE), so no list of the
 * whole text's pieces is ever built (the text may be megabytes).
 *
 * The splitter turns a stream of matches into HF's (start, end, is_match)
 * runs and merges them by a SplitDelimiterBehavior as they come: only the
 * last, still growing piece is held back.  HF's rules, stated forwards:
 *   Removed: drop the matches.  Isolated: every run is a piece.
 *   MergedWithPrevious: a match after a non-match joins the piece before it.
 *   MergedWithNext: a match followed by a non-match joins the piece after it.
 *   Contiguous: runs of the same kind join.
 * Empty pieces are dropped, as HF drops them. */
typedef struct {
    const char *s;
    size_t n, prev;          /* end of the last match */
    int behavior, invert, at0, any;
    size_t pb, pe;           /* the piece held back */
    int have, prev_match;
    w8_word_fn fn;
    void *ctx;
    int rc;
} splitter;

static void sp_emit(splitter *sp, size_t b, size_t e) {
    if (sp->rc == 0 && e > b) sp->rc = sp->fn(sp->ctx, sp->s + b, e - b, sp->at0 && b == 0);
}

static void sp_hold(splitter *sp, size_t b, size_t e) {
    if (sp->have) sp_emit(sp, sp->pb, sp->pe);
    sp->pb = b, sp->pe = e, sp->have = 1;
}

static void sp_run(splitter *sp, size_t b, size_t e, int m) {
    if (sp->invert) m = !m;
    switch (sp->behavior) {
    case W8_SPLIT_REMOVED:
        if (!m) sp_emit(sp, b, e);
        break;
    case W8_SPLIT_ISOLATED: sp_emit(sp, b, e); break;
    case W8_SPLIT_MERGED_PREV:
        if (m && !sp->prev_match && sp->have) sp->pe = e;
        else sp_hold(sp, b, e);
        break;
    case W8_SPLIT_CONTIGUOUS:
        if (m == sp->prev_match && sp->have) sp->pe = e;
        else sp_hold(sp, b, e);
        break;
    case W8_SPLIT_MERGED_NEXT:
        if (m) {
            sp_hold(sp, b, e);
        } else if (sp->have) {
            sp->have = 0;
            sp_emit(sp, sp->pb, e);
        } else {
            sp_emit(sp, b, e);
        }
        break;
    }
    sp->prev_match = m;
}

static int sp_match(void *ctx, size_t b, size_t e) {
    splitter *sp = ctx;
    if (b > sp->prev) sp_run(sp, sp->prev, b, 0);
    sp_run(sp, b, e, 1);
    sp->prev = e;
    sp->any = 1;
    return sp->rc;
}

static void sp_init(splitter *sp, const char *s, size_t n, int behavior, int invert, int at0,
                    w8_word_fn fn, void *ctx) {
    memset(sp, 0, sizeof *sp);
    sp->s = s, sp->n = n, sp->behavior = behavior, sp->invert = invert, sp->at0 = at0;
    sp->fn = fn, sp->ctx = ctx;
}

static int sp_finish(splitter *sp) {
    if (sp->prev < sp->n || !sp->any) sp_run(sp, sp->prev, sp->n, 0);
    if (sp->have) sp_emit(sp, sp->pb, sp->pe);
    return sp->rc;
}

static int split_pattern(const w8_pat *pat, const char *s, size_t n, int behavior, int invert,
                         int at0, w8_word_fn fn, void *ctx) {
    splitter sp;
    sp_init(&sp, s, n, behavior, invert, at0, fn, ctx);
    int r = w8_pat_each(pat, s, n, sp_match, &sp);
    if (r) return r < 0 ? -1 : r;
    return sp_finish(&sp);
}

/* Digits: every numeric character is a match, isolated (individual_digits)
 * or joined into runs (Contiguous). */
static int split_digits(const char *s, size_t n, int individual, int at0, w8_word_fn fn, void *ctx) {
    splitter sp;
    sp_init(&sp, s, n, individual ? W8_SPLIT_ISOLATED : W8_SPLIT_CONTIGUOUS, 0, at0, fn, ctx);
    size_t i = 0;
    while (i < n && sp.rc == 0) {
        uint32_t cp = 0;
        int l = w8_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (l <= 0) l = 1;
        utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
        if (c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO)
            sp_match(&sp, i, i + (size_t)l);
        i += (size_t)l;
    }
    return sp.rc ? sp.rc : sp_finish(&sp);
}

/* Each byte becomes its printable stand-in character (1 or 2 bytes). */
static int bytelevel_map(const char *s, size_t n, int prefix_space, int at0, w8_word_fn fn, void *ctx) {
    char st[512];
    size_t cap = 2 * n + 2;
    char *buf = cap <= sizeof st ? st : w8_xmalloc(cap);
    size_t o = 0;
    for (size_t k = prefix_space ? 0 : 1; k <= n; k++) {
        const char *c = w8_bytelevel_char(k == 0 ? ' ' : (unsigned char)s[k - 1]);
        buf[o++] = c[0];
        if (c[1]) buf[o++] = c[1];
    }
    int rc = o ? fn(ctx, buf, o, at0) : 0;
    if (buf != st) free(buf);
    return rc;
}

typedef struct {
    w8_word_fn fn;
    void *ctx;
} bl_sink;

static int bytelevel_piece(void *c, const char *s, size_t n, int at0) {
    bl_sink *k = c;
    return bytelevel_map(s, n, 0, at0, k->fn, k->ctx);
}

/* Metaspace: spaces become the replacement, which is prepended per the
 * scheme, then (split) each replacement starts a new piece. */
static int metaspace(const w8_pretok *p, const char *s, size_t n, int at0, w8_word_fn fn, void *ctx) {
    w8_buf t = {0};
    int starts = (size_t)p->repl_len <= n && !memcmp(s, p->repl, (size_t)p->repl_len);
    if (!starts && n > 0 && s[0] == ' ') starts = 1; /* the space becomes the replacement */
    if (!starts && (p->prepend_scheme == W8_PREPEND_ALWAYS || (p->prepend_scheme == W8_PREPEND_FIRST && at0)))
        w8_buf_put(&t, p->repl, (size_t)p->repl_len);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') w8_buf_put(&t, p->repl, (size_t)p->repl_len);
        else w8_buf_putc(&t, s[i]);
    }
    int rc = 0;
    if (p->split) {
        w8_pat lit = {.lit = (char *)p->repl, .litlen = (size_t)p->repl_len};
        rc = split_pattern(&lit, t.s ? t.s : "", t.len, W8_SPLIT_MERGED_NEXT, 0, at0, fn, ctx);
    } else if (t.len) {
        rc = fn(ctx, t.s, t.len, at0);
    }
    free(t.s);
    return rc;
}

typedef struct {
    const w8_pretok *seq;
    int k; /* the next stage */
    w8_word_fn fn;
    void *ctx;
} chain;

static int run_stage(const w8_pretok *p, const char *s, size_t n, int at0, w8_word_fn fn, void *ctx);

static int chain_piece(void *c, const char *s, size_t n, int at0) {
    chain *ch = c;
    if (ch->k == ch->seq->nsub) return ch->fn(ch->ctx, s, n, at0);
    chain next = {ch->seq, ch->k + 1, ch->fn, ch->ctx};
    return run_stage(&ch->seq->sub[ch->k], s, n, at0, chain_piece, &next);
}

/* One pre-tokenizer over one piece; its pieces go to fn. */
static int run_stage(const w8_pretok *p, const char *s, size_t n, int at0, w8_word_fn fn, void *ctx) {
    switch (p->kind) {
    case W8_PT_SEQ: {
        chain c = {p, 0, fn, ctx};
        return chain_piece(&c, s, n, at0);
    }
    case W8_PT_SPLIT: return split_pattern(&p->pat, s, n, p->behavior, p->invert, at0, fn, ctx);
    case W8_PT_DIGITS: return split_digits(s, n, p->individual_digits, at0, fn, ctx);
    case W8_PT_METASPACE: return metaspace(p, s, n, at0, fn, ctx);
    case W8_PT_BYTELEVEL: {
        int prefix = p->add_prefix_space && (n == 0 || s[0] != ' ');
        if (!p->use_regex) return bytelevel_map(s, n, prefix, at0, fn, ctx);
        /* GPT-2 regex over the (prefixed) piece, then the byte mapping */
        w8_buf pre = {0};
        if (prefix) w8_buf_putc(&pre, ' ');
        w8_buf_put(&pre, s, n);
        bl_sink k = {fn, ctx};
        int rc = split_pattern(&p->pat, pre.s, pre.len, W8_SPLIT_ISOLATED, 0, at0, bytelevel_piece, &k);
        free(pre.s);
        return rc;
    }
    }
    return 0;
}

int w8_pretok_run(const w8_pretok *p, const char *s, size_t n, int at_start, w8_word_fn fn, void *ctx) {
    return run_stage(p, s, n, at_start, fn, ctx) ? -1 : 0;
}

/* ---- decoders */

static int dec_parse_into(w8_dec *d, const json_t *j, const char *label) {
    memset(d, 0, sizeof *d);
    const char *t = type_of(j);
    if (!t) return w8_seterr("%s: decoder: missing \"type\"", label);
    if (!strcmp(t, "Sequence")) {
        const json_t *a = json_object_get(j, "decoders");
        if (!json_is_array(a)) return w8_seterr("%s: decoder Sequence: 'decoders' must be an array", label);
        d->kind = W8_DEC_SEQ;
        d->sub = w8_xcalloc(json_array_size(a) + 1, sizeof(w8_dec));
        for (size_t i = 0; i < json_array_size(a); i++) {
            d->nsub++;
            if (dec_parse_into(&d->sub[i], json_array_get(a, i), label) < 0) return -1;
        }
    } else if (!strcmp(t, "ByteLevel")) d->kind = W8_DEC_BYTELEVEL;
    else if (!strcmp(t, "ByteFallback")) d->kind = W8_DEC_BYTEFALLBACK;
    else if (!strcmp(t, "Fuse")) d->kind = W8_DEC_FUSE;
    else if (!strcmp(t, "Replace")) {
        d->kind = W8_DEC_REPLACE;
        if (w8_pat_parse(&d->pat, json_object_get(j, "pattern"), label, "decoder Replace") < 0) return -1;
        if (!(d->text = get_text(j, "content", &d->textlen)))
            return w8_seterr("%s: decoder Replace: 'content' must be a string", label);
    } else if (!strcmp(t, "Strip")) {
        d->kind = W8_DEC_STRIP;
        long long a = 0, b = 0;
        if (get_char(j, "content", label, "decoder Strip", &d->strip_ch) < 0 ||
            w8_json_get_int(j, "start", label, &a) < 0 || w8_json_get_int(j, "stop", label, &b) < 0)
            return -1;
        if (a < 0 || b < 0 || a > 1000000 || b > 1000000)
            return w8_seterr("%s: decoder Strip: start/stop out of range", label);
        d->start = (int)a, d->stop = (int)b;
    } else if (!strcmp(t, "Metaspace")) {
        d->kind = W8_DEC_METASPACE;
        if (get_char(j, "replacement", label, "decoder Metaspace", &d->repl_cp) < 0 ||
            prepend_scheme(j, label, "decoder Metaspace", &d->prepend_scheme) < 0)
            return -1;
    } else {
        return w8_seterr("%s: decoder type '%s' is not supported", label, t);
    }
    return 0;
}

static void dec_clear(w8_dec *d) {
    for (int i = 0; i < d->nsub; i++) dec_clear(&d->sub[i]);
    free(d->sub);
    free(d->text);
    w8_pat_free(&d->pat);
}

w8_dec *w8_dec_parse(const json_t *j, const char *label) {
    if (!json_is_object(j)) {
        w8_seterr("%s: 'decoder': expected an object, got %s", label, w8_json_type_name(j));
        return NULL;
    }
    w8_dec *d = w8_xcalloc(1, sizeof *d);
    if (dec_parse_into(d, j, label) < 0) {
        w8_dec_free(d);
        return NULL;
    }
    return d;
}

void w8_dec_free(w8_dec *d) {
    if (!d) return;
    dec_clear(d);
    free(d);
}

/* "<0xNN>" -> the byte, else -1. */
static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* ByteFallback: a run of byte tokens becomes its text when that is valid
 * UTF-8, else one U+FFFD per byte token (HF's rule). */
static void flush_bytes(w8_buf *bytes, w8_strs *out) {
    if (!bytes->len) return;
    if (w8_utf8_valid(bytes->s, bytes->len)) {
        w8_strs_add(out, bytes->s, bytes->len);
    } else {
        for (size_t i = 0; i < bytes->len; i++) w8_strs_add(out, "\xEF\xBF\xBD", 3);
    }
    bytes->len = 0;
}

static int dec_step(const w8_dec *d, const w8_strs *in, w8_strs *out) {
    w8_buf t = {0};
    int rc = 0;
    switch (d->kind) {
    case W8_DEC_BYTELEVEL: /* all tokens to bytes, then one lossy string */
        for (size_t i = 0; i < in->n; i++) {
            size_t l;
            const char *q = w8_strs_at(in, i, &l);
            size_t start = t.len, k = 0;
            int ok = 1;
            while (k < l) {
                uint32_t cp;
                int cl = w8_utf8_decode((const unsigned char *)q + k, l - k, &cp);
                int b = cl > 0 ? w8_bytelevel_byte(cp) : -1;
                if (b < 0) {
                    ok = 0;
                    break;
                }
                w8_buf_putc(&t, (char)b);
                k += (size_t)cl;
            }
            if (!ok) { /* a character outside the byte alphabet: the token's own bytes */
                t.len = start;
                w8_buf_put(&t, q, l);
            }
        }
        {
            size_t ol;
            char *s = w8_utf8_lossy(t.s ? t.s : "", t.len, &ol);
            w8_strs_add(out, s, ol);
            free(s);
        }
        break;
    case W8_DEC_REPLACE:
        for (size_t i = 0; i < in->n && rc == 0; i++) {
            size_t l;
            const char *q = w8_strs_at(in, i, &l);
            t.len = 0;
            rc = replace_all(&d->pat, q, l, d->text, d->textlen, &t);
            w8_strs_add(out, t.s ? t.s : "", t.len);
        }
        break;
    case W8_DEC_BYTEFALLBACK:
        for (size_t i = 0; i < in->n; i++) {
            size_t l;
            const char *q = w8_strs_at(in, i, &l);
            int b = byte_token(q, l);
            if (b >= 0) {
                w8_buf_putc(&t, (char)b);
            } else {
                flush_bytes(&t, out);
                w8_strs_add(out, q, l);
            }
        }
        flush_bytes(&t, out);
        break;
    case W8_DEC_FUSE:
        for (size_t i = 0; i < in->n; i++) {
            size_t l;
            const char *q = w8_strs_at(in, i, &l);
            w8_buf_put(&t, q, l);
        }
        w8_strs_add(out, t.s ? t.s : "", t.len);
        break;
    case W8_DEC_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            size_t l;
            const char *q = w8_strs_at(in, i, &l);
            size_t b = 0, e = l;
            uint32_t cp;
            for (int k = 0; k < d->start && b < e; k++) {
                int cl = w8_utf8_decode((const unsigned char *)q + b, e - b, &cp);
                if (cl <= 0 || cp != d->strip_ch) break;
                b += (size_t)cl;
            }
            for (int k = 0; k < d->stop && e > b; k++) {
                size_t s = e - 1;
                while (s > b && ((unsigned char)q[s] & 0xC0) == 0x80) s--;
                int cl = w8_utf8_decode((const unsigned char *)q + s, e - s, &cp);
                if (cl <= 0 || (size_t)cl != e - s || cp != d->strip_ch) break;
                e = s;
            }
            w8_strs_add(out, q + b, e - b);
        }
        break;
    case W8_DEC_METASPACE: /* replacement -> ' ', but dropped in the first token */
        for (size_t i = 0; i < in->n; i++) {
            size_t l, k = 0;
            const char *q = w8_strs_at(in, i, &l);
            t.len = 0;
            while (k < l) {
                uint32_t cp;
                int cl = w8_utf8_decode((const unsigned char *)q + k, l - k, &cp);
                if (cl <= 0) cl = 1, cp = 0xFFFFFFFF;
                if (cp == d->repl_cp) {
                    if (!(i == 0 && d->prepend_scheme != W8_PREPEND_NEVER)) w8_buf_putc(&t, ' ');
                } else {
                    w8_buf_put(&t, q + k, (size_t)cl);
                }
                k += (size_t)cl;
            }
            w8_strs_add(out, t.s ? t.s : "", t.len);
        }
        break;
    }
    free(t.s);
    return rc;
}

int w8_dec_apply(const w8_dec *d, w8_strs *tok) {
    if (d->kind == W8_DEC_SEQ) {
        for (int i = 0; i < d->nsub; i++)
            if (w8_dec_apply(&d->sub[i], tok) < 0) return -1;
        return 0;
    }
    w8_strs out = {0};
    int rc = dec_step(d, tok, &out);
    w8_strs_free(tok);
    *tok = out;
    return rc;
}

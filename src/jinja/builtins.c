/*
 * builtins.c - what the filters, tests, methods and globals share: argument
 * access, string helpers with CPython's results (case mapping, strip, split,
 * replace, code point ranges), Python's `%` formatting and dict items.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "../util.h"
#include "builtins.h"

/* ------------------------------------------------------------ arguments */

/* Argument `pos` (positional index) or keyword `kw`; NULL when absent. */
const jv *jb_arg(const jargs *a, int pos, const char *kw) {
    if (pos >= 0 && pos < a->nargs) return &a->args[pos];
    for (int i = 0; kw && i < a->nkw; i++)
        if (!strcmp(a->kwn[i], kw)) return &a->kwv[i];
    return NULL;
}

int jb_arg_bool(const jargs *a, int pos, const char *kw, int def) {
    const jv *v = jb_arg(a, pos, kw);
    return v ? jv_truthy(*v) : def;
}

int jb_bad_arg(jctx *c, const jnode *at, const char *fn, const char *what) {
    return jj_error(c->src, at->pos, "%s: %s", fn, what);
}

int jb_arg_str(jctx *c, const jnode *at, const jargs *a, int pos, const char *kw, const char *fn,
                   const jv_str **out) {
    const jv *v = jb_arg(a, pos, kw);
    *out = NULL;
    if (!v || v->t == JV_NONE) return 0;
    if (v->t != JV_STR) return jj_error(c->src, at->pos, "%s: expected a string argument, got %s", fn, jv_type_name(*v));
    *out = v->u.s;
    return 0;
}

int jb_arg_int(jctx *c, const jnode *at, const jargs *a, int pos, const char *kw, const char *fn,
                   long long def, long long *out) {
    const jv *v = jb_arg(a, pos, kw);
    *out = def;
    if (!v || v->t == JV_NONE) return 0;
    if (v->t != JV_INT && v->t != JV_BOOL)
        return jj_error(c->src, at->pos, "%s: expected an integer argument, got %s", fn, jv_type_name(*v));
    *out = v->t == JV_INT ? v->u.i : v->u.b;
    return 0;
}

/* str(x) as a new string value. */
jv jb_to_str(jv x) {
    if (x.t == JV_STR) return jv_ref(x);
    w8_buf b = jj_buf();
    jv_write_str(&b, x);
    return jv_str_take(&b);
}

/* ------------------------------------------------------------ text helpers */

int jb_is_alpha(uint32_t cp) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

int jb_is_alnum(uint32_t cp) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) || (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* Python's upper()/lower() use Unicode's full mappings where one code point
 * becomes several; utf8proc gives the simple ones.  The cases that occur in
 * text: German sharp s, the Latin ligatures, and dotted capital I. */
static int special_case(w8_buf *b, uint32_t cp, int upper) {
    static const struct {
        uint32_t cp;
        const char *up;
    } sp[] = {{0xDF, "SS"}, {0xFB00, "FF"}, {0xFB01, "FI"}, {0xFB02, "FL"}, {0xFB03, "FFI"},
              {0xFB04, "FFL"}, {0xFB05, "ST"}, {0xFB06, "ST"}, {0x149, "\xCA\xBCN"}};
    if (!upper) {
        if (cp != 0x130) return 0;
        w8_buf_puts(b, "i\xCC\x87");
        return 1;
    }
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++)
        if (sp[i].cp == cp) {
            w8_buf_puts(b, sp[i].up);
            return 1;
        }
    return 0;
}

jv jb_change_case(const jv_str *s, case_mode mode) {
    w8_buf b = {0};
    int word_start = 1; /* at the start of a word (title) or of the text (capitalize) */
    for (size_t i = 0; i < s->len;) {
        uint32_t cp;
        i += ju_decode(s->s + i, s->len - i, &cp);
        uint32_t o = cp;
        int up = mode == CASE_UPPER || ((mode == CASE_CAPITALIZE || mode == CASE_TITLE_PY) && word_start);
        int lower = mode == CASE_LOWER || ((mode == CASE_CAPITALIZE || mode == CASE_TITLE_PY) && !word_start);
        if ((up || lower) && special_case(&b, cp, up)) {
            if (mode == CASE_TITLE_PY) word_start = !jb_is_alpha(cp);
            if (mode == CASE_CAPITALIZE) word_start = 0;
            continue;
        }
        switch (mode) {
        case CASE_UPPER: o = (uint32_t)utf8proc_toupper((utf8proc_int32_t)cp); break;
        case CASE_LOWER: o = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp); break;
        case CASE_CAPITALIZE:
            o = (uint32_t)(word_start ? utf8proc_toupper((utf8proc_int32_t)cp) : utf8proc_tolower((utf8proc_int32_t)cp));
            word_start = 0;
            break;
        case CASE_TITLE_PY:
            /* str.title(): upper after a non-letter, lower after a letter */
            o = (uint32_t)(word_start ? utf8proc_toupper((utf8proc_int32_t)cp) : utf8proc_tolower((utf8proc_int32_t)cp));
            word_start = !jb_is_alpha(cp);
            break;
        case CASE_TITLE_JINJA:
            /* Jinja's |title: words begin after runs of whitespace, - ( { [ < */
            if (ju_isspace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<') {
                word_start = 1;
            } else {
                o = (uint32_t)(word_start ? utf8proc_toupper((utf8proc_int32_t)cp) : utf8proc_tolower((utf8proc_int32_t)cp));
                word_start = 0;
            }
            break;
        }
        ju_encode(&b, o);
    }
    return jv_str_take(&b);
}

/* Is code point cp among the code points of `set` (NULL = whitespace)? */
static int in_set(uint32_t cp, const jv_str *set) {
    if (!set) return ju_isspace(cp);
    for (size_t i = 0; i < set->len;) {
        uint32_t x;
        i += ju_decode(set->s + i, set->len - i, &x);
        if (x == cp) return 1;
    }
    return 0;
}

/* Start of the code point that ends at i, never before lo: a run of stray
 * continuation bytes must not walk back past what the caller already
 * consumed from the left (ju_decode reads invalid bytes one at a time). */
size_t jb_prev_cp(const char *s, size_t lo, size_t i) {
    do i--;
    while (i > lo && ((unsigned char)s[i] & 0xC0) == 0x80);
    return i;
}

jv jb_strip(const jv_str *s, const jv_str *chars, int left, int right) {
    size_t b = 0, e = s->len;
    while (left && b < e) {
        uint32_t cp;
        size_t k = ju_decode(s->s + b, e - b, &cp);
        if (!in_set(cp, chars)) break;
        b += k;
    }
    while (right && e > b) {
        size_t p = jb_prev_cp(s->s, b, e);
        uint32_t cp;
        ju_decode(s->s + p, e - p, &cp);
        if (!in_set(cp, chars)) break;
        e = p;
    }
    return jv_str_n(s->s + b, e - b);
}

const char *jb_find_bytes(const char *h, size_t hn, const char *n, size_t nn) {
    if (nn == 0) return h;
    return memmem(h, hn, n, nn);
}

int jb_replace(jctx *c, const jnode *at, const jv_str *s, const jv_str *old, const jv_str *new, long long count,
                   jv *out) {
    w8_buf b = jj_buf();
    size_t i = 0;
    long long done = 0;
    if (old->len == 0) {
        /* Python inserts `new` between every code point and at both ends */
        while (count < 0 || done < count) {
            w8_buf_put(&b, new->s, new->len);
            done++;
            if (i >= s->len) break;
            uint32_t cp;
            size_t k = ju_decode(s->s + i, s->len - i, &cp);
            w8_buf_put(&b, s->s + i, k);
            i += k;
        }
        w8_buf_put(&b, s->s + i, s->len - i);
        return jj_buf_done(c, at, &b, out);
    }
    while (count < 0 || done < count) {
        const char *f = jb_find_bytes(s->s + i, s->len - i, old->s, old->len);
        if (!f) break;
        size_t at_ = (size_t)(f - s->s);
        w8_buf_put(&b, s->s + i, at_ - i);
        w8_buf_put(&b, new->s, new->len);
        i = at_ + old->len;
        done++;
    }
    w8_buf_put(&b, s->s + i, s->len - i);
    return jj_buf_done(c, at, &b, out);
}

/* str.split / str.rsplit. */
int jb_split(jctx *c, const jnode *at, const jv_str *s, const jv_str *sep, long long maxsplit, int from_right,
                 jv *out) {
    jv_list *l = jv_list_new(0);
    if (sep && sep->len == 0) {
        jv_free(jv_list_val(l));
        return jj_error(c->src, at->pos, "split: empty separator");
    }
    if (!sep) {
        /* runs of whitespace separate; no empty strings */
        size_t i = 0, n = s->len;
        long long splits = 0;
        if (from_right) {
            /* collect from the right, then reverse */
            size_t e = n;
            while (e > 0) {
                while (e > 0) {
                    size_t p = jb_prev_cp(s->s, 0, e);
                    uint32_t cp;
                    ju_decode(s->s + p, e - p, &cp);
                    if (!ju_isspace(cp)) break;
                    e = p;
                }
                if (!e) break;
                size_t b = e;
                if (maxsplit >= 0 && splits >= maxsplit) {
                    /* the rest, with its leading whitespace stripped */
                    size_t st = 0;
                    while (st < b) {
                        uint32_t cp;
                        size_t k = ju_decode(s->s + st, b - st, &cp);
                        if (!ju_isspace(cp)) break;
                        st += k;
                    }
                    jv_list_push(l, jv_str_n(s->s + st, b - st));
                    break;
                }
                while (b > 0) {
                    size_t p = jb_prev_cp(s->s, 0, b);
                    uint32_t cp;
                    ju_decode(s->s + p, b - p, &cp);
                    if (ju_isspace(cp)) break;
                    b = p;
                }
                jv_list_push(l, jv_str_n(s->s + b, e - b));
                splits++;
                e = b;
            }
            for (size_t k = 0; k < l->n / 2; k++) {
                jv t = l->items[k];
                l->items[k] = l->items[l->n - 1 - k];
                l->items[l->n - 1 - k] = t;
            }
        } else {
            while (i < n) {
                uint32_t cp;
                size_t k;
                while (i < n && (k = ju_decode(s->s + i, n - i, &cp)) && ju_isspace(cp)) i += k;
                if (i >= n) break;
                if (maxsplit >= 0 && splits >= maxsplit) {
                    size_t e = n;
                    while (e > i) {
                        size_t p = jb_prev_cp(s->s, i, e);
                        ju_decode(s->s + p, e - p, &cp);
                        if (!ju_isspace(cp)) break;
                        e = p;
                    }
                    jv_list_push(l, jv_str_n(s->s + i, e - i));
                    break;
                }
                size_t b = i;
                while (i < n && (k = ju_decode(s->s + i, n - i, &cp)) && !ju_isspace(cp)) i += k;
                jv_list_push(l, jv_str_n(s->s + b, i - b));
                splits++;
            }
        }
        *out = jv_list_val(l);
        return 0;
    }
    if (from_right && maxsplit >= 0) {
        size_t e = s->len;
        long long splits = 0;
        while (splits < maxsplit) {
            const char *f = NULL;
            for (size_t p = e >= sep->len ? e - sep->len + 1 : 0; p-- > 0;)
                if (!memcmp(s->s + p, sep->s, sep->len)) {
                    f = s->s + p;
                    break;
                }
            if (!f) break;
            size_t p = (size_t)(f - s->s);
            jv_list_push(l, jv_str_n(s->s + p + sep->len, e - p - sep->len));
            e = p;
            splits++;
        }
        jv_list_push(l, jv_str_n(s->s, e));
        for (size_t k = 0; k < l->n / 2; k++) {
            jv t = l->items[k];
            l->items[k] = l->items[l->n - 1 - k];
            l->items[l->n - 1 - k] = t;
        }
        *out = jv_list_val(l);
        return 0;
    }
    size_t i = 0;
    long long splits = 0;
    for (;;) {
        const char *f = maxsplit >= 0 && splits >= maxsplit ? NULL : jb_find_bytes(s->s + i, s->len - i, sep->s, sep->len);
        if (!f) {
            jv_list_push(l, jv_str_n(s->s + i, s->len - i));
            break;
        }
        size_t p = (size_t)(f - s->s);
        jv_list_push(l, jv_str_n(s->s + i, p - i));
        i = p + sep->len;
        splits++;
    }
    *out = jv_list_val(l);
    return 0;
}

/* Byte range of code points [start, end) given Python-style optional indices. */
void jb_cp_range(const jv_str *s, const jv *start, const jv *end, size_t *b, size_t *e) {
    long long n = (long long)ju_len(s->s, s->len);
    long long lo = start && (start->t == JV_INT) ? start->u.i : 0;
    long long hi = end && (end->t == JV_INT) ? end->u.i : n;
    if (lo < 0) lo = lo + n < 0 ? 0 : lo + n;
    if (hi < 0) hi = hi + n < 0 ? 0 : hi + n;
    if (lo > n) lo = n;
    if (hi > n) hi = n;
    if (hi < lo) hi = lo;
    size_t i = 0, k = 0;
    *b = *e = s->len;
    for (;; k++) {
        if ((long long)k == lo) *b = i;
        if ((long long)k == hi) {
            *e = i;
            break;
        }
        if (i >= s->len) break;
        i++;
        while (i < s->len && ((unsigned char)s->s[i] & 0xC0) == 0x80) i++;
    }
}

long long jb_cp_index(const jv_str *s, size_t byte) { return (long long)ju_len(s->s, byte); }


/* Python's printf-style `fmt % args` (|format and the % operator):
 * %s %r %d %i %f %e %g %x %o %c %% with flags, width, precision and
 * %(name)s keys.  `args` is a tuple/list of values or one value (or a dict
 * for named keys). */
int jj_percent_format(jctx *c, const jnode *at, const jv_str *fmt, jv args, jv *out) {
    const jv *vals = &args;
    size_t nv = 1, used = 0;
    if (args.t == JV_LIST && args.u.l->tuple) {
        vals = args.u.l->items;
        nv = args.u.l->n;
    }
    w8_buf b = jj_buf();
    for (size_t i = 0; i < fmt->len; i++) {
        if (fmt->s[i] != '%') {
            w8_buf_putc(&b, fmt->s[i]);
            continue;
        }
        if (++i >= fmt->len) goto bad;
        if (fmt->s[i] == '%') {
            w8_buf_putc(&b, '%');
            continue;
        }
        const jv *v = NULL;
        if (fmt->s[i] == '(') {
            const char *close = memchr(fmt->s + i, ')', fmt->len - i);
            if (!close || args.t != JV_DICT) goto bad;
            jv key = jv_str_n(fmt->s + i + 1, (size_t)(close - fmt->s) - i - 1);
            v = jv_dict_get(args.u.d, key);
            jv_free(key);
            if (!v) {
                w8_buf_free(&b);
                return jj_error(c->src, at->pos, "format: missing key in %%(...) field");
            }
            i = (size_t)(close - fmt->s) + 1;
        }
        char spec[32] = "%";
        size_t k = 1;
        while (i < fmt->len && strchr("-+ 0#", fmt->s[i]) && k < 8) spec[k++] = fmt->s[i++];
        while (i < fmt->len && isdigit((unsigned char)fmt->s[i]) && k < 16) spec[k++] = fmt->s[i++];
        if (i < fmt->len && fmt->s[i] == '.') {
            spec[k++] = fmt->s[i++];
            while (i < fmt->len && isdigit((unsigned char)fmt->s[i]) && k < 24) spec[k++] = fmt->s[i++];
        }
        if (i >= fmt->len) goto bad;
        char conv = fmt->s[i];
        if (!v) {
            if (used >= nv) {
                w8_buf_free(&b);
                return jj_error(c->src, at->pos, "not enough arguments for format string");
            }
            v = &vals[used++];
        }
        char t[512];
        if (conv == 's' || conv == 'r') {
            w8_buf tmp = jj_buf();
            if (conv == 's') jv_write_str(&tmp, *v);
            else jv_write_repr(&tmp, *v);
            /* width / precision apply to code points; plain ASCII is the common case */
            spec[k++] = 's';
            spec[k] = 0;
            if (k > 2 && tmp.len < 256) {
                snprintf(t, sizeof t, spec, tmp.s ? tmp.s : "");
                w8_buf_puts(&b, t);
            } else {
                w8_buf_put(&b, tmp.s ? tmp.s : "", tmp.len);
            }
            w8_buf_free(&tmp);
        } else if (strchr("dioxXc", conv)) {
            if (!jv_is_num(*v)) goto type;
            long long n = v->t == JV_FLOAT ? (long long)v->u.f : v->t == JV_INT ? v->u.i : v->u.b;
            if (conv == 'c') {
                ju_encode(&b, (uint32_t)n);
                continue;
            }
            spec[k++] = 'l';
            spec[k++] = 'l';
            spec[k++] = conv == 'i' ? 'd' : conv;
            spec[k] = 0;
            snprintf(t, sizeof t, spec, n);
            w8_buf_puts(&b, t);
        } else if (strchr("feEgG", conv)) {
            if (!jv_is_num(*v)) goto type;
            spec[k++] = conv;
            spec[k] = 0;
            snprintf(t, sizeof t, spec, jv_num(*v));
            w8_buf_puts(&b, t);
        } else {
            goto bad;
        }
    }
    if (used < nv && args.t != JV_DICT) {
        w8_buf_free(&b);
        return jj_error(c->src, at->pos, "not all arguments converted during string formatting");
    }
    return jj_buf_done(c, at, &b, out);
bad:
    w8_buf_free(&b);
    return jj_error(c->src, at->pos, "unsupported format string");
type:
    w8_buf_free(&b);
    return jj_error(c->src, at->pos, "format: a number is required");
}

/* ------------------------------------------------------------ dict items */

int jb_items(jctx *c, const jnode *at, jv x, jv *out) {
    if (x.t == JV_UNDEF) {
        *out = jv_list_val(jv_list_new(0));
        return 0;
    }
    if (x.t != JV_DICT && x.t != JV_NS) return jj_error(c->src, at->pos, "items: expected a dict, got %s", jv_type_name(x));
    jv_list *l = jv_list_new(x.u.d->n);
    for (size_t i = 0; i < x.u.d->n; i++) {
        jv_list *pair = jv_list_new(2);
        pair->tuple = 1;
        jv_list_push(pair, jv_ref(x.u.d->keys[i]));
        jv_list_push(pair, jv_ref(x.u.d->vals[i]));
        jv_list_push(l, jv_list_val(pair));
    }
    *out = jv_list_val(l);
    return 0;
}

/* ------------------------------------------------------------ case tests */

int jb_str_all(const jv_str *s, int upper) {
    int cased = 0;
    for (size_t i = 0; i < s->len;) {
        uint32_t cp;
        i += ju_decode(s->s + i, s->len - i, &cp);
        uint32_t lo = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), up = (uint32_t)utf8proc_toupper((utf8proc_int32_t)cp);
        if (lo != up) {
            cased = 1;
            if (upper ? cp != up : cp != lo) return 0;
        }
    }
    return cased;
}

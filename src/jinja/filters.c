/*
 * jinja_builtins.c - filters, tests, methods and globals.
 *
 * What Hugging Face chat templates call, with Jinja2 3.x / CPython results:
 *   filters  length count tojson trim upper lower capitalize title join
 *            default d first last list string int float abs replace round
 *            safe e escape items map select reject selectattr rejectattr
 *            unique sort dictsort batch indent wordcount reverse sum min max
 *            attr center format forceescape
 *            (|safe makes Markup: `markup + str` HTML-escapes the str, as
 *            markupsafe does even with autoescape off)
 *   tests    defined undefined none string number integer float mapping
 *            iterable sequence boolean true false odd even divisibleby
 *            eq equalto == ne != lt < le <= gt > ge >= in sameas callable
 *            lower upper
 *   methods  str: startswith endswith split rsplit strip lstrip rstrip
 *            replace upper lower title capitalize find rfind index count
 *            join splitlines isdigit isalpha isalnum isspace isupper islower
 *            format removeprefix removesuffix
 *            dict: items keys values get copy;  list: index count;
 *            loop: cycle
 *            (`obj.method` without a call is a bound method value, so
 *            `schema.items` is the dict method, as Python's getattr finds)
 *   globals  range namespace dict raise_exception strftime_now
 * tojson is transformers' override: json.dumps(x, ensure_ascii=False,
 * indent=indent, separators=separators, sort_keys=sort_keys).
 * Mutating methods (list.append, dict.update ...) are refused, as by
 * Jinja2's ImmutableSandboxedEnvironment that transformers uses.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "jinja.h"
#include "util.h"

/* ------------------------------------------------------------ arguments */

/* Argument `pos` (positional index) or keyword `kw`; NULL when absent. */
static const jv *arg(const jargs *a, int pos, const char *kw) {
    if (pos >= 0 && pos < a->nargs) return &a->args[pos];
    for (int i = 0; kw && i < a->nkw; i++)
        if (!strcmp(a->kwn[i], kw)) return &a->kwv[i];
    return NULL;
}

static int arg_bool(const jargs *a, int pos, const char *kw, int def) {
    const jv *v = arg(a, pos, kw);
    return v ? jv_truthy(*v) : def;
}

static int bad_arg(jctx *c, const jnode *at, const char *fn, const char *what) {
    return jj_error(c->src, at->pos, "%s: %s", fn, what);
}

static int arg_str(jctx *c, const jnode *at, const jargs *a, int pos, const char *kw, const char *fn,
                   const jv_str **out) {
    const jv *v = arg(a, pos, kw);
    *out = NULL;
    if (!v || v->t == JV_NONE) return 0;
    if (v->t != JV_STR) return jj_error(c->src, at->pos, "%s: expected a string argument, got %s", fn, jv_type_name(*v));
    *out = v->u.s;
    return 0;
}

static int arg_int(jctx *c, const jnode *at, const jargs *a, int pos, const char *kw, const char *fn,
                   long long def, long long *out) {
    const jv *v = arg(a, pos, kw);
    *out = def;
    if (!v || v->t == JV_NONE) return 0;
    if (v->t != JV_INT && v->t != JV_BOOL)
        return jj_error(c->src, at->pos, "%s: expected an integer argument, got %s", fn, jv_type_name(*v));
    *out = v->t == JV_INT ? v->u.i : v->u.b;
    return 0;
}

/* str(x) as a new string value. */
static jv to_str(jv x) {
    if (x.t == JV_STR) return jv_ref(x);
    jbuf b = jj_buf();
    jv_write_str(&b, x);
    return jbuf_to_str(&b);
}

/* ------------------------------------------------------------ text helpers */

typedef enum { CASE_UPPER, CASE_LOWER, CASE_TITLE_JINJA, CASE_TITLE_PY, CASE_CAPITALIZE } case_mode;

static int is_alpha_cp(uint32_t cp) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

static int is_alnum_cp(uint32_t cp) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) || (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* Python's upper()/lower() use Unicode's full mappings where one code point
 * becomes several; utf8proc gives the simple ones.  The cases that occur in
 * text: German sharp s, the Latin ligatures, and dotted capital I. */
static int special_case(jbuf *b, uint32_t cp, int upper) {
    static const struct {
        uint32_t cp;
        const char *up;
    } sp[] = {{0xDF, "SS"}, {0xFB00, "FF"}, {0xFB01, "FI"}, {0xFB02, "FL"}, {0xFB03, "FFI"},
              {0xFB04, "FFL"}, {0xFB05, "ST"}, {0xFB06, "ST"}, {0x149, "\xCA\xBCN"}};
    if (!upper) {
        if (cp != 0x130) return 0;
        jbuf_puts(b, "i\xCC\x87");
        return 1;
    }
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++)
        if (sp[i].cp == cp) {
            jbuf_puts(b, sp[i].up);
            return 1;
        }
    return 0;
}

static jv change_case(const jv_str *s, case_mode mode) {
    jbuf b = {0};
    int word_start = 1; /* at the start of a word (title) or of the text (capitalize) */
    for (size_t i = 0; i < s->len;) {
        uint32_t cp;
        i += ju_decode(s->s + i, s->len - i, &cp);
        uint32_t o = cp;
        int up = mode == CASE_UPPER || ((mode == CASE_CAPITALIZE || mode == CASE_TITLE_PY) && word_start);
        int lower = mode == CASE_LOWER || ((mode == CASE_CAPITALIZE || mode == CASE_TITLE_PY) && !word_start);
        if ((up || lower) && special_case(&b, cp, up)) {
            if (mode == CASE_TITLE_PY) word_start = !is_alpha_cp(cp);
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
            word_start = !is_alpha_cp(cp);
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
    return jbuf_to_str(&b);
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
static size_t prev_cp(const char *s, size_t lo, size_t i) {
    do i--;
    while (i > lo && ((unsigned char)s[i] & 0xC0) == 0x80);
    return i;
}

static jv strip(const jv_str *s, const jv_str *chars, int left, int right) {
    size_t b = 0, e = s->len;
    while (left && b < e) {
        uint32_t cp;
        size_t k = ju_decode(s->s + b, e - b, &cp);
        if (!in_set(cp, chars)) break;
        b += k;
    }
    while (right && e > b) {
        size_t p = prev_cp(s->s, b, e);
        uint32_t cp;
        ju_decode(s->s + p, e - p, &cp);
        if (!in_set(cp, chars)) break;
        e = p;
    }
    return jv_str_n(s->s + b, e - b);
}

static const char *find_bytes(const char *h, size_t hn, const char *n, size_t nn) {
    if (nn == 0) return h;
    return memmem(h, hn, n, nn);
}

static int replace(jctx *c, const jnode *at, const jv_str *s, const jv_str *old, const jv_str *new, long long count,
                   jv *out) {
    jbuf b = jj_buf();
    size_t i = 0;
    long long done = 0;
    if (old->len == 0) {
        /* Python inserts `new` between every code point and at both ends */
        while (count < 0 || done < count) {
            jbuf_put(&b, new->s, new->len);
            done++;
            if (i >= s->len) break;
            uint32_t cp;
            size_t k = ju_decode(s->s + i, s->len - i, &cp);
            jbuf_put(&b, s->s + i, k);
            i += k;
        }
        jbuf_put(&b, s->s + i, s->len - i);
        return jj_buf_done(c, at, &b, out);
    }
    while (count < 0 || done < count) {
        const char *f = find_bytes(s->s + i, s->len - i, old->s, old->len);
        if (!f) break;
        size_t at_ = (size_t)(f - s->s);
        jbuf_put(&b, s->s + i, at_ - i);
        jbuf_put(&b, new->s, new->len);
        i = at_ + old->len;
        done++;
    }
    jbuf_put(&b, s->s + i, s->len - i);
    return jj_buf_done(c, at, &b, out);
}

/* str.split / str.rsplit. */
static int split(jctx *c, const jnode *at, const jv_str *s, const jv_str *sep, long long maxsplit, int from_right,
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
                    size_t p = prev_cp(s->s, 0, e);
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
                    size_t p = prev_cp(s->s, 0, b);
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
                        size_t p = prev_cp(s->s, i, e);
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
        const char *f = maxsplit >= 0 && splits >= maxsplit ? NULL : find_bytes(s->s + i, s->len - i, sep->s, sep->len);
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
static void cp_range(const jv_str *s, const jv *start, const jv *end, size_t *b, size_t *e) {
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

static long long cp_index(const jv_str *s, size_t byte) { return (long long)ju_len(s->s, byte); }

/* ------------------------------------------------------------ iteration */

/* Jinja's attribute paths: "a.b.0" looks up a, then b, then index 0. */
static int get_path(jctx *c, const jnode *at, jv x, const jv_str *path, jv *out) {
    jv cur = jv_ref(x);
    const char *p = path->s, *end = path->s + path->len;
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        if (!dot) dot = end;
        jv key = jv_str_n(p, (size_t)(dot - p)), next;
        char *e;
        long long idx = strtoll(key.u.s->s, &e, 10);
        int rc;
        if (cur.t == JV_UNDEF) {
            jv_free(key);
            *out = cur;
            return 0;
        }
        if (key.u.s->len && !*e && cur.t == JV_LIST) {
            jv ik = jv_int(idx);
            rc = jj_getitem(c, at, cur, ik, &next);
        } else {
            rc = jj_getitem(c, at, cur, key, &next);
        }
        jv_free(key);
        jv_free(cur);
        if (rc) return -1;
        cur = next;
        p = dot + 1;
    }
    *out = cur;
    return 0;
}

/* Sort key: the attribute if given, lowercased when case-insensitive. */
static int sort_key(jctx *c, const jnode *at, jv x, const jv_str *attr, int case_sensitive, jv *out) {
    jv k;
    if (attr) {
        if (get_path(c, at, x, attr, &k)) return -1;
    } else {
        k = jv_ref(x);
    }
    if (!case_sensitive && k.t == JV_STR) {
        jv l = change_case(k.u.s, CASE_LOWER);
        jv_free(k);
        k = l;
    }
    *out = k;
    return 0;
}

typedef struct {
    jv key;
    jv val;
    size_t idx;
} keyed;

static _Thread_local int sort_failed; /* set by the comparator; renders may run on several threads */
static int cmp_keyed(const void *x, const void *y) {
    const keyed *a = x, *b = y;
    int r = jv_compare(a->key, b->key);
    if (r == -2) {
        sort_failed = 1;
        r = 0;
    }
    return r ? r : (a->idx < b->idx ? -1 : 1); /* stable */
}

/* Sorts vals by keys (both arrays of n, taken); results in a new list. */
static int sort_values(jctx *c, const jnode *at, keyed *k, size_t n, int reverse, jv *out) {
    sort_failed = 0;
    qsort(k, n, sizeof *k, cmp_keyed);
    int failed = sort_failed;
    jv_list *l = jv_list_new(n);
    for (size_t i = 0; i < n; i++) {
        size_t j = reverse ? n - 1 - i : i;
        jv_list_push(l, k[j].val);
        jv_free(k[j].key);
    }
    free(k);
    if (failed) {
        jv_free(jv_list_val(l));
        return jj_error(c->src, at->pos, "sort: values cannot be compared");
    }
    *out = jv_list_val(l);
    return 0;
}

/* ------------------------------------------------------------ tests */

static const char *const test_names[] = {
    "defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "iterable", "sequence",
    "boolean", "true", "false", "odd", "even", "divisibleby", "eq", "equalto", "==", "ne", "!=", "lt", "<",
    "lessthan", "le", "<=", "gt", ">", "greaterthan", "ge", ">=", "in", "sameas", "callable", "lower", "upper",
    "escaped", "filter", "test", NULL};

int jj_has_test(const char *name) {
    for (int i = 0; test_names[i]; i++)
        if (!strcmp(test_names[i], name)) return 1;
    return 0;
}

static int str_all(const jv_str *s, int upper) {
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

int jj_test(jctx *c, const jnode *at, const char *name, jv x, const jargs *a) {
    const jv *y = arg(a, 0, NULL);
    if (jj_charge(c, at, jj_cost(x) + (y ? jj_cost(*y) : 0))) return -1;
    int r;
#define IS(s) (!strcmp(name, s))
    if (IS("defined")) return x.t != JV_UNDEF;
    if (IS("undefined")) return x.t == JV_UNDEF;
    if (IS("none")) return x.t == JV_NONE;
    if (IS("string")) return x.t == JV_STR;
    if (IS("number")) return jv_is_num(x);
    if (IS("integer")) return x.t == JV_INT;
    if (IS("float")) return x.t == JV_FLOAT;
    if (IS("mapping")) return x.t == JV_DICT;
    if (IS("iterable")) return x.t == JV_STR || x.t == JV_LIST || x.t == JV_DICT || x.t == JV_UNDEF;
    if (IS("sequence")) return x.t == JV_STR || x.t == JV_LIST || x.t == JV_DICT;
    if (IS("boolean")) return x.t == JV_BOOL;
    if (IS("true")) return x.t == JV_BOOL && x.u.b;
    if (IS("false")) return x.t == JV_BOOL && !x.u.b;
    if (IS("callable")) return x.t == JV_MACRO || x.t == JV_FUNC || x.t == JV_METHOD;
    if (IS("escaped")) return 0;
    if (IS("filter")) return x.t == JV_STR && jj_has_filter(x.u.s->s);
    if (IS("test")) return x.t == JV_STR && jj_has_test(x.u.s->s);
    if (IS("lower") || IS("upper")) return x.t == JV_STR && str_all(x.u.s, IS("upper"));
    if (IS("odd") || IS("even") || IS("divisibleby")) {
        if (x.t != JV_INT && x.t != JV_BOOL) {
            if (x.t == JV_UNDEF) return jj_undef_error(c, at, x);
            if (x.t == JV_FLOAT && !IS("divisibleby")) return fmod(x.u.f, 2) != 0 ? IS("odd") : IS("even");
            return jj_error(c->src, at->pos, "test '%s' needs a number, got %s", name, jv_type_name(x));
        }
        long long v = x.t == JV_INT ? x.u.i : x.u.b;
        if (IS("odd")) return v % 2 != 0;
        if (IS("even")) return v % 2 == 0;
        long long d;
        if (!y) return jj_error(c->src, at->pos, "test 'divisibleby' needs an argument");
        if (arg_int(c, at, a, 0, NULL, "divisibleby", 1, &d)) return -1;
        if (d == 0) return jj_error(c->src, at->pos, "integer division or modulo by zero");
        return v % d == 0;
    }
    if (!y) return jj_error(c->src, at->pos, "test '%s' needs an argument", name);
    if (IS("eq") || IS("equalto") || IS("==")) return jv_equal(x, *y);
    if (IS("ne") || IS("!=")) return !jv_equal(x, *y);
    if (IS("sameas")) {
        if (x.t != y->t) return 0;
        if (x.t == JV_NONE || x.t == JV_UNDEF) return 1;
        if (x.t == JV_BOOL) return x.u.b == y->u.b;
        if (x.t == JV_STR || x.t == JV_LIST || x.t == JV_DICT || x.t == JV_NS) return x.u.s == y->u.s;
        return jv_equal(x, *y);
    }
    if (IS("in")) {
        switch (y->t) {
        case JV_STR:
            if (x.t != JV_STR) return jj_error(c->src, at->pos, "'in <string>' requires string as left operand");
            return find_bytes(y->u.s->s, y->u.s->len, x.u.s->s, x.u.s->len) != NULL;
        case JV_LIST:
            for (size_t i = 0; i < y->u.l->n; i++)
                if (jv_equal(y->u.l->items[i], x)) return 1;
            return 0;
        case JV_DICT:
        case JV_NS: return jv_dict_get(y->u.d, x) != NULL;
        case JV_UNDEF: return 0;
        default: return jj_error(c->src, at->pos, "argument of type '%s' is not iterable", jv_type_name(*y));
        }
    }
    /* ordering tests */
    if (x.t == JV_UNDEF) return jj_undef_error(c, at, x);
    if (y->t == JV_UNDEF) return jj_undef_error(c, at, *y);
    r = jv_compare(x, *y);
    if (r == -2)
        return jj_error(c->src, at->pos, "test '%s': '%s' and '%s' cannot be compared", name, jv_type_name(x),
                        jv_type_name(*y));
    if (IS("lt") || IS("<") || IS("lessthan")) return r < 0;
    if (IS("le") || IS("<=")) return r <= 0;
    if (IS("gt") || IS(">") || IS("greaterthan")) return r > 0;
    if (IS("ge") || IS(">=")) return r >= 0;
#undef IS
    return jj_error(c->src, at->pos, "no test named '%s'", name);
}

/* ------------------------------------------------------------ filters */

static int f_length(jctx *c, const jnode *at, jv x, jv *out) {
    switch (x.t) {
    case JV_STR: *out = jv_int((long long)ju_len(x.u.s->s, x.u.s->len)); return 0;
    case JV_LIST: *out = jv_int((long long)x.u.l->n); return 0;
    case JV_DICT:
    case JV_NS: *out = jv_int((long long)x.u.d->n); return 0;
    case JV_UNDEF: *out = jv_int(0); return 0;
    default: return jj_error(c->src, at->pos, "object of type '%s' has no len()", jv_type_name(x));
    }
}

static int f_tojson(jctx *c, const jnode *at, jv x, const jargs *a, jv *out) {
    const jv *ind = arg(a, 0, "indent"), *seps = arg(a, -1, "separators");
    char spaces[64];
    const char *indent = NULL, *item_sep = NULL, *key_sep = NULL;
    if (ind && ind->t == JV_INT) {
        long long n = ind->u.i < 0 ? 0 : ind->u.i > 60 ? 60 : ind->u.i;
        memset(spaces, ' ', (size_t)n);
        spaces[n] = 0;
        indent = spaces;
    } else if (ind && ind->t == JV_STR) {
        indent = ind->u.s->s;
    } else if (ind && ind->t != JV_NONE) {
        return bad_arg(c, at, "tojson", "indent must be an integer or a string");
    }
    if (seps && seps->t == JV_LIST && seps->u.l->n == 2 && seps->u.l->items[0].t == JV_STR &&
        seps->u.l->items[1].t == JV_STR) {
        item_sep = seps->u.l->items[0].u.s->s;
        key_sep = seps->u.l->items[1].u.s->s;
    } else if (seps && seps->t != JV_NONE) {
        return bad_arg(c, at, "tojson", "separators must be a pair of strings");
    }
    jbuf b = jj_buf();
    const char *why = NULL;
    if (jv_write_json(&b, x, indent, item_sep, key_sep, arg_bool(a, -1, "sort_keys", 0), 0, &why)) {
        jbuf_free(&b);
        if (x.t == JV_UNDEF) return jj_undef_error(c, at, x);
        return jj_error(c->src, at->pos, "tojson: %s", why);
    }
    return jj_buf_done(c, at, &b, out);
}

static int f_join(jctx *c, const jnode *at, jv x, const jargs *a, jv *out) {
    const jv_str *sep, *attr;
    if (arg_str(c, at, a, 0, "d", "join", &sep) || arg_str(c, at, a, 1, "attribute", "join", &attr)) return -1;
    jv_list *l;
    if (jj_iterate(c, at, x, &l)) return -1;
    jbuf b = jj_buf();
    int rc = 0;
    for (size_t i = 0; i < l->n && !rc; i++) {
        if ((rc = jj_tick(c, at))) break;
        if (i && sep) jbuf_put(&b, sep->s, sep->len);
        if (attr) {
            jv v;
            if ((rc = get_path(c, at, l->items[i], attr, &v))) break;
            jv_write_str(&b, v);
            jv_free(v);
        } else {
            jv_write_str(&b, l->items[i]);
        }
    }
    jv_free(jv_list_val(l));
    if (rc) {
        jbuf_free(&b);
        return -1;
    }
    return jj_buf_done(c, at, &b, out);
}

static int f_first_last(jctx *c, const jnode *at, jv x, int last, jv *out) {
    jv_list *l;
    if (jj_iterate(c, at, x, &l)) return -1;
    *out = l->n ? jv_ref(l->items[last ? l->n - 1 : 0]) : jv_undef(NULL);
    jv_free(jv_list_val(l));
    return 0;
}

static int parse_int_str(const jv_str *s, long long base, long long *out) {
    char *e;
    const char *p = s->s;
    while (*p == ' ' || *p == '\t' || *p == '\n') p++;
    errno = 0;
    long long v = strtoll(p, &e, (int)base);
    while (*e == ' ' || *e == '\t' || *e == '\n') e++;
    if (e == p || *e || errno) return -1;
    *out = v;
    return 0;
}

static int f_int(jctx *c, const jnode *at, jv x, const jargs *a, jv *out) {
    long long def, base;
    if (arg_int(c, at, a, 0, "default", "int", 0, &def) || arg_int(c, at, a, 1, "base", "int", 10, &base)) return -1;
    if (base != 0 && (base < 2 || base > 36)) return bad_arg(c, at, "int", "base must be 0 or 2..36");
    long long v;
    double f;
    char *e;
    switch (x.t) {
    case JV_INT: *out = x; return 0;
    case JV_BOOL: *out = jv_int(x.u.b); return 0;
    case JV_FLOAT:
        if (isfinite(x.u.f) && fabs(x.u.f) < 9.2e18) {
            *out = jv_int((long long)x.u.f);
            return 0;
        }
        break;
    case JV_STR:
        if (!parse_int_str(x.u.s, base, &v)) {
            *out = jv_int(v);
            return 0;
        }
        f = strtod(x.u.s->s, &e);
        if (e != x.u.s->s && !*e && isfinite(f) && fabs(f) < 9.2e18) {
            *out = jv_int((long long)f);
            return 0;
        }
        break;
    default: break;
    }
    *out = jv_int(def);
    return 0;
}

static int f_float(jv x, const jargs *a, jv *out) {
    const jv *d = arg(a, 0, "default");
    char *e;
    if (jv_is_num(x)) {
        *out = jv_float(jv_num(x));
        return 0;
    }
    if (x.t == JV_STR) {
        double f = strtod(x.u.s->s, &e);
        while (*e == ' ' || *e == '\t' || *e == '\n') e++;
        if (e != x.u.s->s && !*e) {
            *out = jv_float(f);
            return 0;
        }
    }
    *out = d ? jv_ref(*d) : jv_float(0.0);
    return 0;
}

static int f_round(jctx *c, const jnode *at, jv x, const jargs *a, jv *out) {
    long long prec;
    const jv_str *method;
    if (arg_int(c, at, a, 0, "precision", "round", 0, &prec) || arg_str(c, at, a, 1, "method", "round", &method))
        return -1;
    if (!jv_is_num(x)) return jj_error(c->src, at->pos, "round: expected a number, got %s", jv_type_name(x));
    const char *m = method ? method->s : "common";
    if (prec < -300 || prec > 300) return bad_arg(c, at, "round", "precision out of range");
    if (!strcmp(m, "common")) {
        /* Python's round(): ints stay ints; floats round half to even on the
         * exact binary value, which printf's correct rounding matches */
        if (x.t != JV_FLOAT) {
            *out = x.t == JV_BOOL ? jv_int(x.u.b) : x;
            return 0;
        }
        if (prec == 0 || !isfinite(x.u.f)) {
            *out = jv_float(nearbyint(x.u.f));
            return 0;
        }
        if (prec > 0) {
            char t[400];
            snprintf(t, sizeof t, "%.*f", (int)prec, x.u.f);
            *out = jv_float(strtod(t, NULL));
        } else {
            double p = pow(10, (double)-prec);
            *out = jv_float(nearbyint(x.u.f / p) * p);
        }
        return 0;
    }
    if (strcmp(m, "ceil") && strcmp(m, "floor")) return bad_arg(c, at, "round", "method must be common, ceil or floor");
    double p = pow(10, (double)prec), v = jv_num(x) * p;
    *out = jv_float((!strcmp(m, "ceil") ? ceil(v) : floor(v)) / p);
    return 0;
}

static int f_map(jctx *c, const jnode *at, jv x, const jargs *a, jv *out) {
    const jv *attr = arg(a, -1, "attribute"), *def = arg(a, -1, "default");
    jv_list *l;
    if (!attr && (a->nargs < 1 || a->args[0].t != JV_STR))
        return bad_arg(c, at, "map", "needs a filter name or attribute=");
    if (attr && attr->t != JV_STR) return bad_arg(c, at, "map", "attribute must be a string");
    if (!attr && !jj_has_filter(a->args[0].u.s->s))
        return jj_error(c->src, at->pos, "map: no filter named '%s'", a->args[0].u.s->s);
    if (!jv_truthy(x)) { /* as select: a falsy value maps to nothing */
        *out = jv_list_val(jv_list_new(0));
        return 0;
    }
    if (jj_iterate(c, at, x, &l)) return -1;
    jv_list *r = jv_list_new(l->n);
    jargs rest = {a->args + 1, a->nargs > 0 ? a->nargs - 1 : 0, a->kwv, a->kwn, a->nkw};
    int rc = 0;
    for (size_t i = 0; i < l->n && !rc; i++) {
        jv v;
        if ((rc = jj_tick(c, at))) break;
        if (attr) {
            if ((rc = get_path(c, at, l->items[i], attr->u.s, &v))) break;
            if (v.t == JV_UNDEF && def) {
                v = jv_ref(*def);
            }
        } else if ((rc = jj_filter(c, at, a->args[0].u.s->s, l->items[i], &rest, &v))) {
            break;
        }
        jv_list_push(r, v);
    }
    jv_free(jv_list_val(l));
    if (rc) {
        jv_free(jv_list_val(r));
        return -1;
    }
    *out = jv_list_val(r);
    return 0;
}

/* select / reject / selectattr / rejectattr */
static int f_select(jctx *c, const jnode *at, jv x, const jargs *a, int by_attr, int reject, jv *out) {
    int first = by_attr ? 1 : 0;
    const jv_str *attr = NULL;
    if (by_attr) {
        if (a->nargs < 1 || a->args[0].t != JV_STR) return bad_arg(c, at, "selectattr", "needs an attribute name");
        attr = a->args[0].u.s;
    }
    const char *test = NULL;
    if (a->nargs > first) {
        if (a->args[first].t != JV_STR) return bad_arg(c, at, "select", "the test name must be a string");
        test = a->args[first].u.s->s;
        if (!jj_has_test(test)) return jj_error(c->src, at->pos, "no test named '%s'", test);
    }
    /* the test's own arguments follow its name (none: no pointer past NULL) */
    int tn = a->nargs > first + 1 ? a->nargs - first - 1 : 0;
    jargs targs = {tn ? a->args + first + 1 : NULL, tn, a->kwv, a->kwn, a->nkw};
    jv_list *l;
    if (!jv_truthy(x)) { /* Jinja2 tests `if value:` first: none|select is empty */
        *out = jv_list_val(jv_list_new(0));
        return 0;
    }
    if (jj_iterate(c, at, x, &l)) return -1;
    jv_list *r = jv_list_new(0);
    int rc = 0;
    for (size_t i = 0; i < l->n; i++) {
        jv v;
        if ((rc = jj_tick(c, at))) break;
        if (attr) {
            if ((rc = get_path(c, at, l->items[i], attr, &v))) break;
        } else {
            v = jv_ref(l->items[i]);
        }
        int t = test ? jj_test(c, at, test, v, &targs) : jv_truthy(v);
        jv_free(v);
        if (t < 0) {
            rc = -1;
            break;
        }
        if (t != reject) jv_list_push(r, jv_ref(l->items[i]));
    }
    jv_free(jv_list_val(l));
    if (rc) {
        jv_free(jv_list_val(r));
        return -1;
    }
    *out = jv_list_val(r);
    return 0;
}

static int f_sort(jctx *c, const jnode *at, jv x, const jargs *a, jv *out) {
    int reverse = arg_bool(a, 0, "reverse", 0), cs = arg_bool(a, 1, "case_sensitive", 0);
    const jv_str *attr;
    if (arg_str(c, at, a, 2, "attribute", "sort", &attr)) return -1;
    jv_list *l;
    if (jj_iterate(c, at, x, &l)) return -1;
    keyed *k = w8_xcalloc(l->n ? l->n : 1, sizeof *k);
    for (size_t i = 0; i < l->n; i++) {
        if (jj_tick(c, at) || sort_key(c, at, l->items[i], attr, cs, &k[i].key)) {
            for (size_t j = 0; j < i; j++) jv_free(k[j].key);
            free(k);
            jv_free(jv_list_val(l));
            return -1;
        }
        k[i].val = jv_ref(l->items[i]);
        k[i].idx = reverse ? l->n - i : i;
    }
    size_t n = l->n;
    jv_free(jv_list_val(l));
    return sort_values(c, at, k, n, reverse, out);
}

static int f_dictsort(jctx *c, const jnode *at, jv x, const jargs *a, jv *out) {
    int cs = arg_bool(a, 0, "case_sensitive", 0), reverse = arg_bool(a, 2, "reverse", 0);
    const jv_str *by;
    if (arg_str(c, at, a, 1, "by", "dictsort", &by)) return -1;
    int by_value = by && !strcmp(by->s, "value");
    if (by && !by_value && strcmp(by->s, "key")) return bad_arg(c, at, "dictsort", "by must be 'key' or 'value'");
    if (x.t != JV_DICT) return jj_error(c->src, at->pos, "dictsort: expected a dict, got %s", jv_type_name(x));
    size_t n = x.u.d->n;
    keyed *k = w8_xcalloc(n ? n : 1, sizeof *k);
    for (size_t i = 0; i < n; i++) {
        jv_list *pair = jv_list_new(2);
        pair->tuple = 1;
        jv_list_push(pair, jv_ref(x.u.d->keys[i]));
        jv_list_push(pair, jv_ref(x.u.d->vals[i]));
        sort_key(c, at, by_value ? x.u.d->vals[i] : x.u.d->keys[i], NULL, cs, &k[i].key);
        k[i].val = jv_list_val(pair);
        k[i].idx = reverse ? n - i : i;
    }
    return sort_values(c, at, k, n, reverse, out);
}

static int f_unique(jctx *c, const jnode *at, jv x, const jargs *a, jv *out) {
    int cs = arg_bool(a, 0, "case_sensitive", 0);
    const jv_str *attr;
    if (arg_str(c, at, a, 1, "attribute", "unique", &attr)) return -1;
    jv_list *l;
    if (jj_iterate(c, at, x, &l)) return -1;
    jv_list *r = jv_list_new(0), *seen = jv_list_new(0);
    int rc = 0;
    for (size_t i = 0; i < l->n && !rc; i++) {
        jv k;
        if ((rc = jj_tick(c, at)) || (rc = sort_key(c, at, l->items[i], attr, cs, &k))) break;
        int dup = 0;
        if ((rc = jj_charge(c, at, seen->n / (JJ_WORK_UNIT / 8)))) {
            jv_free(k);
            break;
        }
        for (size_t j = 0; j < seen->n && !dup; j++) dup = jv_equal(seen->items[j], k);
        if (dup) {
            jv_free(k);
        } else {
            jv_list_push(seen, k);
            jv_list_push(r, jv_ref(l->items[i]));
        }
    }
    jv_free(jv_list_val(l));
    jv_free(jv_list_val(seen));
    if (rc) {
        jv_free(jv_list_val(r));
        return -1;
    }
    *out = jv_list_val(r);
    return 0;
}

static int f_minmax(jctx *c, const jnode *at, jv x, const jargs *a, int want_max, jv *out) {
    int cs = arg_bool(a, 0, "case_sensitive", 0);
    const jv_str *attr;
    if (arg_str(c, at, a, 1, "attribute", want_max ? "max" : "min", &attr)) return -1;
    jv_list *l;
    if (jj_iterate(c, at, x, &l)) return -1;
    jv best = jv_undef(NULL), bestk = jv_undef(NULL);
    int rc = 0;
    for (size_t i = 0; i < l->n && !rc; i++) {
        jv k;
        if ((rc = sort_key(c, at, l->items[i], attr, cs, &k))) break;
        int r = i ? jv_compare(k, bestk) : 0;
        if (r == -2) {
            jv_free(k);
            rc = jj_error(c->src, at->pos, "%s: values cannot be compared", want_max ? "max" : "min");
            break;
        }
        if (!i || (want_max ? r > 0 : r < 0)) {
            jv_free(bestk);
            jv_free(best);
            bestk = k;
            best = jv_ref(l->items[i]);
        } else {
            jv_free(k);
        }
    }
    jv_free(bestk);
    jv_free(jv_list_val(l));
    if (rc) {
        jv_free(best);
        return -1;
    }
    *out = best;
    return 0;
}

static int f_sum(jctx *c, const jnode *at, jv x, const jargs *a, jv *out) {
    const jv_str *attr;
    if (arg_str(c, at, a, 0, "attribute", "sum", &attr)) return -1;
    const jv *start = arg(a, 1, "start");
    jv acc = start ? jv_ref(*start) : jv_int(0);
    jv_list *l;
    if (jj_iterate(c, at, x, &l)) {
        jv_free(acc);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < l->n && !rc; i++) {
        jv v;
        if ((rc = attr ? get_path(c, at, l->items[i], attr, &v) : 0)) break;
        if (!attr) v = jv_ref(l->items[i]);
        if (!jv_is_num(v) || !jv_is_num(acc)) {
            rc = jj_error(c->src, at->pos, "sum: unsupported operand types '%s' and '%s'", jv_type_name(acc), jv_type_name(v));
        } else if (acc.t == JV_FLOAT || v.t == JV_FLOAT) {
            acc = jv_float(jv_num(acc) + jv_num(v));
        } else {
            long long r, p = acc.t == JV_INT ? acc.u.i : acc.u.b, q = v.t == JV_INT ? v.u.i : v.u.b;
            if (__builtin_add_overflow(p, q, &r)) rc = jj_error(c->src, at->pos, "sum: integer overflow");
            else acc = jv_int(r);
        }
        jv_free(v);
    }
    jv_free(jv_list_val(l));
    if (rc) {
        jv_free(acc);
        return -1;
    }
    *out = acc;
    return 0;
}

static int f_batch(jctx *c, const jnode *at, jv x, const jargs *a, jv *out) {
    long long size;
    if (arg_int(c, at, a, 0, "linecount", "batch", 0, &size)) return -1;
    if (size <= 0) return bad_arg(c, at, "batch", "linecount must be positive");
    const jv *fill = arg(a, 1, "fill_with");
    jv_list *l;
    if (jj_iterate(c, at, x, &l)) return -1;
    jv_list *r = jv_list_new(0), *cur = NULL;
    for (size_t i = 0; i < l->n; i++) {
        if (!cur) cur = jv_list_new(0);
        jv_list_push(cur, jv_ref(l->items[i]));
        if ((long long)cur->n == size) {
            jv_list_push(r, jv_list_val(cur));
            cur = NULL;
        }
    }
    if (cur) {
        while (fill && fill->t != JV_NONE && (long long)cur->n < size) jv_list_push(cur, jv_ref(*fill));
        jv_list_push(r, jv_list_val(cur));
    }
    jv_free(jv_list_val(l));
    *out = jv_list_val(r);
    return 0;
}

static int f_indent(jctx *c, const jnode *at, jv x, const jargs *a, jv *out) {
    const jv *w = arg(a, 0, "width");
    int first = arg_bool(a, 1, "first", 0), blank = arg_bool(a, 2, "blank", 0);
    jbuf ind = {0};
    if (!w) jbuf_puts(&ind, "    ");
    else if (w->t == JV_STR) jbuf_put(&ind, w->u.s->s, w->u.s->len);
    else if (w->t == JV_INT && w->u.i >= 0 && w->u.i <= 1000)
        for (long long i = 0; i < w->u.i; i++) jbuf_putc(&ind, ' ');
    else {
        jbuf_free(&ind);
        return bad_arg(c, at, "indent", "width must be a string or a small integer");
    }
    if (x.t != JV_STR) { /* Jinja does s += "\n", a TypeError for non-strings */
        jbuf_free(&ind);
        if (x.t == JV_UNDEF) return jj_undef_error(c, at, x);
        return jj_error(c->src, at->pos, "indent: expected a string, got %s", jv_type_name(x));
    }
    jv s = jv_ref(x);
    /* Jinja: lines = (s + "\n").splitlines(); lines after the first get the
     * indent (empty ones only with blank=True), joined by "\n" */
    jbuf t = {0}, b = jj_buf();
    jbuf_put(&t, s.u.s->s, s.u.s->len);
    jbuf_putc(&t, '\n');
    if (first) jbuf_put(&b, ind.p ? ind.p : "", ind.n);
    const char *p = t.p, *end = t.p + t.n;
    for (int line = 0; p < end; line++) {
        const char *e = p;
        while (e < end && *e != '\n' && *e != '\r') e++;
        if (line > 0) {
            jbuf_putc(&b, '\n');
            if (e > p || blank) jbuf_put(&b, ind.p ? ind.p : "", ind.n);
        }
        jbuf_put(&b, p, (size_t)(e - p));
        if (e + 1 < end && e[0] == '\r' && e[1] == '\n') e++;
        p = e + 1;
    }
    jbuf_free(&t);
    jv_free(s);
    jbuf_free(&ind);
    return jj_buf_done(c, at, &b, out);
}

/* |e leaves Markup alone; |forceescape escapes it again. */
static int f_escape(jctx *c, const jnode *at, jv x, int force, jv *out) {
    if (x.t == JV_STR && x.u.s->markup && !force) {
        *out = jv_ref(x);
        return 0;
    }
    jv s = to_str(x);
    jbuf b = jj_buf();
    jv_html_escape(&b, s.u.s->s, s.u.s->len);
    jv_free(s);
    if (jj_buf_done(c, at, &b, out)) return -1;
    *out = jv_markup(*out);
    return 0;
}

static int f_items(jctx *c, const jnode *at, jv x, jv *out) {
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

static int f_wordcount(jv x, jv *out) {
    jv s = to_str(x);
    long long n = 0;
    int in_word = 0;
    for (size_t i = 0; i < s.u.s->len;) {
        uint32_t cp;
        i += ju_decode(s.u.s->s + i, s.u.s->len - i, &cp);
        int w = cp == '_' || is_alnum_cp(cp);
        if (w && !in_word) n++;
        in_word = w;
    }
    jv_free(s);
    *out = jv_int(n);
    return 0;
}

static int f_center(jctx *c, const jnode *at, jv x, const jargs *a, jv *out) {
    long long width;
    if (arg_int(c, at, a, 0, "width", "center", 80, &width)) return -1;
    if (width > (long long)W8_JINJA_MAX_OUTPUT) return jj_check_size(c, at, (size_t)-1);
    jv s = to_str(x);
    long long len = (long long)ju_len(s.u.s->s, s.u.s->len);
    jbuf b = jj_buf();
    long long pad = width > len ? width - len : 0;
    long long left = pad / 2 + (pad & width & 1); /* CPython's str.center split */
    for (long long i = 0; i < left; i++) jbuf_putc(&b, ' ');
    jbuf_put(&b, s.u.s->s, s.u.s->len);
    for (long long i = 0; i < pad - left; i++) jbuf_putc(&b, ' ');
    jv_free(s);
    return jj_buf_done(c, at, &b, out);
}

static const char *const filter_names[] = {
    "length", "count", "tojson", "trim", "upper", "lower", "capitalize", "title", "join", "default", "d", "first",
    "last", "list", "string", "int", "float", "abs", "replace", "round", "safe", "e", "escape", "items", "map",
    "select", "reject", "selectattr", "rejectattr", "unique", "sort", "dictsort", "batch", "indent", "wordcount",
    "reverse", "sum", "min", "max", "attr", "center", "forceescape", "format", NULL};

int jj_has_filter(const char *name) {
    for (int i = 0; filter_names[i]; i++)
        if (!strcmp(filter_names[i], name)) return 1;
    return 0;
}

int jj_filter(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    if (jj_charge(c, at, jj_cost(x))) return -1;
#define IS(s) (!strcmp(name, s))
    if (IS("default") || IS("d")) {
        const jv *d = arg(a, 0, "default_value");
        int boolean = arg_bool(a, 1, "boolean", 0);
        if (x.t == JV_UNDEF || (boolean && !jv_truthy(x))) *out = d ? jv_ref(*d) : jv_str_c("");
        else *out = jv_ref(x);
        return 0;
    }
    if (IS("safe")) {
        *out = x.t == JV_STR ? jv_markup(jv_ref(x)) : jv_markup(to_str(x));
        return 0;
    }
    if (IS("string")) {
        *out = to_str(x);
        return 0;
    }
    if (IS("length") || IS("count")) return f_length(c, at, x, out);
    if (IS("tojson")) return f_tojson(c, at, x, a, out);
    if (IS("join")) return f_join(c, at, x, a, out);
    if (IS("first") || IS("last")) return f_first_last(c, at, x, IS("last"), out);
    if (IS("int")) return f_int(c, at, x, a, out);
    if (IS("float")) return f_float(x, a, out);
    if (IS("round")) return f_round(c, at, x, a, out);
    if (IS("map")) return f_map(c, at, x, a, out);
    if (IS("select") || IS("reject")) return f_select(c, at, x, a, 0, IS("reject"), out);
    if (IS("selectattr") || IS("rejectattr")) return f_select(c, at, x, a, 1, IS("rejectattr"), out);
    if (IS("sort")) return f_sort(c, at, x, a, out);
    if (IS("dictsort")) return f_dictsort(c, at, x, a, out);
    if (IS("unique")) return f_unique(c, at, x, a, out);
    if (IS("min") || IS("max")) return f_minmax(c, at, x, a, IS("max"), out);
    if (IS("sum")) return f_sum(c, at, x, a, out);
    if (IS("batch")) return f_batch(c, at, x, a, out);
    if (IS("indent")) return f_indent(c, at, x, a, out);
    if (IS("e") || IS("escape") || IS("forceescape")) return f_escape(c, at, x, IS("forceescape"), out);
    if (IS("items")) return f_items(c, at, x, out);
    if (IS("wordcount")) return f_wordcount(x, out);
    if (IS("center")) return f_center(c, at, x, a, out);
    if (IS("format")) {
        jv s = to_str(x);
        jv_list *l = jv_list_new((size_t)a->nargs);
        l->tuple = 1;
        for (int i = 0; i < a->nargs; i++) jv_list_push(l, jv_ref(a->args[i]));
        jv tup = jv_list_val(l);
        if (a->nkw) { /* |format(name=...) uses %(name)s */
            jv_dict *d = jv_dict_new();
            for (int i = 0; i < a->nkw; i++) jv_dict_set(d, jv_str_c(a->kwn[i]), jv_ref(a->kwv[i]));
            jv_free(tup);
            tup = jv_dict_val(d);
        }
        int rc = jj_percent_format(c, at, s.u.s, tup, out);
        jv_free(tup);
        jv_free(s);
        return rc;
    }
    if (IS("list")) {
        jv_list *l;
        if (jj_iterate(c, at, x, &l)) return -1;
        if (x.t == JV_LIST) { /* a copy, and tuples become lists */
            jv_list *r = jv_list_new(l->n);
            for (size_t i = 0; i < l->n; i++) jv_list_push(r, jv_ref(l->items[i]));
            jv_free(jv_list_val(l));
            l = r;
        }
        *out = jv_list_val(l);
        return 0;
    }
    if (IS("abs")) {
        if (x.t == JV_FLOAT) *out = jv_float(fabs(x.u.f));
        else if (x.t == JV_INT || x.t == JV_BOOL) {
            long long v = x.t == JV_INT ? x.u.i : x.u.b;
            if (v == INT64_MIN) return jj_error(c->src, at->pos, "abs: integer overflow");
            *out = jv_int(v < 0 ? -v : v);
        } else return jj_error(c->src, at->pos, "bad operand type for abs(): '%s'", jv_type_name(x));
        return 0;
    }
    if (IS("attr")) {
        const jv *n = arg(a, 0, "name");
        if (!n) return bad_arg(c, at, "attr", "needs a name");
        return jj_getitem(c, at, x, *n, out);
    }
    if (IS("reverse")) {
        if (x.t == JV_STR) {
            jbuf b = {0};
            for (size_t e = x.u.s->len; e > 0;) {
                size_t p = prev_cp(x.u.s->s, 0, e);
                jbuf_put(&b, x.u.s->s + p, e - p);
                e = p;
            }
            *out = jbuf_to_str(&b);
            return 0;
        }
        jv_list *l;
        if (jj_iterate(c, at, x, &l)) return -1;
        jv_list *r = jv_list_new(l->n);
        for (size_t i = l->n; i-- > 0;) jv_list_push(r, jv_ref(l->items[i]));
        jv_free(jv_list_val(l));
        *out = jv_list_val(r);
        return 0;
    }
    /* string filters: Jinja converts the value with str() first */
    jv s = to_str(x);
    int rc = 0;
    if (x.t == JV_UNDEF && (IS("upper") || IS("lower") || IS("trim") || IS("capitalize") || IS("title") || IS("replace"))) {
        /* str(Undefined) is "" */
    }
    if (IS("upper")) *out = change_case(s.u.s, CASE_UPPER);
    else if (IS("lower")) *out = change_case(s.u.s, CASE_LOWER);
    else if (IS("capitalize")) *out = change_case(s.u.s, CASE_CAPITALIZE);
    else if (IS("title")) *out = change_case(s.u.s, CASE_TITLE_JINJA);
    else if (IS("trim")) {
        const jv_str *chars;
        rc = arg_str(c, at, a, 0, "chars", "trim", &chars);
        if (!rc) *out = strip(s.u.s, chars, 1, 1);
    } else if (IS("replace")) {
        const jv_str *old, *new;
        long long count;
        rc = arg_str(c, at, a, 0, "old", "replace", &old) || arg_str(c, at, a, 1, "new", "replace", &new) ||
             arg_int(c, at, a, 2, "count", "replace", -1, &count);
        if (!rc && (!old || !new)) rc = bad_arg(c, at, "replace", "needs old and new strings");
        if (!rc) rc = replace(c, at, s.u.s, old, new, count, out);
    } else {
        rc = jj_error(c->src, at->pos, "no filter named '%s'", name);
    }
    /* Markup stays Markup through the string filters (soft_str in Jinja) */
    if (!rc && s.u.s->markup && out->t == JV_STR) *out = jv_markup(*out);
    jv_free(s);
    return rc ? -1 : 0;
#undef IS
}

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
    jbuf b = jj_buf();
    for (size_t i = 0; i < fmt->len; i++) {
        if (fmt->s[i] != '%') {
            jbuf_putc(&b, fmt->s[i]);
            continue;
        }
        if (++i >= fmt->len) goto bad;
        if (fmt->s[i] == '%') {
            jbuf_putc(&b, '%');
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
                jbuf_free(&b);
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
                jbuf_free(&b);
                return jj_error(c->src, at->pos, "not enough arguments for format string");
            }
            v = &vals[used++];
        }
        char t[512];
        if (conv == 's' || conv == 'r') {
            jbuf tmp = jj_buf();
            if (conv == 's') jv_write_str(&tmp, *v);
            else jv_write_repr(&tmp, *v);
            /* width / precision apply to code points; plain ASCII is the common case */
            spec[k++] = 's';
            spec[k] = 0;
            if (k > 2 && tmp.n < 256) {
                snprintf(t, sizeof t, spec, tmp.p ? tmp.p : "");
                jbuf_puts(&b, t);
            } else {
                jbuf_put(&b, tmp.p ? tmp.p : "", tmp.n);
            }
            jbuf_free(&tmp);
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
            jbuf_puts(&b, t);
        } else if (strchr("feEgG", conv)) {
            if (!jv_is_num(*v)) goto type;
            spec[k++] = conv;
            spec[k] = 0;
            snprintf(t, sizeof t, spec, jv_num(*v));
            jbuf_puts(&b, t);
        } else {
            goto bad;
        }
    }
    if (used < nv && args.t != JV_DICT) {
        jbuf_free(&b);
        return jj_error(c->src, at->pos, "not all arguments converted during string formatting");
    }
    return jj_buf_done(c, at, &b, out);
bad:
    jbuf_free(&b);
    return jj_error(c->src, at->pos, "unsupported format string");
type:
    jbuf_free(&b);
    return jj_error(c->src, at->pos, "format: a number is required");
}

/* ------------------------------------------------------------ methods */

static int starts_ends(jctx *c, const jnode *at, const jv_str *s, const jargs *a, int ends, jv *out) {
    const jv *p = arg(a, 0, NULL);
    if (!p) return bad_arg(c, at, ends ? "endswith" : "startswith", "needs an argument");
    size_t b, e;
    cp_range(s, arg(a, 1, NULL), arg(a, 2, NULL), &b, &e);
    const jv *cands = p;
    size_t nc = 1;
    if (p->t == JV_LIST && p->u.l->tuple) {
        cands = p->u.l->items;
        nc = p->u.l->n;
    }
    int r = 0;
    for (size_t i = 0; i < nc && !r; i++) {
        if (cands[i].t != JV_STR)
            return jj_error(c->src, at->pos, "%s first arg must be str or a tuple of str, not %s",
                            ends ? "endswith" : "startswith", jv_type_name(cands[i]));
        const jv_str *x = cands[i].u.s;
        if (x->len > e - b) continue;
        r = !memcmp(ends ? s->s + e - x->len : s->s + b, x->s, x->len);
    }
    *out = jv_bool(r);
    return 1;
}

static int str_format(jctx *c, const jnode *at, const jv_str *s, const jargs *a, jv *out) {
    jbuf b = jj_buf();
    int auto_idx = 0;
    for (size_t i = 0; i < s->len; i++) {
        char ch = s->s[i];
        if (ch == '{' && i + 1 < s->len && s->s[i + 1] == '{') {
            jbuf_putc(&b, '{');
            i++;
        } else if (ch == '}' && i + 1 < s->len && s->s[i + 1] == '}') {
            jbuf_putc(&b, '}');
            i++;
        } else if (ch == '{') {
            const char *close = memchr(s->s + i, '}', s->len - i);
            if (!close) break;
            size_t n = (size_t)(close - s->s) - i - 1;
            char field[64];
            if (n >= sizeof field || memchr(s->s + i + 1, ':', n) || memchr(s->s + i + 1, '!', n)) {
                jbuf_free(&b);
                return jj_error(c->src, at->pos, "format: only {}, {N} and {name} fields are supported");
            }
            memcpy(field, s->s + i + 1, n);
            field[n] = 0;
            const jv *v;
            if (!n) v = arg(a, auto_idx++, NULL);
            else if (field[0] >= '0' && field[0] <= '9') v = arg(a, atoi(field), NULL);
            else v = arg(a, -1, field);
            if (!v) {
                jbuf_free(&b);
                return jj_error(c->src, at->pos, "format: no argument for field {%s}", field);
            }
            jv_write_str(&b, *v);
            i += n + 1;
        } else {
            jbuf_putc(&b, ch);
        }
    }
    return jj_buf_done(c, at, &b, out);
}

static int str_pred(const jv_str *s, int kind) {
    if (!s->len) return 0;
    if (kind == 'u' || kind == 'l') return str_all(s, kind == 'u');
    for (size_t i = 0; i < s->len;) {
        uint32_t cp;
        i += ju_decode(s->s + i, s->len - i, &cp);
        utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
        int ok = kind == 'd'   ? k == UTF8PROC_CATEGORY_ND
                 : kind == 'a' ? is_alpha_cp(cp)
                 : kind == 'n' ? is_alnum_cp(cp)
                               : ju_isspace(cp);
        if (!ok) return 0;
    }
    return 1;
}

static int str_method(jctx *c, const jnode *at, const jv_str *s, const char *name, const jargs *a, jv *out) {
#define IS(x) (!strcmp(name, x))
    const jv_str *p1 = NULL, *p2 = NULL;
    long long n;
    if (IS("startswith") || IS("endswith")) return starts_ends(c, at, s, a, IS("endswith"), out);
    if (IS("upper")) *out = change_case(s, CASE_UPPER);
    else if (IS("lower")) *out = change_case(s, CASE_LOWER);
    else if (IS("title")) *out = change_case(s, CASE_TITLE_PY);
    else if (IS("capitalize")) *out = change_case(s, CASE_CAPITALIZE);
    else if (IS("strip") || IS("lstrip") || IS("rstrip")) {
        if (arg_str(c, at, a, 0, "chars", name, &p1)) return -1;
        *out = strip(s, p1, name[0] != 'r', name[0] != 'l');
    } else if (IS("split") || IS("rsplit")) {
        if (arg_str(c, at, a, 0, "sep", name, &p1) || arg_int(c, at, a, 1, "maxsplit", name, -1, &n)) return -1;
        if (split(c, at, s, p1, n, name[0] == 'r', out)) return -1;
    } else if (IS("replace")) {
        if (arg_str(c, at, a, 0, NULL, name, &p1) || arg_str(c, at, a, 1, NULL, name, &p2) ||
            arg_int(c, at, a, 2, "count", name, -1, &n))
            return -1;
        if (!p1 || !p2) return bad_arg(c, at, "replace", "needs old and new strings");
        if (replace(c, at, s, p1, p2, n, out)) return -1;
    } else if (IS("find") || IS("rfind") || IS("index") || IS("rindex") || IS("count")) {
        if (arg_str(c, at, a, 0, NULL, name, &p1)) return -1;
        if (!p1) return bad_arg(c, at, name, "needs a string argument");
        size_t b, e;
        cp_range(s, arg(a, 1, NULL), arg(a, 2, NULL), &b, &e);
        if (IS("count")) {
            long long k = 0;
            if (!p1->len) k = (long long)ju_len(s->s + b, e - b) + 1;
            else
                for (size_t i = b; i + p1->len <= e;) {
                    const char *f = find_bytes(s->s + i, e - i, p1->s, p1->len);
                    if (!f) break;
                    k++;
                    i = (size_t)(f - s->s) + p1->len;
                }
            *out = jv_int(k);
            return 1;
        }
        long long pos = -1;
        if (name[0] == 'r') {
            for (size_t i = e >= p1->len ? e - p1->len + 1 : 0; i-- > b;)
                if (i + p1->len <= e && !memcmp(s->s + i, p1->s, p1->len)) {
                    pos = cp_index(s, i);
                    break;
                }
        } else if (p1->len <= e - b) {
            const char *f = find_bytes(s->s + b, e - b, p1->s, p1->len);
            if (f) pos = cp_index(s, (size_t)(f - s->s));
        }
        if (pos < 0 && name[strlen(name) - 1] == 'x') return jj_error(c->src, at->pos, "substring not found");
        *out = jv_int(pos);
    } else if (IS("join")) {
        const jv *it = arg(a, 0, NULL);
        if (!it) return bad_arg(c, at, "join", "needs an iterable");
        jv_list *l;
        if (jj_iterate(c, at, *it, &l)) return -1;
        jbuf b = jj_buf();
        for (size_t i = 0; i < l->n; i++) {
            if (l->items[i].t != JV_STR || jj_tick(c, at)) {
                int rc = l->items[i].t != JV_STR ? jj_error(c->src, at->pos, "sequence item %zu: expected str instance, %s found", i,
                                                            jv_type_name(l->items[i]))
                                                 : -1;
                jv_free(jv_list_val(l));
                jbuf_free(&b);
                return rc;
            }
            if (i) jbuf_put(&b, s->s, s->len);
            jbuf_put(&b, l->items[i].u.s->s, l->items[i].u.s->len);
        }
        jv_free(jv_list_val(l));
        if (jj_buf_done(c, at, &b, out)) return -1;
    } else if (IS("splitlines")) {
        jv_list *l = jv_list_new(0);
        for (size_t i = 0; i < s->len;) {
            size_t e = i;
            while (e < s->len && s->s[e] != '\n' && s->s[e] != '\r') e++;
            jv_list_push(l, jv_str_n(s->s + i, e - i));
            if (e < s->len && s->s[e] == '\r' && e + 1 < s->len && s->s[e + 1] == '\n') e++;
            i = e + 1;
        }
        *out = jv_list_val(l);
    } else if (IS("isdigit") || IS("isalpha") || IS("isalnum") || IS("isspace") || IS("isupper") || IS("islower")) {
        int kind = IS("isdigit") ? 'd' : IS("isalpha") ? 'a' : IS("isalnum") ? 'n' : IS("isspace") ? 's' : IS("isupper") ? 'u' : 'l';
        *out = jv_bool(str_pred(s, kind));
    } else if (IS("format")) {
        if (str_format(c, at, s, a, out)) return -1;
    } else if (IS("removeprefix") || IS("removesuffix")) {
        if (arg_str(c, at, a, 0, NULL, name, &p1)) return -1;
        if (!p1) return bad_arg(c, at, name, "needs a string argument");
        int pre = IS("removeprefix");
        if (p1->len <= s->len && !memcmp(pre ? s->s : s->s + s->len - p1->len, p1->s, p1->len))
            *out = pre ? jv_str_n(s->s + p1->len, s->len - p1->len) : jv_str_n(s->s, s->len - p1->len);
        else *out = jv_str_n(s->s, s->len);
    } else {
        return 0;
    }
    return 1;
#undef IS
}

static const char *const str_methods[] = {
    "startswith", "endswith", "split", "rsplit", "strip", "lstrip", "rstrip", "replace", "upper", "lower",
    "title", "capitalize", "find", "rfind", "index", "rindex", "count", "join", "splitlines", "isdigit",
    "isalpha", "isalnum", "isspace", "isupper", "islower", "format", "removeprefix", "removesuffix", NULL};
static const char *const dict_methods[] = {"items", "keys", "values", "get", "copy", NULL};
static const char *const list_methods[] = {"index", "count", NULL};

const char *jj_method_name(jv obj, const char *name) {
    const char *const *t = obj.t == JV_STR ? str_methods : obj.t == JV_DICT ? dict_methods : obj.t == JV_LIST ? list_methods : NULL;
    for (int i = 0; t && t[i]; i++)
        if (!strcmp(t[i], name)) return t[i];
    return NULL;
}

static int unsafe(jctx *c, const jnode *at, const char *name, jv obj) {
    return jj_error(c->src, at->pos, "access to attribute '%s' of '%s' object is unsafe", name, jv_type_name(obj));
}

int jj_method(jctx *c, const jnode *at, jv obj, const char *name, const jargs *a, jv *out) {
    size_t cost = jj_cost(obj);
    for (int i = 0; i < a->nargs; i++) cost += jj_cost(a->args[i]);
    if (jj_charge(c, at, cost)) return -1;
#define IS(x) (!strcmp(name, x))
    switch (obj.t) {
    case JV_STR: {
        int h = str_method(c, at, obj.u.s, name, a, out);
        if (h == 1 && obj.u.s->markup && out->t == JV_STR &&
            (IS("strip") || IS("lstrip") || IS("rstrip") || IS("upper") || IS("lower") || IS("title") || IS("capitalize")))
            *out = jv_markup(*out);
        return h;
    }
    case JV_DICT:
        if (IS("items")) return f_items(c, at, obj, out) ? -1 : 1;
        if (IS("keys") || IS("values")) {
            jv_list *l = jv_list_new(obj.u.d->n);
            for (size_t i = 0; i < obj.u.d->n; i++) jv_list_push(l, jv_ref(IS("keys") ? obj.u.d->keys[i] : obj.u.d->vals[i]));
            *out = jv_list_val(l);
            return 1;
        }
        if (IS("copy")) {
            jv_dict *d = jv_dict_new();
            for (size_t i = 0; i < obj.u.d->n; i++) jv_dict_set(d, jv_ref(obj.u.d->keys[i]), jv_ref(obj.u.d->vals[i]));
            *out = jv_dict_val(d);
            return 1;
        }
        if (IS("get")) {
            const jv *k = arg(a, 0, NULL), *d = arg(a, 1, NULL);
            if (!k) return bad_arg(c, at, "get", "needs a key");
            jv *v = jv_dict_get(obj.u.d, *k);
            *out = v ? jv_ref(*v) : d ? jv_ref(*d) : jv_none();
            return 1;
        }
        if (IS("update") || IS("pop") || IS("popitem") || IS("setdefault") || IS("clear")) return unsafe(c, at, name, obj);
        return 0;
    case JV_LIST:
        if (IS("index") || IS("count")) {
            const jv *x = arg(a, 0, NULL);
            if (!x) return bad_arg(c, at, name, "needs an argument");
            long long k = 0, pos = -1;
            for (size_t i = 0; i < obj.u.l->n; i++)
                if (jv_equal(obj.u.l->items[i], *x)) {
                    if (pos < 0) pos = (long long)i;
                    k++;
                }
            if (IS("index") && pos < 0) return jj_error(c->src, at->pos, "list.index(x): x not in list");
            *out = jv_int(IS("index") ? pos : k);
            return 1;
        }
        if (IS("append") || IS("extend") || IS("insert") || IS("pop") || IS("remove") || IS("sort") ||
            IS("reverse") || IS("clear"))
            return unsafe(c, at, name, obj);
        return 0;
    case JV_LOOP:
        if (IS("cycle")) {
            if (!a->nargs) return bad_arg(c, at, "loop.cycle", "needs at least one value");
            *out = jv_ref(a->args[obj.u.lp->i % (size_t)a->nargs]);
            return 1;
        }
        return 0;
    default: return 0;
    }
#undef IS
}

/* ------------------------------------------------------------ globals */

static const char *const global_names[] = {"range", "namespace", "dict", "raise_exception", "strftime_now", NULL};

int jj_global_find(const char *name) {
    for (int i = 0; global_names[i]; i++)
        if (!strcmp(global_names[i], name)) return i;
    return -1;
}


/* dict(mapping_or_pairs?, **kw) into d. */
static int fill_dict(jctx *c, const jnode *at, jv_dict *d, const jargs *a, const char *fn) {
    if (a->nargs > 1) return bad_arg(c, at, fn, "takes at most one positional argument");
    if (a->nargs == 1) {
        jv x = a->args[0];
        if (x.t == JV_DICT || x.t == JV_NS) {
            for (size_t i = 0; i < x.u.d->n; i++) jv_dict_set(d, jv_ref(x.u.d->keys[i]), jv_ref(x.u.d->vals[i]));
        } else if (x.t == JV_LIST) {
            for (size_t i = 0; i < x.u.l->n; i++) {
                jv p = x.u.l->items[i];
                if (p.t != JV_LIST || p.u.l->n != 2) return bad_arg(c, at, fn, "sequence elements must be pairs");
                jv_dict_set(d, jv_ref(p.u.l->items[0]), jv_ref(p.u.l->items[1]));
            }
        } else {
            return jj_error(c->src, at->pos, "%s: cannot convert %s to a dict", fn, jv_type_name(x));
        }
    }
    for (int i = 0; i < a->nkw; i++) jv_dict_set(d, jv_str_c(a->kwn[i]), jv_ref(a->kwv[i]));
    return 0;
}

int jj_global_call(jctx *c, const jnode *at, int fn, const jargs *a, jv *out) {
    switch (fn) {
    case 0: { /* range */
        long long v[3] = {0, 0, 1};
        if (a->nargs < 1 || a->nargs > 3 || a->nkw) return bad_arg(c, at, "range", "takes 1 to 3 integers");
        for (int i = 0; i < a->nargs; i++)
            if (arg_int(c, at, a, i, NULL, "range", 0, &v[a->nargs == 1 ? 1 : i])) return -1;
        if (v[2] == 0) return bad_arg(c, at, "range", "step must not be zero");
        double len = ceil(((double)v[1] - (double)v[0]) / (double)v[2]);
        if (len > JJ_MAX_RANGE)
            return jj_error(c->src, at->pos, "range too big (more than %d items)", JJ_MAX_RANGE);
        jv_list *l = jv_list_new(len > 0 ? (size_t)len : 0);
        for (long long i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2]) jv_list_push(l, jv_int(i));
        *out = jv_list_val(l);
        return 0;
    }
    case 1: { /* namespace */
        jv_dict *d = jv_dict_new();
        if (fill_dict(c, at, d, a, "namespace")) {
            jv_free(jv_dict_val(d));
            return -1;
        }
        jj_track_ns(c, d);
        jv v = {JV_NS, {.d = d}};
        *out = v;
        return 0;
    }
    case 2: { /* dict */
        jv_dict *d = jv_dict_new();
        if (fill_dict(c, at, d, a, "dict")) {
            jv_free(jv_dict_val(d));
            return -1;
        }
        *out = jv_dict_val(d);
        return 0;
    }
    case 3: { /* raise_exception: the template's own message is the error */
        const jv *m = arg(a, 0, NULL);
        jbuf b = jj_buf();
        if (m) jv_write_str(&b, *m);
        w8_seterr("%s", b.p ? b.p : "raise_exception() called");
        jbuf_free(&b);
        return -1;
    }
    case 4: { /* strftime_now(format) */
        const jv_str *f;
        if (arg_str(c, at, a, 0, "format", "strftime_now", &f)) return -1;
        if (!f) return bad_arg(c, at, "strftime_now", "needs a format");
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        char buf[512];
        size_t n = f->len < 200 ? strftime(buf, sizeof buf, f->s, &tm) : 0;
        if (!n && f->len) return bad_arg(c, at, "strftime_now", "format too long or empty result");
        *out = jv_str_n(buf, n);
        return 0;
    }
    default: return jj_error(c->src, at->pos, "internal error: unknown global %d", fn);
    }
}

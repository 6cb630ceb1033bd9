/*
 * core.c - template values with Python's semantics, the growable buffer,
 * UTF-8 helpers, the arena and error reporting.
 *
 * Chat templates are judged byte for byte against Python's Jinja2, so the
 * details that show in output follow CPython: str() of a float is the
 * shortest repr that round-trips ("1.0", "1e+16"), True/None are
 * capitalized, lists print as repr (['a', 1]) with Python's choice of
 * quotes, and tojson is json.dumps with transformers' defaults
 * (ensure_ascii=False, ", " and ": " separators, indent optional).
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"
#include "core.h"

/* ------------------------------------------------------------ references */

/* Immortal strings are the parsed tree's constants (names, literals: the
 * only heap values a syntax tree holds, parse.c's arena_str).  Their count
 * is never written, only read: a parsed template is then immutable while it
 * renders, so several threads can render one tree without atomics or locks
 * (w8_chat_tmpl).  A render-made string cannot reach JV_IMMORTAL references
 * (that is 2^29 live values). */
#define JV_STR_IMMORTAL(p) ((p)->rc >= JV_IMMORTAL)

jv jv_ref(jv v) {
    switch (v.t) {
    case JV_STR:
        if (!JV_STR_IMMORTAL(v.u.s)) v.u.s->rc++;
        break;
    case JV_LIST: v.u.l->rc++; break;
    case JV_DICT:
    case JV_NS: v.u.d->rc++; break;
    case JV_MACRO: v.u.m->rc++; break;
    case JV_LOOP: v.u.lp->rc++; break;
    case JV_METHOD: v.u.me->rc++; break;
    default: break;
    }
    return v;
}

static void list_destroy(jv_list *l) {
    for (size_t i = 0; i < l->n; i++) jv_free(l->items[i]);
    free(l->items);
    free(l);
}

static void dict_destroy(jv_dict *d) {
    for (size_t i = 0; i < d->n; i++) {
        jv_free(d->keys[i]);
        jv_free(d->vals[i]);
    }
    free(d->keys);
    free(d->vals);
    free(d);
}

void jv_free(jv v) {
    switch (v.t) {
    case JV_STR:
        if (!JV_STR_IMMORTAL(v.u.s) && --v.u.s->rc == 0) free(v.u.s);
        break;
    case JV_LIST:
        if (--v.u.l->rc == 0) list_destroy(v.u.l);
        break;
    case JV_DICT:
    case JV_NS:
        if (--v.u.d->rc == 0) dict_destroy(v.u.d);
        break;
    case JV_MACRO:
        if (--v.u.m->rc == 0) {
            for (int i = 0; i < v.u.m->nclosure; i++)
                if (--v.u.m->closure[i]->rc == 0) dict_destroy(v.u.m->closure[i]);
            free(v.u.m->closure);
            free(v.u.m);
        }
        break;
    case JV_METHOD:
        if (--v.u.me->rc == 0) {
            jv_free(v.u.me->self);
            free(v.u.me);
        }
        break;
    case JV_LOOP:
        if (--v.u.lp->rc == 0) {
            if (--v.u.lp->items->rc == 0) list_destroy(v.u.lp->items);
            free(v.u.lp);
        }
        break;
    default: break;
    }
}

/* ------------------------------------------------------------ constructors */

jv jv_str_n(const char *s, size_t len) {
    jv_str *p = w8_xmalloc(sizeof *p + len + 1);
    p->rc = 1;
    p->markup = 0;
    p->len = len;
    if (len) memcpy(p->s, s, len);
    p->s[len] = 0;
    jv v = {JV_STR, {.s = p}};
    return v;
}

jv jv_str_c(const char *s) { return jv_str_n(s, strlen(s)); }

jv jv_markup(jv s) {
    if (s.t != JV_STR || s.u.s->markup) return s;
    if (s.u.s->rc == 1) { /* sole owner: mark in place */
        s.u.s->markup = 1;
        return s;
    }
    jv m = jv_str_n(s.u.s->s, s.u.s->len);
    m.u.s->markup = 1;
    jv_free(s);
    return m;
}

void jv_html_escape(w8_buf *b, const char *s, size_t n) {
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = s[i] == '&' ? "&amp;" : s[i] == '<' ? "&lt;" : s[i] == '>' ? "&gt;" : s[i] == '"' ? "&#34;" : s[i] == '\'' ? "&#39;" : NULL;
        if (!e) continue;
        w8_buf_put(b, s + run, i - run);
        w8_buf_puts(b, e);
        run = i + 1;
    }
    w8_buf_put(b, s + run, n - run);
}

jv_list *jv_list_new(size_t cap) {
    jv_list *l = w8_xcalloc(1, sizeof *l);
    l->rc = 1;
    l->depth = 1;
    if (cap) {
        l->items = w8_xmalloc(cap * sizeof(jv));
        l->cap = cap;
    }
    return l;
}

int jv_depth(jv v) {
    switch (v.t) {
    case JV_LIST: return v.u.l->depth;
    case JV_DICT: return v.u.d->depth;
    case JV_LOOP: return v.u.lp->items->depth + 1;
    case JV_METHOD: return jv_depth(v.u.me->self) + 1;
    default: return 0;
    }
}

void jv_list_push(jv_list *l, jv v) {
    int d = jv_depth(v) + 1;
    if (d > l->depth) l->depth = d;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->items = w8_xrealloc(l->items, l->cap * sizeof(jv));
    }
    l->items[l->n++] = v;
}

jv jv_list_val(jv_list *l) {
    jv v = {JV_LIST, {.l = l}};
    return v;
}

jv_dict *jv_dict_new(void) {
    jv_dict *d = w8_xcalloc(1, sizeof *d);
    d->rc = 1;
    d->depth = 1;
    return d;
}

void jv_dict_clear(jv_dict *d) {
    for (size_t i = 0; i < d->n; i++) {
        jv_free(d->keys[i]);
        jv_free(d->vals[i]);
    }
    d->n = 0;
}

jv *jv_dict_get(const jv_dict *d, jv key) {
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(d->keys[i], key)) return &d->vals[i];
    return NULL;
}

void jv_dict_set(jv_dict *d, jv key, jv val) {
    int dep = jv_depth(val) + 1;
    if (jv_depth(key) + 1 > dep) dep = jv_depth(key) + 1;
    if (dep > d->depth) d->depth = dep;
    jv *old = jv_dict_get(d, key);
    if (old) {
        jv_free(key);
        jv_free(*old);
        *old = val;
        return;
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 8;
        d->keys = w8_xrealloc(d->keys, d->cap * sizeof(jv));
        d->vals = w8_xrealloc(d->vals, d->cap * sizeof(jv));
    }
    d->keys[d->n] = key;
    d->vals[d->n++] = val;
}

jv jv_dict_val(jv_dict *d) {
    jv v = {JV_DICT, {.d = d}};
    return v;
}

/* ------------------------------------------------------------ buffer */

jv jv_str_take(w8_buf *b) {
    jv v = jv_str_n(b->s ? b->s : "", b->len);
    w8_buf_free(b);
    return v;
}

/* ------------------------------------------------------------ UTF-8 */

size_t ju_len(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) k++;
    return k;
}

/* Decodes one code point; invalid bytes decode as themselves (one byte), so
 * every input makes progress and nothing reads past n. */
size_t ju_decode(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    int len = u[0] < 0x80 ? 1 : (u[0] >> 5) == 6 ? 2 : (u[0] >> 4) == 14 ? 3 : (u[0] >> 3) == 30 ? 4 : 0;
    if (len == 0 || (size_t)len > n) {
        *cp = u[0];
        return 1;
    }
    uint32_t c = len == 1 ? u[0] : len == 2 ? (u[0] & 0x1F) : len == 3 ? (u[0] & 0x0F) : (u[0] & 0x07);
    for (int i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80) {
            *cp = u[0];
            return 1;
        }
        c = (c << 6) | (u[i] & 0x3F);
    }
    *cp = c;
    return (size_t)len;
}

void ju_encode(w8_buf *b, uint32_t cp) {
    char t[4];
    size_t n;
    if (cp < 0x80) {
        t[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        t[0] = (char)(0xF0 | (cp >> 18));
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    w8_buf_put(b, t, n);
}

int ju_isspace(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* ------------------------------------------------------------ semantics */

int jv_truthy(jv v) {
    switch (v.t) {
    case JV_UNDEF:
    case JV_NONE: return 0;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0.0;
    case JV_STR: return v.u.s->len != 0;
    case JV_LIST: return v.u.l->n != 0;
    case JV_DICT: return v.u.d->n != 0;
    default: return 1;
    }
}

int jv_is_num(jv v) { return v.t == JV_BOOL || v.t == JV_INT || v.t == JV_FLOAT; }

double jv_num(jv v) {
    return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : v.t == JV_BOOL ? v.u.b : 0.0;
}

int jv_equal(jv a, jv b) {
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT) {
            long long x = a.t == JV_INT ? a.u.i : a.u.b, y = b.t == JV_INT ? b.u.i : b.u.b;
            return x == y;
        }
        return jv_num(a) == jv_num(b);
    }
    if (a.t != b.t) return 0;
    switch (a.t) {
    case JV_UNDEF:
    case JV_NONE: return 1;
    case JV_STR: return a.u.s->len == b.u.s->len && !memcmp(a.u.s->s, b.u.s->s, a.u.s->len);
    case JV_LIST:
        if (a.u.l->tuple != b.u.l->tuple || a.u.l->n != b.u.l->n) return 0;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!jv_equal(a.u.l->items[i], b.u.l->items[i])) return 0;
        return 1;
    case JV_DICT:
        if (a.u.d->n != b.u.d->n) return 0;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv *o = jv_dict_get(b.u.d, a.u.d->keys[i]);
            if (!o || !jv_equal(a.u.d->vals[i], *o)) return 0;
        }
        return 1;
    case JV_NS: return a.u.d == b.u.d;
    case JV_MACRO: return a.u.m == b.u.m;
    case JV_LOOP: return a.u.lp == b.u.lp;
    case JV_METHOD: return a.u.me->name == b.u.me->name && jv_equal(a.u.me->self, b.u.me->self);
    case JV_FUNC: return a.u.fn == b.u.fn;
    default: return 0;
    }
}

int jv_compare(jv a, jv b) {
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT) {
            long long x = a.t == JV_INT ? a.u.i : a.u.b, y = b.t == JV_INT ? b.u.i : b.u.b;
            return x < y ? -1 : x > y;
        }
        double x = jv_num(a), y = jv_num(b);
        return x < y ? -1 : x > y ? 1 : 0; /* NaN compares equal-ish; Python gives False both ways */
    }
    if (a.t == JV_STR && b.t == JV_STR) {
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        int c = memcmp(a.u.s->s, b.u.s->s, n); /* UTF-8 byte order == code point order */
        if (c) return c < 0 ? -1 : 1;
        return a.u.s->len < b.u.s->len ? -1 : a.u.s->len > b.u.s->len;
    }
    if (a.t == JV_LIST && b.t == JV_LIST) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (jv_equal(a.u.l->items[i], b.u.l->items[i])) continue;
            return jv_compare(a.u.l->items[i], b.u.l->items[i]);
        }
        return a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
    }
    return -2;
}

const char *jv_type_name(jv v) {
    switch (v.t) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST: return v.u.l->tuple ? "tuple" : "list";
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    case JV_MACRO: return "Macro";
    case JV_FUNC: return "function";
    case JV_LOOP: return "LoopContext";
    case JV_METHOD: return "builtin_function_or_method";
    }
    return "object";
}

/* ------------------------------------------------------------ printing */

void jv_fmt_float(double f, char out[40]) {
    if (isnan(f)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(f)) {
        strcpy(out, f < 0 ? "-inf" : "inf");
        return;
    }
    /* Shortest digits that round-trip, then Python's layout: positional for
     * exponents in [-4, 16), otherwise d.ddde+XX. */
    char e[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, f);
        if (strtod(e, NULL) == f) break;
    }
    char digits[24];
    int nd = 0, neg = e[0] == '-';
    const char *p = e + neg;
    for (; *p && *p != 'e'; p++)
        if (isdigit((unsigned char)*p)) digits[nd++] = *p;
    int exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    char *o = out;
    if (neg) *o++ = '-';
    if (exp10 >= 16 || exp10 < -4) {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        sprintf(o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
        return;
    }
    if (exp10 < 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -exp10 - 1; i++) *o++ = '0';
        memcpy(o, digits, (size_t)nd);
        o += nd;
    } else {
        for (int i = 0; i <= exp10; i++) *o++ = i < nd ? digits[i] : '0';
        *o++ = '.';
        if (nd > exp10 + 1) {
            memcpy(o, digits + exp10 + 1, (size_t)(nd - exp10 - 1));
            o += nd - exp10 - 1;
        } else {
            *o++ = '0';
        }
    }
    *o = 0;
}

static void write_str_repr(w8_buf *b, const char *s, size_t n) {
    /* Python picks single quotes unless the text has ' and no " */
    int sq = memchr(s, '\'', n) != NULL, dq = memchr(s, '"', n) != NULL;
    char q = sq && !dq ? '"' : '\'';
    w8_buf_putc(b, q);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char t[8];
        if (c == (unsigned char)q || c == '\\') {
            w8_buf_putc(b, '\\');
            w8_buf_putc(b, (char)c);
        } else if (c == '\n') w8_buf_puts(b, "\\n");
        else if (c == '\r') w8_buf_puts(b, "\\r");
        else if (c == '\t') w8_buf_puts(b, "\\t");
        else if (c < 0x20 || c == 0x7F) {
            snprintf(t, sizeof t, "\\x%02x", c);
            w8_buf_puts(b, t);
        } else w8_buf_putc(b, (char)c);
    }
    w8_buf_putc(b, q);
}

static void write_seq(w8_buf *b, jv v, int repr_items) {
    jv_list *l = v.u.l;
    w8_buf_putc(b, l->tuple ? '(' : '[');
    for (size_t i = 0; i < l->n; i++) {
        if (i) w8_buf_puts(b, ", ");
        if (repr_items) jv_write_repr(b, l->items[i]);
    }
    if (l->tuple && l->n == 1) w8_buf_putc(b, ',');
    w8_buf_putc(b, l->tuple ? ')' : ']');
}

void jv_write_str(w8_buf *b, jv v) {
    char t[40];
    switch (v.t) {
    case JV_UNDEF: return;
    case JV_NONE: w8_buf_puts(b, "None"); return;
    case JV_BOOL: w8_buf_puts(b, v.u.b ? "True" : "False"); return;
    case JV_INT:
        snprintf(t, sizeof t, "%lld", v.u.i);
        w8_buf_puts(b, t);
        return;
    case JV_FLOAT:
        jv_fmt_float(v.u.f, t);
        w8_buf_puts(b, t);
        return;
    case JV_STR: w8_buf_put(b, v.u.s->s, v.u.s->len); return;
    default: jv_write_repr(b, v); return;
    }
}

void jv_write_repr(w8_buf *b, jv v) {
    switch (v.t) {
    case JV_STR: write_str_repr(b, v.u.s->s, v.u.s->len); return;
    case JV_LIST: write_seq(b, v, 1); return;
    case JV_DICT:
        w8_buf_putc(b, '{');
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i) w8_buf_puts(b, ", ");
            jv_write_repr(b, v.u.d->keys[i]);
            w8_buf_puts(b, ": ");
            jv_write_repr(b, v.u.d->vals[i]);
        }
        w8_buf_putc(b, '}');
        return;
    case JV_NS:
        w8_buf_puts(b, "<Namespace {");
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i) w8_buf_puts(b, ", ");
            jv_write_repr(b, v.u.d->keys[i]);
            w8_buf_puts(b, ": ");
            /* a namespace may hold itself; do not recurse into namespaces */
            if (v.u.d->vals[i].t == JV_NS) w8_buf_puts(b, "<Namespace>");
            else jv_write_repr(b, v.u.d->vals[i]);
        }
        w8_buf_puts(b, "}>");
        return;
    case JV_MACRO: w8_buf_puts(b, "<Macro>"); return;
    case JV_FUNC: w8_buf_puts(b, "<function>"); return;
    case JV_LOOP: w8_buf_puts(b, "<LoopContext>"); return;
    case JV_METHOD:
        w8_buf_puts(b, "<built-in method ");
        w8_buf_puts(b, v.u.me->name);
        w8_buf_puts(b, " of ");
        w8_buf_puts(b, jv_type_name(v.u.me->self));
        w8_buf_puts(b, " object>");
        return;
    default: jv_write_str(b, v); return;
    }
}

/* ------------------------------------------------------------ JSON */

static void write_json_str(w8_buf *b, const char *s, size_t n) {
    w8_buf_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char t[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20) {
                snprintf(t, sizeof t, "\\u%04x", c);
                esc = t;
            }
        }
        if (esc) {
            w8_buf_put(b, s + run, i - run);
            w8_buf_puts(b, esc);
            run = i + 1;
        }
    }
    w8_buf_put(b, s + run, n - run);
    w8_buf_putc(b, '"');
}

static void json_newline(w8_buf *b, const char *indent, int level) {
    w8_buf_putc(b, '\n');
    for (int i = 0; i < level; i++) w8_buf_puts(b, indent);
}

/* json.dumps turns non-string keys into strings: True -> "true", 1.5 -> "1.5". */
static int write_json_key(w8_buf *b, jv k, const char **why) {
    char t[40];
    switch (k.t) {
    case JV_STR: write_json_str(b, k.u.s->s, k.u.s->len); return 0;
    case JV_NONE: w8_buf_puts(b, "\"null\""); return 0;
    case JV_BOOL: w8_buf_puts(b, k.u.b ? "\"true\"" : "\"false\""); return 0;
    case JV_INT: snprintf(t, sizeof t, "\"%lld\"", k.u.i); w8_buf_puts(b, t); return 0;
    case JV_FLOAT:
        w8_buf_putc(b, '"');
        jv_fmt_float(k.u.f, t);
        w8_buf_puts(b, !strcmp(t, "nan") ? "NaN" : !strcmp(t, "inf") ? "Infinity" : !strcmp(t, "-inf") ? "-Infinity" : t);
        w8_buf_putc(b, '"');
        return 0;
    default: *why = "keys must be str, int, float, bool or None"; return -1;
    }
}

static int cmp_keys(const void *x, const void *y) {
    const jv *a = *(const jv *const *)x, *b = *(const jv *const *)y;
    int c = jv_compare(*a, *b);
    return c == -2 ? 0 : c;
}

int jv_write_json(w8_buf *b, jv v, const char *indent, const char *item_sep, const char *key_sep,
                  int sort_keys, int level, const char **why) {
    char t[40];
    if (level > 500) { /* jansson input is already limited; this guards template-built values */
        *why = "value nested too deeply";
        return -1;
    }
    if (!item_sep) item_sep = indent ? "," : ", ";
    if (!key_sep) key_sep = ": ";
    switch (v.t) {
    case JV_NONE: w8_buf_puts(b, "null"); return 0;
    case JV_BOOL: w8_buf_puts(b, v.u.b ? "true" : "false"); return 0;
    case JV_INT: snprintf(t, sizeof t, "%lld", v.u.i); w8_buf_puts(b, t); return 0;
    case JV_FLOAT:
        jv_fmt_float(v.u.f, t);
        w8_buf_puts(b, !strcmp(t, "nan") ? "NaN" : !strcmp(t, "inf") ? "Infinity" : !strcmp(t, "-inf") ? "-Infinity" : t);
        return 0;
    case JV_STR: write_json_str(b, v.u.s->s, v.u.s->len); return 0;
    case JV_LIST: {
        jv_list *l = v.u.l;
        if (l->n == 0) {
            w8_buf_puts(b, "[]");
            return 0;
        }
        w8_buf_putc(b, '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i) w8_buf_puts(b, item_sep);
            if (indent) json_newline(b, indent, level + 1);
            if (jv_write_json(b, l->items[i], indent, item_sep, key_sep, sort_keys, level + 1, why)) return -1;
        }
        if (indent) json_newline(b, indent, level);
        w8_buf_putc(b, ']');
        return 0;
    }
    case JV_DICT:
    case JV_NS: {
        jv_dict *d = v.u.d;
        if (v.t == JV_NS) {
            *why = "Object of type Namespace is not JSON serializable";
            return -1;
        }
        if (d->n == 0) {
            w8_buf_puts(b, "{}");
            return 0;
        }
        /* order: insertion, or sorted keys (pointers into the dict) */
        const jv **order = w8_xmalloc(d->n * sizeof *order);
        for (size_t i = 0; i < d->n; i++) order[i] = &d->keys[i];
        if (sort_keys) qsort(order, d->n, sizeof *order, cmp_keys);
        w8_buf_putc(b, '{');
        int rc = 0;
        for (size_t i = 0; i < d->n && !rc; i++) {
            size_t k = (size_t)(order[i] - d->keys);
            if (i) w8_buf_puts(b, item_sep);
            if (indent) json_newline(b, indent, level + 1);
            rc = write_json_key(b, d->keys[k], why);
            if (!rc) {
                w8_buf_puts(b, key_sep);
                rc = jv_write_json(b, d->vals[k], indent, item_sep, key_sep, sort_keys, level + 1, why);
            }
        }
        free(order);
        if (rc) return -1;
        if (indent) json_newline(b, indent, level);
        w8_buf_putc(b, '}');
        return 0;
    }
    case JV_UNDEF: *why = "Object of type Undefined is not JSON serializable"; return -1;
    default: *why = "value is not JSON serializable"; return -1;
    }
}

jv jv_from_json(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_NULL: return jv_none();
    case JSON_TRUE: return jv_bool(1);
    case JSON_FALSE: return jv_bool(0);
    case JSON_INTEGER: return jv_int((long long)json_integer_value(j));
    case JSON_REAL: return jv_float(json_real_value(j));
    case JSON_STRING: return jv_str_n(json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        jv_list *l = jv_list_new(json_array_size(j));
        size_t i;
        json_t *x;
        json_array_foreach(j, i, x) jv_list_push(l, jv_from_json(x));
        return jv_list_val(l);
    }
    case JSON_OBJECT: {
        jv_dict *d = jv_dict_new();
        const char *k;
        json_t *x;
        /* JSON keys are unique: append without the duplicate scan */
        d->cap = json_object_size(j) ? json_object_size(j) : 1;
        d->keys = w8_xmalloc(d->cap * sizeof(jv));
        d->vals = w8_xmalloc(d->cap * sizeof(jv));
        json_object_foreach((json_t *)j, k, x) {
            d->keys[d->n] = jv_str_c(k);
            d->vals[d->n] = jv_from_json(x);
            if (jv_depth(d->vals[d->n]) + 1 > d->depth) d->depth = jv_depth(d->vals[d->n]) + 1;
            d->n++;
        }
        return jv_dict_val(d);
    }
    }
    return jv_none();
}

/* ------------------------------------------------------------ arena */

struct jarena_block {
    jarena_block *next;
    size_t used, cap;
    max_align_t data[];
};

void *jarena_alloc(jarena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    jarena_block *b = a->head;
    if (!b || b->used + n > b->cap) {
        size_t cap = n > 65536 ? n : 65536;
        b = w8_xmalloc(sizeof *b + cap);
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *jarena_strndup(jarena *a, const char *s, size_t n) {
    char *p = jarena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void jarena_free(jarena *a) {
    while (a->head) {
        jarena_block *n = a->head->next;
        free(a->head);
        a->head = n;
    }
}

/* ------------------------------------------------------------ errors */

/* Line and column (in code points, 1-based) of byte offset pos. */
void jj_linecol(const char *src, uint32_t pos, int *line, int *col) {
    *line = *col = 1;
    for (uint32_t i = 0; i < pos && src[i]; i++) {
        if (src[i] == '\n') {
            ++*line;
            *col = 1;
        } else if (((unsigned char)src[i] & 0xC0) != 0x80) {
            ++*col;
        }
    }
}

int jj_error(const char *src, uint32_t pos, const char *fmt, ...) {
    int line, col;
    jj_linecol(src, pos, &line, &col);
    char msg[W8_ERRMAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return w8_seterr("template:%d:%d: %s", line, col, msg);
}

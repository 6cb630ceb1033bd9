/*
 * methods.c - methods of str, dict, list and loop objects, one {name, fn}
 * table per type: the same table calls obj.name(args) and tells getattr
 * that obj.name is a method.
 *
 *   str   startswith endswith split rsplit strip lstrip rstrip replace
 *         upper lower title capitalize find rfind index rindex count join
 *         splitlines isdigit isalpha isalnum isspace isupper islower format
 *         removeprefix removesuffix
 *   dict  items keys values get copy;  list: index count;  loop: cycle
 * (`obj.method` without a call is a bound method value, so `schema.items`
 * is the dict method, as Python's getattr finds.)  Mutating methods
 * (list.append, dict.update ...) are refused, as by Jinja2's
 * ImmutableSandboxedEnvironment that transformers uses.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "../util.h"
#include "builtins.h"
#include "methods.h"

/* ------------------------------------------------------------ str helpers */

static int starts_ends(jctx *c, const jnode *at, const jv_str *s, const jargs *a, int ends, jv *out) {
    const jv *p = jb_arg(a, 0, NULL);
    if (!p) return jb_bad_arg(c, at, ends ? "endswith" : "startswith", "needs an argument");
    size_t b, e;
    jb_cp_range(s, jb_arg(a, 1, NULL), jb_arg(a, 2, NULL), &b, &e);
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
    w8_buf b = jj_buf();
    int auto_idx = 0;
    for (size_t i = 0; i < s->len; i++) {
        char ch = s->s[i];
        if (ch == '{' && i + 1 < s->len && s->s[i + 1] == '{') {
            w8_buf_putc(&b, '{');
            i++;
        } else if (ch == '}' && i + 1 < s->len && s->s[i + 1] == '}') {
            w8_buf_putc(&b, '}');
            i++;
        } else if (ch == '{') {
            const char *close = memchr(s->s + i, '}', s->len - i);
            if (!close) break;
            size_t n = (size_t)(close - s->s) - i - 1;
            char field[64];
            if (n >= sizeof field || memchr(s->s + i + 1, ':', n) || memchr(s->s + i + 1, '!', n)) {
                w8_buf_free(&b);
                return jj_error(c->src, at->pos, "format: only {}, {N} and {name} fields are supported");
            }
            memcpy(field, s->s + i + 1, n);
            field[n] = 0;
            const jv *v;
            if (!n) v = jb_arg(a, auto_idx++, NULL);
            else if (field[0] >= '0' && field[0] <= '9') v = jb_arg(a, atoi(field), NULL);
            else v = jb_arg(a, -1, field);
            if (!v) {
                w8_buf_free(&b);
                return jj_error(c->src, at->pos, "format: no argument for field {%s}", field);
            }
            jv_write_str(&b, *v);
            i += n + 1;
        } else {
            w8_buf_putc(&b, ch);
        }
    }
    return jj_buf_done(c, at, &b, out);
}

static int str_pred(const jv_str *s, int kind) {
    if (!s->len) return 0;
    if (kind == 'u' || kind == 'l') return jb_str_all(s, kind == 'u');
    for (size_t i = 0; i < s->len;) {
        uint32_t cp;
        i += ju_decode(s->s + i, s->len - i, &cp);
        utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
        int ok = kind == 'd'   ? k == UTF8PROC_CATEGORY_ND
                 : kind == 'a' ? jb_is_alpha(cp)
                 : kind == 'n' ? jb_is_alnum(cp)
                               : ju_isspace(cp);
        if (!ok) return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ str methods */

/* A method: obj.name(a).  `name` is the table entry's name, for functions
 * that serve several (strip/lstrip/rstrip ...).  Returns 1 with *out set
 * (a new reference), or -1 after jj_error. */
typedef int method_fn(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out);

typedef struct {
    const char *name;
    method_fn *fn;
    int markup; /* str methods whose result stays Markup when obj is Markup */
} method;

static int m_startswith(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out) {
    return starts_ends(c, at, obj.u.s, a, !strcmp(name, "endswith"), out);
}

static int m_case(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out) {
    (void)c, (void)at, (void)a;
    case_mode m = !strcmp(name, "upper") ? CASE_UPPER : !strcmp(name, "lower") ? CASE_LOWER
                : !strcmp(name, "title") ? CASE_TITLE_PY : CASE_CAPITALIZE;
    *out = jb_change_case(obj.u.s, m);
    return 1;
}

static int m_strip(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out) {
    const jv_str *p1;
    if (jb_arg_str(c, at, a, 0, "chars", name, &p1)) return -1;
    *out = jb_strip(obj.u.s, p1, name[0] != 'r', name[0] != 'l');
    return 1;
}

static int m_split(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out) {
    const jv_str *p1;
    long long n;
    if (jb_arg_str(c, at, a, 0, "sep", name, &p1) || jb_arg_int(c, at, a, 1, "maxsplit", name, -1, &n)) return -1;
    if (jb_split(c, at, obj.u.s, p1, n, name[0] == 'r', out)) return -1;
    return 1;
}

static int m_replace(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out) {
    const jv_str *p1, *p2;
    long long n;
    if (jb_arg_str(c, at, a, 0, NULL, name, &p1) || jb_arg_str(c, at, a, 1, NULL, name, &p2) ||
        jb_arg_int(c, at, a, 2, "count", name, -1, &n))
        return -1;
    if (!p1 || !p2) return jb_bad_arg(c, at, "replace", "needs old and new strings");
    if (jb_replace(c, at, obj.u.s, p1, p2, n, out)) return -1;
    return 1;
}

/* find rfind index rindex count */
static int m_find(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out) {
    const jv_str *s = obj.u.s, *p1;
    if (jb_arg_str(c, at, a, 0, NULL, name, &p1)) return -1;
    if (!p1) return jb_bad_arg(c, at, name, "needs a string argument");
    size_t b, e;
    jb_cp_range(s, jb_arg(a, 1, NULL), jb_arg(a, 2, NULL), &b, &e);
    if (!strcmp(name, "count")) {
        long long k = 0;
        if (!p1->len) k = (long long)ju_len(s->s + b, e - b) + 1;
        else
            for (size_t i = b; i + p1->len <= e;) {
                const char *f = jb_find_bytes(s->s + i, e - i, p1->s, p1->len);
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
                pos = jb_cp_index(s, i);
                break;
            }
    } else if (p1->len <= e - b) {
        const char *f = jb_find_bytes(s->s + b, e - b, p1->s, p1->len);
        if (f) pos = jb_cp_index(s, (size_t)(f - s->s));
    }
    if (pos < 0 && name[strlen(name) - 1] == 'x') return jj_error(c->src, at->pos, "substring not found");
    *out = jv_int(pos);
    return 1;
}

static int m_join(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out) {
    (void)name;
    const jv_str *s = obj.u.s;
    const jv *it = jb_arg(a, 0, NULL);
    if (!it) return jb_bad_arg(c, at, "join", "needs an iterable");
    jv_list *l;
    if (jj_iterate(c, at, *it, &l)) return -1;
    w8_buf b = jj_buf();
    for (size_t i = 0; i < l->n; i++) {
        if (l->items[i].t != JV_STR || jj_tick(c, at)) {
            int rc = l->items[i].t != JV_STR ? jj_error(c->src, at->pos, "sequence item %zu: expected str instance, %s found", i,
                                                        jv_type_name(l->items[i]))
                                             : -1;
            jv_free(jv_list_val(l));
            w8_buf_free(&b);
            return rc;
        }
        if (i) w8_buf_put(&b, s->s, s->len);
        w8_buf_put(&b, l->items[i].u.s->s, l->items[i].u.s->len);
    }
    jv_free(jv_list_val(l));
    if (jj_buf_done(c, at, &b, out)) return -1;
    return 1;
}

static int m_splitlines(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out) {
    (void)c, (void)at, (void)name, (void)a;
    const jv_str *s = obj.u.s;
    jv_list *l = jv_list_new(0);
    for (size_t i = 0; i < s->len;) {
        size_t e = i;
        while (e < s->len && s->s[e] != '\n' && s->s[e] != '\r') e++;
        jv_list_push(l, jv_str_n(s->s + i, e - i));
        if (e < s->len && s->s[e] == '\r' && e + 1 < s->len && s->s[e + 1] == '\n') e++;
        i = e + 1;
    }
    *out = jv_list_val(l);
    return 1;
}

/* isdigit isalpha isalnum isspace isupper islower */
static int m_pred(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out) {
    (void)c, (void)at, (void)a;
#define IS(x) (!strcmp(name, x))
    int kind = IS("isdigit") ? 'd' : IS("isalpha") ? 'a' : IS("isalnum") ? 'n' : IS("isspace") ? 's' : IS("isupper") ? 'u' : 'l';
#undef IS
    *out = jv_bool(str_pred(obj.u.s, kind));
    return 1;
}

static int m_format(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out) {
    (void)name;
    return str_format(c, at, obj.u.s, a, out) ? -1 : 1;
}

/* removeprefix removesuffix */
static int m_remove(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out) {
    const jv_str *s = obj.u.s, *p1;
    if (jb_arg_str(c, at, a, 0, NULL, name, &p1)) return -1;
    if (!p1) return jb_bad_arg(c, at, name, "needs a string argument");
    int pre = !strcmp(name, "removeprefix");
    if (p1->len <= s->len && !memcmp(pre ? s->s : s->s + s->len - p1->len, p1->s, p1->len))
        *out = pre ? jv_str_n(s->s + p1->len, s->len - p1->len) : jv_str_n(s->s, s->len - p1->len);
    else *out = jv_str_n(s->s, s->len);
    return 1;
}

static const method str_methods[] = {
    {"startswith", m_startswith, 0}, {"endswith", m_startswith, 0}, {"split", m_split, 0},
    {"rsplit", m_split, 0}, {"strip", m_strip, 1}, {"lstrip", m_strip, 1}, {"rstrip", m_strip, 1},
    {"replace", m_replace, 0}, {"upper", m_case, 1}, {"lower", m_case, 1}, {"title", m_case, 1},
    {"capitalize", m_case, 1}, {"find", m_find, 0}, {"rfind", m_find, 0}, {"index", m_find, 0},
    {"rindex", m_find, 0}, {"count", m_find, 0}, {"join", m_join, 0}, {"splitlines", m_splitlines, 0},
    {"isdigit", m_pred, 0}, {"isalpha", m_pred, 0}, {"isalnum", m_pred, 0}, {"isspace", m_pred, 0},
    {"isupper", m_pred, 0}, {"islower", m_pred, 0}, {"format", m_format, 0},
    {"removeprefix", m_remove, 0}, {"removesuffix", m_remove, 0}, {NULL, NULL, 0}};

/* ------------------------------------------------------------ dict, list, loop methods */

static int m_items(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out) {
    (void)name, (void)a;
    return jb_items(c, at, obj, out) ? -1 : 1;
}

/* keys values */
static int m_keys(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out) {
    (void)c, (void)at, (void)a;
    int keys = !strcmp(name, "keys");
    jv_list *l = jv_list_new(obj.u.d->n);
    for (size_t i = 0; i < obj.u.d->n; i++) jv_list_push(l, jv_ref(keys ? obj.u.d->keys[i] : obj.u.d->vals[i]));
    *out = jv_list_val(l);
    return 1;
}

static int m_copy(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out) {
    (void)c, (void)at, (void)name, (void)a;
    jv_dict *d = jv_dict_new();
    for (size_t i = 0; i < obj.u.d->n; i++) jv_dict_set(d, jv_ref(obj.u.d->keys[i]), jv_ref(obj.u.d->vals[i]));
    *out = jv_dict_val(d);
    return 1;
}

static int m_get(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out) {
    (void)name;
    const jv *k = jb_arg(a, 0, NULL), *d = jb_arg(a, 1, NULL);
    if (!k) return jb_bad_arg(c, at, "get", "needs a key");
    jv *v = jv_dict_get(obj.u.d, *k);
    *out = v ? jv_ref(*v) : d ? jv_ref(*d) : jv_none();
    return 1;
}

/* list.index / list.count */
static int m_list_index(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out) {
    const jv *x = jb_arg(a, 0, NULL);
    if (!x) return jb_bad_arg(c, at, name, "needs an argument");
    long long k = 0, pos = -1;
    for (size_t i = 0; i < obj.u.l->n; i++)
        if (jv_equal(obj.u.l->items[i], *x)) {
            if (pos < 0) pos = (long long)i;
            k++;
        }
    int index = !strcmp(name, "index");
    if (index && pos < 0) return jj_error(c->src, at->pos, "list.index(x): x not in list");
    *out = jv_int(index ? pos : k);
    return 1;
}

static int m_cycle(jctx *c, const jnode *at, const char *name, jv obj, const jargs *a, jv *out) {
    (void)name;
    if (!a->nargs) return jb_bad_arg(c, at, "loop.cycle", "needs at least one value");
    *out = jv_ref(a->args[obj.u.lp->i % (size_t)a->nargs]);
    return 1;
}

static const method dict_methods[] = {
    {"items", m_items, 0}, {"keys", m_keys, 0}, {"values", m_keys, 0}, {"get", m_get, 0}, {"copy", m_copy, 0},
    {NULL, NULL, 0}};
static const method list_methods[] = {{"index", m_list_index, 0}, {"count", m_list_index, 0}, {NULL, NULL, 0}};
static const method loop_methods[] = {{"cycle", m_cycle, 0}, {NULL, NULL, 0}};

/* Mutating methods, refused as by Jinja2's ImmutableSandboxedEnvironment
 * (they are not methods for getattr: `d.pop` is still the key "pop"). */
static const char *const dict_unsafe[] = {"update", "pop", "popitem", "setdefault", "clear", NULL};
static const char *const list_unsafe[] = {"append", "extend", "insert", "pop", "remove", "sort", "reverse", "clear", NULL};

static const method *find_method(const method *t, const char *name) {
    for (; t && t->name; t++)
        if (!strcmp(t->name, name)) return t;
    return NULL;
}

static const method *table_of(jv obj) {
    switch (obj.t) {
    case JV_STR: return str_methods;
    case JV_DICT: return dict_methods;
    case JV_LIST: return list_methods;
    case JV_LOOP: return loop_methods;
    default: return NULL;
    }
}

const char *jj_method_name(jv obj, const char *name) {
    /* loop.cycle is only found by a call (loop attributes come first) */
    if (obj.t == JV_LOOP) return NULL;
    const method *m = find_method(table_of(obj), name);
    return m ? m->name : NULL;
}

int jj_method(jctx *c, const jnode *at, jv obj, const char *name, const jargs *a, jv *out) {
    size_t cost = jj_cost(obj);
    for (int i = 0; i < a->nargs; i++) cost += jj_cost(a->args[i]);
    if (jj_charge(c, at, cost)) return -1;
    const method *m = find_method(table_of(obj), name);
    if (m) {
        int h = m->fn(c, at, m->name, obj, a, out);
        if (h == 1 && m->markup && obj.u.s->markup && out->t == JV_STR) *out = jv_markup(*out);
        return h;
    }
    const char *const *unsafe = obj.t == JV_DICT ? dict_unsafe : obj.t == JV_LIST ? list_unsafe : NULL;
    for (int i = 0; unsafe && unsafe[i]; i++)
        if (!strcmp(unsafe[i], name))
            return jj_error(c->src, at->pos, "access to attribute '%s' of '%s' object is unsafe", name,
                            jv_type_name(obj));
    return 0;
}

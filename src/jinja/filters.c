/*
 * filters.c - Jinja filters and tests, each a {name, fn} table.
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
 *            lower upper escaped filter test
 * tojson is transformers' override: json.dumps(x, ensure_ascii=False,
 * indent=indent, separators=separators, sort_keys=sort_keys).
 * Filters and tests share one file because each needs the other's table:
 * select/reject apply tests, and the `filter` test asks for a filter name.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "../util.h"
#include "builtins.h"
#include "filters.h"

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
        jv l = jb_change_case(k.u.s, CASE_LOWER);
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

/* Type and value tests that need no argument. */
#define TEST(fn, expr)                                                              \
    static int fn(jctx *c, const jnode *at, const char *name, jv x, const jargs *a) { \
        (void)c, (void)at, (void)name, (void)x, (void)a;                             \
        return (expr);                                                               \
    }
TEST(t_defined, x.t != JV_UNDEF)
TEST(t_undefined, x.t == JV_UNDEF)
TEST(t_none, x.t == JV_NONE)
TEST(t_string, x.t == JV_STR)
TEST(t_number, jv_is_num(x))
TEST(t_integer, x.t == JV_INT)
TEST(t_float, x.t == JV_FLOAT)
TEST(t_mapping, x.t == JV_DICT)
TEST(t_iterable, x.t == JV_STR || x.t == JV_LIST || x.t == JV_DICT || x.t == JV_UNDEF)
TEST(t_sequence, x.t == JV_STR || x.t == JV_LIST || x.t == JV_DICT)
TEST(t_boolean, x.t == JV_BOOL)
TEST(t_true, x.t == JV_BOOL && x.u.b)
TEST(t_false, x.t == JV_BOOL && !x.u.b)
TEST(t_callable, x.t == JV_MACRO || x.t == JV_FUNC || x.t == JV_METHOD)
TEST(t_escaped, 0)
TEST(t_filter, x.t == JV_STR && jj_has_filter(x.u.s->s))
TEST(t_test, x.t == JV_STR && jj_has_test(x.u.s->s))
#undef TEST

/* lower / upper */
static int t_case(jctx *c, const jnode *at, const char *name, jv x, const jargs *a) {
    (void)c, (void)at, (void)a;
    return x.t == JV_STR && jb_str_all(x.u.s, !strcmp(name, "upper"));
}

/* odd, even, divisibleby(n) */
static int t_parity(jctx *c, const jnode *at, const char *name, jv x, const jargs *a) {
#define IS(s) (!strcmp(name, s))
    if (x.t != JV_INT && x.t != JV_BOOL) {
        if (x.t == JV_UNDEF) return jj_undef_error(c, at, x);
        if (x.t == JV_FLOAT && !IS("divisibleby")) return fmod(x.u.f, 2) != 0 ? IS("odd") : IS("even");
        return jj_error(c->src, at->pos, "test '%s' needs a number, got %s", name, jv_type_name(x));
    }
    long long v = x.t == JV_INT ? x.u.i : x.u.b;
    if (IS("odd")) return v % 2 != 0;
    if (IS("even")) return v % 2 == 0;
    long long d;
    if (!jb_arg(a, 0, NULL)) return jj_error(c->src, at->pos, "test 'divisibleby' needs an argument");
    if (jb_arg_int(c, at, a, 0, NULL, "divisibleby", 1, &d)) return -1;
    if (d == 0) return jj_error(c->src, at->pos, "integer division or modulo by zero");
    return v % d == 0;
#undef IS
}

/* The tests that compare x with an argument y: eq ne sameas in and the
 * orderings, by name. */
static int t_binary(jctx *c, const jnode *at, const char *name, jv x, const jargs *a) {
    const jv *y = jb_arg(a, 0, NULL);
    int r;
#define IS(s) (!strcmp(name, s))
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
            return jb_find_bytes(y->u.s->s, y->u.s->len, x.u.s->s, x.u.s->len) != NULL;
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

static const struct {
    const char *name;
    jj_test_fn *fn;
} tests[] = {
    {"defined", t_defined}, {"undefined", t_undefined}, {"none", t_none}, {"string", t_string},
    {"number", t_number}, {"integer", t_integer}, {"float", t_float}, {"mapping", t_mapping},
    {"iterable", t_iterable}, {"sequence", t_sequence}, {"boolean", t_boolean}, {"true", t_true},
    {"false", t_false}, {"callable", t_callable}, {"escaped", t_escaped}, {"filter", t_filter},
    {"test", t_test}, {"lower", t_case}, {"upper", t_case}, {"odd", t_parity}, {"even", t_parity},
    {"divisibleby", t_parity}, {"eq", t_binary}, {"equalto", t_binary}, {"==", t_binary},
    {"ne", t_binary}, {"!=", t_binary}, {"sameas", t_binary}, {"in", t_binary}, {"lt", t_binary},
    {"<", t_binary}, {"lessthan", t_binary}, {"le", t_binary}, {"<=", t_binary}, {"gt", t_binary},
    {">", t_binary}, {"greaterthan", t_binary}, {"ge", t_binary}, {">=", t_binary},
};

static jj_test_fn *find_test(const char *name) {
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++)
        if (!strcmp(tests[i].name, name)) return tests[i].fn;
    return NULL;
}

int jj_has_test(const char *name) { return find_test(name) != NULL; }

int jj_test(jctx *c, const jnode *at, const char *name, jv x, const jargs *a) {
    const jv *y = jb_arg(a, 0, NULL);
    if (jj_charge(c, at, jj_cost(x) + (y ? jj_cost(*y) : 0))) return -1;
    jj_test_fn *fn = find_test(name);
    if (!fn) return jj_error(c->src, at->pos, "no test named '%s'", name);
    return fn(c, at, name, x, a);
}

/* ------------------------------------------------------------ filters */

static int f_items(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name, (void)a;
    return jb_items(c, at, x, out);
}

static int f_length(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name; (void)a;
    switch (x.t) {
    case JV_STR: *out = jv_int((long long)ju_len(x.u.s->s, x.u.s->len)); return 0;
    case JV_LIST: *out = jv_int((long long)x.u.l->n); return 0;
    case JV_DICT:
    case JV_NS: *out = jv_int((long long)x.u.d->n); return 0;
    case JV_UNDEF: *out = jv_int(0); return 0;
    default: return jj_error(c->src, at->pos, "object of type '%s' has no len()", jv_type_name(x));
    }
}

static int f_tojson(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name;
    const jv *ind = jb_arg(a, 0, "indent"), *seps = jb_arg(a, -1, "separators");
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
        return jb_bad_arg(c, at, "tojson", "indent must be an integer or a string");
    }
    if (seps && seps->t == JV_LIST && seps->u.l->n == 2 && seps->u.l->items[0].t == JV_STR &&
        seps->u.l->items[1].t == JV_STR) {
        item_sep = seps->u.l->items[0].u.s->s;
        key_sep = seps->u.l->items[1].u.s->s;
    } else if (seps && seps->t != JV_NONE) {
        return jb_bad_arg(c, at, "tojson", "separators must be a pair of strings");
    }
    w8_buf b = jj_buf();
    const char *why = NULL;
    if (jv_write_json(&b, x, indent, item_sep, key_sep, jb_arg_bool(a, -1, "sort_keys", 0), 0, &why)) {
        w8_buf_free(&b);
        if (x.t == JV_UNDEF) return jj_undef_error(c, at, x);
        return jj_error(c->src, at->pos, "tojson: %s", why);
    }
    return jj_buf_done(c, at, &b, out);
}

static int f_join(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name;
    const jv_str *sep, *attr;
    if (jb_arg_str(c, at, a, 0, "d", "join", &sep) || jb_arg_str(c, at, a, 1, "attribute", "join", &attr)) return -1;
    jv_list *l;
    if (jj_iterate(c, at, x, &l)) return -1;
    w8_buf b = jj_buf();
    int rc = 0;
    for (size_t i = 0; i < l->n && !rc; i++) {
        if ((rc = jj_tick(c, at))) break;
        if (i && sep) w8_buf_put(&b, sep->s, sep->len);
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
        w8_buf_free(&b);
        return -1;
    }
    return jj_buf_done(c, at, &b, out);
}

static int f_first_last(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)a;
    int last = !strcmp(name, "last");
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

static int f_int(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name;
    long long def, base;
    if (jb_arg_int(c, at, a, 0, "default", "int", 0, &def) || jb_arg_int(c, at, a, 1, "base", "int", 10, &base)) return -1;
    if (base != 0 && (base < 2 || base > 36)) return jb_bad_arg(c, at, "int", "base must be 0 or 2..36");
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

static int f_float(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)c; (void)at; (void)name;
    const jv *d = jb_arg(a, 0, "default");
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

static int f_round(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name;
    long long prec;
    const jv_str *method;
    if (jb_arg_int(c, at, a, 0, "precision", "round", 0, &prec) || jb_arg_str(c, at, a, 1, "method", "round", &method))
        return -1;
    if (!jv_is_num(x)) return jj_error(c->src, at->pos, "round: expected a number, got %s", jv_type_name(x));
    const char *m = method ? method->s : "common";
    if (prec < -300 || prec > 300) return jb_bad_arg(c, at, "round", "precision out of range");
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
    if (strcmp(m, "ceil") && strcmp(m, "floor")) return jb_bad_arg(c, at, "round", "method must be common, ceil or floor");
    double p = pow(10, (double)prec), v = jv_num(x) * p;
    *out = jv_float((!strcmp(m, "ceil") ? ceil(v) : floor(v)) / p);
    return 0;
}

static int f_map(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name;
    const jv *attr = jb_arg(a, -1, "attribute"), *def = jb_arg(a, -1, "default");
    jv_list *l;
    if (!attr && (a->nargs < 1 || a->args[0].t != JV_STR))
        return jb_bad_arg(c, at, "map", "needs a filter name or attribute=");
    if (attr && attr->t != JV_STR) return jb_bad_arg(c, at, "map", "attribute must be a string");
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
static int f_select(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    int by_attr = strstr(name, "attr") != NULL, reject = !strncmp(name, "reject", 6);
    int first = by_attr ? 1 : 0;
    const jv_str *attr = NULL;
    if (by_attr) {
        if (a->nargs < 1 || a->args[0].t != JV_STR) return jb_bad_arg(c, at, "selectattr", "needs an attribute name");
        attr = a->args[0].u.s;
    }
    const char *test = NULL;
    if (a->nargs > first) {
        if (a->args[first].t != JV_STR) return jb_bad_arg(c, at, "select", "the test name must be a string");
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

static int f_sort(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name;
    int reverse = jb_arg_bool(a, 0, "reverse", 0), cs = jb_arg_bool(a, 1, "case_sensitive", 0);
    const jv_str *attr;
    if (jb_arg_str(c, at, a, 2, "attribute", "sort", &attr)) return -1;
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

static int f_dictsort(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name;
    int cs = jb_arg_bool(a, 0, "case_sensitive", 0), reverse = jb_arg_bool(a, 2, "reverse", 0);
    const jv_str *by;
    if (jb_arg_str(c, at, a, 1, "by", "dictsort", &by)) return -1;
    int by_value = by && !strcmp(by->s, "value");
    if (by && !by_value && strcmp(by->s, "key")) return jb_bad_arg(c, at, "dictsort", "by must be 'key' or 'value'");
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

static int f_unique(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name;
    int cs = jb_arg_bool(a, 0, "case_sensitive", 0);
    const jv_str *attr;
    if (jb_arg_str(c, at, a, 1, "attribute", "unique", &attr)) return -1;
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

static int f_minmax(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    int want_max = !strcmp(name, "max");
    int cs = jb_arg_bool(a, 0, "case_sensitive", 0);
    const jv_str *attr;
    if (jb_arg_str(c, at, a, 1, "attribute", want_max ? "max" : "min", &attr)) return -1;
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

static int f_sum(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name;
    const jv_str *attr;
    if (jb_arg_str(c, at, a, 0, "attribute", "sum", &attr)) return -1;
    const jv *start = jb_arg(a, 1, "start");
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

static int f_batch(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name;
    long long size;
    if (jb_arg_int(c, at, a, 0, "linecount", "batch", 0, &size)) return -1;
    if (size <= 0) return jb_bad_arg(c, at, "batch", "linecount must be positive");
    const jv *fill = jb_arg(a, 1, "fill_with");
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

static int f_indent(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name;
    const jv *w = jb_arg(a, 0, "width");
    int first = jb_arg_bool(a, 1, "first", 0), blank = jb_arg_bool(a, 2, "blank", 0);
    w8_buf ind = {0};
    if (!w) w8_buf_puts(&ind, "    ");
    else if (w->t == JV_STR) w8_buf_put(&ind, w->u.s->s, w->u.s->len);
    else if (w->t == JV_INT && w->u.i >= 0 && w->u.i <= 1000)
        for (long long i = 0; i < w->u.i; i++) w8_buf_putc(&ind, ' ');
    else {
        w8_buf_free(&ind);
        return jb_bad_arg(c, at, "indent", "width must be a string or a small integer");
    }
    if (x.t != JV_STR) { /* Jinja does s += "\n", a TypeError for non-strings */
        w8_buf_free(&ind);
        if (x.t == JV_UNDEF) return jj_undef_error(c, at, x);
        return jj_error(c->src, at->pos, "indent: expected a string, got %s", jv_type_name(x));
    }
    jv s = jv_ref(x);
    /* Jinja: lines = (s + "\n").splitlines(); lines after the first get the
     * indent (empty ones only with blank=True), joined by "\n" */
    w8_buf t = {0}, b = jj_buf();
    w8_buf_put(&t, s.u.s->s, s.u.s->len);
    w8_buf_putc(&t, '\n');
    if (first) w8_buf_put(&b, ind.s ? ind.s : "", ind.len);
    const char *p = t.s, *end = t.s + t.len;
    for (int line = 0; p < end; line++) {
        const char *e = p;
        while (e < end && *e != '\n' && *e != '\r') e++;
        if (line > 0) {
            w8_buf_putc(&b, '\n');
            if (e > p || blank) w8_buf_put(&b, ind.s ? ind.s : "", ind.len);
        }
        w8_buf_put(&b, p, (size_t)(e - p));
        if (e + 1 < end && e[0] == '\r' && e[1] == '\n') e++;
        p = e + 1;
    }
    w8_buf_free(&t);
    jv_free(s);
    w8_buf_free(&ind);
    return jj_buf_done(c, at, &b, out);
}

/* |e leaves Markup alone; |forceescape escapes it again. */
static int f_escape(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)a;
    int force = !strcmp(name, "forceescape");
    if (x.t == JV_STR && x.u.s->markup && !force) {
        *out = jv_ref(x);
        return 0;
    }
    jv s = jb_to_str(x);
    w8_buf b = jj_buf();
    jv_html_escape(&b, s.u.s->s, s.u.s->len);
    jv_free(s);
    if (jj_buf_done(c, at, &b, out)) return -1;
    *out = jv_markup(*out);
    return 0;
}

static int f_wordcount(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)c; (void)at; (void)name; (void)a;
    jv s = jb_to_str(x);
    long long n = 0;
    int in_word = 0;
    for (size_t i = 0; i < s.u.s->len;) {
        uint32_t cp;
        i += ju_decode(s.u.s->s + i, s.u.s->len - i, &cp);
        int w = cp == '_' || jb_is_alnum(cp);
        if (w && !in_word) n++;
        in_word = w;
    }
    jv_free(s);
    *out = jv_int(n);
    return 0;
}

static int f_center(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name;
    long long width;
    if (jb_arg_int(c, at, a, 0, "width", "center", 80, &width)) return -1;
    if (width > (long long)W8_JINJA_MAX_OUTPUT) return jj_check_size(c, at, (size_t)-1);
    jv s = jb_to_str(x);
    long long len = (long long)ju_len(s.u.s->s, s.u.s->len);
    w8_buf b = jj_buf();
    long long pad = width > len ? width - len : 0;
    long long left = pad / 2 + (pad & width & 1); /* CPython's str.center split */
    for (long long i = 0; i < left; i++) w8_buf_putc(&b, ' ');
    w8_buf_put(&b, s.u.s->s, s.u.s->len);
    for (long long i = 0; i < pad - left; i++) w8_buf_putc(&b, ' ');
    jv_free(s);
    return jj_buf_done(c, at, &b, out);
}

/* |default(value, boolean) and its alias |d */
static int f_default(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)c, (void)at, (void)name;
    const jv *d = jb_arg(a, 0, "default_value");
    int boolean = jb_arg_bool(a, 1, "boolean", 0);
    if (x.t == JV_UNDEF || (boolean && !jv_truthy(x))) *out = d ? jv_ref(*d) : jv_str_c("");
    else *out = jv_ref(x);
    return 0;
}

static int f_safe(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)c, (void)at, (void)name, (void)a;
    *out = x.t == JV_STR ? jv_markup(jv_ref(x)) : jv_markup(jb_to_str(x));
    return 0;
}

static int f_string(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)c, (void)at, (void)name, (void)a;
    *out = jb_to_str(x);
    return 0;
}

/* |format(args...) or |format(name=...): Python's `%` */
static int f_format(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name;
    jv s = jb_to_str(x);
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

/* |list: a copy, and tuples become lists */
static int f_list(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name, (void)a;
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

static int f_abs(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name, (void)a;
    if (x.t == JV_FLOAT) *out = jv_float(fabs(x.u.f));
    else if (x.t == JV_INT || x.t == JV_BOOL) {
        long long v = x.t == JV_INT ? x.u.i : x.u.b;
        if (v == INT64_MIN) return jj_error(c->src, at->pos, "abs: integer overflow");
        *out = jv_int(v < 0 ? -v : v);
    } else return jj_error(c->src, at->pos, "bad operand type for abs(): '%s'", jv_type_name(x));
    return 0;
}

static int f_attr(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name;
    const jv *n = jb_arg(a, 0, "name");
    if (!n) return jb_bad_arg(c, at, "attr", "needs a name");
    return jj_getitem(c, at, x, *n, out);
}

static int f_reverse(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    (void)name, (void)a;
    if (x.t == JV_STR) {
        w8_buf b = {0};
        for (size_t e = x.u.s->len; e > 0;) {
            size_t p = jb_prev_cp(x.u.s->s, 0, e);
            w8_buf_put(&b, x.u.s->s + p, e - p);
            e = p;
        }
        *out = jv_str_take(&b);
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

/* upper lower capitalize title trim replace: string filters, which convert
 * the value with str() first and keep Markup as Markup. */
static int f_str(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
#define IS(s) (!strcmp(name, s))
    jv s = jb_to_str(x);
    int rc = 0;
    if (IS("upper")) *out = jb_change_case(s.u.s, CASE_UPPER);
    else if (IS("lower")) *out = jb_change_case(s.u.s, CASE_LOWER);
    else if (IS("capitalize")) *out = jb_change_case(s.u.s, CASE_CAPITALIZE);
    else if (IS("title")) *out = jb_change_case(s.u.s, CASE_TITLE_JINJA);
    else if (IS("trim")) {
        const jv_str *chars;
        rc = jb_arg_str(c, at, a, 0, "chars", "trim", &chars);
        if (!rc) *out = jb_strip(s.u.s, chars, 1, 1);
    } else if (IS("replace")) {
        const jv_str *old, *new;
        long long count;
        rc = jb_arg_str(c, at, a, 0, "old", "replace", &old) || jb_arg_str(c, at, a, 1, "new", "replace", &new) ||
             jb_arg_int(c, at, a, 2, "count", "replace", -1, &count);
        if (!rc && (!old || !new)) rc = jb_bad_arg(c, at, "replace", "needs old and new strings");
        if (!rc) rc = jb_replace(c, at, s.u.s, old, new, count, out);
    }
    /* Markup stays Markup through the string filters (soft_str in Jinja) */
    if (!rc && s.u.s->markup && out->t == JV_STR) *out = jv_markup(*out);
    jv_free(s);
    return rc ? -1 : 0;
#undef IS
}

static const struct {
    const char *name;
    jj_filter_fn *fn;
} filters[] = {
    {"length", f_length}, {"count", f_length}, {"tojson", f_tojson}, {"trim", f_str}, {"upper", f_str},
    {"lower", f_str}, {"capitalize", f_str}, {"title", f_str}, {"join", f_join}, {"default", f_default},
    {"d", f_default}, {"first", f_first_last}, {"last", f_first_last}, {"list", f_list},
    {"string", f_string}, {"int", f_int}, {"float", f_float}, {"abs", f_abs}, {"replace", f_str},
    {"round", f_round}, {"safe", f_safe}, {"e", f_escape}, {"escape", f_escape}, {"items", f_items},
    {"map", f_map}, {"select", f_select}, {"reject", f_select}, {"selectattr", f_select},
    {"rejectattr", f_select}, {"unique", f_unique}, {"sort", f_sort}, {"dictsort", f_dictsort},
    {"batch", f_batch}, {"indent", f_indent}, {"wordcount", f_wordcount}, {"reverse", f_reverse},
    {"sum", f_sum}, {"min", f_minmax}, {"max", f_minmax}, {"attr", f_attr}, {"center", f_center},
    {"forceescape", f_escape}, {"format", f_format},
};

static jj_filter_fn *find_filter(const char *name) {
    for (size_t i = 0; i < sizeof filters / sizeof *filters; i++)
        if (!strcmp(filters[i].name, name)) return filters[i].fn;
    return NULL;
}

int jj_has_filter(const char *name) { return find_filter(name) != NULL; }

int jj_filter(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out) {
    if (jj_charge(c, at, jj_cost(x))) return -1;
    jj_filter_fn *fn = find_filter(name);
    if (!fn) return jj_error(c->src, at->pos, "no filter named '%s'", name);
    return fn(c, at, name, x, a, out);
}

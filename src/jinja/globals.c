/*
 * globals.c - the global functions of templates, a {name, fn} table:
 *   range(stop) / range(start, stop[, step])   at most JJ_MAX_RANGE items
 *   namespace(...)   dict(...)   raise_exception(message)   strftime_now(format)
 * A JV_FUNC value holds the index of its entry.
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include "../util.h"
#include "builtins.h"
#include "globals.h"

/* dict(mapping_or_pairs?, **kw) into d. */
static int fill_dict(jctx *c, const jnode *at, jv_dict *d, const jargs *a, const char *fn) {
    if (a->nargs > 1) return jb_bad_arg(c, at, fn, "takes at most one positional argument");
    if (a->nargs == 1) {
        jv x = a->args[0];
        if (x.t == JV_DICT || x.t == JV_NS) {
            for (size_t i = 0; i < x.u.d->n; i++) jv_dict_set(d, jv_ref(x.u.d->keys[i]), jv_ref(x.u.d->vals[i]));
        } else if (x.t == JV_LIST) {
            for (size_t i = 0; i < x.u.l->n; i++) {
                jv p = x.u.l->items[i];
                if (p.t != JV_LIST || p.u.l->n != 2) return jb_bad_arg(c, at, fn, "sequence elements must be pairs");
                jv_dict_set(d, jv_ref(p.u.l->items[0]), jv_ref(p.u.l->items[1]));
            }
        } else {
            return jj_error(c->src, at->pos, "%s: cannot convert %s to a dict", fn, jv_type_name(x));
        }
    }
    for (int i = 0; i < a->nkw; i++) jv_dict_set(d, jv_str_c(a->kwn[i]), jv_ref(a->kwv[i]));
    return 0;
}

static int g_range(jctx *c, const jnode *at, const jargs *a, jv *out) {
    long long v[3] = {0, 0, 1};
    if (a->nargs < 1 || a->nargs > 3 || a->nkw) return jb_bad_arg(c, at, "range", "takes 1 to 3 integers");
    for (int i = 0; i < a->nargs; i++)
        if (jb_arg_int(c, at, a, i, NULL, "range", 0, &v[a->nargs == 1 ? 1 : i])) return -1;
    if (v[2] == 0) return jb_bad_arg(c, at, "range", "step must not be zero");
    double len = ceil(((double)v[1] - (double)v[0]) / (double)v[2]);
    if (len > JJ_MAX_RANGE)
        return jj_error(c->src, at->pos, "range too big (more than %d items)", JJ_MAX_RANGE);
    jv_list *l = jv_list_new(len > 0 ? (size_t)len : 0);
    for (long long i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2]) jv_list_push(l, jv_int(i));
    *out = jv_list_val(l);
    return 0;
}

static int g_namespace(jctx *c, const jnode *at, const jargs *a, jv *out) {
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

static int g_dict(jctx *c, const jnode *at, const jargs *a, jv *out) {
    jv_dict *d = jv_dict_new();
    if (fill_dict(c, at, d, a, "dict")) {
        jv_free(jv_dict_val(d));
        return -1;
    }
    *out = jv_dict_val(d);
    return 0;
}

/* raise_exception: the template's own message is the error */
static int g_raise_exception(jctx *c, const jnode *at, const jargs *a, jv *out) {
    (void)c, (void)at, (void)out;
    const jv *m = jb_arg(a, 0, NULL);
    w8_buf b = jj_buf();
    if (m) jv_write_str(&b, *m);
    w8_seterr("%s", b.s ? b.s : "raise_exception() called");
    w8_buf_free(&b);
    return -1;
}

/* strftime_now(format) */
static int g_strftime_now(jctx *c, const jnode *at, const jargs *a, jv *out) {
    const jv_str *f;
    if (jb_arg_str(c, at, a, 0, "format", "strftime_now", &f)) return -1;
    if (!f) return jb_bad_arg(c, at, "strftime_now", "needs a format");
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char buf[512];
    size_t n = f->len < 200 ? strftime(buf, sizeof buf, f->s, &tm) : 0;
    if (!n && f->len) return jb_bad_arg(c, at, "strftime_now", "format too long or empty result");
    *out = jv_str_n(buf, n);
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(jctx *c, const jnode *at, const jargs *a, jv *out);
} globals[] = {
    {"range", g_range}, {"namespace", g_namespace}, {"dict", g_dict},
    {"raise_exception", g_raise_exception}, {"strftime_now", g_strftime_now},
};

int jj_global_find(const char *name) {
    for (size_t i = 0; i < sizeof globals / sizeof *globals; i++)
        if (!strcmp(globals[i].name, name)) return (int)i;
    return -1;
}

int jj_global_call(jctx *c, const jnode *at, int fn, const jargs *a, jv *out) {
    if (fn < 0 || (size_t)fn >= sizeof globals / sizeof *globals)
        return jj_error(c->src, at->pos, "internal error: unknown global %d", fn);
    return globals[fn].fn(c, at, a, out);
}

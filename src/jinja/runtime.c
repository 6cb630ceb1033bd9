/*
 * runtime.c - the services of one render that the evaluator and the
 * builtins share: size-capped buffers and output, the work counter behind
 * W8_JINJA_MAX_ITERS, namespace tracking, undefined-value errors, item
 * access (obj[key], obj.attr, loop.*), slicing and iteration.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"
#include "runtime.h"

static long long as_ll(jv v) { return v.t == JV_INT ? v.u.i : v.u.b; }

/* ------------------------------------------------------------ buffers and limits */

w8_buf jj_buf(void) {
    w8_buf b = {0};
    b.limit = W8_JINJA_MAX_OUTPUT;
    return b;
}

int jj_buf_done(jctx *c, const jnode *at, w8_buf *b, jv *out) {
    if (b->over) {
        w8_buf_free(b);
        return jj_error(c->src, at->pos, "value larger than %zu bytes", (size_t)W8_JINJA_MAX_OUTPUT);
    }
    if (jj_charge(c, at, b->len / JJ_WORK_UNIT)) {
        w8_buf_free(b);
        return -1;
    }
    *out = jv_str_take(b);
    return 0;
}

int jj_emit(jctx *c, const jnode *at, const char *s, size_t n) {
    w8_buf_put(c->out, s, n);
    if (c->out->over)
        return jj_error(c->src, at->pos, "output larger than %zu bytes", (size_t)W8_JINJA_MAX_OUTPUT);
    return 0;
}

long jj_iter_limit = W8_JINJA_MAX_ITERS;

int jj_tick(jctx *c, const jnode *at) { return jj_charge(c, at, 1); }

int jj_charge(jctx *c, const jnode *at, size_t units) {
    c->iters += units;
    if (c->iters > (size_t)jj_iter_limit)
        return jj_error(c->src, at->pos, "too many loop iterations (limit %ld per render)", jj_iter_limit);
    return 0;
}

size_t jj_cost(jv v) {
    switch (v.t) {
    /* an element (compare, reference) costs about what 8 bytes of copying do */
    case JV_STR: return v.u.s->len / JJ_WORK_UNIT;
    case JV_LIST: return v.u.l->n / (JJ_WORK_UNIT / 8);
    case JV_DICT: return v.u.d->n / (JJ_WORK_UNIT / 8);
    default: return 0;
    }
}

int jj_check_size(jctx *c, const jnode *at, size_t n) {
    if (n > W8_JINJA_MAX_OUTPUT)
        return jj_error(c->src, at->pos, "value larger than %zu bytes", (size_t)W8_JINJA_MAX_OUTPUT);
    return 0;
}

void jj_track_ns(jctx *c, jv_dict *ns) {
    if (c->nns == c->cap_nss) {
        c->cap_nss = c->cap_nss ? 2 * c->cap_nss : 16;
        c->nss = w8_xrealloc(c->nss, c->cap_nss * sizeof *c->nss);
    }
    ns->rc++;
    c->nss[c->nns++] = ns;
}

int jj_undef_error(jctx *c, const jnode *at, jv u) {
    const jnode *w = u.u.why;
    if (w) at = w; /* point at the expression that was undefined */
    if (w && w->kind == N_NAME) return jj_error(c->src, at->pos, "'%s' is undefined", w->name);
    if (w && w->kind == N_GETATTR) return jj_error(c->src, at->pos, "'%s' is undefined (no such attribute)", w->name);
    return jj_error(c->src, at->pos, "undefined value");
}

/* ------------------------------------------------------------ access */

static int loop_attr(jv_loop *lp, const char *name, jv *out) {
    size_t n = lp->items->n, i = lp->i;
    if (!strcmp(name, "index")) *out = jv_int((long long)i + 1);
    else if (!strcmp(name, "index0")) *out = jv_int((long long)i);
    else if (!strcmp(name, "revindex")) *out = jv_int((long long)(n - i));
    else if (!strcmp(name, "revindex0")) *out = jv_int((long long)(n - i - 1));
    else if (!strcmp(name, "first")) *out = jv_bool(i == 0);
    else if (!strcmp(name, "last")) *out = jv_bool(i + 1 == n);
    else if (!strcmp(name, "length")) *out = jv_int((long long)n);
    else if (!strcmp(name, "depth")) *out = jv_int(lp->depth0 + 1);
    else if (!strcmp(name, "depth0")) *out = jv_int(lp->depth0);
    else if (!strcmp(name, "previtem")) *out = i > 0 ? jv_ref(lp->items->items[i - 1]) : jv_undef(NULL);
    else if (!strcmp(name, "nextitem")) *out = i + 1 < n ? jv_ref(lp->items->items[i + 1]) : jv_undef(NULL);
    else return 0;
    return 1;
}

/* Byte offset of code point k in s (k <= code point count). */
static size_t cp_offset(const char *s, size_t n, size_t k) {
    size_t i = 0;
    while (k && i < n) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
        k--;
    }
    return i;
}

int jj_getitem(jctx *c, const jnode *at, jv obj, jv key, jv *out) {
    *out = jv_undef(at);
    switch (obj.t) {
    case JV_UNDEF: return jj_undef_error(c, at, obj);
    case JV_DICT:
    case JV_NS: {
        jv *v = jv_dict_get(obj.u.d, key);
        if (v) *out = jv_ref(*v);
        return 0;
    }
    case JV_LIST:
    case JV_STR: {
        if (key.t != JV_INT && key.t != JV_BOOL) return 0;
        long long i = as_ll(key);
        if (obj.t == JV_STR && jj_charge(c, at, jj_cost(obj))) return -1;
        size_t n = obj.t == JV_LIST ? obj.u.l->n : ju_len(obj.u.s->s, obj.u.s->len);
        if (i < 0) i += (long long)n;
        if (i < 0 || (unsigned long long)i >= n) return 0;
        if (obj.t == JV_LIST) {
            *out = jv_ref(obj.u.l->items[i]);
        } else {
            size_t b = cp_offset(obj.u.s->s, obj.u.s->len, (size_t)i);
            size_t e = cp_offset(obj.u.s->s, obj.u.s->len, (size_t)i + 1);
            *out = jv_str_n(obj.u.s->s + b, e - b);
        }
        return 0;
    }
    case JV_LOOP:
        if (key.t == JV_STR) loop_attr(obj.u.lp, key.u.s->s, out);
        return 0;
    default: return 0;
    }
}

/* A slice bound clamped as CPython does (PySlice_AdjustIndices). */
static long long clamp_index(long long i, long long n, int step_neg) {
    if (i < 0) {
        i += n;
        if (i < 0) i = step_neg ? -1 : 0;
    } else if (i >= n) {
        i = step_neg ? n - 1 : n;
    }
    return i;
}

int jj_slice(jctx *c, const jnode *at, jv obj, jv start, jv stop, jv step, jv *out) {
    if (jj_charge(c, at, jj_cost(obj))) return -1;
    if (obj.t == JV_UNDEF) return jj_undef_error(c, at, obj);
    /* slices bypass Jinja2's forgiving getitem: a bad one is a TypeError */
    if (obj.t != JV_STR && obj.t != JV_LIST)
        return jj_error(c->src, at->pos, "'%s' object is not subscriptable", jv_type_name(obj));
    for (int k = 0; k < 3; k++) {
        jv v = k == 0 ? start : k == 1 ? stop : step;
        if (v.t != JV_NONE && v.t != JV_UNDEF && v.t != JV_INT && v.t != JV_BOOL)
            return jj_error(c->src, at->pos, "slice indices must be integers or None");
    }
    long long st = step.t == JV_INT || step.t == JV_BOOL ? as_ll(step) : 1;
    if (st == 0) return jj_error(c->src, at->pos, "slice step cannot be zero");
    /* strings slice by code point: work on code point offsets */
    size_t n = obj.t == JV_LIST ? obj.u.l->n : ju_len(obj.u.s->s, obj.u.s->len);
    size_t *offs = NULL;
    if (obj.t == JV_STR && n != obj.u.s->len) {
        offs = w8_xmalloc((n + 1) * sizeof *offs);
        size_t k = 0;
        for (size_t i = 0; i < obj.u.s->len; i++)
            if (((unsigned char)obj.u.s->s[i] & 0xC0) != 0x80) offs[k++] = i;
        offs[n] = obj.u.s->len;
    }
    long long N = (long long)n, lo, hi;
    int neg = st < 0;
    int has_lo = start.t == JV_INT || start.t == JV_BOOL, has_hi = stop.t == JV_INT || stop.t == JV_BOOL;
    lo = has_lo ? clamp_index(as_ll(start), N, neg) : (neg ? N - 1 : 0);
    hi = has_hi ? clamp_index(as_ll(stop), N, neg) : (neg ? -1 : N);
    w8_buf b = {0};
    jv_list *l = obj.t == JV_LIST ? jv_list_new(0) : NULL;
    if (l) l->tuple = obj.u.l->tuple;
    for (long long i = lo; neg ? i > hi : i < hi; i += st) {
        if (l) {
            jv_list_push(l, jv_ref(obj.u.l->items[i]));
        } else if (offs) {
            w8_buf_put(&b, obj.u.s->s + offs[i], offs[i + 1] - offs[i]);
        } else {
            w8_buf_putc(&b, obj.u.s->s[i]);
        }
        if ((neg && i < LLONG_MIN - st) || (!neg && i > LLONG_MAX - st)) break;
    }
    free(offs);
    *out = l ? jv_list_val(l) : jv_str_take(&b);
    return 0;
}

/* ------------------------------------------------------------ iteration */

int jj_iterate(jctx *c, const jnode *at, jv v, jv_list **out) {
    switch (v.t) {
    case JV_LIST:
        v.u.l->rc++;
        *out = v.u.l;
        return 0;
    case JV_DICT: {
        jv_list *l = jv_list_new(v.u.d->n);
        for (size_t i = 0; i < v.u.d->n; i++) jv_list_push(l, jv_ref(v.u.d->keys[i]));
        *out = l;
        return 0;
    }
    case JV_STR: {
        /* one string per character: as costly as a loop iteration each */
        if (jj_charge(c, at, ju_len(v.u.s->s, v.u.s->len))) return -1;
        jv_list *l = jv_list_new(0);
        for (size_t i = 0; i < v.u.s->len;) {
            uint32_t cp;
            size_t k = ju_decode(v.u.s->s + i, v.u.s->len - i, &cp);
            jv_list_push(l, jv_str_n(v.u.s->s + i, k));
            i += k;
        }
        *out = l;
        return 0;
    }
    case JV_UNDEF: *out = jv_list_new(0); return 0;
    default: return jj_error(c->src, at->pos, "'%s' object is not iterable", jv_type_name(v));
    }
}

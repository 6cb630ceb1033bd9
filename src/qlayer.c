/*
 * qlayer.c - read and validate one quantized linear layer (see qlayer.h).
 *
 * Every problem becomes one line naming the tensor; the caller decides what
 * a problem means (model.c refuses to load, inspect lists them all).
 */
#include "qlayer.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define QL_NAME 320

#define viol(l, ...) w8_lines_addf(&(l)->violations, &(l)->n_violations, __VA_ARGS__)

void w8_qlayer_free(w8_qlayer *l) {
    w8_lines_free(l->violations, l->n_violations);
    memset(l, 0, sizeof *l);
}

static const char *dval(const json_t *desc, const char *name) {
    const json_t *v = desc ? json_object_get(desc, name) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void shape_str(char *buf, size_t n, const w8_tensor *t) {
    snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && i < 4; i++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%lld", i ? "," : "",
                 (long long)t->shape[i]);
    snprintf(buf + strlen(buf), n - strlen(buf), "%s]", t->ndim > 4 ? ",..." : "");
}

/* [d0] or, with col, [d0, 1] (accept: 1 = [d0] only, 2 = [d0,1] only, 3 = both). */
static int vec_shape(const w8_tensor *t, int64_t d0, int accept) {
    if ((accept & 1) && t->ndim == 1 && t->shape[0] == d0) return 1;
    if ((accept & 2) && t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == 1) return 1;
    return 0;
}

/* What one tensor of the layer must be. */
typedef struct {
    const char *sfx;        /* "input_scale" */
    const char *desc;       /* its description value */
    int dtypes[3];          /* accepted dtypes, -1 ends; [0] is FORMAT.md's */
    int64_t d0;             /* length */
    int accept;             /* vec_shape's; 0: the [1] scalar */
    const char *table;      /* "(table 1, fp16 model)" etc. for dtype messages */
} qspec;

/* The tensor if present and right; NULL (with the violation) otherwise.
 * optional: absence is fine. */
static const w8_tensor *need(w8_qlayer *l, const w8_st *st, const json_t *desc,
                             const char *prefix, const qspec *q, int optional) {
    char name[QL_NAME];
    snprintf(name, sizeof name, "%s.%s", prefix, q->sfx);
    const w8_tensor *t = w8_st_find(st, name);
    if (!t) {
        if (!optional)
            viol(l, "%s: %s layer lacks tensor '%s'", prefix, w8_qtype_name(l->type), name);
        return NULL;
    }
    const char *dv = dval(desc, name);
    if (dv && strcmp(dv, q->desc))
        viol(l, "%s: description says \"%s\", expected \"%s\"", name, dv, q->desc);
    int dt_ok = 0;
    for (int i = 0; i < 3 && q->dtypes[i] >= 0; i++) dt_ok |= (int)t->dtype == q->dtypes[i];
    if (!dt_ok)
        viol(l, "%s: dtype %s, expected %s%s%s", name, w8_dtype_name(t->dtype),
             w8_dtype_name((w8_dtype)q->dtypes[0]), q->table ? " " : "", q->table ? q->table : "");
    int shape_ok = q->accept ? vec_shape(t, q->d0, q->accept) : t->numel == 1 && t->ndim <= 1;
    if (!shape_ok) {
        char got[96];
        shape_str(got, sizeof got, t);
        if (!q->accept) viol(l, "%s: shape %s, expected [1]", name, got);
        else viol(l, "%s: shape %s, expected [%lld]%s", name, got, (long long)q->d0,
                  q->accept == 3 ? " or [n,1]" : "");
    }
    return dt_ok && shape_ok ? t : NULL;
}

/* Element i of an I64 deq_scale: NAN when the upper 32 bits are set. */
static double deq_i64(const w8_tensor *t, size_t i, uint64_t *raw) {
    memcpy(raw, (const char *)t->data + 8 * i, 8);
    if (*raw >> 32) return NAN;
    uint32_t u = (uint32_t)*raw;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float w8_qlayer_deq(const w8_qlayer *l, size_t i) {
    const w8_tensor *t = l->deq_scale;
    if (t->dtype == W8_F32) {
        float f;
        memcpy(&f, (const char *)t->data + 4 * i, 4);
        return f;
    }
    uint64_t raw;
    return (float)deq_i64(t, i, &raw);
}

/* A float bias [n] next to a quantized weight ("FLOAT"; W8A8 folds it into
 * quant_bias, W8A8_DYNAMIC adds it after the matmul). */
static void check_bias(w8_qlayer *l, const w8_st *st, const json_t *desc, const char *prefix) {
    qspec q = {"bias", "FLOAT", {W8_F32, W8_F16, W8_BF16}, l->n, 1, NULL};
    l->bias = need(l, st, desc, prefix, &q, 1);
}

static void read_static(w8_qlayer *l, const w8_st *st, const json_t *desc, const char *prefix,
                        int model_dtype) {
    int f16 = model_dtype == W8_F16;
    if (model_dtype != W8_F16 && model_dtype != W8_BF16) {
        /* F32 float tensors: FORMAT.md defines no table (inspect reports
         * that once for the directory); the layer's deq_scale picks one */
        char name[QL_NAME];
        snprintf(name, sizeof name, "%s.deq_scale", prefix);
        const w8_tensor *d = w8_st_find(st, name);
        f16 = d && d->dtype == W8_I64;
    }
    const char *table = f16 ? "(table 1, fp16 model)" : "(table 2, bf16 model)";
    int fdt = f16 ? W8_F16 : W8_BF16;
    qspec qs = {"input_scale", "W8A8", {fdt, W8_F32, -1}, 1, 0, table};
    qspec qo = {"input_offset", "W8A8", {fdt, W8_F32, -1}, 1, 0, table};
    qspec qb = {"quant_bias", "W8A8", {W8_I32, -1, -1}, l->n, 1, table};
    qspec qd = {"deq_scale", "W8A8", {f16 ? W8_I64 : W8_F32, -1, -1}, l->n, 1, table};
    qspec qws = {"weight_scale", "W8A8", {W8_F32, W8_F16, W8_BF16}, l->n, 3, NULL};
    qspec qwo = {"weight_offset", "W8A8", {W8_F32, W8_F16, W8_BF16}, l->n, 3, NULL};
    l->input_scale = need(l, st, desc, prefix, &qs, 0);
    l->input_offset = need(l, st, desc, prefix, &qo, 0);
    l->quant_bias = need(l, st, desc, prefix, &qb, 0);
    l->deq_scale = need(l, st, desc, prefix, &qd, 0);
    l->weight_scale = need(l, st, desc, prefix, &qws, 1);
    l->weight_offset = need(l, st, desc, prefix, &qwo, 1);
    check_bias(l, st, desc, prefix);
    if ((l->input_scale && l->input_scale->dtype == W8_F32) ||
        (l->input_offset && l->input_offset->dtype == W8_F32))
        l->variants |= W8_QV_F32_INPUT;
    if (l->weight_scale || l->weight_offset) l->variants |= W8_QV_WEIGHT_SCALE;

    double s = NAN;
    if (l->input_scale) {
        s = w8_tensor_get_f32(l->input_scale, 0);
        if (!(s > 0) || !isfinite(s))
            viol(l, "%s.input_scale: %g is not positive and finite", prefix, s);
        else l->in_scale = (float)s;
    }
    if (l->input_offset) {
        double o = w8_tensor_get_f32(l->input_offset, 0);
        if (!(o == floor(o) && o >= -128 && o <= 127))
            viol(l, "%s.input_offset: %g is not an integer in [-128, 127]", prefix, o);
        else l->in_offset = (int)o;
    }
    const w8_tensor *dq = l->deq_scale, *wsc = l->weight_scale;
    if (!dq) return;
    int bad_hi = 0, bad_val = 0, bad_ws = 0, implausible = 0;
    for (int64_t i = 0; i < l->n; i++) {
        double d;
        if (dq->dtype == W8_I64) {
            uint64_t raw;
            d = deq_i64(dq, (size_t)i, &raw);
            if (raw >> 32) {
                if (!bad_hi++)
                    viol(l, "%s.deq_scale[%lld]: int64 has upper 32 bits set (0x%016llx)", prefix,
                         (long long)i, (unsigned long long)raw);
                continue;
            }
        } else {
            float f;
            memcpy(&f, (const char *)dq->data + 4 * (size_t)i, 4);
            d = f;
        }
        if (!(d > 0) || !isfinite(d)) {
            if (!bad_val++)
                viol(l, "%s.deq_scale[%lld]: %g is not positive and finite", prefix, (long long)i,
                     d);
            continue;
        }
        if (d < l->deq_min) l->deq_min = d;
        if (d > l->deq_max) l->deq_max = d;
        if (!(s > 0) || !isfinite(s)) continue;
        /* deq_scale = input_scale * w_scale: the quotient is the weight scale */
        if (wsc) {
            double want = (double)w8_tensor_get_f32(wsc, (size_t)i) * s;
            if (fabs(want - d) > 1e-3 * fabs(want) && !bad_ws++)
                viol(l, "%s.deq_scale[%lld] = %g but input_scale * weight_scale = %g", prefix,
                     (long long)i, d, want);
        } else if (!(d / s > 1e-12 && d / s < 1e4) && !implausible++) {
            viol(l, "%s.deq_scale[%lld] / input_scale = %g is not a plausible weight scale",
                 prefix, (long long)i, d / s);
        }
    }
}

static void read_dynamic(w8_qlayer *l, const w8_st *st, const json_t *desc, const char *prefix) {
    /* vllm-ascend's dynamic scheme declares none of these: an unknown name */
    static const char *const stat[] = {"input_scale", "input_offset", "quant_bias", "deq_scale"};
    char name[QL_NAME];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.%s", prefix, stat[i]);
        if (w8_st_find(st, name))
            viol(l, "%s: a W8A8_DYNAMIC layer has no %s (vllm-ascend refuses the name)", name,
                 stat[i]);
    }
    qspec qws = {"weight_scale", "W8A8_DYNAMIC", {W8_F32, W8_F16, W8_BF16}, l->n, 3, NULL};
    qspec qwo = {"weight_offset", "W8A8_DYNAMIC", {W8_F32, W8_F16, W8_BF16}, l->n, 3, NULL};
    l->weight_scale = need(l, st, desc, prefix, &qws, 0);
    l->weight_offset = need(l, st, desc, prefix, &qwo, 0);
    check_bias(l, st, desc, prefix);
    for (int i = 0; i < 2; i++) {
        const w8_tensor *t = i ? l->weight_offset : l->weight_scale;
        if (t && (t->dtype != W8_F32 || t->ndim != 2)) l->variants |= W8_QV_SCALE_DTYPE;
    }
    if (l->weight_scale) {
        for (int64_t i = 0; i < l->n; i++) {
            double v = w8_tensor_get_f32(l->weight_scale, (size_t)i);
            if (!(v > 0) || !isfinite(v)) {
                viol(l, "%s.weight_scale[%lld]: %g is not positive and finite", prefix,
                     (long long)i, v);
                break;
            }
        }
    }
    if (l->weight_offset) {
        for (int64_t i = 0; i < l->n; i++) {
            double v = w8_tensor_get_f32(l->weight_offset, (size_t)i);
            if (v != 0) {
                viol(l, "%s.weight_offset[%lld]: %g, expected 0 (weights are symmetric)", prefix,
                     (long long)i, v);
                break;
            }
        }
    }
}

int w8_qlayer_read(const w8_st *st, const json_t *desc, const char *prefix, int64_t n,
                   int64_t k, int model_dtype, w8_qlayer *l) {
    memset(l, 0, sizeof *l);
    l->deq_min = INFINITY;
    l->deq_max = -INFINITY;
    char name[QL_NAME];
    snprintf(name, sizeof name, "%s.weight", prefix);
    l->type = w8_qtype_parse(dval(desc, name));
    const w8_tensor *w = w8_st_find(st, name);
    if (l->type != W8_QT_W8A8 && l->type != W8_QT_W8A8_DYNAMIC) {
        viol(l, "%s: description says %s, not a quantized layer", name, w8_qtype_name(l->type));
    } else if (!w) {
        viol(l, "%s: %s layer lacks tensor '%s'", prefix, w8_qtype_name(l->type), name);
    } else if (w->dtype != W8_I8 || w->ndim != 2) {
        char got[96];
        shape_str(got, sizeof got, w);
        viol(l, "%s: dtype %s shape %s, expected an I8 [n,k] matrix", name,
             w8_dtype_name(w->dtype), got);
    } else if ((n >= 0 && w->shape[0] != n) || (k >= 0 && w->shape[1] != k)) {
        viol(l, "%s: shape [%lld,%lld], expected [%lld,%lld]", name, (long long)w->shape[0],
             (long long)w->shape[1], (long long)n, (long long)k);
    } else {
        l->weight = w;
        l->n = w->shape[0];
        l->k = w->shape[1];
        if (l->type == W8_QT_W8A8) read_static(l, st, desc, prefix, model_dtype);
        else read_dynamic(l, st, desc, prefix);
    }
    if (l->n_violations == 0) return 0;
    w8_seterr("%s: %s", w ? w->file : w8_st_path(st), l->violations[0]);
    return -1;
}

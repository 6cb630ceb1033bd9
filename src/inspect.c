/*
 * inspect.c - model directory summary and FORMAT.md validation.
 *
 * Checks, each reported as one violation line naming the tensor or file:
 *   - the description (quant_model_description.json or _w8a8.json) parses,
 *     has no duplicate keys, has "model_quant_type": "W8A8", gives every
 *     tensor of the weights exactly one entry and names no missing tensor;
 *   - every layer whose .weight is "W8A8" has the five tensors with the dtypes
 *     of table 1 (fp16 model) or table 2 (bf16 model) and the shapes
 *     [n,k], [1], [1], [n], [n], all marked "W8A8";
 *   - deq_scale positive and finite (I64: upper 32 bits zero, the lower 32 the
 *     bits of an f32); input_scale positive finite; input_offset an integer
 *     in [-128, 127];
 *   - q/k/v and gate/up share identical input_scale and input_offset;
 *   - config.json has "quantize": "w8a8";
 *   - deq_scale / input_scale is a plausible weight scale (and equals
 *     weight_scale when the directory carries one, as msModelSlim may);
 *   - W8A8_DYNAMIC layers (FORMAT.md): I8 weight, F32 weight_scale [n, 1]
 *     positive finite, F32 weight_offset [n, 1] all zero, all marked
 *     W8A8_DYNAMIC, no static tensors, an F32 "FLOAT" bias; fused parts
 *     share one value; a directory mixing W8A8 and W8A8_DYNAMIC is named as
 *     one that only vllm-ascend (and this runtime) load.
 * The model dtype comes from the float tensors (embeddings first), with
 * config torch_dtype as the fallback.
 */
#include "inspect.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "safetensors.h"
#include "util.h"

static void viol(w8_inspect_info *r, const char *fmt, ...) W8_PRINTF(2, 3);
static void viol(w8_inspect_info *r, const char *fmt, ...) {
    char buf[W8_ERRMAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    r->violations = w8_xrealloc(r->violations, (size_t)(r->n_violations + 1) * sizeof(char *));
    r->violations[r->n_violations++] = w8_xstrdup(buf);
}

void w8_inspect_free(w8_inspect_info *r) {
    for (int i = 0; i < r->n_violations; i++) free(r->violations[i]);
    free(r->violations);
    memset(r, 0, sizeof *r);
}

static int ends_with(const char *s, const char *sfx) {
    size_t a = strlen(s), b = strlen(sfx);
    return a >= b && !strcmp(s + a - b, sfx);
}

/* "model.layers.3.self_attn.q_proj.weight" -> is a linear layer's weight */
static int is_linear_weight(const char *name) {
    return (ends_with(name, "_proj.weight") && strstr(name, "layers.")) ||
           !strcmp(name, "lm_head.weight");
}

static double scalar_f(const w8_tensor *t) {
    return t && t->numel >= 1 && (t->dtype == W8_F16 || t->dtype == W8_BF16 || t->dtype == W8_F32)
               ? (double)w8_tensor_get_f32(t, 0)
               : NAN;
}

typedef struct {
    const w8_st *st;
    const json_t *desc;
    int dtype;
    w8_inspect_info *r;
} ictx;

static const char *desc_val(const ictx *c, const char *name) {
    const json_t *v = json_object_get(c->desc, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* One tensor of a W8A8 layer: present, marked W8A8, dtype and shape as given. */
static const w8_tensor *need(ictx *c, const char *layer, const char *sfx, int dtype, int ndim,
                             int64_t d0, int64_t d1) {
    char name[320];
    snprintf(name, sizeof name, "%s.%s", layer, sfx);
    const w8_tensor *t = w8_st_find(c->st, name);
    if (!t) {
        viol(c->r, "%s: W8A8 layer lacks tensor '%s'", layer, name);
        return NULL;
    }
    const char *dv = desc_val(c, name);
    if (dv && strcmp(dv, "W8A8"))
        viol(c->r, "%s: description says \"%s\", expected \"W8A8\"", name, dv);
    if ((int)t->dtype != dtype)
        viol(c->r, "%s: dtype %s, expected %s (table %d, %s model)", name,
             w8_dtype_name(t->dtype), w8_dtype_name((w8_dtype)dtype), c->dtype == W8_F16 ? 1 : 2,
             c->dtype == W8_F16 ? "fp16" : "bf16");
    int shape_ok = t->ndim == ndim && t->shape[0] == d0 && (ndim < 2 || t->shape[1] == d1);
    if (!shape_ok) {
        char got[96] = "[";
        for (int i = 0; i < t->ndim && i < 4; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "",
                     (long long)t->shape[i]);
        strcat(got, "]");
        if (ndim == 2)
            viol(c->r, "%s: shape %s, expected [%lld,%lld]", name, got, (long long)d0,
                 (long long)d1);
        else
            viol(c->r, "%s: shape %s, expected [%lld]", name, got, (long long)d0);
        return NULL;
    }
    return (int)t->dtype == dtype ? t : NULL;
}

/* deq_scale[i] as a double, or NAN when the stored value is malformed. */
static double deq_at(const w8_tensor *t, size_t i, int *high_bits) {
    if (t->dtype == W8_F32) {
        float f;
        memcpy(&f, (const char *)t->data + 4 * i, 4);
        return f;
    }
    int64_t v;
    memcpy(&v, (const char *)t->data + 8 * i, 8);
    if ((uint64_t)v >> 32) {
        *high_bits = 1;
        return NAN;
    }
    uint32_t u = (uint32_t)v;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void update_range(double *lo, double *hi, double v) {
    if (v < *lo) *lo = v;
    if (v > *hi) *hi = v;
}

/* Checks of one W8A8 layer (prefix without ".weight"); fills scale/offset. */
static void check_layer(ictx *c, const char *layer, const w8_tensor *w, double *scale_out,
                        double *offset_out) {
    w8_inspect_info *r = c->r;
    *scale_out = *offset_out = NAN;
    if (w->dtype != W8_I8) viol(r, "%s.weight: dtype %s, expected I8", layer, w8_dtype_name(w->dtype));
    if (w->ndim != 2) {
        viol(r, "%s.weight: W8A8 weight is not 2-D", layer);
        return;
    }
    int64_t n = w->shape[0], k = w->shape[1];
    int fdt = c->dtype == W8_F16 ? W8_F16 : W8_BF16;
    const w8_tensor *is = need(c, layer, "input_scale", fdt, 1, 1, 0);
    const w8_tensor *io = need(c, layer, "input_offset", fdt, 1, 1, 0);
    const w8_tensor *qb = need(c, layer, "quant_bias", W8_I32, 1, n, 0);
    const w8_tensor *dq = need(c, layer, "deq_scale", c->dtype == W8_F16 ? W8_I64 : W8_F32, 1, n, 0);
    (void)qb;
    (void)k;
    double s = scalar_f(is), o = scalar_f(io);
    if (is) {
        if (!(s > 0) || !isfinite(s)) viol(r, "%s.input_scale: %g is not positive and finite", layer, s);
        else update_range(&r->in_scale_min, &r->in_scale_max, s);
    }
    if (io && !(o == floor(o) && o >= -128 && o <= 127))
        viol(r, "%s.input_offset: %g is not an integer in [-128, 127]", layer, o);
    *scale_out = s;
    *offset_out = o;
    if (!dq) return;
    const w8_tensor *wsc = NULL;
    char wn[320];
    snprintf(wn, sizeof wn, "%s.weight_scale", layer);
    wsc = w8_st_find(c->st, wn);
    if (wsc && (wsc->numel != (size_t)n || !(wsc->dtype == W8_F32 || wsc->dtype == W8_F16 ||
                                              wsc->dtype == W8_BF16)))
        wsc = NULL;
    int bad_hi = 0, bad_val = 0, bad_ws = 0, implausible = 0;
    for (int64_t i = 0; i < n; i++) {
        int hb = 0;
        double d = deq_at(dq, (size_t)i, &hb);
        if (hb) {
            if (!bad_hi++)
                viol(r, "%s.deq_scale[%lld]: int64 has upper 32 bits set (0x%016llx)", layer,
                     (long long)i, (unsigned long long)((const int64_t *)dq->data)[i]);
            continue;
        }
        if (!(d > 0) || !isfinite(d)) {
            if (!bad_val++)
                viol(r, "%s.deq_scale[%lld]: %g is not positive and finite", layer, (long long)i, d);
            continue;
        }
        update_range(&r->deq_min, &r->deq_max, d);
        if (s > 0 && isfinite(s)) {
            double ws = d / s;
            if (wsc) {
                double want = w8_tensor_get_f32(wsc, (size_t)i) * s;
                if (fabs(want - d) > 1e-3 * fabs(want) && !bad_ws++)
                    viol(r, "%s.deq_scale[%lld] = %g but input_scale * weight_scale = %g", layer,
                         (long long)i, d, want);
            } else if (!(ws > 1e-12 && ws < 1e4) && !implausible++) {
                viol(r, "%s.deq_scale[%lld] / input_scale = %g is not a plausible weight scale",
                     layer, (long long)i, ws);
            }
        }
    }
}

/* One W8A8_DYNAMIC layer (FORMAT.md's table).  Integration point for the
 * shared layer reader: the same rules as model.c's load_dparts. */
static void check_dyn_layer(ictx *c, const char *layer, const w8_tensor *w) {
    w8_inspect_info *r = c->r;
    if (w->dtype != W8_I8) viol(r, "%s.weight: dtype %s, expected I8", layer, w8_dtype_name(w->dtype));
    if (w->ndim != 2) {
        viol(r, "%s.weight: W8A8_DYNAMIC weight is not 2-D", layer);
        return;
    }
    int64_t n = w->shape[0];
    static const char *const sfx[] = {"weight_scale", "weight_offset"};
    for (int i = 0; i < 2; i++) {
        char name[320];
        snprintf(name, sizeof name, "%s.%s", layer, sfx[i]);
        const w8_tensor *t = w8_st_find(c->st, name);
        if (!t) {
            viol(r, "%s: W8A8_DYNAMIC layer lacks tensor '%s'", layer, name);
            continue;
        }
        const char *dv = desc_val(c, name);
        if (dv && strcmp(dv, "W8A8_DYNAMIC"))
            viol(r, "%s: description says \"%s\", expected \"W8A8_DYNAMIC\"", name, dv);
        if (t->dtype != W8_F32 || t->ndim != 2 || t->shape[0] != n || t->shape[1] != 1) {
            viol(r, "%s: %s of %d dims, expected F32 [%lld,1]", name, w8_dtype_name(t->dtype),
                 t->ndim, (long long)n);
            continue;
        }
        int bad = 0;
        for (int64_t j = 0; j < n && !bad; j++) {
            float v;
            memcpy(&v, (const char *)t->data + 4 * j, 4);
            if (i == 0 && (!(v > 0) || !isfinite(v))) {
                viol(r, "%s[%lld]: %g is not positive and finite", name, (long long)j, (double)v);
                bad = 1;
            } else if (i == 1 && v != 0) {
                viol(r, "%s[%lld]: %g, expected 0 (symmetric weights)", name, (long long)j, (double)v);
                bad = 1;
            } else if (i == 0) {
                update_range(&r->wscale_min, &r->wscale_max, v);
            }
        }
    }
    /* vllm-ascend raises on a tensor name its dynamic layer does not define */
    static const char *const stat[] = {"input_scale", "input_offset", "quant_bias", "deq_scale"};
    for (int i = 0; i < 4; i++) {
        char name[320];
        snprintf(name, sizeof name, "%s.%s", layer, stat[i]);
        if (w8_st_find(c->st, name))
            viol(r, "%s: a W8A8_DYNAMIC layer has no %s (vllm-ascend rejects the name)", name, stat[i]);
    }
    char bn[320];
    snprintf(bn, sizeof bn, "%s.bias", layer);
    const w8_tensor *b = w8_st_find(c->st, bn);
    if (b) {
        const char *dv = desc_val(c, bn);
        if (b->dtype != W8_F32 || b->ndim != 1 || b->shape[0] != n)
            viol(r, "%s: %s, expected F32 [%lld] (W8A8_DYNAMIC bias)", bn, w8_dtype_name(b->dtype),
                 (long long)n);
        if (dv && strcmp(dv, "FLOAT")) viol(r, "%s: description says \"%s\", expected \"FLOAT\"", bn, dv);
    }
}

/* Fused parts (q/k/v, gate/up) must all carry one value (vllm-ascend raises).
 * Only W8A8 next to W8A8_DYNAMIC is reported here: a FLOAT part next to
 * W8A8 ones (--disable_names on one of them) is left to the shared layer
 * reader's rules. */
static void check_same_type(ictx *c, const char *prefix, const char *const *members, int nm) {
    const char *first = NULL, *fv = NULL;
    char name[320];
    for (int i = 0; i < nm; i++) {
        snprintf(name, sizeof name, "%s%s.weight", prefix, members[i]);
        const char *dv = desc_val(c, name);
        if (!dv || !strcmp(dv, "FLOAT")) continue;
        if (!first) {
            first = members[i];
            fv = dv;
        } else if (strcmp(dv, fv)) {
            viol(c->r, "%s%s.weight is \"%s\" but %s%s.weight is \"%s\"; fused layers must "
                 "share one type", prefix, members[i], dv, prefix, first, fv);
        }
    }
}

/* Layers reading one input must carry identical input_scale/offset. */
static void check_shared(ictx *c, const char *prefix, const char *const *members, int nm) {
    double s0 = NAN, o0 = NAN;
    const char *first = NULL;
    char name[320];
    for (int i = 0; i < nm; i++) {
        snprintf(name, sizeof name, "%s%s.weight", prefix, members[i]);
        const char *dv = desc_val(c, name);
        const w8_tensor *w = w8_st_find(c->st, name);
        if (!w || !dv || strcmp(dv, "W8A8")) continue;
        snprintf(name, sizeof name, "%s%s.input_scale", prefix, members[i]);
        double s = scalar_f(w8_st_find(c->st, name));
        snprintf(name, sizeof name, "%s%s.input_offset", prefix, members[i]);
        double o = scalar_f(w8_st_find(c->st, name));
        if (!first) {
            first = members[i];
            s0 = s;
            o0 = o;
        } else if (s != s0 || o != o0) {
            viol(c->r, "%s%s: input_scale/offset (%g, %g) differ from %s%s's (%g, %g); layers "
                 "reading one input must share them", prefix, members[i], s, o, prefix, first,
                 s0, o0);
        }
    }
}

static int dtype_from_torch(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "float16")) return W8_F16;
    if (!strcmp(s, "bfloat16")) return W8_BF16;
    if (!strcmp(s, "float32")) return W8_F32;
    return -1;
}

static int model_dtype(const w8_st *st, const json_t *cfg) {
    static const char *const pref[] = {"model.embed_tokens.weight", "lm_head.weight",
                                       "model.norm.weight"};
    for (size_t i = 0; i < sizeof pref / sizeof pref[0]; i++) {
        const w8_tensor *t = w8_st_find(st, pref[i]);
        if (t && (t->dtype == W8_F16 || t->dtype == W8_BF16 || t->dtype == W8_F32))
            return t->dtype;
    }
    const json_t *td = json_object_get(cfg, "torch_dtype");
    int d = dtype_from_torch(json_is_string(td) ? json_string_value(td) : NULL);
    return d >= 0 ? d : W8_BF16;
}

static void check_description(ictx *c) {
    w8_inspect_info *r = c->r;
    const json_t *mq = json_object_get(c->desc, "model_quant_type");
    if (!json_is_string(mq) ||
        (strcmp(json_string_value(mq), "W8A8") && strcmp(json_string_value(mq), "W8A8_DYNAMIC")))
        viol(r, "description: model_quant_type is %s, expected \"W8A8\" or \"W8A8_DYNAMIC\"",
             json_is_string(mq) ? json_string_value(mq) : "missing");
    /* every tensor exactly once (duplicate keys were refused by the parser) */
    for (size_t i = 0; i < w8_st_count(c->st); i++) {
        const w8_tensor *t = w8_st_at(c->st, i);
        const json_t *v = json_object_get(c->desc, t->name);
        if (!v) viol(r, "description: no entry for tensor '%s'", t->name);
        else if (!json_is_string(v) || (strcmp(json_string_value(v), "W8A8") &&
                                        strcmp(json_string_value(v), "W8A8_DYNAMIC") &&
                                        strcmp(json_string_value(v), "FLOAT")))
            viol(r, "description: entry '%s' is not \"W8A8\", \"W8A8_DYNAMIC\" or \"FLOAT\"",
                 t->name);
    }
    /* every entry names a tensor (top-level keys without a dot are metadata) */
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)c->desc, key, v) {
        if (!strchr(key, '.') || !strcmp(key, "model_quant_type") || !strcmp(key, "version"))
            continue;
        if (!w8_st_find(c->st, key)) viol(r, "description: entry '%s' names no tensor", key);
    }
}

static void check_quantized(ictx *c) {
    w8_inspect_info *r = c->r;
    r->in_scale_min = r->deq_min = r->wscale_min = INFINITY;
    r->in_scale_max = r->deq_max = r->wscale_max = -INFINITY;
    for (size_t i = 0; i < w8_st_count(c->st); i++) {
        const w8_tensor *t = w8_st_at(c->st, i);
        const char *dv = desc_val(c, t->name);
        if (!ends_with(t->name, ".weight")) {
            /* a W8A8 tensor must belong to a W8A8 layer */
            if (dv && !strcmp(dv, "W8A8")) {
                const char *dot = strrchr(t->name, '.');
                char wn[320];
                snprintf(wn, sizeof wn, "%.*s.weight", (int)(dot - t->name), t->name);
                const char *wv = desc_val(c, wn);
                if (!wv || strcmp(wv, "W8A8"))
                    viol(r, "%s: marked W8A8 but '%s' is not a W8A8 weight", t->name, wn);
            } else if (dv && !strcmp(dv, "W8A8_DYNAMIC")) {
                const char *dot = strrchr(t->name, '.');
                char wn[320];
                snprintf(wn, sizeof wn, "%.*s.weight", (int)(dot - t->name), t->name);
                const char *wv = desc_val(c, wn);
                if (!wv || strcmp(wv, "W8A8_DYNAMIC"))
                    viol(r, "%s: marked W8A8_DYNAMIC but '%s' is not a W8A8_DYNAMIC weight",
                         t->name, wn);
            }
            continue;
        }
        int lin = is_linear_weight(t->name);
        if (dv && !strcmp(dv, "W8A8_DYNAMIC")) {
            char layer[200];
            snprintf(layer, sizeof layer, "%.*s", (int)(strlen(t->name) - 7), t->name);
            check_dyn_layer(c, layer, t);
            r->n_lin_quant++;
            r->n_lin_dynamic++;
        } else if (dv && !strcmp(dv, "W8A8")) {
            char layer[200];
            snprintf(layer, sizeof layer, "%.*s", (int)(strlen(t->name) - 7), t->name);
            double s, o;
            check_layer(c, layer, t, &s, &o);
            r->n_lin_quant++;
        } else if (lin) {
            r->n_lin_float++;
            if (t->dtype != W8_F16 && t->dtype != W8_BF16 && t->dtype != W8_F32)
                viol(r, "%s: FLOAT layer has dtype %s", t->name, w8_dtype_name(t->dtype));
        }
    }
    /* groups: find layer indices from q_proj / gate_proj names */
    static const char *const qkv[] = {"q_proj", "k_proj", "v_proj"};
    static const char *const gu[] = {"gate_proj", "up_proj"};
    for (int l = 0;; l++) {
        char p1[128], p2[128], probe[160];
        snprintf(p1, sizeof p1, "model.layers.%d.self_attn.", l);
        snprintf(p2, sizeof p2, "model.layers.%d.mlp.", l);
        snprintf(probe, sizeof probe, "%sq_proj.weight", p1);
        char probe2[160];
        snprintf(probe2, sizeof probe2, "%sgate_proj.weight", p2);
        if (!w8_st_find(c->st, probe) && !w8_st_find(c->st, probe2)) break;
        check_shared(c, p1, qkv, 3);
        check_shared(c, p2, gu, 2);
        check_same_type(c, p1, qkv, 3);
        check_same_type(c, p2, gu, 2);
    }
    if (r->n_lin_quant == 0) {
        viol(r, "description says W8A8 but no linear layer is quantized");
        r->in_scale_min = r->in_scale_max = r->deq_min = r->deq_max = 0;
    }
    r->mixed = r->n_lin_dynamic > 0 && r->n_lin_dynamic < r->n_lin_quant;
    /* MindIE packs the whole model by "quantize" / model_quant_type: a
     * W8A8_DYNAMIC label over static layers (or the reverse) is wrong for it */
    const json_t *mq = json_object_get(c->desc, "model_quant_type");
    if (json_is_string(mq) && !strcmp(json_string_value(mq), "W8A8_DYNAMIC") &&
        r->n_lin_dynamic < r->n_lin_quant)
        viol(r, "description: model_quant_type is \"W8A8_DYNAMIC\" but %d linear layers are "
             "static W8A8 (a mixed directory says \"W8A8\")", r->n_lin_quant - r->n_lin_dynamic);
}

static void count_float(const w8_st *st, w8_inspect_info *r) {
    for (size_t i = 0; i < w8_st_count(st); i++)
        if (is_linear_weight(w8_st_at(st, i)->name)) r->n_lin_float++;
}

int w8_inspect_dir(const char *dir, w8_inspect_info *r) {
    memset(r, 0, sizeof *r);
    if (!w8_is_dir(dir)) return w8_seterr("%s: not a directory", dir);
    char *cp = w8_path_join(dir, "config.json");
    json_t *cfg = w8_json_load_file(cp);
    free(cp);
    if (!cfg) return -1;
    w8_st *st = w8_st_open_dir(dir);
    if (!st) {
        json_decref(cfg);
        return -1;
    }
    const json_t *arch = json_array_get(json_object_get(cfg, "architectures"), 0);
    if (json_is_string(arch)) snprintf(r->arch, sizeof r->arch, "%s", json_string_value(arch));
    for (size_t i = 0; i < w8_st_count(st); i++) r->bytes += w8_st_at(st, i)->nbytes;
    r->n_tensors = (long)w8_st_count(st);
    r->dtype = model_dtype(st, cfg);

    json_t *desc = NULL;
    const char *dnames[] = {"quant_model_description.json", "quant_model_description_w8a8.json"};
    for (int i = 0; i < 2 && !desc; i++) {
        char *p = w8_path_join(dir, dnames[i]);
        if (w8_file_exists(p)) {
            r->quantized = 1;
            desc = w8_json_load_file(p);
            if (!desc) viol(r, "%s", w8_lasterr());
            else if (!json_is_object(desc)) {
                viol(r, "%s: not a JSON object", dnames[i]);
                json_decref(desc);
                desc = NULL;
            }
        }
        free(p);
    }
    const json_t *qz = json_object_get(cfg, "quantize");
    int cfg_q = json_is_string(qz) && (!strcmp(json_string_value(qz), "w8a8") ||
                                       !strcmp(json_string_value(qz), "w8a8_dynamic"));
    /* "quantize" must agree with model_quant_type (MindIE reads it first) */
    const json_t *dmq = desc ? json_object_get(desc, "model_quant_type") : NULL;
    const char *want_q = json_is_string(dmq) && !strcmp(json_string_value(dmq), "W8A8_DYNAMIC")
                             ? "w8a8_dynamic"
                             : "w8a8";
    if (r->quantized && (!cfg_q || (desc && strcmp(json_string_value(qz), want_q))))
        viol(r, "config.json: \"quantize\": \"%s\" is missing", want_q);
    if (!r->quantized) {
        if (cfg_q) viol(r, "config.json says \"quantize\": \"w8a8\" but there is no "
                           "quant_model_description.json");
        count_float(st, r);
    } else if (desc) {
        ictx c = {st, desc, r->dtype, r};
        if (r->dtype == W8_F32)
            viol(r, "float tensors are F32: FORMAT.md defines W8A8 for fp16 and bf16 models");
        check_description(&c);
        check_quantized(&c);
    }
    json_decref(desc);
    json_decref(cfg);
    w8_st_close(st);
    return 0;
}

static void human_size(char *buf, size_t n, size_t b) {
    if (b >= ((size_t)1 << 30)) snprintf(buf, n, "%.2f GiB", (double)b / (1 << 30));
    else if (b >= ((size_t)1 << 20)) snprintf(buf, n, "%.2f MiB", (double)b / (1 << 20));
    else snprintf(buf, n, "%.1f KiB", (double)b / 1024);
}

void w8_inspect_print(FILE *f, const char *dir, const w8_inspect_info *r) {
    char sz[32];
    human_size(sz, sizeof sz, r->bytes);
    const char *dt = r->dtype == W8_F16 ? "fp16" : r->dtype == W8_BF16 ? "bf16" : "fp32";
    const char *kind = !r->quantized ? "float"
                       : r->mixed ? "W8A8 (mixed with W8A8_DYNAMIC)"
                       : r->n_lin_dynamic > 0 ? "W8A8_DYNAMIC"
                                              : "W8A8";
    fprintf(f, "%s: %s model, %s%s%s\n", dir, kind, dt,
            r->arch[0] ? ", " : "", r->arch);
    fprintf(f, "  tensors: %ld, %s (%zu bytes)\n", r->n_tensors, sz, r->bytes);
    fprintf(f, "  linear layers: %d quantized, %d float\n", r->n_lin_quant, r->n_lin_float);
    if (r->n_lin_dynamic > 0)
        fprintf(f, "  W8A8_DYNAMIC (per-token activations): %d of the quantized layers\n",
                r->n_lin_dynamic);
    if (r->quantized && r->n_lin_quant > r->n_lin_dynamic) {
        fprintf(f, "  input_scale: [%.6g, %.6g]\n", r->in_scale_min, r->in_scale_max);
        fprintf(f, "  deq_scale:   [%.6g, %.6g]\n", r->deq_min, r->deq_max);
    }
    if (r->n_lin_dynamic > 0)
        fprintf(f, "  weight_scale: [%.6g, %.6g]\n", r->wscale_min, r->wscale_max);
    if (r->quantized && r->n_lin_quant > 0)
        fprintf(f, "  consumers: %s\n",
                r->mixed ? "vllm-ascend only (mixed W8A8 / W8A8_DYNAMIC layers: MindIE packs "
                           "every layer by config.json's \"quantize\"), and this runtime"
                         : "MindIE, vllm-ascend, this runtime");
    if (r->quantized) {
        if (r->n_violations == 0) fprintf(f, "  valid: follows FORMAT.md\n");
        else fprintf(f, "  INVALID: %d violation%s of FORMAT.md\n", r->n_violations,
                     r->n_violations == 1 ? "" : "s");
    }
    for (int i = 0; i < r->n_violations; i++) fprintf(f, "  violation: %s\n", r->violations[i]);
}

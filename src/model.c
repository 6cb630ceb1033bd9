/*
 * model.c - load a float (Hugging Face) or W8A8 (msModelSlim) model
 * directory into a w8_model.
 *
 * Tensors keep HF's LLaMA / Qwen2 names (model.layers.N.self_attn.q_proj...).
 * Each linear layer looks up "<layer>.weight" in quant_model_description.json:
 * "W8A8" loads the int8 tensors of FORMAT.md (read and checked by qlayer.c,
 * the reader inspect uses too) and packs them for the kernels;
 * anything else (or a plain float directory) points a w8_fmat into the mapped
 * file, in the file's dtype (a 7B bf16 model must not be widened to f32);
 * in a W8A8 model those few float layers are then repacked (pack_float).
 * With W8_FLOAT_LAYERS_INT8 (w8_load_opts, `--float_layers int8`) they are
 * instead quantized at load to W8A8_DYNAMIC (quantize_float).
 * Norm weights (Qwen3's per-head q_norm / k_norm too), norm biases
 * (anti-outlier) and float biases are small and are converted to f32 arrays.
 *
 * Every tensor is checked for dtype and shape before use, so a broken file is
 * a one-line error naming the file and the tensor, never a crash.
 */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qlayer.h"
#include "util.h"

#define NAME_MAX_LEN 256

typedef struct {
    const w8_st *st;
    const w8_qdesc *qd;  /* NULL for a float directory */
    const char *wlabel;  /* the weights file named when a tensor is missing */
    int dtype;           /* the model's float dtype (embeddings): picks the W8A8 table */
    int float_int8;      /* W8_FLOAT_LAYERS_INT8: float layers become W8A8_DYNAMIC */
} loader;

/* w8_st_need, but a missing tensor names the weights file rather than the
 * directory (for a sharded model: the directory, which holds the index). */
static const w8_tensor *need(const loader *ld, const char *name, int dtype, int ndim,
                             const int64_t *shape) {
    if (!w8_st_find(ld->st, name)) {
        w8_seterr("%s: tensor '%s' is missing", ld->wlabel, name);
        return NULL;
    }
    return w8_st_need(ld->st, name, dtype, ndim, shape);
}

/* The single file all tensors live in, else the path the set was opened from. */
static const char *weights_label(const w8_st *st) {
    size_t n = w8_st_count(st);
    if (n == 0) return w8_st_path(st);
    const char *f = w8_st_at(st, 0)->file;
    for (size_t i = 1; i < n; i++)
        if (strcmp(w8_st_at(st, i)->file, f)) return w8_st_path(st);
    return f;
}

static int is_float_dtype(w8_dtype t) { return t == W8_F32 || t == W8_F16 || t == W8_BF16; }

/* A float tensor (F32/F16/BF16) of the given shape. */
static const w8_tensor *need_float(const loader *ld, const char *name, int ndim,
                                   const int64_t *shape) {
    const w8_tensor *t = need(ld, name, -1, ndim, shape);
    if (!t) return NULL;
    if (!is_float_dtype(t->dtype)) {
        w8_seterr("%s: tensor '%s' has dtype %s, expected F32, F16 or BF16", t->file, name,
                  w8_dtype_name(t->dtype));
        return NULL;
    }
    return t;
}

/* A float vector [n] converted to a fresh f32 array. */
static float *load_vec(const loader *ld, const char *name, int n) {
    int64_t shape[1] = {n};
    const w8_tensor *t = need_float(ld, name, 1, shape);
    if (!t) return NULL;
    float *v = w8_xmalloc((size_t)n * sizeof(float));
    w8_tensor_to_f32(t, v);
    return v;
}

/* Optional float vector: NULL without error when absent. */
static int load_opt_vec(const loader *ld, const char *name, int n, float **out) {
    *out = NULL;
    if (!w8_st_find(ld->st, name)) return 0;
    *out = load_vec(ld, name, n);
    return *out ? 0 : -1;
}

/* The int8 tensors of one W8A8 layer, checked; pointers into the mapping. */
typedef struct {
    const w8_tensor *w, *qbias, *deq;
    float scale;
    int offset;
} qparts;

/* FORMAT.md's rules for a quantized layer live in one reader (qlayer.c),
 * shared with inspect: what it refuses, the runtime refuses too. */
static int load_qparts(const loader *ld, const char *prefix, int n, int k, qparts *q) {
    w8_qlayer l;
    int rc = w8_qlayer_read(ld->st, w8_qdesc_json(ld->qd), prefix, n, k, ld->dtype, &l);
    if (rc == 0) {
        q->w = l.weight;
        q->qbias = l.quant_bias;
        q->deq = l.deq_scale;
        q->scale = l.in_scale;
        q->offset = l.in_offset;
    }
    w8_qlayer_free(&l);
    return rc;
}

/* Copy quant_bias and deq_scale (as f32) of rows [0, n) into dst arrays.
 * memcpy per element: the mapped data need not be aligned for int32/int64. */
static void copy_epilogue(const qparts *q, int n, int32_t *qb, float *ds) {
    const unsigned char *b = q->qbias->data, *d = q->deq->data;
    for (int j = 0; j < n; j++) {
        memcpy(&qb[j], b + 4 * (size_t)j, 4);
        if (q->deq->dtype == W8_I64) {
            /* fp32 bit pattern widened to int64: the low 32 bits are the float */
            uint64_t v;
            memcpy(&v, d + 8 * (size_t)j, 8);
            uint32_t lo = (uint32_t)(v & 0xffffffffu);
            memcpy(&ds[j], &lo, 4);
        } else {
            memcpy(&ds[j], d + 4 * (size_t)j, 4);
        }
    }
}

/* Drop this process's pages of a mapped tensor that was just copied (the
 * mapping is read-only and file-backed, so a later touch re-reads it): the
 * packed copy is what the kernels use, and keeping the mapped int8 weights
 * resident too would nearly double a W8A8 model's RSS (7B: +4.6 GB). */
static void release_range(const void *data, size_t nbytes) {
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0 || nbytes < (size_t)pg) return;
    uintptr_t a = ((uintptr_t)data + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    uintptr_t e = ((uintptr_t)data + nbytes) & ~((uintptr_t)pg - 1);
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
}

static void release_mapped(const w8_tensor *t) { release_range(t->data, t->nbytes); }

/* Pack the int8 layers parts[0..np) stacked along n into one w8_qmat. */
static void pack_stacked(w8_qmat *out, const qparts *parts, const int *pn, int np, int k) {
    int ntot = 0;
    for (int i = 0; i < np; i++) ntot += pn[i];
    /* one part: pack straight from the mapping (no copy of the weights) */
    int8_t *w = np == 1 ? NULL : w8_xmalloc((size_t)ntot * (size_t)k);
    int32_t *qb = w8_xmalloc((size_t)ntot * sizeof(int32_t));
    float *ds = w8_xmalloc((size_t)ntot * sizeof(float));
    int row = 0;
    for (int i = 0; i < np; i++) {
        if (w) {
            memcpy(w + (size_t)row * k, parts[i].w->data, (size_t)pn[i] * (size_t)k);
            release_mapped(parts[i].w);
        }
        copy_epilogue(&parts[i], pn[i], qb + row, ds + row);
        row += pn[i];
    }
    w8_qmat_pack(out, w ? w : (const int8_t *)parts[0].w->data, ntot, k, qb, ds);
    if (!w) release_mapped(parts[0].w);
    free(w);
    free(qb);
    free(ds);
}

/* The description's type of prefix.weight (W8_QT_FLOAT for a float directory). */
static w8_qtype qtype(const loader *ld, const char *prefix) {
    if (!ld->qd) return W8_QT_FLOAT;
    char name[NAME_MAX_LEN];
    snprintf(name, sizeof name, "%s.weight", prefix);
    return w8_qdesc_get(ld->qd, name);
}

/* 1 when the description marks prefix.weight as W8A8 (the static int8 path). */
static int is_int8(const loader *ld, const char *prefix) { return qtype(ld, prefix) == W8_QT_W8A8; }

/* A type this runtime has no path for: a clear refusal rather than reading
 * int8 tensors as float. */
static int check_supported(const loader *ld, const char *prefix) {
    w8_qtype t = qtype(ld, prefix);
    if (t == W8_QT_OTHER)
        return w8_seterr("%s: '%s.weight' is of an unknown quantization type, which this runtime "
                         "cannot run", ld->wlabel, prefix);
    return 0;
}

/* ---------------------------------------------------------- W8A8_DYNAMIC
 * A layer whose .weight value is "W8A8_DYNAMIC" (FORMAT.md): int8 weight
 * [n, k], fp32 weight_scale [n, 1], weight_offset [n, 1] of zeros, optional
 * float bias [n]; read and validated by w8_qlayer_read like a static layer.
 * Packed with quant_bias 0 and deq_scale = weight_scale for w8_gemm_i8_dyn. */
static int is_dynamic(const loader *ld, const char *prefix) {
    return qtype(ld, prefix) == W8_QT_W8A8_DYNAMIC;
}

typedef struct {
    const int8_t *wq;       /* [n, k] int8: in the mapping, or own */
    const w8_tensor *src;   /* the mapped int8 tensor, dropped once packed (or NULL) */
    int8_t *own;            /* made at load (--float_layers int8), or NULL */
    float *ws;   /* [n] weight_scale (owned) */
    float *bias; /* [n] or NULL (owned) */
} dparts;

static void dparts_free(dparts *d) {
    free(d->own);
    free(d->ws);
    free(d->bias);
    d->own = NULL;
    d->ws = d->bias = NULL;
}

static int load_file_dparts(const loader *ld, const char *prefix, int n, int k, int want_bias,
                            dparts *d) {
    memset(d, 0, sizeof *d);
    w8_qlayer l;
    int rc = w8_qlayer_read(ld->st, w8_qdesc_json(ld->qd), prefix, n, k, ld->dtype, &l);
    if (rc == 0) {
        d->src = l.weight;
        d->wq = l.weight->data;
        d->ws = w8_xmalloc((size_t)n * sizeof(float) + 1);
        w8_tensor_to_f32(l.weight_scale, d->ws);
    }
    w8_qlayer_free(&l);
    if (rc) return -1;
    char name[NAME_MAX_LEN];
    snprintf(name, sizeof name, "%s.bias", prefix);
    if (want_bias && !(d->bias = load_vec(ld, name, n))) return -1;
    return 0;
}

/* ------------------------------------------ float layers made int8 at load
 * W8_FLOAT_LAYERS_INT8 (--float_layers int8): a layer the file keeps float
 * is quantized here as `quant --quant_type w8a8_dynamic` would write it
 * (w8_wquant_*, the quantizer's own arithmetic: per output channel, scale
 * max|w| / 127, round half to even) and then runs as a W8A8_DYNAMIC layer
 * (per-token activation scales), so decode reads 1 byte per weight instead
 * of 2.  Rows are widened to f32 one at a time (a whole f32 copy of the
 * 0.5B shape's lm_head would be 545 MB) and spread over the threads. */
static int quantize_float(const w8_tensor *t, int n, int k, dparts *d) {
    size_t esz = w8_dtype_size(t->dtype);
    int8_t *wq = w8_xmalloc((size_t)n * (size_t)k + 1);
    float *ws = w8_xmalloc((size_t)n * sizeof(float) + 1);
    int bad = n;
#pragma omp parallel num_threads(w8_get_threads())
    {
        float *row = w8_xmalloc((size_t)k * sizeof(float) + 1);
#pragma omp for schedule(static)
        for (int r = 0; r < n; r++) {
            w8_tensor v = {.dtype = t->dtype, .numel = (size_t)k,
                           .data = (const unsigned char *)t->data + (size_t)r * (size_t)k * esz};
            w8_tensor_to_f32(&v, row);
            if (w8_wquant_scale(row, k, &ws[r]) == 0) {
                w8_wquant_row(row, k, ws[r], wq + (size_t)r * (size_t)k);
            } else {
#pragma omp critical(w8_model_bad_row)
                if (r < bad) bad = r;
            }
        }
        free(row);
    }
    if (bad < n) {
        free(wq);
        free(ws);
        return w8_seterr("%s: tensor '%s' row %d has a non-finite value; --float_layers int8 "
                         "cannot quantize it", t->file, t->name, bad);
    }
    /* the int8 copy replaces the float one (a tied lm_head's embedding keeps
     * its mapping: a lookup faults its rows back in) */
    release_mapped(t);
    d->own = wq;
    d->wq = wq;
    d->ws = ws;
    return 0;
}

static int load_conv_dparts(const loader *ld, const char *prefix, int n, int k, int want_bias,
                            dparts *d) {
    memset(d, 0, sizeof *d);
    char name[NAME_MAX_LEN];
    int64_t shape[2] = {n, k};
    snprintf(name, sizeof name, "%s.weight", prefix);
    const w8_tensor *t = need_float(ld, name, 2, shape);
    if (!t || quantize_float(t, n, k, d)) return -1;
    snprintf(name, sizeof name, "%s.bias", prefix);
    if (want_bias && !(d->bias = load_vec(ld, name, n))) return -1;
    return 0;
}

/* 1 when the layer runs W8A8_DYNAMIC: the file says so, or the file keeps
 * it float and the float layers are made int8 at load. */
static int runs_dynamic(const loader *ld, const char *prefix) {
    return is_dynamic(ld, prefix) || (ld->float_int8 && !is_int8(ld, prefix));
}

static int load_dparts(const loader *ld, const char *prefix, int n, int k, int want_bias,
                       dparts *d) {
    if (is_dynamic(ld, prefix)) return load_file_dparts(ld, prefix, n, k, want_bias, d);
    return load_conv_dparts(ld, prefix, n, k, want_bias, d);
}

/* Pack dynamic parts stacked along n (fused q/k/v, gate/up: one per-row
 * activation scale serves them all, since they read the same rows). */
static void pack_dyn(w8_linear *l, dparts *d, const int *pn, int np, int k) {
    int ntot = 0, any_bias = 0;
    for (int i = 0; i < np; i++) ntot += pn[i], any_bias |= d[i].bias != NULL;
    int8_t *w = np == 1 ? NULL : w8_xmalloc((size_t)ntot * (size_t)k);
    int32_t *zb = w8_xcalloc((size_t)ntot + 1, sizeof(int32_t));
    float *ws = w8_xmalloc((size_t)ntot * sizeof(float) + 1);
    l->bias = any_bias ? w8_xcalloc((size_t)ntot + 1, sizeof(float)) : NULL;
    int row = 0;
    for (int i = 0; i < np; i++) {
        if (w) {
            memcpy(w + (size_t)row * k, d[i].wq, (size_t)pn[i] * (size_t)k);
            if (d[i].src) release_mapped(d[i].src);
        }
        memcpy(ws + row, d[i].ws, (size_t)pn[i] * sizeof(float));
        if (d[i].bias) memcpy(l->bias + row, d[i].bias, (size_t)pn[i] * sizeof(float));
        row += pn[i];
    }
    w8_qmat_pack(&l->q, w ? w : d[0].wq, ntot, k, zb, ws);
    if (!w && d[0].src) release_mapped(d[0].src);
    l->n = ntot;
    l->k = k;
    l->quantized = 1;
    l->dynamic = 1;
    free(w);
    free(zb);
    free(ws);
}

static int load_dyn_linear(const loader *ld, const char *prefix, int n, int k, int want_bias,
                           w8_linear *l) {
    dparts d;
    int rc = load_dparts(ld, prefix, n, k, want_bias, &d);
    if (rc == 0) pack_dyn(l, &d, &n, 1, k);
    l->converted = !is_dynamic(ld, prefix);
    dparts_free(&d);
    return rc;
}

/* All parts of a group W8A8_DYNAMIC: one stacked GEMM. */
static int load_dyn_group(const loader *ld, char prefixes[][NAME_MAX_LEN], const int *pn, int np,
                          int k, int want_bias, w8_linear_group *g) {
    dparts d[3] = {{0}};
    int rc = 0;
    for (int i = 0; i < np && rc == 0; i++) rc = load_dparts(ld, prefixes[i], pn[i], k, want_bias, &d[i]);
    if (rc == 0) {
        for (int i = 0; i < np; i++)
            g->parts[i] = (w8_linear){.n = pn[i], .k = k, .quantized = 1, .dynamic = 1,
                                      .converted = !is_dynamic(ld, prefixes[i])};
        g->fused = 1;
        pack_dyn(&g->fused_lin, d, pn, np, k);
        for (int i = 0; i < np; i++) g->fused_lin.converted |= g->parts[i].converted;
    }
    for (int i = 0; i < np; i++) dparts_free(&d[i]);
    return rc;
}

/* A W8A8 model's few float layers (lm_head, a recipe's down_proj) are
 * repacked into the kernels' streaming layout (kernels.h): decode reads
 * them at near full bandwidth and prefill needs no per-call conversion.
 * The copy replaces the mapped pages, so resident memory does not grow.
 * A float directory stays in place: every layer is float there (a 7B
 * model's calibration run would hold two copies). */
static void drop_pages(const void *src, size_t bytes, void *ud) {
    (void)ud;
    release_range(src, bytes);
}

static void pack_float(const loader *ld, w8_fmat *f) {
    if (ld->qd) w8_fmat_pack(f, drop_pages, NULL);
}

/* Float layer: weight [n, k] (packed or in place), bias [n] to f32 when want_bias. */
static int load_float_linear(const loader *ld, const char *prefix, int n, int k, int want_bias,
                             w8_linear *l) {
    char name[NAME_MAX_LEN];
    int64_t shape[2] = {n, k};
    snprintf(name, sizeof name, "%s.weight", prefix);
    const w8_tensor *t = need_float(ld, name, 2, shape);
    if (!t) return -1;
    l->f = (w8_fmat){.n = n, .k = k, .dtype = t->dtype, .w = t->data};
    pack_float(ld, &l->f);
    if (want_bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        if (!(l->bias = load_vec(ld, name, n))) return -1;
    }
    return 0;
}

/* One linear layer on its own (int8 packed alone, or float). */
static int load_linear(const loader *ld, const char *prefix, int n, int k, int want_bias,
                       w8_linear *l) {
    memset(l, 0, sizeof *l);
    l->n = n;
    l->k = k;
    if (check_supported(ld, prefix)) return -1;
    if (runs_dynamic(ld, prefix)) return load_dyn_linear(ld, prefix, n, k, want_bias, l);
    if (!is_int8(ld, prefix)) return load_float_linear(ld, prefix, n, k, want_bias, l);
    qparts q;
    if (load_qparts(ld, prefix, n, k, &q)) return -1;
    /* A float .bias next to an int8 layer is already folded into quant_bias. */
    l->quantized = 1;
    l->in_scale = q.scale;
    l->in_offset = q.offset;
    pack_stacked(&l->q, &q, &n, 1, k);
    return 0;
}

/* Linear layers sharing one input.  int8 parts with one input scale/offset
 * are packed as one stacked GEMM; float parts stay separate (stacking them
 * would need a copy of the mapped weights). */
static int load_group(const loader *ld, char prefixes[][NAME_MAX_LEN], const int *pn, int np,
                      int k, int want_bias, w8_linear_group *g) {
    memset(g, 0, sizeof *g);
    g->n_parts = np;
    int all_int8 = 1, all_dyn = 1;
    for (int i = 0; i < np; i++) {
        g->part_n[i] = pn[i];
        if (check_supported(ld, prefixes[i])) return -1;
        all_int8 &= is_int8(ld, prefixes[i]);
        all_dyn &= runs_dynamic(ld, prefixes[i]);
    }
    if (all_dyn) return load_dyn_group(ld, prefixes, pn, np, k, want_bias, g);
    if (all_int8) {
        qparts q[3];
        int same = 1;
        for (int i = 0; i < np; i++) {
            if (load_qparts(ld, prefixes[i], pn[i], k, &q[i])) return -1;
            same &= q[i].scale == q[0].scale && q[i].offset == q[0].offset;
        }
        if (same) {
            int ntot = 0;
            for (int i = 0; i < np; i++) {
                g->parts[i] = (w8_linear){.n = pn[i], .k = k, .quantized = 1,
                                          .in_scale = q[i].scale, .in_offset = q[i].offset};
                ntot += pn[i];
            }
            g->fused = 1;
            g->fused_lin = (w8_linear){.n = ntot, .k = k, .quantized = 1,
                                       .in_scale = q[0].scale, .in_offset = q[0].offset};
            pack_stacked(&g->fused_lin.q, q, pn, np, k);
            return 0;
        }
    }
    for (int i = 0; i < np; i++)
        if (load_linear(ld, prefixes[i], pn[i], k, want_bias, &g->parts[i])) return -1;
    return 0;
}

static void free_linear(w8_linear *l) {
    if (l->quantized) w8_qmat_free(&l->q);
    else w8_fmat_free(&l->f);
    free(l->bias);
    memset(l, 0, sizeof *l);
}

static void free_group(w8_linear_group *g) {
    if (g->fused) free_linear(&g->fused_lin);
    for (int i = 0; i < g->n_parts; i++)
        if (!g->fused) free_linear(&g->parts[i]);
}

/* Qwen3's per-head RMSNorm weight [head_dim]: without it the attention
 * would silently be Qwen2's, so a missing one is an error that says why. */
static int load_qk_norm(const loader *ld, const w8_config *c, int i, const char *which,
                        float **out) {
    char name[NAME_MAX_LEN];
    snprintf(name, sizeof name, "model.layers.%d.self_attn.%s.weight", i, which);
    if (!w8_st_find(ld->st, name))
        return w8_seterr("%s: tensor '%s' is missing (%s needs q_norm and k_norm in every "
                         "layer)",
                         ld->wlabel, name, c->arch_name);
    *out = load_vec(ld, name, c->head_dim);
    return *out ? 0 : -1;
}

static int load_layer(const loader *ld, const w8_config *c, int i, w8_layer *L) {
    char p[3][NAME_MAX_LEN], name[NAME_MAX_LEN];
    int H = c->hidden, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;

    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", i);
    if (!(L->attn_norm = load_vec(ld, name, H))) return -1;
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.bias", i);
    if (load_opt_vec(ld, name, H, &L->attn_norm_b)) return -1;
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", i);
    if (!(L->ffn_norm = load_vec(ld, name, H))) return -1;
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.bias", i);
    if (load_opt_vec(ld, name, H, &L->ffn_norm_b)) return -1;

    snprintf(p[0], sizeof p[0], "model.layers.%d.self_attn.q_proj", i);
    snprintf(p[1], sizeof p[1], "model.layers.%d.self_attn.k_proj", i);
    snprintf(p[2], sizeof p[2], "model.layers.%d.self_attn.v_proj", i);
    int qkv_n[3] = {qd, kvd, kvd};
    if (load_group(ld, p, qkv_n, 3, H, c->qkv_bias, &L->qkv)) return -1;
    if (c->qk_norm && (load_qk_norm(ld, c, i, "q_norm", &L->q_norm) ||
                       load_qk_norm(ld, c, i, "k_norm", &L->k_norm)))
        return -1;

    snprintf(p[0], sizeof p[0], "model.layers.%d.self_attn.o_proj", i);
    if (load_linear(ld, p[0], H, qd, c->o_bias, &L->o)) return -1;

    snprintf(p[0], sizeof p[0], "model.layers.%d.mlp.gate_proj", i);
    snprintf(p[1], sizeof p[1], "model.layers.%d.mlp.up_proj", i);
    int gu_n[2] = {c->intermediate, c->intermediate};
    if (load_group(ld, p, gu_n, 2, H, c->mlp_bias, &L->gate_up)) return -1;

    snprintf(p[0], sizeof p[0], "model.layers.%d.mlp.down_proj", i);
    return load_linear(ld, p[0], H, c->intermediate, c->mlp_bias, &L->down);
}

/* inv_freq exactly as transformers' rope init functions compute it (f32). */
static float *rope_inv_freq(const w8_config *c) {
    int half = c->head_dim / 2;
    float *f = w8_xmalloc((size_t)half * sizeof(float));
    for (int i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)c->head_dim;
        f[i] = 1.0f / powf(c->rope_theta, e);
    }
    if (c->rope_type == W8_ROPE_LINEAR) {
        for (int i = 0; i < half; i++) f[i] /= c->rope_factor;
    } else if (c->rope_type == W8_ROPE_LLAMA3) {
        /* _compute_llama3_parameters: long wavelengths scaled by 1/factor,
         * short ones kept, a smooth blend between the two thresholds. */
        float factor = c->rope_factor, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
        float old = (float)c->rope_orig_max_pos;
        float low_wl = old / lo, high_wl = old / hi;
        for (int i = 0; i < half; i++) {
            float wl = 2.0f * (float)M_PI / f[i];
            float inv = wl > low_wl ? f[i] / factor : f[i];
            float smooth = (old / wl - lo) / (hi - lo);
            float smoothed = (1 - smooth) * inv / factor + smooth * inv;
            int medium = !(wl < high_wl) && !(wl > low_wl);
            f[i] = medium ? smoothed : inv;
        }
    }
    return f;
}

static int check_shape(const w8_config *c, const char *dir) {
    if (c->hidden <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->head_dim <= 0 || c->intermediate <= 0 || c->vocab <= 0 || c->max_pos <= 0)
        return w8_seterr("%s/config.json: sizes must be positive", dir);
    if (c->n_heads % c->n_kv_heads)
        return w8_seterr("%s/config.json: num_attention_heads %d is not a multiple of "
                         "num_key_value_heads %d",
                         dir, c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2) return w8_seterr("%s/config.json: head_dim %d is odd", dir, c->head_dim);
    if (c->rope_type != W8_ROPE_DEFAULT && !(c->rope_factor > 0))
        return w8_seterr("%s/config.json: rope_scaling factor must be positive", dir);
    if (c->rope_type == W8_ROPE_LLAMA3 &&
        (!(c->rope_high_freq_factor != c->rope_low_freq_factor) || !(c->rope_low_freq_factor > 0) ||
         !(c->rope_high_freq_factor > 0) || c->rope_orig_max_pos <= 0))
        return w8_seterr("%s/config.json: bad llama3 rope_scaling parameters", dir);
    return 0;
}

static int load_all(w8_model *m, const w8_qdesc *qd, const w8_load_opts *o) {
    const w8_config *c = &m->cfg;
    loader ld = {m->st, qd, weights_label(m->st), W8_BF16,
                 o && o->float_layers == W8_FLOAT_LAYERS_INT8};
    int64_t eshape[2] = {c->vocab, c->hidden};
    if (!(m->embed = need_float(&ld, "model.embed_tokens.weight", 2, eshape))) return -1;
    ld.dtype = m->embed->dtype;
    m->layers = w8_xcalloc((size_t)c->n_layers, sizeof(w8_layer));
    for (int i = 0; i < c->n_layers; i++)
        if (load_layer(&ld, c, i, &m->layers[i])) return -1;
    if (!(m->final_norm = load_vec(&ld, "model.norm.weight", c->hidden))) return -1;
    if (load_opt_vec(&ld, "model.norm.bias", c->hidden, &m->final_norm_b)) return -1;

    /* A tied model's lm_head.weight, when the directory has one, is the
     * embedding's copy (msModelSlim writes it so that every description key
     * names a tensor); the embedding is used, as config.json says. */
    if (check_supported(&ld, "lm_head")) return -1;
    if (is_int8(&ld, "lm_head") || is_dynamic(&ld, "lm_head")) {
        if (load_linear(&ld, "lm_head", c->vocab, c->hidden, 0, &m->lm_head)) return -1;
    } else if (c->tie_embeddings && ld.float_int8) {
        /* the lookup keeps reading the float embedding; only the output
         * matmul runs on the int8 copy */
        dparts d;
        memset(&d, 0, sizeof d);
        int rc = quantize_float(m->embed, c->vocab, c->hidden, &d);
        if (rc == 0) {
            pack_dyn(&m->lm_head, &d, &c->vocab, 1, c->hidden);
            m->lm_head.converted = 1;
        }
        dparts_free(&d);
        if (rc) return -1;
    } else if (c->tie_embeddings) {
        m->lm_head = (w8_linear){.n = c->vocab, .k = c->hidden};
        m->lm_head.f = (w8_fmat){.n = c->vocab, .k = c->hidden, .dtype = m->embed->dtype,
                                 .w = m->embed->data};
        pack_float(&ld, &m->lm_head.f);
    } else if (load_linear(&ld, "lm_head", c->vocab, c->hidden, 0, &m->lm_head)) {
        return -1;
    }
    m->rope_inv_freq = rope_inv_freq(c);

    /* count linear layers by path (for inspect / run's banner) */
    for (int i = 0; i < c->n_layers; i++) {
        w8_layer *L = &m->layers[i];
        const w8_linear *ls[7] = {&L->qkv.parts[0], &L->qkv.parts[1], &L->qkv.parts[2], &L->o,
                                  &L->gate_up.parts[0], &L->gate_up.parts[1], &L->down};
        for (int j = 0; j < 7; j++) {
            ls[j]->quantized ? m->n_int8++ : m->n_float++;
            m->n_dynamic += ls[j]->dynamic;
            m->n_converted += ls[j]->converted;
        }
    }
    m->lm_head.quantized ? m->n_int8++ : m->n_float++;
    m->n_dynamic += m->lm_head.dynamic;
    m->n_converted += m->lm_head.converted;
    return 0;
}

w8_model *w8_model_load(const char *dir) { return w8_model_load_opts(dir, NULL); }

int w8_float_layers_parse(const char *s, w8_float_layers *out) {
    if (s && !strcmp(s, "file")) *out = W8_FLOAT_LAYERS_FILE;
    else if (s && !strcmp(s, "int8")) *out = W8_FLOAT_LAYERS_INT8;
    else return w8_seterr("--float_layers: '%s' is not one of file, int8", s ? s : "");
    return 0;
}

w8_model *w8_model_load_opts(const char *dir, const w8_load_opts *o) {
    w8_model *m = w8_xcalloc(1, sizeof *m);
    w8_qdesc *qd = NULL;
    m->dir = w8_xstrdup(dir);
    if (!w8_is_dir(dir)) {
        w8_seterr("%s: not a directory", dir);
        goto fail;
    }
    if (w8_config_load(dir, &m->cfg) || check_shape(&m->cfg, dir)) goto fail;
    if (w8_qdesc_load(dir, &qd)) goto fail;
    m->quantized = qd != NULL;
    if (!(m->st = w8_st_open_dir(dir))) goto fail;
    if (load_all(m, qd, o)) goto fail;
    if (qd) w8_qdesc_free(qd);
    return m;
fail:
    if (qd) w8_qdesc_free(qd);
    w8_model_free(m);
    return NULL;
}

const char *w8_model_kind(const w8_model *m) {
    static const char *const kinds[4][2] = {
        {"float", "float +int8 linears"},
        {"W8A8", "W8A8 +int8 float layers"},
        {"W8A8_DYNAMIC", "W8A8_DYNAMIC +int8 float layers"},
        {"W8A8+W8A8_DYNAMIC", "W8A8+W8A8_DYNAMIC +int8 float layers"},
    };
    /* the file's kind: the layers made int8 at load are not in it */
    int dyn = m->n_dynamic - m->n_converted, i8 = m->n_int8 - m->n_converted;
    int k = !m->quantized ? 0 : dyn == 0 ? 1 : dyn == i8 ? 2 : 3;
    return kinds[k][m->n_converted > 0];
}

void w8_model_free(w8_model *m) {
    if (!m) return;
    if (m->layers) {
        for (int i = 0; i < m->cfg.n_layers; i++) {
            w8_layer *L = &m->layers[i];
            free(L->attn_norm);
            free(L->attn_norm_b);
            free(L->ffn_norm);
            free(L->ffn_norm_b);
            free(L->q_norm);
            free(L->k_norm);
            free_group(&L->qkv);
            free_linear(&L->o);
            free_group(&L->gate_up);
            free_linear(&L->down);
        }
        free(m->layers);
    }
    free(m->final_norm);
    free(m->final_norm_b);
    free_linear(&m->lm_head);
    free(m->rope_inv_freq);
    if (m->st) w8_st_close(m->st);
    free(m->dir);
    free(m);
}

void w8_linear_apply(const w8_linear *l, int m, const float *x, size_t ldx, float *y,
                     size_t ldy, int8_t *scratch) {
    if (!l->quantized) {
        /* w8_gemm_f is row-invariant by contract, packed or not */
        w8_gemm_f(&l->f, m, x, ldx, y, ldy, l->bias);
        return;
    }
    if (l->dynamic) {
        w8_gemm_i8_dyn(&l->q, m, x, ldx, scratch, y, ldy, l->bias);
        return;
    }
    int8_t *xq = scratch ? scratch : w8_xmalloc((size_t)m * (size_t)l->k);
    /* quantization and GEMM in one parallel region */
    w8_quant_gemm_i8(x, m, l->k, ldx, l->in_scale, l->in_offset, xq, (size_t)l->k, &l->q, y, ldy);
    if (!scratch) free(xq);
}

size_t w8_linear_weights(const w8_linear *l, const void **w) {
    if (l->quantized) {
        *w = l->q.packed;
        return l->q.packed_bytes;
    }
    if (l->f.packed) {
        *w = l->f.packed;
        return l->f.packed_bytes;
    }
    *w = l->f.w;
    return (size_t)l->n * l->k * w8_dtype_size(l->f.dtype);
}

/*
 * quantize.c - float Hugging Face model -> msModelSlim W8A8 directory.
 *
 * The job in four phases (FORMAT.md is the contract for the output):
 *
 *   plan       find every linear layer (q/k/v/o, gate/up/down, lm_head), check
 *              dtypes and shapes, apply the recipe (which layers stay float and
 *              why) and group the layers that read one input:
 *                  group 4*L+0: q/k/v of layer L    group 4*L+2: gate/up
 *                  group 4*L+1: o_proj              group 4*L+3: down_proj
 *   calibrate  run the float engine (w8_forward) over every sample; the
 *              observer keeps, per group and per input channel, the running
 *              min and max.  Per channel (not per tensor) so that SmoothQuant
 *              can derive the smoothed tensor's range exactly: x/s has channel
 *              range [min_c/s_c, max_c/s_c].
 *   params     per group: (optional) smoothing vector, then input_scale and
 *              input_offset rounded to their storage dtype.  All members of a
 *              group get the same pair, as MindIE requires.
 *   write      the output tensor list is fixed first (names, dtypes, shapes,
 *              shard), then each shard is streamed: one quantized layer is
 *              computed at a time (its five tensors are adjacent), float
 *              tensors are copied straight from the source mapping.  Then
 *              quant_model_description.json, the index (sharded), config.json
 *              with "quantize": "w8a8" and the tokenizer files.
 *
 * Safety: everything is written into SAVE.w8a8-tmp-PID next to the target
 * and renamed at the very end, so a failed or killed run never leaves a
 * partial --save_path; the next run removes temp directories whose process is
 * gone.  With --force an existing target is moved aside only after success.
 * Output is deterministic: per-row work runs in parallel but every value
 * depends only on its own row; min/max do not depend on order.
 */
#include "quantize.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "dirtx.h"
#include "forward.h"
#include "json.h"
#include "kv_cache.h"
#include "model.h"
#include "sensitivity.h"
#include "tokenizer/tokenizer.h"
#include "util.h"

/* ------------------------------------------------------------------ plan */

enum { K_Q, K_K, K_V, K_O, K_GATE, K_UP, K_DOWN, K_LMHEAD };
static const char *const kind_path[] = {"self_attn.q_proj", "self_attn.k_proj",
                                        "self_attn.v_proj", "self_attn.o_proj",
                                        "mlp.gate_proj",    "mlp.up_proj",
                                        "mlp.down_proj"};
static const int kind_point[] = {W8_OBS_QKV_IN,    W8_OBS_QKV_IN,    W8_OBS_QKV_IN, W8_OBS_O_IN,
                                 W8_OBS_GATEUP_IN, W8_OBS_GATEUP_IN, W8_OBS_DOWN_IN};
#define GROUPS_PER_LAYER 4

typedef struct {
    char name[160];         /* "model.layers.0.self_attn.q_proj" */
    int layer, kind, group; /* group -1: lm_head */
    int quant;              /* 1: written as W8A8 (or W8A8_DYNAMIC when dyn) */
    int dyn;                /* 1: W8A8_DYNAMIC (per-token activations, no input_scale) */
    const char *why;        /* reason it stays float */
    const w8_tensor *w, *b; /* source weight [n, k] and bias [n] (or NULL) */
    int n, k;
} qlin;

typedef struct {
    int k;
    int n_members, members[3]; /* indices into lin[] */
    int n_quant;
    int n_static;              /* members that are static W8A8 (need input_scale) */
    float *cmin, *cmax;        /* [k] observed per-channel range */
    float *smooth;             /* [k] SmoothQuant divisor or NULL */
    const w8_tensor *norm;     /* RMSNorm before the group (smoothing), or NULL */
    float in_scale;
    int in_offset;
} qgroup;

typedef struct {
    const w8_quant_opts *o;
    w8_config cfg;
    w8_st *st;
    w8_dtype src_dt; /* dtype of the linear weights */
    w8_dtype out_dt; /* table: W8_F16 (table 1) or W8_BF16 (table 2) */
    int convert;     /* F32 source: float tensors written as bf16 */
    qlin *lin;
    int n_lin;
    qgroup *grp;
    int n_grp;
    /* calibration observer state */
    int32_t **qbias; /* [n_lin] quant_bias of each quantized layer, once computed */
    float **deq;     /* [n_lin] deq_scale (f32) */
    int obs_bad;     /* 1: non-finite activation, 2: shape mismatch */
    int n_computed;  /* compute_layer calls (the report's n_layer_quantizations) */
    int obs_layer, obs_point;
} qstate;

static void note(const qstate *s, const char *fmt, ...) W8_PRINTF(2, 3);
static void note(const qstate *s, const char *fmt, ...) {
    if (!s->o->log) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(s->o->log, fmt, ap);
    va_end(ap);
    fputc('\n', s->o->log);
}

static int is_float_dt(w8_dtype t) { return t == W8_F32 || t == W8_F16 || t == W8_BF16; }

/* "llama" is the default recipe (every linear layer but lm_head int8) */
const char *const w8_quant_recipes[] = {"qwen2", "qwen3", "llama", NULL};

/* The recipe: --model_type when given (msModelSlim's names, "Qwen2-7B",
 * "Qwen3-8B", matched on the family prefix), else the config's architecture.
 * Qwen2 and Qwen3 keep every mlp.down_proj float: its input (silu(gate) *
 * up) has the widest outliers of the layer, and msModelSlim does the same
 * (quant_qwen.py's default disable_names for Qwen2; lab_practice
 * qwen3-32b-w8a8-no-pdmix.yaml, its static W8A8 recipe for Qwen3 dense on
 * vLLM-Ascend, disables lm_head and all 64 down_proj).  Qwen3's q_norm and
 * k_norm are not linear layers: they are copied as FLOAT. */
typedef enum { RECIPE_DEFAULT = 0, RECIPE_QWEN2, RECIPE_QWEN3 } w8_recipe;
static const char *const recipe_names[] = {"default", "qwen2", "qwen3"};

static w8_recipe recipe_of(const qstate *s) {
    const char *mt = s->o->model_type;
    if (mt && *mt) {
        if (!strncasecmp(mt, "qwen3", 5)) return RECIPE_QWEN3;
        return !strncasecmp(mt, "qwen2", 5) ? RECIPE_QWEN2 : RECIPE_DEFAULT;
    }
    return s->cfg.arch == W8_ARCH_QWEN2   ? RECIPE_QWEN2
           : s->cfg.arch == W8_ARCH_QWEN3 ? RECIPE_QWEN3
                                          : RECIPE_DEFAULT;
}

static int is_disabled(const qstate *s, const char *name) {
    for (int i = 0; i < s->o->n_disable; i++)
        if (!strcmp(s->o->disable_names[i], name)) return 1;
    return 0;
}

static int add_lin(qstate *s, const char *name, int layer, int kind, int group) {
    char wname[192];
    snprintf(wname, sizeof wname, "%s.weight", name);
    const w8_tensor *w = w8_st_find(s->st, wname);
    if (!w) return w8_seterr("%s: tensor '%s' is missing", w8_st_path(s->st), wname);
    if (!is_float_dt(w->dtype))
        return w8_seterr("%s: tensor '%s' has dtype %s; only F16, BF16 and F32 models can be "
                         "quantized", w->file, wname, w8_dtype_name(w->dtype));
    if (w->ndim != 2 || w->shape[0] <= 0 || w->shape[1] <= 0 || w->shape[0] > INT_MAX ||
        w->shape[1] > INT_MAX)
        return w8_seterr("%s: tensor '%s' is not a 2-D matrix", w->file, wname);
    qlin *l = &s->lin[s->n_lin++];
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->layer = layer;
    l->kind = kind;
    l->group = group;
    l->w = w;
    l->n = (int)w->shape[0];
    l->k = (int)w->shape[1];
    snprintf(wname, sizeof wname, "%s.bias", name);
    l->b = w8_st_find(s->st, wname);
    if (l->b && (!is_float_dt(l->b->dtype) || l->b->ndim != 1 || l->b->shape[0] != l->n))
        return w8_seterr("%s: tensor '%s' is not a float vector of %d", l->b->file, wname, l->n);
    l->quant = 1;
    if (kind == K_LMHEAD) {
        l->quant = 0;
        l->why = "lm_head stays float (default recipe)";
    } else if (kind == K_DOWN && recipe_of(s) != RECIPE_DEFAULT) {
        l->quant = 0;
        l->why = recipe_of(s) == RECIPE_QWEN3 ? "Qwen3 recipe keeps mlp.down_proj float"
                                              : "Qwen2 recipe keeps mlp.down_proj float";
    } else if (is_disabled(s, name)) {
        l->quant = 0;
        l->why = "--disable_names";
    }
    /* W8A8_DYNAMIC keeps the recipe's float layers float; the mixed recipe
     * gives every down_proj (the widest-ranged input, which static W8A8
     * spoils) a per-token scale instead of keeping it float */
    if (s->o->quant_type == W8_QUANT_DYNAMIC) {
        l->dyn = l->quant;
    } else if (s->o->quant_type == W8_QUANT_MIX && kind == K_DOWN && !is_disabled(s, name)) {
        l->quant = 1;
        l->dyn = 1;
        l->why = NULL;
    }
    return 0;
}

static long find_nonfinite(const w8_tensor *t);
static void release_pages(const w8_tensor *t);

/* Calibration (running the float model) is needed for static W8A8 layers'
 * input_scale and for SmoothQuant's activation amax; W8A8_DYNAMIC alone
 * reads each weight and never runs the model. */
static int needs_calibration(const qstate *s) {
    if (s->o->smooth) return 1;
    for (int g = 0; g < s->n_grp; g++)
        if (s->grp[g].n_static) return 1;
    return 0;
}

static int plan(qstate *s) {
    const w8_config *c = &s->cfg;
    int L = c->n_layers;
    s->lin = w8_xcalloc((size_t)L * 7 + 1, sizeof(qlin));
    s->n_grp = L * GROUPS_PER_LAYER;
    s->grp = w8_xcalloc((size_t)s->n_grp, sizeof(qgroup));
    char name[160];
    for (int l = 0; l < L; l++)
        for (int kd = K_Q; kd <= K_DOWN; kd++) {
            snprintf(name, sizeof name, "model.layers.%d.%s", l, kind_path[kd]);
            int g = l * GROUPS_PER_LAYER + kind_point[kd];
            if (add_lin(s, name, l, kd, g) != 0) return -1;
            qgroup *gr = &s->grp[g];
            const qlin *ln = &s->lin[s->n_lin - 1];
            if (gr->n_members && gr->k != ln->k)
                return w8_seterr("%s: '%s.weight' has %d input columns, the other layers "
                                 "reading the same input have %d", w8_st_path(s->st), name,
                                 ln->k, gr->k);
            gr->k = ln->k;
            gr->members[gr->n_members++] = s->n_lin - 1;
            gr->n_quant += ln->quant;
            gr->n_static += ln->quant && !ln->dyn;
        }
    if (w8_st_find(s->st, "lm_head.weight") && add_lin(s, "lm_head", -1, K_LMHEAD, -1) != 0)
        return -1;
    /* Layers reading one input (q/k/v, gate/up) share one type: vllm-ascend
     * builds them as one fused layer and raises when their description
     * values differ.  One member kept float (--disable_names) keeps the
     * group float. */
    for (int g = 0; g < s->n_grp; g++) {
        qgroup *gr = &s->grp[g];
        if (gr->n_quant == 0 || gr->n_quant == gr->n_members) continue;
        for (int i = 0; i < gr->n_members; i++) {
            qlin *ln = &s->lin[gr->members[i]];
            if (!ln->quant) continue;
            ln->quant = 0;
            ln->why = "fused with a float layer (q/k/v and gate/up share one type)";
        }
        gr->n_quant = 0;
    }
    /* every --disable_names entry must name a linear layer: a typo must not
     * silently quantize the layer the user meant to protect */
    for (int i = 0; i < s->o->n_disable; i++) {
        int found = 0;
        for (int j = 0; j < s->n_lin && !found; j++)
            found = !strcmp(s->lin[j].name, s->o->disable_names[i]);
        if (!found)
            return w8_seterr("--disable_names: '%s' is not a linear layer of this model "
                             "(names look like model.layers.0.mlp.down_proj)",
                             s->o->disable_names[i]);
    }
    /* every tensor must be a float tensor: an I32 or I8 tensor means this is
     * not a float checkpoint we know how to copy */
    for (size_t i = 0; i < w8_st_count(s->st); i++) {
        const w8_tensor *t = w8_st_at(s->st, i);
        if (!is_float_dt(t->dtype))
            return w8_seterr("%s: tensor '%s' has dtype %s; only F16, BF16 and F32 models can "
                             "be quantized", t->file, t->name, w8_dtype_name(t->dtype));
    }
    /* NaN/Inf anywhere stops here, naming the tensor, before any work: a bit
     * test per element, at memory speed.  Without calibration (W8A8_DYNAMIC
     * and no SmoothQuant) the writer's own checks find them on the one pass
     * it makes, and the temporary directory is removed. */
    for (size_t i = 0; i < w8_st_count(s->st) && needs_calibration(s); i++) {
        const w8_tensor *t = w8_st_at(s->st, i);
        long bad = find_nonfinite(t);
        release_pages(t);
        if (bad >= 0)
            return w8_seterr("%s: tensor '%s' has a non-finite value (NaN or Inf) at element %ld",
                             t->file, t->name, bad);
    }
    s->src_dt = s->lin[0].w->dtype;
    for (int j = 1; j < s->n_lin; j++)
        if (s->lin[j].w->dtype != s->src_dt)
            return w8_seterr("%s: linear weights mix %s and %s; cannot pick one W8A8 table",
                             w8_st_path(s->st), w8_dtype_name(s->src_dt),
                             w8_dtype_name(s->lin[j].w->dtype));
    s->convert = s->src_dt == W8_F32;
    s->out_dt = s->src_dt == W8_F16 ? W8_F16 : W8_BF16;
    return 0;
}

static void print_plan(const qstate *s) {
    int nq = 0, nf = 0, nd = 0;
    for (int j = 0; j < s->n_lin; j++) {
        if (s->lin[j].quant) nq++;
        else nf++;
        nd += s->lin[j].dyn;
    }
    note(s, "plan: %d linear layers quantized to W8A8, %d of them W8A8_DYNAMIC, %d kept float "
         "(table %d: %s model; recipe %s, from %s)", nq, nd, nf, s->out_dt == W8_F16 ? 1 : 2,
         s->out_dt == W8_F16 ? "fp16" : "bf16", recipe_names[recipe_of(s)],
         s->o->model_type && *s->o->model_type ? "--model_type" : "config architectures");
    /* one line per reason, listing the layers, so 28 down_proj do not scroll away */
    const char *reasons[8];
    int nr = 0;
    for (int j = 0; j < s->n_lin; j++) {
        if (s->lin[j].quant) continue;
        int seen = 0;
        for (int r = 0; r < nr; r++) seen |= reasons[r] == s->lin[j].why;
        if (!seen && nr < 8) reasons[nr++] = s->lin[j].why;
    }
    for (int r = 0; r < nr; r++) {
        if (!s->o->log) break;
        fprintf(s->o->log, "  float (%s):", reasons[r]);
        /* a kind kept float in every layer prints as one line, not 28 names */
        for (int kd = K_Q; kd <= K_LMHEAD; kd++) {
            int cnt = 0;
            for (int j = 0; j < s->n_lin; j++)
                cnt += !s->lin[j].quant && s->lin[j].why == reasons[r] && s->lin[j].kind == kd;
            if (cnt > 1 && kd != K_LMHEAD && cnt == s->cfg.n_layers) {
                fprintf(s->o->log, " model.layers.{0..%d}.%s", cnt - 1, kind_path[kd]);
                continue;
            }
            for (int j = 0; j < s->n_lin; j++)
                if (!s->lin[j].quant && s->lin[j].why == reasons[r] && s->lin[j].kind == kd)
                    fprintf(s->o->log, " %s", s->lin[j].name);
        }
        fputc('\n', s->o->log);
    }
}

/* ------------------------------------------------------------- calibrate */

static void observe(void *ud, int layer, w8_obs_point what, const float *x, int m, int k) {
    qstate *s = ud;
    if (what >= GROUPS_PER_LAYER || layer < 0 || layer >= s->cfg.n_layers || s->obs_bad) return;
    qgroup *g = &s->grp[layer * GROUPS_PER_LAYER + what];
    if (k != g->k) {
        s->obs_bad = 2;
        s->obs_layer = layer;
        s->obs_point = what;
        return;
    }
    float *mn = g->cmin, *mx = g->cmax;
    for (int i = 0; i < m; i++) {
        const float *row = x + (size_t)i * k;
        for (int j = 0; j < k; j++) {
            float v = row[j];
            if (!isfinite(v)) {
                s->obs_bad = 1;
                s->obs_layer = layer;
                s->obs_point = what;
                return;
            }
            if (v < mn[j]) mn[j] = v;
            if (v > mx[j]) mx[j] = v;
        }
    }
}

static const char *point_layer_name(int what) {
    return what == W8_OBS_QKV_IN    ? "self_attn.q_proj/k_proj/v_proj"
           : what == W8_OBS_O_IN    ? "self_attn.o_proj"
           : what == W8_OBS_GATEUP_IN ? "mlp.gate_proj/up_proj"
                                      : "mlp.down_proj";
}

static int calibrate(qstate *s, w8_quant_report *rep) {
    const w8_quant_opts *o = s->o;
    for (int g = 0; g < s->n_grp; g++) {
        qgroup *gr = &s->grp[g];
        gr->cmin = w8_xmalloc((size_t)gr->k * sizeof(float));
        gr->cmax = w8_xmalloc((size_t)gr->k * sizeof(float));
        for (int j = 0; j < gr->k; j++) {
            gr->cmin[j] = 0; /* the range always contains 0 (FORMAT.md) */
            gr->cmax[j] = 0;
        }
    }
    w8_calib_set cs = {0};
    if (o->calib_file) {
        if (w8_calib_load(o->calib_file, &cs) != 0) return -1;
    } else {
        w8_calib_builtin(&cs);
    }
    int n_use = cs.n < o->calib_samples ? cs.n : o->calib_samples;
    note(s, "calibration: %d sample%s from %s, up to %d tokens each", n_use,
         n_use == 1 ? "" : "s", o->calib_file ? o->calib_file : "the built-in set",
         o->calib_seq_len);
    int rc = -1;
    w8_tok *tok = NULL;
    w8_model *m = NULL;
    w8_ctx *ctx = NULL;
    w8_kv *kv = NULL;
    int *pos = NULL;
    w8_seq **seqs = NULL;
    float *logits = NULL;
    if (!(tok = w8_tok_load(o->model_path))) {
        w8_preferr("calibration needs the source tokenizer");
        goto out;
    }
    if (!(m = w8_model_load(o->model_path))) goto out;
    int T = o->calib_seq_len, bs = 16;
    if (!(ctx = w8_ctx_new(m, T))) goto out;
    if (!(kv = w8_kv_new(&m->cfg, bs, (T + bs - 1) / bs))) goto out;
    w8_ctx_set_observer(ctx, observe, s);
    pos = w8_xmalloc((size_t)T * sizeof(int));
    seqs = w8_xmalloc((size_t)T * sizeof(w8_seq *));
    logits = w8_xmalloc((size_t)m->cfg.vocab * sizeof(float));
    w8_progress pb;
    w8_progress_begin(&pb, "calibrating", n_use);
    for (int i = 0; i < n_use; i++) {
        int *ids = NULL;
        const char *txt = cs.text[i];
        int n = w8_tok_encode(tok, txt, strlen(txt), 1, &ids);
        if (n < 0) {
            w8_preferr("calibration sample %d", i + 1);
            goto out;
        }
        if (n > T) n = T;
        for (int j = 0; j < n; j++)
            if (ids[j] < 0 || ids[j] >= m->cfg.vocab) {
                w8_seterr("calibration sample %d: token id %d outside the model's vocabulary "
                          "(%d)", i + 1, ids[j], m->cfg.vocab);
                free(ids);
                goto out;
            }
        if (n > 0) {
            w8_seq sq;
            w8_seq_init(&sq);
            if (w8_kv_seq_reserve(kv, &sq, n) != 0) {
                free(ids);
                w8_seterr("calibration: KV cache reservation failed");
                goto out;
            }
            for (int j = 0; j < n; j++) {
                pos[j] = j;
                seqs[j] = &sq;
            }
            w8_batch b = {n, ids, pos, seqs, NULL};
            int got = w8_forward(ctx, m, kv, &b, logits);
            w8_kv_seq_release(kv, &sq);
            rep->n_tokens += n;
            rep->n_samples++;
            if (got < 0) {
                free(ids);
                w8_preferr("calibration sample %d", i + 1);
                goto out;
            }
        }
        free(ids);
        if (s->obs_bad) {
            if (s->obs_bad == 1)
                w8_seterr("calibration sample %d: non-finite activation at the input of "
                          "model.layers.%d.%s", i + 1, s->obs_layer,
                          point_layer_name(s->obs_point));
            else
                w8_seterr("calibration: model.layers.%d.%s: observed input width differs "
                          "from the weight's", s->obs_layer, point_layer_name(s->obs_point));
            goto out;
        }
        w8_progress_update(&pb, i + 1, NULL);
    }
    w8_progress_end(&pb);
    if (rep->n_samples == 0) {
        w8_seterr("calibration: no sample produced any token");
        goto out;
    }
    rc = 0;
out:
    free(pos);
    free(seqs);
    free(logits);
    if (kv) w8_kv_free(kv);
    if (ctx) w8_ctx_free(ctx);
    if (m) w8_model_free(m);
    if (tok) w8_tok_free(tok);
    w8_calib_free(&cs);
    return rc;
}

/* ----------------------------------------------------------- sensitivity */

/* --disable_level / --sensitivity_report: rank the layers planned as W8A8 by
 * the KL their int8 version alone causes (sensitivity.c; K_Q..K_DOWN are
 * W8_SENS_Q..W8_SENS_DOWN) and keep the disable_level worst ones float.
 * Each layer is measured with the activation range calibrate() observed. */
static int sensitivity(qstate *s) {
    const w8_quant_opts *o = s->o;
    int n = 0, rc = -1;
    w8_sens_layer *sl = w8_xcalloc((size_t)s->n_lin, sizeof *sl);
    int *idx = w8_xmalloc((size_t)s->n_lin * sizeof(int));
    int *order = w8_xmalloc((size_t)s->n_lin * sizeof(int));
    w8_calib_set cs = {0};
    for (int j = 0; j < s->n_lin; j++) {
        const qlin *l = &s->lin[j];
        if (!l->quant || l->group < 0) continue;
        const qgroup *g = &s->grp[l->group];
        float lo = 0, hi = 0;
        for (int c = 0; c < g->k; c++) {
            lo = fminf(lo, g->cmin[c]);
            hi = fmaxf(hi, g->cmax[c]);
        }
        w8_sens_layer *x = &sl[n];
        snprintf(x->name, sizeof x->name, "%s", l->name);
        x->layer = l->layer;
        x->kind = l->kind;
        if (w8_quant_act_params(lo, hi, s->out_dt, &x->in_scale, &x->in_offset) != 0) {
            w8_preferr("%s", l->name);
            goto out;
        }
        idx[n++] = j;
    }
    if (!o->calib_file) w8_calib_builtin(&cs);
    else if (w8_calib_load(o->calib_file, &cs) != 0) goto out;
    w8_sens_stats st;
    if (w8_sens_measure(o->model_path, cs.text, cs.n < o->calib_samples ? cs.n : o->calib_samples,
                        o->calib_seq_len, sl, n, o->disable_level, &st, o->log != NULL) != 0)
        goto out;
    w8_sens_rank(sl, n, order);
    for (int r = 0; r < o->disable_level && r < n; r++) {
        qlin *l = &s->lin[idx[order[r]]];
        l->quant = 0;
        l->why = "--disable_level";
        s->grp[l->group].n_quant--;
    }
    w8_sens_print(o->log, sl, n, order, &st);
    if (o->sensitivity_report &&
        w8_sens_write_report(o->sensitivity_report, sl, n, order, &st) != 0)
        goto out;
    rc = 0;
out:
    w8_calib_free(&cs);
    free(sl);
    free(idx);
    free(order);
    return rc;
}

/* ---------------------------------------------------------------- params */

/* Drop the pages of a finished source tensor from this process (the mapping
 * is read-only and file-backed, so they are simply re-read if touched): keeps
 * the resident set near one layer instead of the whole model. */
static void release_pages(const w8_tensor *t) {
    if (t->nbytes < (1u << 20)) return;
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)t->data + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    uintptr_t e = ((uintptr_t)t->data + t->nbytes) & ~((uintptr_t)pg - 1);
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
}

static int smooth_group(qstate *s, int g, const char *norm_name) {
    qgroup *gr = &s->grp[g];
    const w8_tensor *nt = w8_st_find(s->st, norm_name);
    if (!nt || nt->ndim != 1 || nt->shape[0] != gr->k)
        return w8_seterr("%s: --anti_outlier needs tensor '%s' of [%d]", w8_st_path(s->st),
                         norm_name, gr->k);
    float *aw = w8_xcalloc((size_t)gr->k, sizeof(float));
    float *row = w8_xmalloc((size_t)gr->k * sizeof(float));
    for (int mbr = 0; mbr < gr->n_members; mbr++) {
        const qlin *l = &s->lin[gr->members[mbr]];
        for (int r = 0; r < l->n; r++) {
            for (int j = 0; j < l->k; j++) row[j] = w8_tensor_get_f32(l->w, (size_t)r * l->k + j);
            for (int j = 0; j < l->k; j++)
                if (fabsf(row[j]) > aw[j]) aw[j] = fabsf(row[j]);
        }
    }
    free(row);
    float a = s->o->alpha;
    gr->smooth = w8_xmalloc((size_t)gr->k * sizeof(float));
    for (int j = 0; j < gr->k; j++) {
        float ax = fmaxf(fabsf(gr->cmin[j]), fabsf(gr->cmax[j]));
        double v = 1.0;
        if (ax > 0 && aw[j] > 0 && isfinite(aw[j]))
            v = pow((double)ax, a) / pow((double)aw[j], 1.0 - a);
        if (!(v >= 1e-5)) v = 1e-5;
        if (v > 1e5) v = 1e5;
        gr->smooth[j] = (float)v;
    }
    free(aw);
    gr->norm = nt;
    return 0;
}

static int params(qstate *s) {
    for (int g = 0; g < s->n_grp; g++) {
        qgroup *gr = &s->grp[g];
        if (!gr->n_quant) continue;
        int pt = g % GROUPS_PER_LAYER, layer = g / GROUPS_PER_LAYER;
        if (s->o->smooth && (pt == W8_OBS_QKV_IN || pt == W8_OBS_GATEUP_IN)) {
            char nn[128];
            snprintf(nn, sizeof nn, "model.layers.%d.%s.weight", layer,
                     pt == W8_OBS_QKV_IN ? "input_layernorm" : "post_attention_layernorm");
            if (smooth_group(s, g, nn) != 0) return -1;
        }
        if (!gr->n_static) continue; /* W8A8_DYNAMIC: no input_scale */
        float lo = 0, hi = 0;
        for (int j = 0; j < gr->k; j++) {
            float d = gr->smooth ? gr->smooth[j] : 1.0f;
            if (gr->cmin[j] / d < lo) lo = gr->cmin[j] / d;
            if (gr->cmax[j] / d > hi) hi = gr->cmax[j] / d;
        }
        if (w8_quant_act_params(lo, hi, s->out_dt, &gr->in_scale, &gr->in_offset) != 0)
            return w8_preferr("model.layers.%d.%s", layer, point_layer_name(pt));
    }
    return 0;
}

/* ----------------------------------------------------------------- write */

enum { O_COPY, O_W8, O_ISCALE, O_IOFF, O_QBIAS, O_DEQ, O_NORM_SMOOTH, O_LIN_SMOOTH, O_WSCALE,
       O_WOFF, O_BIAS32 };

typedef struct {
    char *name;
    w8_dtype dt;
    int ndim;
    int64_t shape[W8_ST_MAX_DIMS];
    size_t nbytes;
    int what;              /* O_* */
    const w8_tensor *src;  /* source tensor (copies, weights, norms) */
    int lin, grp;          /* linear layer / group it belongs to, -1 */
    int quant;             /* description: 1 "W8A8", 2 "W8A8_DYNAMIC", 0 "FLOAT" */
    int shard;
} otensor;

typedef struct {
    otensor *t;
    int n, cap;
    int n_shards;
} olist;

static otensor *oadd(olist *ol, const char *base, const char *suffix, w8_dtype dt, int ndim,
                     const int64_t *shape, int what, const w8_tensor *src, int lin, int grp,
                     int quant) {
    if (ol->n == ol->cap) {
        ol->cap = ol->cap ? ol->cap * 2 : 256;
        ol->t = w8_xrealloc(ol->t, (size_t)ol->cap * sizeof(otensor));
    }
    otensor *t = &ol->t[ol->n++];
    memset(t, 0, sizeof *t);
    size_t a = strlen(base), b = strlen(suffix);
    t->name = w8_xmalloc(a + b + 1);
    memcpy(t->name, base, a);
    memcpy(t->name + a, suffix, b + 1);
    t->dt = dt;
    t->ndim = ndim;
    size_t nb = w8_dtype_size(dt);
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        nb *= (size_t)shape[i];
    }
    t->nbytes = nb;
    t->what = what;
    t->src = src;
    t->lin = lin;
    t->grp = grp;
    t->quant = quant;
    return t;
}

static void olist_free(olist *ol) {
    for (int i = 0; i < ol->n; i++) free(ol->t[i].name);
    free(ol->t);
}

/* The output list: source order, a quantized layer's .weight replaced by its
 * five tensors (kept adjacent so one layer at a time is in memory). */
static void build_outputs(qstate *s, olist *ol) {
    size_t nt = w8_st_count(s->st);
    for (size_t i = 0; i < nt; i++) {
        const w8_tensor *t = w8_st_at(s->st, i);
        int li = -1, gi = -1;
        for (int j = 0; j < s->n_lin && li < 0; j++)
            if (s->lin[j].w == t) li = j;
        for (int g = 0; g < s->n_grp && gi < 0; g++)
            if (s->grp[g].norm == t) gi = g;
        w8_dtype fdt = s->convert ? W8_BF16 : t->dtype;
        int bi = -1; /* the W8A8_DYNAMIC layer whose float bias this is */
        for (int j = 0; j < s->n_lin && bi < 0; j++)
            if (s->lin[j].b == t && s->lin[j].dyn) bi = j;
        if (li >= 0 && s->lin[li].dyn) {
            /* FORMAT.md's W8A8_DYNAMIC table: weight, weight_scale, weight_offset */
            const qlin *l = &s->lin[li];
            int64_t nk[2] = {l->n, l->k}, n1[2] = {l->n, 1};
            oadd(ol, l->name, ".weight", W8_I8, 2, nk, O_W8, t, li, l->group, 2);
            oadd(ol, l->name, ".weight_scale", W8_F32, 2, n1, O_WSCALE, t, li, l->group, 2);
            oadd(ol, l->name, ".weight_offset", W8_F32, 2, n1, O_WOFF, t, li, l->group, 2);
        } else if (bi >= 0) {
            oadd(ol, t->name, "", W8_F32, t->ndim, t->shape, O_BIAS32, t, bi, -1, 0);
        } else if (li >= 0 && s->lin[li].quant) {
            const qlin *l = &s->lin[li];
            int64_t nk[2] = {l->n, l->k}, one[1] = {1}, nn[1] = {l->n};
            oadd(ol, l->name, ".weight", W8_I8, 2, nk, O_W8, t, li, l->group, 1);
            oadd(ol, l->name, ".input_scale", s->out_dt, 1, one, O_ISCALE, t, li, l->group, 1);
            oadd(ol, l->name, ".input_offset", s->out_dt, 1, one, O_IOFF, t, li, l->group, 1);
            oadd(ol, l->name, ".quant_bias", W8_I32, 1, nn, O_QBIAS, t, li, l->group, 1);
            oadd(ol, l->name, ".deq_scale", s->out_dt == W8_F16 ? W8_I64 : W8_F32, 1, nn, O_DEQ,
                 t, li, l->group, 1);
        } else if (li >= 0 && s->lin[li].group >= 0 && s->grp[s->lin[li].group].smooth) {
            oadd(ol, t->name, "", fdt, t->ndim, t->shape, O_LIN_SMOOTH, t, li,
                 s->lin[li].group, 0);
        } else if (gi >= 0) {
            oadd(ol, t->name, "", fdt, t->ndim, t->shape, O_NORM_SMOOTH, t, -1, gi, 0);
        } else {
            oadd(ol, t->name, "", fdt, t->ndim, t->shape, O_COPY, t, -1, -1, 0);
        }
    }
    /* A tied model has no lm_head tensor, but vllm-ascend looks up
     * "lm_head.weight" in the description for every model: as msModelSlim
     * does, write the embedding's copy under that name, so that the key
     * exists and names a tensor.  Runtimes that honour tie_word_embeddings
     * use the embedding itself. */
    const w8_tensor *emb = w8_st_find(s->st, "model.embed_tokens.weight");
    if (s->cfg.tie_embeddings && emb && !w8_st_find(s->st, "lm_head.weight"))
        oadd(ol, "lm_head.weight", "", s->convert ? W8_BF16 : emb->dtype, emb->ndim, emb->shape,
             O_COPY, emb, -1, -1, 0);
}

/* Greedy shards in output order: a new shard starts when the next tensor
 * would pass the limit (a tensor larger than the limit gets its own). */
static void assign_shards(olist *ol, double gb) {
    size_t limit = gb > 0 ? (size_t)(gb * 1e9) : SIZE_MAX, cur = 0;
    int sh = 0;
    for (int i = 0; i < ol->n; i++) {
        if (cur > 0 && ol->t[i].nbytes > limit - cur) {
            sh++;
            cur = 0;
        }
        ol->t[i].shard = sh;
        cur += ol->t[i].nbytes;
        if (cur > limit) cur = limit;
    }
    ol->n_shards = sh + 1;
}

/* The int8 weights of the quantized layer being written.  quant_bias and
 * deq_scale (n values each) are kept for every layer in qstate, because the
 * alignment order writes them long before the int8 weights; the weights are
 * then recomputed (deterministically) when their turn comes. */
typedef struct {
    int lin;
    int8_t *wq;
} lcache;

static void lcache_clear(lcache *c) {
    free(c->wq);
    c->wq = NULL;
    c->lin = -1;
}

/* Source tensor as f32, with smoothing applied: a linear weight's columns
 * times s, a norm divided by s. */
static float *load_f32(const qstate *s, const w8_tensor *t, const qgroup *smooth_lin,
                       const qgroup *smooth_norm) {
    float *f = w8_xmalloc(t->numel * sizeof(float));
    w8_tensor_to_f32(t, f);
    if (smooth_lin && smooth_lin->smooth) {
        size_t k = (size_t)smooth_lin->k;
        for (size_t i = 0; i < t->numel; i++) f[i] *= smooth_lin->smooth[i % k];
    }
    if (smooth_norm && smooth_norm->smooth)
        for (size_t i = 0; i < t->numel; i++) f[i] /= smooth_norm->smooth[i];
    (void)s;
    return f;
}

static int compute_layer(qstate *s, int li, lcache *c) {
    lcache_clear(c);
    s->n_computed++;
    const qlin *l = &s->lin[li];
    const qgroup *g = &s->grp[l->group];
    float *w = load_f32(s, l->w, g, NULL);
    float *b = NULL;
    if (l->b && !l->dyn) {
        b = w8_xmalloc((size_t)l->n * sizeof(float));
        w8_tensor_to_f32(l->b, b);
    }
    int8_t *wq = w8_xmalloc((size_t)l->n * l->k);
    int32_t *qb = w8_xmalloc((size_t)l->n * sizeof(int32_t));
    float *deq = w8_xmalloc((size_t)l->n * sizeof(float));
    /* W8A8_DYNAMIC: the same per-channel weights with input scale 1 and no
     * bias, so deq comes out as weight_scale = max|W| / 127 and qb as 0 (the
     * float bias is written on its own) */
    int rc = l->dyn ? w8_quant_linear(w, NULL, l->n, l->k, 1.0f, 0, wq, qb, deq)
                    : w8_quant_linear(w, b, l->n, l->k, g->in_scale, g->in_offset, wq, qb, deq);
    free(w);
    free(b);
    release_pages(l->w);
    if (rc != 0) {
        free(wq);
        free(qb);
        free(deq);
        return w8_preferr("%s: tensor '%s.weight'", l->w->file, l->name);
    }
    if (!s->qbias[li]) {
        s->qbias[li] = qb;
        s->deq[li] = deq;
    } else {
        free(qb);
        free(deq);
    }
    c->lin = li;
    c->wq = wq;
    return 0;
}

/* First non-finite element of a float tensor, by its bits (no conversion). */
static long find_nonfinite(const w8_tensor *t) {
    size_t n = t->numel;
    if (t->dtype == W8_F32) {
        const uint32_t *p = t->data;
        for (size_t i = 0; i < n; i++)
            if ((p[i] & 0x7f800000u) == 0x7f800000u) return (long)i;
    } else if (t->dtype == W8_F16) {
        const uint16_t *p = t->data;
        for (size_t i = 0; i < n; i++)
            if ((p[i] & 0x7c00u) == 0x7c00u) return (long)i;
    } else if (t->dtype == W8_BF16) {
        const uint16_t *p = t->data;
        for (size_t i = 0; i < n; i++)
            if ((p[i] & 0x7f80u) == 0x7f80u) return (long)i;
    }
    return -1;
}

static void *f32_to_dtype(const float *f, size_t n, w8_dtype dt) {
    if (dt == W8_F32) {
        void *p = w8_xmalloc(n * 4);
        memcpy(p, f, n * 4);
        return p;
    }
    uint16_t *h = w8_xmalloc(n * 2);
    for (size_t i = 0; i < n; i++) h[i] = dt == W8_F16 ? w8_f32_to_f16(f[i]) : w8_f32_to_bf16(f[i]);
    return h;
}

/* Bytes of output tensor t: a pointer into the source or a fresh buffer (*own). */
static const void *produce(qstate *s, const otensor *t, lcache *c, void **own) {
    *own = NULL;
    if (t->what == O_COPY || t->what == O_LIN_SMOOTH || t->what == O_NORM_SMOOTH ||
        t->what == O_BIAS32) {
        long bad = find_nonfinite(t->src);
        if (bad >= 0) {
            w8_seterr("%s: tensor '%s' has a non-finite value (NaN or Inf) at element %ld",
                      t->src->file, t->src->name, bad);
            return NULL;
        }
        if (t->what == O_COPY && !s->convert) return t->src->data;
        if (t->what == O_BIAS32) { /* a W8A8_DYNAMIC layer's bias: fp32 (FORMAT.md) */
            float *f = w8_xmalloc(t->src->numel * sizeof(float));
            w8_tensor_to_f32(t->src, f);
            return *own = f;
        }
        const qgroup *gl = t->what == O_LIN_SMOOTH ? &s->grp[t->grp] : NULL;
        const qgroup *gn = t->what == O_NORM_SMOOTH ? &s->grp[t->grp] : NULL;
        float *f = load_f32(s, t->src, gl, gn);
        *own = f32_to_dtype(f, t->src->numel, t->dt);
        free(f);
        return *own;
    }
    const qgroup *g = &s->grp[t->grp];
    const qlin *l = &s->lin[t->lin];
    if (t->what == O_WOFF) return *own = w8_xcalloc((size_t)l->n, sizeof(float));
    if (t->what == O_ISCALE || t->what == O_IOFF) {
        uint16_t *h = w8_xmalloc(2);
        float v = t->what == O_ISCALE ? g->in_scale : (float)g->in_offset;
        *h = s->out_dt == W8_F16 ? w8_f32_to_f16(v) : w8_f32_to_bf16(v);
        return *own = h;
    }
    int need = t->what == O_W8 ? c->lin != t->lin : !s->qbias[t->lin];
    if (need && compute_layer(s, t->lin, c) != 0) return NULL;
    if (t->what == O_W8) return c->wq;
    if (t->what == O_QBIAS) return s->qbias[t->lin];
    if (t->what == O_WSCALE) return s->deq[t->lin];
    /* deq_scale: F32 for bf16 models; for fp16 models the f32 bit pattern
     * widened to int64 (upper 32 bits zero: the value is positive) */
    if (s->out_dt == W8_BF16) return s->deq[t->lin];
    int64_t *d = w8_xmalloc((size_t)l->n * sizeof(int64_t));
    for (int i = 0; i < l->n; i++) {
        uint32_t u;
        memcpy(&u, &s->deq[t->lin][i], 4);
        d[i] = (int64_t)u;
    }
    return *own = d;
}

static char *shard_name(int i, int n) {
    char buf[96];
    if (n == 1) snprintf(buf, sizeof buf, "quant_model_weight_w8a8.safetensors");
    else snprintf(buf, sizeof buf, "quant_model_weight_w8a8-%05d-of-%05d.safetensors", i + 1, n);
    return w8_xstrdup(buf);
}

/* Test hook: W8A8_TEST_QUANT_SLEEP=SECONDS pauses after the first tensor is
 * written, so a test can SIGKILL a run in the middle of writing. */
static void test_pause(void) {
    const char *e = getenv("W8A8_TEST_QUANT_SLEEP");
    if (e && atoi(e) > 0) sleep((unsigned)atoi(e));
}

/* Within a file, tensors go by decreasing element size (8, 4, 2, 1 bytes),
 * as Hugging Face's safetensors writer does: the data area starts 8-aligned
 * and has no gaps, so every tensor is then aligned to its element size and
 * zero-copy readers can use I64/F32/I32 data in place. */
/* W8A8_DYNAMIC: the int8 weights go first when each is a multiple of 8
 * bytes (every real model: k is), so the alignment still holds, and each
 * layer's weight_scale is then known when its turn comes: every source
 * weight is read and quantized once (the size order would read it twice,
 * once for the scales and once for the int8 weights). */
static int *shard_order(const olist *ol, int sh, int *n_out, int i8_first) {
    int *ord = w8_xmalloc((size_t)ol->n * sizeof(int)), n = 0;
    for (int i = 0; i < ol->n && i8_first; i++)
        if (ol->t[i].shard == sh && ol->t[i].dt == W8_I8 && ol->t[i].nbytes % 8) i8_first = 0;
    if (i8_first)
        for (int i = 0; i < ol->n; i++)
            if (ol->t[i].shard == sh && ol->t[i].dt == W8_I8) ord[n++] = i;
    for (size_t sz = 8; sz >= 1; sz /= 2)
        for (int i = 0; i < ol->n; i++)
            if (ol->t[i].shard == sh && w8_dtype_size(ol->t[i].dt) == sz &&
                !(i8_first && ol->t[i].dt == W8_I8))
                ord[n++] = i;
    *n_out = n;
    return ord;
}

static int write_shards(qstate *s, olist *ol, const char *tmp, w8_quant_report *rep) {
    lcache c = {-1, NULL};
    w8_progress pb;
    w8_progress_begin(&pb, "writing", ol->n);
    int done = 0, rc = 0, paused = 0;
    for (int sh = 0; sh < ol->n_shards && rc == 0; sh++) {
        char *fn = shard_name(sh, ol->n_shards);
        char *path = w8_path_join(tmp, fn);
        free(fn);
        w8_stw *w = w8_stw_create(path);
        free(path);
        if (!w) {
            rc = -1;
            break;
        }
        int n;
        int *ord = shard_order(ol, sh, &n, s->o->quant_type == W8_QUANT_DYNAMIC);
        for (int i = 0; i < n && rc == 0; i++) {
            const otensor *t = &ol->t[ord[i]];
            rc = w8_stw_declare(w, t->name, t->dt, t->ndim, t->shape);
        }
        if (rc == 0) rc = w8_stw_set_meta(w, "format", "pt");
        if (rc == 0) rc = w8_stw_begin(w);
        for (int i = 0; i < n && rc == 0; i++) {
            const otensor *t = &ol->t[ord[i]];
            void *own;
            const void *p = produce(s, t, &c, &own);
            if (!p) {
                rc = -1;
                break;
            }
            rc = w8_stw_write(w, t->name, p, t->nbytes);
            free(own);
            if (t->what == O_COPY) release_pages(t->src);
            rep->bytes += t->nbytes;
            w8_progress_update(&pb, ++done, NULL);
            if (!paused) {
                paused = 1;
                test_pause();
            }
        }
        free(ord);
        if (rc == 0) rc = w8_stw_finish(w);
        else w8_stw_abort(w);
    }
    lcache_clear(&c);
    if (rc == 0) w8_progress_end(&pb);
    rep->n_tensors = done;
    rep->n_shards = ol->n_shards;
    return rc;
}

/* Write a whole small file and make it durable; errors name the file. */
static int write_text(const char *dir, const char *name, const char *text) {
    char *path = w8_path_join(dir, name);
    int rc = 0;
    FILE *f = fopen(path, "wb");
    if (!f) {
        rc = w8_seterr("%s: cannot create: %s", path, strerror(errno));
    } else {
        size_t n = strlen(text);
        if (fwrite(text, 1, n, f) != n || fflush(f) != 0 || fsync(fileno(f)) != 0)
            rc = w8_seterr("%s: write failed: %s", path, strerror(errno));
        if (fclose(f) != 0 && rc == 0) rc = w8_seterr("%s: close failed: %s", path, strerror(errno));
    }
    free(path);
    return rc;
}

static int write_json(const char *dir, const char *name, json_t *v) {
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    if (!text) return w8_seterr("%s: out of memory serializing", name);
    size_t n = strlen(text);
    text = realloc(text, n + 2);
    text[n] = '\n';
    text[n + 1] = 0;
    int rc = write_text(dir, name, text);
    free(text);
    return rc;
}

/* model_quant_type: W8A8_DYNAMIC only when every quantized layer is; a mixed
 * directory stays "W8A8" and each layer's value decides (vllm-ascend). */
static int write_description(const qstate *s, const olist *ol, const char *tmp) {
    static const char *const val[] = {"FLOAT", "W8A8", "W8A8_DYNAMIC"};
    json_t *d = json_object();
    json_object_set_new(d, "model_quant_type",
                        json_string(s->o->quant_type == W8_QUANT_DYNAMIC ? "W8A8_DYNAMIC" : "W8A8"));
    json_object_set_new(d, "version", json_string("1.0.0"));
    for (int i = 0; i < ol->n; i++)
        json_object_set_new(d, ol->t[i].name, json_string(val[ol->t[i].quant]));
    int rc = write_json(tmp, "quant_model_description.json", d);
    json_decref(d);
    return rc;
}

static int write_index(const olist *ol, const char *tmp) {
    size_t total = 0;
    json_t *wm = json_object();
    for (int i = 0; i < ol->n; i++) {
        total += ol->t[i].nbytes;
        char *fn = shard_name(ol->t[i].shard, ol->n_shards);
        json_object_set_new(wm, ol->t[i].name, json_string(fn));
        free(fn);
    }
    json_t *root = json_object(), *meta = json_object();
    json_object_set_new(meta, "total_size", json_integer((json_int_t)total));
    json_object_set_new(root, "metadata", meta);
    json_object_set_new(root, "weight_map", wm);
    int rc = write_json(tmp, "quant_model_weight_w8a8.safetensors.index.json", root);
    json_decref(root);
    return rc;
}

/* One text edit of the config (w8_json_text_set / _del); *t is replaced.
 * A NULL result (text not an object) leaves *t NULL. */
static void edit_text(char **t, const char *key, const char *value) {
    if (!*t) return;
    char *e = value ? w8_json_text_set(*t, strlen(*t), key, value) : w8_json_text_del(*t, strlen(*t), key);
    free(*t);
    *t = e;
}

/* config.json of the output: the source's text with only these changes made
 * to it, so every other byte (number spellings such as 1e-05, key order,
 * layout) stays as the source wrote it:
 *  - "quantize": "w8a8" added after the last key (its value replaced when
 *    the source has the key);
 *  - for an f32 source (its float tensors become bf16), the dtype key the
 *    source uses ("dtype", "torch_dtype" or both) set to "bfloat16", and
 *    "torch_dtype" added only when it has neither, so no two keys disagree;
 *  - "quantization_config" dropped: vllm-ascend would follow it instead of
 *    the description.  Every source tensor is F16/BF16/F32 (plan() refuses
 *    others), so it can only describe a quantize-on-load recipe, which our
 *    W8A8 output replaces.
 * The edited text must parse to exactly the intended object; if it ever
 * does not (a key written with escapes), the object is written instead. */
static int write_config(const qstate *s, const char *tmp) {
    char *src = w8_path_join(s->o->model_path, "config.json");
    size_t len;
    char *text = w8_read_file(src, W8_JSON_MAX_FILE, &len);
    free(src);
    if (!text) return -1;
    json_t *cfg = w8_json_load_buf(text, len, "config.json");
    if (!cfg || !json_is_object(cfg)) {
        free(text);
        json_decref(cfg);
        return cfg ? w8_seterr("config.json: not a JSON object") : -1;
    }
    json_t *want = json_deep_copy(cfg);
    char *ed = w8_xstrndup(text, len);
    const json_t *qc = json_object_get(cfg, "quantization_config");
    if (qc) {
        const json_t *qm = json_object_get(qc, "quant_method");
        note(s, "note: config.json's quantization_config (quant_method %s) is not copied: the "
             "output is W8A8, described by quant_model_description.json",
             json_is_string(qm) ? json_string_value(qm) : "unknown");
        edit_text(&ed, "quantization_config", NULL);
        json_object_del(want, "quantization_config");
    }
    /* MindIE reads "quantize" first; a mixed directory says "w8a8" */
    const char *qv = s->o->quant_type == W8_QUANT_DYNAMIC ? "w8a8_dynamic" : "w8a8";
    char qtext[32];
    snprintf(qtext, sizeof qtext, "\"%s\"", qv);
    edit_text(&ed, "quantize", qtext);
    json_object_set_new(want, "quantize", json_string(qv));
    if (s->convert) {
        static const char *const keys[] = {"dtype", "torch_dtype"};
        int any = 0;
        for (int i = 0; i < 2; i++)
            if (json_object_get(cfg, keys[i])) {
                any = 1;
                edit_text(&ed, keys[i], "\"bfloat16\"");
                json_object_set_new(want, keys[i], json_string("bfloat16"));
            }
        if (!any) {
            edit_text(&ed, "torch_dtype", "\"bfloat16\"");
            json_object_set_new(want, "torch_dtype", json_string("bfloat16"));
        }
    }
    json_error_t je;
    json_t *check = ed ? w8_json_parse(ed, strlen(ed), &je) : NULL;
    int rc = check && json_equal(check, want) ? write_text(tmp, "config.json", ed)
                                              : write_json(tmp, "config.json", want);
    json_decref(check);
    json_decref(want);
    free(ed);
    json_decref(cfg);
    free(text);
    return rc;
}

/* Weight files and files we write ourselves are not copied. */
static int skip_copy(const char *n) {
    size_t l = strlen(n);
#define ENDS(sfx) (l >= sizeof(sfx) - 1 && !strcmp(n + l - (sizeof(sfx) - 1), sfx))
    return n[0] == '.' || !strcmp(n, "config.json") || ENDS(".safetensors") ||
           ENDS(".safetensors.index.json") || ENDS(".bin") || ENDS(".pt") || ENDS(".pth") ||
           ENDS(".gguf") || ENDS(".ckpt") || ENDS(".h5") || ENDS(".msgpack") ||
           !strncmp(n, "quant_model_description", 23) || ENDS(".bin.index.json");
#undef ENDS
}

static int copy_side_files(const qstate *s, const char *tmp) {
    DIR *d = opendir(s->o->model_path);
    if (!d) return w8_seterr("%s: cannot list: %s", s->o->model_path, strerror(errno));
    struct dirent *e;
    int rc = 0;
    /* readdir order is not stable: collect and sort for a deterministic log */
    char **names = NULL;
    int n = 0, cap = 0;
    while ((e = readdir(d))) {
        if (skip_copy(e->d_name)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = w8_xrealloc(names, (size_t)cap * sizeof(char *));
        }
        names[n++] = w8_xstrdup(e->d_name);
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        char *sp = w8_path_join(s->o->model_path, names[i]);
        struct stat st;
        if (rc == 0 && stat(sp, &st) == 0 && S_ISREG(st.st_mode)) {
            char *dp = w8_path_join(tmp, names[i]);
            rc = w8_copy_file(sp, dp);
            free(dp);
        }
        free(sp);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* -------------------------------------------------------------- safety */

static char *strip_slashes(const char *p) {
    char *s = w8_xstrdup(p);
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/') s[--n] = 0;
    return s;
}

/* Absolute, resolved form of a path that may not exist yet (its parent must). */
static char *resolve(const char *p) {
    char *r = realpath(p, NULL);
    if (r) return r;
    char *cp = w8_xstrdup(p);
    char *slash = strrchr(cp, '/');
    const char *base = slash ? slash + 1 : cp;
    char *parent = slash ? (slash == cp ? w8_xstrdup("/") : w8_xstrndup(cp, (size_t)(slash - cp)))
                         : w8_xstrdup(".");
    char *rp = realpath(parent, NULL);
    char *out = rp ? w8_path_join(rp, base) : NULL;
    free(rp);
    free(parent);
    free(cp);
    return out;
}

static int path_within(const char *a, const char *b) { /* a == b or a inside b */
    size_t n = strlen(b);
    return !strncmp(a, b, n) && (a[n] == 0 || a[n] == '/' || (n == 1 && b[0] == '/'));
}

/* The quantizer's own checks before the directory transaction's: the source
 * must open, and the target must be neither the source nor inside it (nor
 * the other way round). */
static int check_target(const w8_quant_opts *o, const char *save) {
    char *rs = resolve(save), *rm = realpath(o->model_path, NULL);
    int rc = 0;
    if (!rm) rc = w8_seterr("%s: cannot open model directory: %s", o->model_path, strerror(errno));
    else if (!rs)
        rc = w8_seterr("%s: the parent directory of --save_path does not exist", save);
    else if (path_within(rs, rm) || path_within(rm, rs))
        rc = w8_seterr("--save_path %s and --model_path %s overlap; choose a separate directory",
                       save, o->model_path);
    free(rs);
    free(rm);
    return rc;
}

/* ------------------------------------------------------------------ main */

static double cpu_now(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

void w8_quant_opts_init(w8_quant_opts *o) {
    memset(o, 0, sizeof *o);
    o->calib_samples = 50;
    o->calib_seq_len = 256;
    o->alpha = 0.5f;
}

static void free_state(qstate *s) {
    for (int g = 0; g < s->n_grp; g++) {
        free(s->grp[g].cmin);
        free(s->grp[g].cmax);
        free(s->grp[g].smooth);
    }
    for (int j = 0; j < s->n_lin && s->qbias; j++) {
        free(s->qbias[j]);
        free(s->deq[j]);
    }
    free(s->qbias);
    free(s->deq);
    free(s->grp);
    free(s->lin);
    if (s->st) w8_st_close(s->st);
}

int w8_quantize(const w8_quant_opts *o, w8_quant_report *rep) {
    memset(rep, 0, sizeof *rep);
    double t0 = w8_now();
    if (!o->model_path || !o->save_path) return w8_seterr("--model_path and --save_path are required");
    if (o->calib_samples < 1) return w8_seterr("--calib_samples must be at least 1");
    if (o->calib_seq_len < 1) return w8_seterr("--calib_seq_len must be at least 1");
    if (o->smooth && !(o->alpha >= 0 && o->alpha <= 1))
        return w8_seterr("--alpha must be in [0, 1]");
    if (o->part_file_size_gb < 0) return w8_seterr("--part_file_size must be positive");
    qstate s;
    memset(&s, 0, sizeof s);
    s.o = o;
    char *save = strip_slashes(o->save_path);
    w8_dirtx tx = {0};
    int rc = -1;
    olist ol = {0};
    if (!w8_is_dir(o->model_path)) {
        w8_seterr("%s: model directory not found", o->model_path);
        goto out;
    }
    if (check_target(o, save) != 0) goto out;
    if (w8_dirtx_begin(&tx, save, o->force, "quant", o->log) != 0) goto out;
    if (w8_config_load(o->model_path, &s.cfg) != 0) goto out;
    {
        w8_qdesc *qd = NULL;
        if (w8_qdesc_load(o->model_path, &qd) != 0) goto out;
        if (qd || s.cfg.quantize_w8a8) {
            w8_qdesc_free(qd);
            w8_seterr("%s is already a W8A8 model; quantize its float source instead",
                      o->model_path);
            goto out;
        }
    }
    if (!(s.st = w8_st_open_dir(o->model_path))) goto out;
    if (plan(&s) != 0) goto out;
    if (s.convert)
        note(&s, "note: the source is F32; the output uses the bf16 table (float tensors "
             "converted to bf16)");
    print_plan(&s);

    double tc = w8_now(), cc = cpu_now();
    if (needs_calibration(&s) && calibrate(&s, rep) != 0) goto out;
    rep->calib_seconds = w8_now() - tc;
    rep->calib_cpu_seconds = cpu_now() - cc;
    if ((o->disable_level > 0 || o->sensitivity_report) && sensitivity(&s) != 0) goto out;
    if (params(&s) != 0) goto out;

    s.qbias = w8_xcalloc((size_t)s.n_lin, sizeof(int32_t *));
    s.deq = w8_xcalloc((size_t)s.n_lin, sizeof(float *));
    build_outputs(&s, &ol);
    assign_shards(&ol, o->part_file_size_gb);
    double tw = w8_now();
    if (write_shards(&s, &ol, tx.tmp, rep) != 0) goto out;
    if (write_description(&s, &ol, tx.tmp) != 0) goto out;
    if (ol.n_shards > 1 && write_index(&ol, tx.tmp) != 0) goto out;
    if (write_config(&s, tx.tmp) != 0) goto out;
    if (copy_side_files(&s, tx.tmp) != 0) goto out;
    rep->write_seconds = w8_now() - tw;
    if (w8_dirtx_commit(&tx) != 0) goto out;
    for (int j = 0; j < s.n_lin; j++) {
        if (s.lin[j].quant) rep->n_quant++;
        else rep->n_float++;
        rep->n_dynamic += s.lin[j].dyn;
    }
    rep->n_layer_quantizations = s.n_computed;
    rc = 0;
out:
    w8_dirtx_abort(&tx);
    olist_free(&ol);
    free_state(&s);
    free(save);
    rep->seconds = w8_now() - t0;
    rep->peak_rss = w8_peak_rss_bytes();
    rep->cpu_seconds = cpu_now();
    return rc;
}

/*
 * plan.c - the quantizer's plan (plan.h): which linear layers become W8A8,
 * W8A8_DYNAMIC or stay float and why (the recipe), the groups of layers
 * that read one input, calibration (per-channel min/max of every group's
 * input over the float engine), the sensitivity ranking, and each group's
 * SmoothQuant vector and activation parameters.
 */
#include "plan.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../batch.h"
#include "../forward.h"
#include "../kv_cache.h"
#include "../model.h"
#include "../tokenizer/tokenizer.h"
#include "../util.h"
#include "sensitivity.h"

static const char *const kind_path[] = {"self_attn.q_proj", "self_attn.k_proj",
                                        "self_attn.v_proj", "self_attn.o_proj",
                                        "mlp.gate_proj",    "mlp.up_proj",
                                        "mlp.down_proj"};
static const int kind_point[] = {W8_OBS_QKV_IN,    W8_OBS_QKV_IN,    W8_OBS_QKV_IN, W8_OBS_O_IN,
                                 W8_OBS_GATEUP_IN, W8_OBS_GATEUP_IN, W8_OBS_DOWN_IN};

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

/* Calibration (running the float model) is needed for static W8A8 layers'
 * input_scale and for SmoothQuant's activation amax; W8A8_DYNAMIC alone
 * reads each weight and never runs the model. */
int w8_qplan_needs_calibration(const qstate *s) {
    if (s->o->smooth) return 1;
    for (int g = 0; g < s->n_grp; g++)
        if (s->grp[g].n_static) return 1;
    return 0;
}

int w8_qplan(qstate *s) {
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
    for (size_t i = 0; i < w8_st_count(s->st) && w8_qplan_needs_calibration(s); i++) {
        const w8_tensor *t = w8_st_at(s->st, i);
        long bad = w8_qs_find_nonfinite(t);
        w8_qs_release_pages(t);
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

void w8_qplan_print(const qstate *s) {
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

int w8_qplan_calibrate(qstate *s, w8_quant_report *rep) {
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
    w8_batch_buf bb = {0};
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
    w8_batch_buf_init(&bb, T);
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
            w8_batch_clear(&bb);
            for (int j = 0; j < n; j++) w8_batch_add(&bb, ids[j], j, &sq, j == n - 1);
            int got = w8_forward(ctx, m, kv, &bb.b, logits);
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
    w8_batch_buf_free(&bb);
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
int w8_qplan_sensitivity(qstate *s) {
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

int w8_qplan_params(qstate *s) {
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

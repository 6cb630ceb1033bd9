/*
 * inspect.c - model directory summary, FORMAT.md validation and the
 * consumers' verdicts.
 *
 * Violations (FORMAT.md broken; the command exits 1), each one line naming
 * the tensor or file:
 *   - the description (any of w8_qdesc_files) parses, has no duplicate keys,
 *     has "model_quant_type" "W8A8" or "W8A8_DYNAMIC", gives every tensor
 *     exactly one entry and names no missing tensor;
 *   - every quantized layer passes the one reader, w8_qlayer_read (tensors,
 *     dtypes per table, shapes, scale sanity) -- the runtime's rules too;
 *   - q/k/v and gate/up share identical input_scale and input_offset;
 *   - config.json's "quantize", when present, matches the description;
 *   - no tensor the architecture needs is missing.
 * Variants (accepted, reported): other weights file names, an index,
 * F32 input_scale/offset, weight_scale/offset in W8A8 layers, description
 * keys metadata/group_size/optional, another description file name, no
 * "quantize" in config.json.
 * Consumers (reported per engine, see FORMAT.md "What the real consumers
 * require"): lm_head.weight key, fused groups of one type, equal fused
 * scales, no quantization_config, quantize or model_quant_type, no unknown
 * and no missing tensor names, W8A8 mixed with W8A8_DYNAMIC, and on 310P
 * no W8A8_DYNAMIC linear layer (vllm-ascend registers its 310P dynamic
 * scheme for MoE layers only).
 * The model dtype comes from the float tensors (embeddings first), with
 * config torch_dtype as the fallback.
 */
#include "inspect.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "json.h"
#include "qlayer.h"
#include "safetensors.h"
#include "util.h"

#define viol(r, ...) w8_lines_addf(&(r)->violations, &(r)->n_violations, __VA_ARGS__)
#define variant(r, ...) w8_lines_addf(&(r)->variants, &(r)->n_variants, __VA_ARGS__)

const char *const w8_consumer_names[W8_N_CONSUMERS] = {"vllm-ascend A2/A3", "vllm-ascend 310P",
                                                       "MindIE"};


/* Consumer bits for cons(). */
#define C_VLLM (1 << W8_CONS_VLLM)
#define C_310P (1 << W8_CONS_VLLM_310P)
#define C_MINDIE (1 << W8_CONS_MINDIE)
#define C_ALL (C_VLLM | C_310P | C_MINDIE)

/* A consumer rule that fails, for each consumer in mask. */
static void cons(w8_inspect_info *r, int mask, const char *fmt, ...) W8_PRINTF(3, 4);
static void cons(w8_inspect_info *r, int mask, const char *fmt, ...) {
    char buf[W8_ERRMAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (int c = 0; c < W8_N_CONSUMERS; c++)
        if (mask & (1 << c)) w8_lines_add(&r->cons_fail[c], &r->n_cons_fail[c], buf);
}

void w8_inspect_free(w8_inspect_info *r) {
    w8_lines_free(r->violations, r->n_violations);
    w8_lines_free(r->variants, r->n_variants);
    for (int c = 0; c < W8_N_CONSUMERS; c++) w8_lines_free(r->cons_fail[c], r->n_cons_fail[c]);
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

static void update_range(double *lo, double *hi, double v) {
    if (v < *lo) *lo = v;
    if (v > *hi) *hi = v;
}

/* Layers reading one input (q/k/v, gate/up): FORMAT.md and MindIE need
 * identical input_scale/offset; FORMAT.md and vllm-ascend need one
 * description value for all of them (it builds one fused layer and looks up
 * each part). */
static void check_group(ictx *c, const char *prefix, const char *const *members, int nm,
                        int *type_rule, int *scale_rule) {
    double s0 = NAN, o0 = NAN;
    const char *first = NULL, *v0 = NULL;
    char name[320];
    for (int i = 0; i < nm; i++) {
        snprintf(name, sizeof name, "%s%s.weight", prefix, members[i]);
        const char *dv = desc_val(c, name);
        if (!dv || (i > 0 && (!v0 || strcmp(dv, v0)))) {
            /* FORMAT.md: fused groups share one type (the runtime fuses them too) */
            if (dv && v0)
                viol(c->r, "%s: \"%s\" but %s%s.weight is \"%s\"; fused layers must share one type",
                     name, dv, prefix, members[0], v0);
            if (!(*type_rule)++)
                cons(c->r, C_VLLM | C_310P,
                     "fused group of one type: '%s' is %s%s%s but '%s%s.weight' is %s%s%s "
                     "(vllm-ascend raises on a fused layer whose parts differ)", name,
                     dv ? "\"" : "", dv ? dv : "missing", dv ? "\"" : "", prefix, members[0],
                     v0 ? "\"" : "", v0 ? v0 : "missing", v0 ? "\"" : "");
        }
        if (i == 0) v0 = dv;
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
            if (!(*scale_rule)++)
                cons(c->r, C_MINDIE,
                     "equal scales in fused groups: %s%s's input_scale/offset differ from "
                     "%s%s's (MindIE packs them into one matmul and raises)", prefix,
                     members[i], prefix, first);
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
    const json_t *td = json_object_get(cfg, "dtype"); /* transformers >= 4.56; torch_dtype before */
    if (!json_is_string(td)) td = json_object_get(cfg, "torch_dtype");
    int d = dtype_from_torch(json_is_string(td) ? json_string_value(td) : NULL);
    return d >= 0 ? d : W8_BF16;
}

static int is_qtype(const char *v) {
    w8_qtype t = w8_qtype_parse(v);
    return t == W8_QT_W8A8 || t == W8_QT_W8A8_DYNAMIC;
}

static void check_description(ictx *c) {
    w8_inspect_info *r = c->r;
    const json_t *mq = json_object_get(c->desc, "model_quant_type");
    if (!json_is_string(mq) || !is_qtype(json_string_value(mq)))
        viol(r, "description: model_quant_type is %s, expected \"W8A8\" or \"W8A8_DYNAMIC\"",
             json_is_string(mq) ? json_string_value(mq) : "missing");
    /* every tensor exactly once (duplicate keys were refused by the parser) */
    for (size_t i = 0; i < w8_st_count(c->st); i++) {
        const w8_tensor *t = w8_st_at(c->st, i);
        const json_t *v = json_object_get(c->desc, t->name);
        if (!v) viol(r, "description: no entry for tensor '%s'", t->name);
        else if (!json_is_string(v) || (!is_qtype(json_string_value(v)) &&
                                        strcmp(json_string_value(v), "FLOAT")))
            viol(r, "description: entry '%s' is not \"W8A8\", \"W8A8_DYNAMIC\" or \"FLOAT\"",
                 t->name);
    }
    /* every entry names a tensor; top-level keys without a dot are settings:
     * ours (model_quant_type, version) and those of msModelSlim's current
     * saver (metadata, group_size, optional) */
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)c->desc, key, v) {
        if (!strcmp(key, "model_quant_type") || !strcmp(key, "version")) continue;
        if (!strchr(key, '.')) {
            int known = !strcmp(key, "metadata") || !strcmp(key, "group_size") ||
                        !strcmp(key, "optional");
            variant(r, "description key '%s' (%s)", key,
                    known ? "msModelSlim's current saver" : "unknown setting, ignored");
            continue;
        }
        if (!w8_st_find(c->st, key)) viol(r, "description: entry '%s' names no tensor", key);
    }
    if (!json_object_get(c->desc, "lm_head.weight"))
        cons(r, C_VLLM | C_310P, "lm_head.weight key: the description has no \"lm_head.weight\" "
             "(vllm-ascend looks it up for every model, tied or not: KeyError)");
}

/* Tensor names the architecture defines, as a set: name -> 1 required,
 * 0 known but optional.  Linear layers get the names of their type. */
static void arch_names(const ictx *c, const w8_config *cfg, json_t *set) {
    static const char *const lin[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                      "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                      "mlp.down_proj"};
    static const char *const w8a8[] = {"input_scale", "input_offset", "quant_bias", "deq_scale"};
    char name[320], p[256];
#define ADD(n, req) json_object_set_new(set, (n), json_integer(req))
    ADD("model.embed_tokens.weight", 1);
    ADD("model.norm.weight", 1);
    ADD("model.norm.bias", 0);
    ADD("lm_head.weight", !cfg->tie_embeddings);
    int qk_norm = strstr(cfg->arch_name, "Qwen3") != NULL;
    for (int l = 0; l < cfg->n_layers; l++) {
        static const char *const norms[] = {"input_layernorm", "post_attention_layernorm"};
        for (int i = 0; i < 2; i++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, norms[i]);
            ADD(name, 1);
            snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, norms[i]);
            ADD(name, 0); /* anti-outlier */
        }
        snprintf(name, sizeof name, "model.layers.%d.self_attn.q_norm.weight", l);
        if (qk_norm) ADD(name, 1);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.k_norm.weight", l);
        if (qk_norm) ADD(name, 1);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.rotary_emb.inv_freq", l);
        ADD(name, 0); /* old checkpoints; every loader skips it */
        for (int j = 0; j < 7; j++) {
            snprintf(p, sizeof p, "model.layers.%d.%s", l, lin[j]);
            snprintf(name, sizeof name, "%s.weight", p);
            ADD(name, 1);
            int bias = j < 3 ? cfg->qkv_bias : j == 3 ? cfg->o_bias : cfg->mlp_bias;
            snprintf(name, sizeof name, "%s.bias", p);
            if (bias) ADD(name, 1);
            snprintf(name, sizeof name, "%s.weight", p);
            w8_qtype t = w8_qtype_parse(desc_val(c, name));
            for (int k = 0; t == W8_QT_W8A8 && k < 4; k++) {
                snprintf(name, sizeof name, "%s.%s", p, w8a8[k]);
                ADD(name, 1);
            }
            /* vllm-ascend's W8A8 scheme declares weight_scale/offset too */
            snprintf(name, sizeof name, "%s.weight_scale", p);
            if (t == W8_QT_W8A8 || t == W8_QT_W8A8_DYNAMIC) ADD(name, t == W8_QT_W8A8_DYNAMIC);
            snprintf(name, sizeof name, "%s.weight_offset", p);
            if (t == W8_QT_W8A8 || t == W8_QT_W8A8_DYNAMIC) ADD(name, t == W8_QT_W8A8_DYNAMIC);
        }
    }
#undef ADD
}

/* No tensor the architecture does not define (vllm-ascend raises on an
 * unknown name), none missing (vllm-ascend would run on garbage). */
static void check_names(ictx *c, const w8_config *cfg) {
    w8_inspect_info *r = c->r;
    json_t *set = json_object();
    arch_names(c, cfg, set);
    int unknown = 0, missing = 0;
    const char *first_unknown = NULL, *first_missing = NULL;
    for (size_t i = 0; i < w8_st_count(c->st); i++) {
        const w8_tensor *t = w8_st_at(c->st, i);
        if (json_object_get(set, t->name)) continue;
        if (!unknown++) first_unknown = t->name;
    }
    const char *key;
    json_t *v;
    json_object_foreach(set, key, v) {
        if (!json_integer_value(v) || w8_st_find(c->st, key)) continue;
        /* a quantized layer's own tensors are the reader's to report */
        const char *sfx = strrchr(key, '.');
        if (!strcmp(sfx, ".weight") || !strcmp(sfx, ".bias"))
            viol(r, "tensor '%s' is missing (%s needs it)", key, cfg->arch_name);
        if (!missing++) first_missing = key;
    }
    if (unknown)
        cons(r, C_VLLM | C_310P, "no unknown tensor names: '%s'%s is not a tensor of %s "
             "(vllm-ascend raises on an unknown name)", first_unknown,
             unknown > 1 ? " (and others)" : "", cfg->arch_name);
    if (missing)
        cons(r, C_ALL, "no missing tensors: '%s'%s is missing", first_missing,
             missing > 1 ? " (and others)" : "");
    json_decref(set);
}

static void check_quantized(ictx *c) {
    w8_inspect_info *r = c->r;
    r->in_scale_min = r->deq_min = INFINITY;
    r->in_scale_max = r->deq_max = -INFINITY;
    int n_f32in = 0, n_wscale = 0, n_dyn_dt = 0, n_static = 0;
    for (size_t i = 0; i < w8_st_count(c->st); i++) {
        const w8_tensor *t = w8_st_at(c->st, i);
        const char *dv = desc_val(c, t->name);
        if (!ends_with(t->name, ".weight")) {
            /* a quantized layer's tensor must belong to a layer of that type */
            if (is_qtype(dv)) {
                const char *dot = strrchr(t->name, '.');
                char wn[320];
                snprintf(wn, sizeof wn, "%.*s.weight", (int)(dot - t->name), t->name);
                const char *wv = desc_val(c, wn);
                if (!wv || strcmp(wv, dv))
                    viol(r, "%s: marked %s but '%s' is not a %s weight", t->name, dv, wn, dv);
            }
            continue;
        }
        int lin = is_linear_weight(t->name);
        if (is_qtype(dv)) {
            char layer[256];
            snprintf(layer, sizeof layer, "%.*s", (int)(strlen(t->name) - 7), t->name);
            w8_qlayer l;
            w8_qlayer_read(c->st, c->desc, layer, -1, -1, c->dtype, &l);
            for (int v = 0; v < l.n_violations; v++) viol(r, "%s", l.violations[v]);
            n_f32in += !!(l.variants & W8_QV_F32_INPUT);
            n_wscale += !!(l.variants & W8_QV_WEIGHT_SCALE);
            n_dyn_dt += !!(l.variants & W8_QV_SCALE_DTYPE);
            if (l.type == W8_QT_W8A8) {
                n_static++;
                if (l.in_scale > 0) update_range(&r->in_scale_min, &r->in_scale_max, l.in_scale);
                if (l.deq_min <= l.deq_max) {
                    update_range(&r->deq_min, &r->deq_max, l.deq_min);
                    update_range(&r->deq_min, &r->deq_max, l.deq_max);
                }
            } else {
                r->n_lin_dynamic++;
            }
            w8_qlayer_free(&l);
            r->n_lin_quant++;
        } else if (lin) {
            r->n_lin_float++;
            if (t->dtype != W8_F16 && t->dtype != W8_BF16 && t->dtype != W8_F32)
                viol(r, "%s: FLOAT layer has dtype %s", t->name, w8_dtype_name(t->dtype));
        }
    }
    if (n_f32in)
        variant(r, "input_scale/input_offset stored as F32 in %d layer%s (msModelSlim's current "
                "saver)", n_f32in, n_f32in == 1 ? "" : "s");
    if (n_wscale)
        variant(r, "weight_scale/weight_offset in %d W8A8 layer%s (msModelSlim's older saver)",
                n_wscale, n_wscale == 1 ? "" : "s");
    if (n_dyn_dt)
        variant(r, "W8A8_DYNAMIC weight_scale/weight_offset not F32 [n,1] in %d layer%s",
                n_dyn_dt, n_dyn_dt == 1 ? "" : "s");
    if (n_static && r->n_lin_dynamic)
        cons(r, C_MINDIE, "one quantization type: %d W8A8 and %d W8A8_DYNAMIC layers in one "
             "directory (MindIE packs every layer by the model-level quantize; vllm-ascend and "
             "this runtime decide per layer)", n_static, r->n_lin_dynamic);
    if (r->n_lin_dynamic)
        cons(r, C_310P, "no W8A8_DYNAMIC linear layers: %d layer%s (vllm-ascend's 310P path "
             "runs W8A8 static linear layers only; its dynamic scheme is for MoE experts)",
             r->n_lin_dynamic, r->n_lin_dynamic == 1 ? " is" : "s are");
    /* groups: find layer indices from q_proj / gate_proj names */
    static const char *const qkv[] = {"q_proj", "k_proj", "v_proj"};
    static const char *const gu[] = {"gate_proj", "up_proj"};
    int type_rule = 0, scale_rule = 0;
    for (int l = 0;; l++) {
        char p1[128], p2[128], probe[160];
        snprintf(p1, sizeof p1, "model.layers.%d.self_attn.", l);
        snprintf(p2, sizeof p2, "model.layers.%d.mlp.", l);
        snprintf(probe, sizeof probe, "%sq_proj.weight", p1);
        char probe2[160];
        snprintf(probe2, sizeof probe2, "%sgate_proj.weight", p2);
        if (!w8_st_find(c->st, probe) && !w8_st_find(c->st, probe2)) break;
        check_group(c, p1, qkv, 3, &type_rule, &scale_rule);
        check_group(c, p2, gu, 2, &type_rule, &scale_rule);
    }
    if (n_static == 0) r->in_scale_min = r->in_scale_max = r->deq_min = r->deq_max = 0;
    if (r->n_lin_quant == 0) viol(r, "the description says quantized but no linear layer is");
}

static void count_float(const w8_st *st, w8_inspect_info *r) {
    for (size_t i = 0; i < w8_st_count(st); i++)
        if (is_linear_weight(w8_st_at(st, i)->name)) r->n_lin_float++;
}

/* The weights file (an index or files) another tool named its own way. */
static void check_weights_name(const w8_st *st, w8_inspect_info *r) {
    const char *src = w8_st_source(st);
    if (!src || !strcmp(src, "quant_model_weight_w8a8.safetensors") ||
        !strcmp(src, "quant_model_weight_w8a8.safetensors.index.json"))
        return;
    int nfiles = 0;
    for (size_t i = 0; i < w8_st_count(st); i++)
        if (i == 0 || strcmp(w8_st_at(st, i)->file, w8_st_at(st, i - 1)->file)) nfiles++;
    if (ends_with(src, ".index.json") || nfiles <= 1)
        variant(r, "weights in %s (FORMAT.md names quant_model_weight_w8a8.safetensors)", src);
    else
        variant(r, "weights in %d *.safetensors files without an index (first %s)", nfiles, src);
}

/* config.json: "quantize" (MindIE reads it first), "quantization_config"
 * (vllm-ascend would use it instead of the description). */
static void check_config(const json_t *cfg, const json_t *desc, w8_inspect_info *r) {
    const json_t *qz = json_object_get(cfg, "quantize");
    const json_t *mq = desc ? json_object_get(desc, "model_quant_type") : NULL;
    const char *want = NULL;
    if (json_is_string(mq)) {
        w8_qtype t = w8_qtype_parse(json_string_value(mq));
        want = t == W8_QT_W8A8 ? "w8a8" : t == W8_QT_W8A8_DYNAMIC ? "w8a8_dynamic" : NULL;
    }
    if (!qz) {
        variant(r, "config.json has no \"quantize\" (msModelSlim's current saver)");
        if (!json_is_string(mq))
            cons(r, C_MINDIE, "quantize or model_quant_type: config.json has no \"quantize\" "
                 "and the description no \"model_quant_type\" (MindIE cannot tell the type)");
    } else if (!json_is_string(qz) || (want && strcmp(json_string_value(qz), want))) {
        viol(r, "config.json: \"quantize\" is %s, expected \"%s\"",
             json_is_string(qz) ? json_string_value(qz) : "not a string", want ? want : "w8a8");
    }
    if (json_object_get(cfg, "quantization_config"))
        cons(r, C_VLLM | C_310P, "no quantization_config: config.json has one (vllm-ascend "
             "would take it instead of the description)");
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
    for (int i = 0; i < W8_QDESC_NFILES && !r->quantized; i++) {
        char *p = w8_path_join(dir, w8_qdesc_files[i]);
        if (w8_file_exists(p)) {
            r->quantized = 1;
            if (i > 0) variant(r, "description file %s", w8_qdesc_files[i]);
            desc = w8_json_load_file(p);
            if (!desc) viol(r, "%s", w8_lasterr());
            else if (!json_is_object(desc)) {
                viol(r, "%s: not a JSON object", w8_qdesc_files[i]);
                json_decref(desc);
                desc = NULL;
            }
        }
        free(p);
    }
    if (!r->quantized) {
        const json_t *qz = json_object_get(cfg, "quantize");
        if (json_is_string(qz))
            viol(r, "config.json says \"quantize\": \"%s\" but there is no "
                 "quant_model_description.json", json_string_value(qz));
        count_float(st, r);
    } else {
        check_weights_name(st, r);
        check_config(cfg, desc, r);
    }
    if (r->quantized && desc) {
        ictx c = {st, desc, r->dtype, r};
        if (r->dtype == W8_F32)
            viol(r, "float tensors are F32: FORMAT.md defines W8A8 for fp16 and bf16 models");
        check_description(&c);
        check_quantized(&c);
        /* the architecture's names need the parsed config; a config our
         * loader refuses is reported, and those two rules are skipped */
        w8_config mc;
        char *cpath = w8_path_join(dir, "config.json");
        size_t len;
        char *text = w8_read_file(cpath, W8_JSON_MAX_FILE, &len);
        if (text && w8_config_parse(text, len, cpath, &mc) == 0) check_names(&c, &mc);
        else viol(r, "%s", w8_lasterr());
        free(text);
        free(cpath);
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
                       : r->n_lin_dynamic == 0 ? "W8A8"
                       : r->n_lin_dynamic == r->n_lin_quant ? "W8A8_DYNAMIC"
                                                            : "W8A8 + W8A8_DYNAMIC";
    fprintf(f, "%s: %s model, %s%s%s\n", dir, kind, dt, r->arch[0] ? ", " : "", r->arch);
    fprintf(f, "  tensors: %ld, %s (%zu bytes)\n", r->n_tensors, sz, r->bytes);
    fprintf(f, "  linear layers: %d quantized, %d float", r->n_lin_quant, r->n_lin_float);
    if (r->n_lin_dynamic) fprintf(f, " (%d quantized W8A8_DYNAMIC)", r->n_lin_dynamic);
    fputc('\n', f);
    if (r->quantized && r->n_lin_quant > r->n_lin_dynamic) {
        fprintf(f, "  input_scale: [%.6g, %.6g]\n", r->in_scale_min, r->in_scale_max);
        fprintf(f, "  deq_scale:   [%.6g, %.6g]\n", r->deq_min, r->deq_max);
    }
    for (int i = 0; i < r->n_variants; i++) fprintf(f, "  variant: %s\n", r->variants[i]);
    if (r->quantized) {
        if (r->n_violations == 0) fprintf(f, "  valid: follows FORMAT.md\n");
        else fprintf(f, "  INVALID: %d violation%s of FORMAT.md\n", r->n_violations,
                     r->n_violations == 1 ? "" : "s");
    }
    for (int i = 0; i < r->n_violations; i++) fprintf(f, "  violation: %s\n", r->violations[i]);
    if (!r->quantized) return;
    for (int c = 0; c < W8_N_CONSUMERS; c++) {
        if (r->n_cons_fail[c] == 0)
            fprintf(f, "  consumer %s: %s\n", w8_consumer_names[c],
                    r->n_violations ? "loads (its loader checks none of the violations above)"
                                    : "loads");
        for (int i = 0; i < r->n_cons_fail[c]; i++)
            fprintf(f, "  consumer %s: will NOT load: %s\n", w8_consumer_names[c],
                    r->cons_fail[c][i]);
    }
}

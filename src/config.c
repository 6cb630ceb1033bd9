/*
 * config.c - config.json, generation_config.json and
 * quant_model_description.json of a model directory.
 *
 * Defaults follow Hugging Face transformers' config classes
 * (Qwen2Config, LlamaConfig, MistralConfig, Qwen3Config) for the keys they make
 * optional; the keys that fix the tensor shapes are required.  Sizes are
 * bounded so a hostile or broken config cannot make later allocations
 * overflow: every product the model loader forms stays far below 2^63.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "util.h"

/* ------------------------------------------------------------ helpers */

/* Required or optional integer in [lo, hi].  Returns 0 ok, 1 absent, -1 error. */
static int get_int_range(const json_t *o, const char *key, const char *label, long long lo,
                         long long hi, int required, int *out) {
    long long v;
    int r = w8_json_get_int(o, key, label, &v);
    if (r < 0) return -1;
    if (r == 1) {
        if (required) return w8_seterr("%s: missing required key '%s'", label, key);
        return 1;
    }
    if (v < lo || v > hi)
        return w8_seterr("%s: key '%s': %lld is out of range [%lld, %lld]", label, key, v, lo, hi);
    *out = (int)v;
    return 0;
}

/* Optional float, must be finite and in [lo, hi]. */
static int get_float_range(const json_t *o, const char *key, const char *label, double lo,
                           double hi, float *out) {
    double v;
    int r = w8_json_get_num(o, key, label, &v);
    if (r != 0) return r;
    if (!isfinite(v) || v < lo || v > hi)
        return w8_seterr("%s: key '%s': %g is out of range [%g, %g]", label, key, v, lo, hi);
    *out = (float)v;
    return 0;
}

/* eos_token_id: an int or a list of ints. */
static int get_eos(const json_t *o, const char *label, w8_config *cfg) {
    const json_t *v = json_object_get(o, "eos_token_id");
    if (!v || json_is_null(v)) return 1;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0 || json_integer_value(v) > 0x7fffffff)
            return w8_seterr("%s: key 'eos_token_id': %lld is out of range", label,
                             (long long)json_integer_value(v));
        cfg->eos_ids[0] = (int)json_integer_value(v);
        cfg->n_eos = 1;
        return 0;
    }
    if (!json_is_array(v))
        return w8_seterr("%s: key 'eos_token_id': expected integer or list of integers, got %s",
                         label, w8_json_type_name(v));
    size_t n = json_array_size(v);
    if (n > W8_MAX_EOS)
        return w8_seterr("%s: key 'eos_token_id': %zu ids (at most %d)", label, n, W8_MAX_EOS);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > 0x7fffffff)
            return w8_seterr("%s: key 'eos_token_id': element %zu is not a token id", label, i);
        cfg->eos_ids[i] = (int)json_integer_value(e);
    }
    cfg->n_eos = (int)n;
    return 0;
}

static int get_id(const json_t *o, const char *key, const char *label, int *out) {
    int r = get_int_range(o, key, label, 0, 0x7fffffff, 0, out);
    return r < 0 ? -1 : 0;
}

/* ------------------------------------------------------------ rope */

/* The RoPE dictionary, as transformers 5 standardises it
 * (PreTrainedConfig.convert_rope_params_to_dict): a non-empty rope_scaling
 * (the 4.x name) wins over rope_parameters (the 5.x name); a rope_parameters
 * keyed by layer type ({"full_attention": {...}, "sliding_attention": {...}})
 * gives its full_attention entry, the one full-attention layers use.  *out is
 * NULL when there is none; *key names it in messages. */
static int rope_dict(const json_t *root, const char *label, const json_t **out, const char **key) {
    *out = NULL;
    const json_t *rs = json_object_get(root, "rope_scaling");
    if (rs && !json_is_null(rs) && !json_is_object(rs))
        return w8_seterr("%s: key 'rope_scaling': expected object, got %s", label,
                         w8_json_type_name(rs));
    if (json_is_object(rs) && json_object_size(rs) > 0) {
        *out = rs;
        *key = "rope_scaling";
        return 0;
    }
    const json_t *rp = json_object_get(root, "rope_parameters");
    if (!rp || json_is_null(rp)) return 0;
    if (!json_is_object(rp))
        return w8_seterr("%s: key 'rope_parameters': expected object, got %s", label,
                         w8_json_type_name(rp));
    const json_t *full = json_object_get(rp, "full_attention");
    if (json_is_object(full)) {
        *out = full;
        *key = "rope_parameters.full_attention";
    } else {
        *out = rp;
        *key = "rope_parameters";
    }
    return 0;
}

/* partial_rotary_factor other than 1 rotates only part of each head, which
 * the forward pass does not do: refuse it rather than rotate the whole head. */
static int check_partial_rotary(const json_t *o, const char *label) {
    double f;
    int r = w8_json_get_num(o, "partial_rotary_factor", label, &f);
    if (r < 0) return -1;
    if (r == 0 && f != 1.0)
        return w8_seterr("%s: key 'partial_rotary_factor': %g is unsupported (only 1: RoPE over "
                         "the whole head)", label, f);
    return 0;
}

/* rope_theta, rope_type and the scaling factors, from rope_scaling or
 * rope_parameters (whichever transformers would use) and the top-level
 * rope_theta; a 4.x config and its 5.x re-save give the same fields. */
static int parse_rope(const json_t *root, const char *label, w8_config *cfg) {
    const json_t *rs = NULL;
    const char *dkey = NULL;
    if (rope_dict(root, label, &rs, &dkey) < 0) return -1;
    if (check_partial_rotary(root, label) < 0) return -1;
    char sub[320];
    snprintf(sub, sizeof sub, "%s: %s", label, dkey ? dkey : "");
    /* the dictionary's rope_theta first (5.x), else the top-level key (4.x) */
    int r = rs ? get_float_range(rs, "rope_theta", sub, 1, 1e12, &cfg->rope_theta) : 1;
    if (r < 0) return -1;
    if (r == 1 && get_float_range(root, "rope_theta", label, 1, 1e12, &cfg->rope_theta) < 0)
        return -1;
    if (!rs) return 0;
    if (check_partial_rotary(rs, sub) < 0) return -1;
    const char *type = NULL, *tkey = "rope_type";
    if (w8_json_get_str(rs, "rope_type", sub, &type) < 0) return -1;
    if (!type) {
        tkey = "type";
        if (w8_json_get_str(rs, "type", sub, &type) < 0) return -1;
    }
    if (!type || !strcmp(type, "default")) return 0;
    if (!strcmp(type, "linear")) {
        cfg->rope_type = W8_ROPE_LINEAR;
        r = get_float_range(rs, "factor", sub, 1e-6, 1e6, &cfg->rope_factor);
        if (r == 1) return w8_seterr("%s: missing required key 'factor'", sub);
        return r;
    }
    if (!strcmp(type, "llama3")) {
        cfg->rope_type = W8_ROPE_LLAMA3;
        static const char *const keys[] = {"factor", "low_freq_factor", "high_freq_factor"};
        float *dst[] = {&cfg->rope_factor, &cfg->rope_low_freq_factor, &cfg->rope_high_freq_factor};
        for (int i = 0; i < 3; i++) {
            r = get_float_range(rs, keys[i], sub, 1e-6, 1e6, dst[i]);
            if (r == 1) return w8_seterr("%s: missing required key '%s'", sub, keys[i]);
            if (r < 0) return -1;
        }
        if (get_int_range(rs, "original_max_position_embeddings", sub, 1, 1 << 24, 1,
                          &cfg->rope_orig_max_pos) != 0)
            return -1;
        if (cfg->rope_low_freq_factor >= cfg->rope_high_freq_factor)
            return w8_seterr("%s: low_freq_factor (%g) must be below high_freq_factor (%g)", sub,
                             cfg->rope_low_freq_factor, cfg->rope_high_freq_factor);
        return 0;
    }
    if (!strcmp(type, "dynamic")) {
        /* dynamic NTK scaling only raises the base once a sequence is longer
         * than the original context (original_max_position_embeddings, else
         * max_position_embeddings); the runtime never goes past max_pos, so
         * up to there it is the default RoPE exactly */
        int orig = cfg->max_pos;
        if (get_int_range(rs, "original_max_position_embeddings", sub, 1, 1 << 24, 0, &orig) < 0)
            return -1;
        if (orig >= cfg->max_pos) return 0;
        return w8_seterr("%s: key '%s.rope_type': 'dynamic' with original_max_position_embeddings "
                         "%d below max_position_embeddings %d is unsupported", label, dkey, orig,
                         cfg->max_pos);
    }
    /* yarn, longrope...: frequencies we do not compute */
    return w8_seterr("%s: key '%s.%s': '%.40s' is unsupported (supported: default, linear, "
                     "llama3, dynamic within the original context)", label, dkey, tkey, type);
}

/* ------------------------------------------------------------ attention, activation */

/* hidden_act: the MLP computes SiLU (transformers' "swish" is the same
 * function); anything else would run the wrong activation. */
static int parse_act(const json_t *root, const char *label) {
    const char *act = NULL;
    if (w8_json_get_str(root, "hidden_act", label, &act) < 0) return -1;
    if (act && strcmp(act, "silu") && strcmp(act, "swish"))
        return w8_seterr("%s: key 'hidden_act': '%.40s' is unsupported (only silu)", label, act);
    return 0;
}

/* Sliding-window attention.  Every layer attends to all earlier positions;
 * a sliding window of W positions only differs from that once a sequence is
 * longer than W (transformers masks kv_idx <= q_idx - W).  So a window that is
 * switched on is honoured exactly by capping the context at W (max_pos, which
 * the runtime enforces); one at or above max_position_embeddings changes
 * nothing.  When it is on, as transformers decides it:
 *  - layer_types (5.x) lists a "sliding_attention" layer;
 *  - use_sliding_window is true (Qwen2) and some layer is at or past
 *    max_window_layers (default 28), the layers 4.x gives a window;
 *  - MistralForCausalLM: sliding_window is not null (absent: MistralConfig's
 *    default 4096).
 * The window size is sliding_window (Qwen2Config's default 4096 when absent;
 * null means no window). */
static int parse_window(const json_t *root, const char *label, w8_config *cfg) {
    int on = 0;
    const json_t *lt = json_object_get(root, "layer_types");
    if (lt && !json_is_null(lt)) {
        if (!json_is_array(lt))
            return w8_seterr("%s: key 'layer_types': expected a list of strings, got %s", label,
                             w8_json_type_name(lt));
        if (json_array_size(lt) != (size_t)cfg->n_layers)
            return w8_seterr("%s: key 'layer_types': %zu entries for %d layers", label,
                             json_array_size(lt), cfg->n_layers);
        for (size_t i = 0; i < json_array_size(lt); i++) {
            const json_t *e = json_array_get(lt, i);
            const char *v = json_is_string(e) ? json_string_value(e) : NULL;
            if (v && !strcmp(v, "full_attention")) continue;
            if (v && !strcmp(v, "sliding_attention")) {
                on = 1;
                continue;
            }
            return w8_seterr("%s: key 'layer_types': element %zu ('%.40s') is unsupported "
                             "(supported: full_attention, sliding_attention)",
                             label, i, v ? v : w8_json_type_name(e));
        }
    }
    int use_sw = 0;
    if (w8_json_get_bool(root, "use_sliding_window", label, &use_sw) < 0) return -1;
    if (use_sw) {
        int mwl = 28;
        if (get_int_range(root, "max_window_layers", label, 0, 1 << 20, 0, &mwl) < 0) return -1;
        if (mwl < cfg->n_layers) on = 1;
    }
    const json_t *sw = json_object_get(root, "sliding_window");
    if (cfg->arch == W8_ARCH_MISTRAL && !json_is_null(sw)) on = 1;
    /* an explicit null window is no window, whatever asked for one */
    if (!on || json_is_null(sw)) return 0;
    int window = 4096;
    if (get_int_range(root, "sliding_window", label, 1, 1 << 24, 0, &window) < 0) return -1;
    if (window < cfg->max_pos) cfg->max_pos = window;
    return 0;
}

/* ------------------------------------------------------------ config.json */

static int parse_arch(const json_t *root, const char *label, w8_config *cfg) {
    static const struct {
        const char *name;
        w8_arch arch;
    } archs[] = {
        {"Qwen2ForCausalLM", W8_ARCH_QWEN2},
        {"LlamaForCausalLM", W8_ARCH_LLAMA},
        {"MistralForCausalLM", W8_ARCH_MISTRAL},
        {"Qwen3ForCausalLM", W8_ARCH_QWEN3},
    };
    const json_t *a = json_object_get(root, "architectures");
    if (!a || json_is_null(a)) return w8_seterr("%s: missing required key 'architectures'", label);
    if (!json_is_array(a) || json_array_size(a) < 1 || !json_is_string(json_array_get(a, 0)))
        return w8_seterr("%s: key 'architectures': expected a list of strings", label);
    const char *name = json_string_value(json_array_get(a, 0));
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (!strcmp(name, archs[i].name)) {
            cfg->arch = archs[i].arch;
            snprintf(cfg->arch_name, sizeof cfg->arch_name, "%s", name);
            return 0;
        }
    return w8_seterr("%s: unsupported architecture '%.80s' (supported: Qwen2ForCausalLM, "
                     "LlamaForCausalLM, MistralForCausalLM, Qwen3ForCausalLM)",
                     label, name);
}

static int parse_dtype(const json_t *root, const char *label, w8_config *cfg) {
    /* transformers >= 4.56 writes "dtype" and reads it first, torch_dtype
     * (the older name) only when "dtype" is absent */
    const char *s = NULL;
    const char *key = "dtype";
    if (w8_json_get_str(root, key, label, &s) < 0) return -1;
    if (!s) {
        key = "torch_dtype";
        if (w8_json_get_str(root, key, label, &s) < 0) return -1;
    }
    if (!s) return 0;
    if (!strcmp(s, "float16")) cfg->torch_dtype = W8_F16;
    else if (!strcmp(s, "bfloat16")) cfg->torch_dtype = W8_BF16;
    else if (!strcmp(s, "float32")) cfg->torch_dtype = W8_F32;
    else
        return w8_seterr("%s: key '%s': '%.40s' is unsupported (supported: float16, bfloat16, float32)",
                         label, key, s);
    return 0;
}

static int parse_sizes(const json_t *root, const char *label, w8_config *cfg) {
    if (get_int_range(root, "hidden_size", label, 1, 65536, 1, &cfg->hidden) < 0 ||
        get_int_range(root, "num_hidden_layers", label, 1, 1024, 1, &cfg->n_layers) < 0 ||
        get_int_range(root, "num_attention_heads", label, 1, 1024, 1, &cfg->n_heads) < 0 ||
        get_int_range(root, "intermediate_size", label, 1, 1 << 20, 1, &cfg->intermediate) < 0 ||
        get_int_range(root, "vocab_size", label, 1, 4 << 20, 1, &cfg->vocab) < 0)
        return -1;
    cfg->n_kv_heads = cfg->n_heads;
    if (get_int_range(root, "num_key_value_heads", label, 1, 1024, 0, &cfg->n_kv_heads) < 0)
        return -1;
    int r = get_int_range(root, "head_dim", label, 1, 1024, 0, &cfg->head_dim);
    if (r < 0) return -1;
    if (r == 1 && cfg->arch == W8_ARCH_QWEN3) {
        cfg->head_dim = 128; /* Qwen3Config's default, not hidden / heads */
    } else if (r == 1) {
        if (cfg->hidden % cfg->n_heads)
            return w8_seterr("%s: hidden_size %d is not divisible by num_attention_heads %d", label,
                             cfg->hidden, cfg->n_heads);
        cfg->head_dim = cfg->hidden / cfg->n_heads;
    }
    if (cfg->head_dim % 2)
        return w8_seterr("%s: head_dim %d is odd (rotary embeddings need an even head_dim)", label,
                         cfg->head_dim);
    if (cfg->n_heads % cfg->n_kv_heads)
        return w8_seterr("%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                         label, cfg->n_heads, cfg->n_kv_heads);
    if ((long long)cfg->n_heads * cfg->head_dim > 65536)
        return w8_seterr("%s: num_attention_heads * head_dim = %lld is too large (at most 65536)",
                         label, (long long)cfg->n_heads * cfg->head_dim);
    if (get_int_range(root, "max_position_embeddings", label, 1, 1 << 24, 0, &cfg->max_pos) < 0 ||
        get_float_range(root, "rms_norm_eps", label, 0, 1, &cfg->rms_eps) < 0)
        return -1;
    return 0;
}

static int parse_flags(const json_t *root, const char *label, w8_config *cfg) {
    if (w8_json_get_bool(root, "tie_word_embeddings", label, &cfg->tie_embeddings) < 0) return -1;
    if (cfg->arch == W8_ARCH_QWEN2) {
        /* Qwen2's attention always has q/k/v biases and never an o_proj bias */
        cfg->qkv_bias = 1;
        cfg->o_bias = 0;
    } else {
        int ab = 0;
        if (w8_json_get_bool(root, "attention_bias", label, &ab) < 0) return -1;
        cfg->qkv_bias = cfg->o_bias = ab;
        /* Qwen3's MLP never has biases; its attention adds q_norm / k_norm */
        if (cfg->arch == W8_ARCH_QWEN3) cfg->qk_norm = 1;
        else if (w8_json_get_bool(root, "mlp_bias", label, &cfg->mlp_bias) < 0) return -1;
    }
    const char *q = NULL;
    if (w8_json_get_str(root, "quantize", label, &q) < 0) return -1;
    cfg->quantize_w8a8 = q && !strcasecmp(q, "w8a8");
    const char *mt = NULL;
    if (w8_json_get_str(root, "model_type", label, &mt) < 0) return -1;
    if (mt) snprintf(cfg->model_type, sizeof cfg->model_type, "%s", mt);
    return 0;
}

static void set_defaults(w8_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->rms_eps = 1e-6f;
    cfg->rope_theta = 10000.0f;
    cfg->rope_factor = 1.0f;
    cfg->torch_dtype = W8_BF16;
    cfg->bos_id = -1;
    cfg->pad_id = -1;
    cfg->temperature = 1.0f;
    cfg->top_p = 1.0f;
    cfg->top_k = 0;
    cfg->repetition_penalty = 1.0f;
}

int w8_config_parse(const char *json, size_t len, const char *label, w8_config *cfg) {
    set_defaults(cfg);
    json_t *root = w8_json_load_buf(json, len, label);
    if (!root) return -1;
    int rc = -1;
    if (!json_is_object(root)) {
        w8_seterr("%s: expected a JSON object", label);
        goto out;
    }
    if (parse_arch(root, label, cfg) != 0) goto out;
    /* HF defaults per architecture (transformers' config classes) */
    static const char *const types[] = {[W8_ARCH_LLAMA] = "llama", [W8_ARCH_QWEN2] = "qwen2",
                                        [W8_ARCH_MISTRAL] = "mistral", [W8_ARCH_QWEN3] = "qwen3"};
    static const int max_pos[] = {[W8_ARCH_LLAMA] = 2048, [W8_ARCH_QWEN2] = 32768,
                                  [W8_ARCH_MISTRAL] = 131072, [W8_ARCH_QWEN3] = 32768};
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", types[cfg->arch]);
    cfg->max_pos = max_pos[cfg->arch];
    if (parse_sizes(root, label, cfg) != 0 || parse_flags(root, label, cfg) != 0 ||
        parse_rope(root, label, cfg) != 0 || parse_dtype(root, label, cfg) != 0 ||
        parse_act(root, label) != 0 || parse_window(root, label, cfg) != 0)
        goto out;
    if (get_id(root, "bos_token_id", label, &cfg->bos_id) != 0 ||
        get_id(root, "pad_token_id", label, &cfg->pad_id) != 0 || get_eos(root, label, cfg) < 0)
        goto out;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int w8_genconfig_parse(const char *json, size_t len, const char *label, w8_config *cfg) {
    json_t *root = w8_json_load_buf(json, len, label);
    if (!root) return -1;
    int rc = -1;
    if (!json_is_object(root)) {
        w8_seterr("%s: expected a JSON object", label);
        goto out;
    }
    /* parse into a copy so a bad file leaves cfg as it was */
    w8_config c = *cfg;
    if (get_id(root, "bos_token_id", label, &c.bos_id) != 0 ||
        get_id(root, "pad_token_id", label, &c.pad_id) != 0 || get_eos(root, label, &c) < 0 ||
        w8_json_get_bool(root, "do_sample", label, &c.do_sample) < 0 ||
        get_float_range(root, "temperature", label, 0, 1e6, &c.temperature) < 0 ||
        get_float_range(root, "top_p", label, 0, 1, &c.top_p) < 0 ||
        get_int_range(root, "top_k", label, 0, 1 << 24, 0, &c.top_k) < 0 ||
        get_float_range(root, "repetition_penalty", label, 1e-6, 1e6, &c.repetition_penalty) < 0)
        goto out;
    *cfg = c;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

static int load_json_file(const char *path, int (*parse)(const char *, size_t, const char *, w8_config *),
                          w8_config *cfg) {
    size_t len;
    char *buf = w8_read_file(path, W8_JSON_MAX_FILE, &len);
    if (!buf) return -1;
    int rc = parse(buf, len, path, cfg);
    free(buf);
    return rc;
}

int w8_config_load(const char *dir, w8_config *cfg) {
    char *p = w8_path_join(dir, "config.json");
    int rc = load_json_file(p, w8_config_parse, cfg);
    free(p);
    if (rc != 0) return -1;
    p = w8_path_join(dir, "generation_config.json");
    if (w8_file_exists(p)) rc = load_json_file(p, w8_genconfig_parse, cfg);
    free(p);
    return rc;
}

int w8_config_is_eos(const w8_config *cfg, int id) {
    for (int i = 0; i < cfg->n_eos; i++)
        if (cfg->eos_ids[i] == id) return 1;
    return 0;
}

/* ------------------------------------------------------------ quant description */

struct w8_qdesc {
    json_t *root;
    const char *type;    /* model_quant_type, borrowed from root */
    const char *version; /* may be NULL */
};

w8_qdesc *w8_qdesc_parse(const char *json, size_t len, const char *label) {
    json_t *root = w8_json_load_buf(json, len, label);
    if (!root) return NULL;
    const char *type = NULL, *version = NULL;
    if (!json_is_object(root)) {
        w8_seterr("%s: expected a JSON object", label);
        goto fail;
    }
    if (w8_json_get_str(root, "model_quant_type", label, &type) != 0) {
        if (!type) w8_seterr("%s: missing required key 'model_quant_type'", label);
        goto fail;
    }
    if (w8_json_get_str(root, "version", label, &version) < 0) goto fail;
    /* Tensor entries (names with a dot) must be strings.  msModelSlim also
     * writes a few top-level settings (e.g. "group_size": 0) that are not
     * tensors; those may hold any type. */
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (json_is_string(v) || !strchr(k, '.')) continue;
        w8_seterr("%s: key '%s': expected a string (\"W8A8\" or \"FLOAT\"), got %s", label, k,
                  w8_json_type_name(v));
        goto fail;
    }
    w8_qdesc *q = w8_xcalloc(1, sizeof *q);
    q->root = root;
    q->type = type;
    q->version = version;
    return q;
fail:
    json_decref(root);
    return NULL;
}

const char *const w8_qdesc_files[W8_QDESC_NFILES] = {
    "quant_model_description.json", "quant_model_description_w8a8.json",
    "quant_model_description_w8a8_dynamic.json"};

int w8_qdesc_load(const char *dir, w8_qdesc **out) {
    *out = NULL;
    for (int i = 0; i < W8_QDESC_NFILES; i++) {
        char *p = w8_path_join(dir, w8_qdesc_files[i]);
        if (!w8_file_exists(p)) {
            free(p);
            continue;
        }
        size_t len;
        char *buf = w8_read_file(p, W8_JSON_MAX_FILE, &len);
        if (buf) *out = w8_qdesc_parse(buf, len, p);
        free(buf);
        free(p);
        return *out ? 0 : -1;
    }
    return 0;
}

void w8_qdesc_free(w8_qdesc *q) {
    if (!q) return;
    json_decref(q->root);
    free(q);
}

const char *w8_qdesc_model_type(const w8_qdesc *q) { return q->type; }
const char *w8_qdesc_version(const w8_qdesc *q) { return q->version; }

w8_qtype w8_qtype_parse(const char *v) {
    if (!v) return W8_QT_NONE;
    if (!strcmp(v, "W8A8")) return W8_QT_W8A8;
    if (!strcmp(v, "W8A8_DYNAMIC")) return W8_QT_W8A8_DYNAMIC;
    if (!strcmp(v, "FLOAT")) return W8_QT_FLOAT;
    return W8_QT_OTHER;
}

const char *w8_qtype_name(w8_qtype t) {
    switch (t) {
    case W8_QT_W8A8: return "W8A8";
    case W8_QT_W8A8_DYNAMIC: return "W8A8_DYNAMIC";
    case W8_QT_FLOAT: return "FLOAT";
    case W8_QT_OTHER: return "another type";
    default: return "missing";
    }
}

w8_qtype w8_qdesc_get(const w8_qdesc *q, const char *name) {
    const json_t *v = json_object_get(q->root, name);
    return w8_qtype_parse(json_is_string(v) ? json_string_value(v) : NULL);
}

const json_t *w8_qdesc_json(const w8_qdesc *q) { return q->root; }

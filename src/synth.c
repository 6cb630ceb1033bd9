/*
 * synth.c - random-weight Qwen2 / Qwen3 model directories with real shapes.
 *
 * The 7B shape is ~7.6e9 weights (15 GB in bf16), so everything streams:
 * one block of at most SYNTH_BLOCK elements is generated (in parallel,
 * 64K-element chunks each with its own seeded RNG so the bytes do not depend
 * on the thread count), converted, and appended to the file with
 * w8_stw_write_part().  The directory is built under a temporary name and
 * renamed at the end, so an interrupted or failed run leaves no half model.
 */
#include "synth.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

#include "config.h"
#include "dirtx.h"
#include "util.h"

#define SYNTH_CHUNK ((size_t)1 << 16) /* elements per RNG stream */
#define SYNTH_BLOCK ((size_t)1 << 22) /* elements generated per write */
#define SYNTH_STD 0.02f
#define QWEN_BOS 151643
#define QWEN_EOS 151645

static const w8_synth_shape shapes[] = {
    /* name           hidden layers heads kv  inter   vocab  tied max_pos mwl sliding theta
     * qwen3 head_dim */
    {"qwen2.5-0.5b", 896, 24, 14, 2, 4864, 151936, 1, 32768, 21, 32768, 1000000.0, 0, 0},
    {"qwen2.5-1.5b", 1536, 28, 12, 2, 8960, 151936, 1, 32768, 21, 32768, 1000000.0, 0, 0},
    {"qwen2-7b", 3584, 28, 28, 4, 18944, 152064, 0, 32768, 28, 131072, 1000000.0, 0, 0},
    /* Qwen3 (config.json of Qwen/Qwen3-0.6B and Qwen3-8B): head_dim 128
     * whatever hidden / heads is, so q_proj is [heads * 128, hidden];
     * sliding_window is null in both (0 here) */
    {"qwen3-0.6b", 1024, 28, 16, 8, 3072, 151936, 1, 40960, 28, 0, 1000000.0, 1, 128},
    {"qwen3-8b", 4096, 36, 32, 8, 12288, 151936, 0, 40960, 36, 0, 1000000.0, 1, 128},
    /* tests: the vocab must still cover the Qwen tokenizer's 151665 ids, so
     * hidden is kept small instead (embeddings 151936 x 32 = 9.7 MB in f16) */
    {"tiny", 32, 2, 4, 2, 96, 151936, 1, 32768, 2, 32768, 1000000.0, 0, 0},
    /* Qwen3 for tests: heads * head_dim (64) != hidden (32), as in Qwen3-0.6B */
    {"qwen3-tiny", 32, 2, 4, 2, 96, 151936, 1, 40960, 2, 0, 1000000.0, 1, 16},
};

const char *w8_synth_shape_names(void) {
    return "qwen2.5-0.5b|qwen2.5-1.5b|qwen2-7b|qwen3-0.6b|qwen3-8b|tiny|qwen3-tiny";
}

const w8_synth_shape *w8_synth_find_shape(const char *name) {
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(shapes[i].name, name)) return &shapes[i];
    w8_seterr("unknown shape '%s' (known: %s)", name, w8_synth_shape_names());
    return NULL;
}

/* ------------------------------------------------------------ numbers */

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Normals by Marsaglia and Tsang's ziggurat (128 layers, "The Ziggurat
 * Method for Generating Random Variables", JSS 2000): ~99% of draws cost one
 * RNG step, a table lookup and a multiply, versus a log and a sincos for
 * Box-Muller (measured 2.5x faster here: ~300 vs ~120 M normals/s per
 * core), which matters for the 7.6e9 weights of the 7B shape.
 * The tables are built once (pthread_once). */
static uint32_t zig_k[128];
static float zig_w[128], zig_f[128];
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;

static void zig_build(void) {
    const double m1 = 2147483648.0;
    double dn = 3.442619855899, tn = dn, vn = 9.91256303526217e-3;
    double q = vn / exp(-0.5 * dn * dn);
    zig_k[0] = (uint32_t)((dn / q) * m1);
    zig_k[1] = 0;
    zig_w[0] = (float)(q / m1);
    zig_w[127] = (float)(dn / m1);
    zig_f[0] = 1.0f;
    zig_f[127] = (float)exp(-0.5 * dn * dn);
    for (int i = 126; i >= 1; i--) {
        dn = sqrt(-2.0 * log(vn / dn + exp(-0.5 * dn * dn)));
        zig_k[i + 1] = (uint32_t)((dn / tn) * m1);
        tn = dn;
        zig_f[i] = (float)exp(-0.5 * dn * dn);
        zig_w[i] = (float)(dn / m1);
    }
}

static float uni(w8_rng *r) { return (float)((w8_rng_u64(r) >> 40) + 1) * (1.0f / 16777216.0f); }

static float zig_normal(w8_rng *r) {
    for (;;) {
        uint64_t u = w8_rng_u64(r);
        int32_t hz = (int32_t)(uint32_t)(u >> 32);
        uint32_t iz = (uint32_t)(u >> 8) & 127; /* layer from bits independent of hz */
        uint32_t ahz = hz < 0 ? 0u - (uint32_t)hz : (uint32_t)hz;
        float x = (float)hz * zig_w[iz];
        if (ahz < zig_k[iz]) return x;
        if (iz == 0) { /* the tail beyond r = 3.4426 */
            float t, y;
            do {
                t = -logf(uni(r)) * 0.2904764f; /* 1 / r */
                y = -logf(uni(r));
            } while (y + y < t * t);
            return hz > 0 ? 3.442620f + t : -3.442620f - t;
        }
        if (zig_f[iz] + uni(r) * (zig_f[iz - 1] - zig_f[iz]) < expf(-0.5f * x * x)) return x;
    }
}

/* Elements [skip, skip + n) of one chunk's stream. */
static void chunk_fill(uint64_t key, size_t skip, float std, float *dst, size_t n) {
    w8_rng r;
    w8_rng_seed(&r, key);
    for (size_t e = 0; e < skip; e++) (void)zig_normal(&r);
    for (size_t e = 0; e < n; e++) dst[e] = std * zig_normal(&r);
}

void w8_synth_normal(uint64_t seed, uint64_t tensor, uint64_t first, float std, float *dst,
                     size_t n) {
    pthread_once(&zig_once, zig_build);
    uint64_t base = mix64(seed * 0x9e3779b97f4a7c15ull + tensor + 1);
    uint64_t c0 = first / SYNTH_CHUNK, c1 = (first + n + SYNTH_CHUNK - 1) / SYNTH_CHUNK;
#pragma omp parallel for schedule(dynamic, 4) num_threads(w8_get_threads()) if (n > SYNTH_CHUNK)
    for (uint64_t c = c0; c < c1; c++) {
        uint64_t lo = c * SYNTH_CHUNK, hi = lo + SYNTH_CHUNK;
        if (lo < first) lo = first;
        if (hi > first + n) hi = first + n;
        chunk_fill(mix64(base ^ (c * 0xd1b54a32d192ed03ull)), (size_t)(lo - c * SYNTH_CHUNK), std,
                   dst + (lo - first), (size_t)(hi - lo));
    }
}

/* ------------------------------------------------------------ tensor list */

typedef enum { FILL_NORMAL, FILL_ONES, FILL_ZEROS } fill_kind;

typedef struct {
    char name[96];
    int ndim;
    int64_t shape[2];
    fill_kind fill;
    size_t numel;
    int shard;
} synth_tensor;

static void add(synth_tensor *t, size_t *n, fill_kind fill, int ndim, int64_t d0, int64_t d1,
                const char *fmt, int layer) {
    synth_tensor *x = &t[(*n)++];
    snprintf(x->name, sizeof x->name, fmt, layer);
    x->ndim = ndim;
    x->shape[0] = d0;
    x->shape[1] = d1;
    x->fill = fill;
    x->numel = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
}

/* What decides the tensor list: a shape of the table, or a real config. */
typedef struct {
    int hidden, n_layers, n_heads, n_kv_heads, head_dim, intermediate, vocab, tied;
    int qkv_bias, o_bias, mlp_bias, qk_norm;
} synth_layout;

static synth_layout layout_of_shape(const w8_synth_shape *s) {
    return (synth_layout){s->hidden, s->n_layers, s->n_heads, s->n_kv_heads,
                          s->head_dim ? s->head_dim : s->hidden / s->n_heads, s->intermediate, s->vocab,
                          s->tied, !s->qwen3, 0, 0, s->qwen3};
}

static synth_layout layout_of_config(const w8_config *c, int layers) {
    synth_layout l = {c->hidden, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->intermediate,
                      c->vocab, c->tie_embeddings, c->qkv_bias, c->o_bias, c->mlp_bias, c->qk_norm};
    if (layers > 0 && layers < l.n_layers) l.n_layers = layers;
    return l;
}

/* Tensors in the order of HF's state_dict (LLaMA / Qwen2 / Qwen3 layers).
 * Biases are zero and norms one, as a freshly initialised transformers model.
 * Returns the count. */
static size_t tensor_list(const synth_layout *s, synth_tensor **out) {
    size_t cap = 3 + (size_t)s->n_layers * 20, n = 0;
    synth_tensor *t = w8_xcalloc(cap, sizeof *t);
    int64_t h = s->hidden, hd = s->head_dim, q = (int64_t)s->n_heads * hd, kv = (int64_t)s->n_kv_heads * hd;
    int64_t in = s->intermediate;
    add(t, &n, FILL_NORMAL, 2, s->vocab, h, "model.embed_tokens.weight", 0);
    for (int l = 0; l < s->n_layers; l++) {
        add(t, &n, FILL_NORMAL, 2, q, h, "model.layers.%d.self_attn.q_proj.weight", l);
        if (s->qkv_bias) add(t, &n, FILL_ZEROS, 1, q, 0, "model.layers.%d.self_attn.q_proj.bias", l);
        add(t, &n, FILL_NORMAL, 2, kv, h, "model.layers.%d.self_attn.k_proj.weight", l);
        if (s->qkv_bias) add(t, &n, FILL_ZEROS, 1, kv, 0, "model.layers.%d.self_attn.k_proj.bias", l);
        add(t, &n, FILL_NORMAL, 2, kv, h, "model.layers.%d.self_attn.v_proj.weight", l);
        if (s->qkv_bias) add(t, &n, FILL_ZEROS, 1, kv, 0, "model.layers.%d.self_attn.v_proj.bias", l);
        add(t, &n, FILL_NORMAL, 2, h, q, "model.layers.%d.self_attn.o_proj.weight", l);
        if (s->o_bias) add(t, &n, FILL_ZEROS, 1, h, 0, "model.layers.%d.self_attn.o_proj.bias", l);
        if (s->qk_norm) {
            add(t, &n, FILL_ONES, 1, hd, 0, "model.layers.%d.self_attn.q_norm.weight", l);
            add(t, &n, FILL_ONES, 1, hd, 0, "model.layers.%d.self_attn.k_norm.weight", l);
        }
        add(t, &n, FILL_NORMAL, 2, in, h, "model.layers.%d.mlp.gate_proj.weight", l);
        if (s->mlp_bias) add(t, &n, FILL_ZEROS, 1, in, 0, "model.layers.%d.mlp.gate_proj.bias", l);
        add(t, &n, FILL_NORMAL, 2, in, h, "model.layers.%d.mlp.up_proj.weight", l);
        if (s->mlp_bias) add(t, &n, FILL_ZEROS, 1, in, 0, "model.layers.%d.mlp.up_proj.bias", l);
        add(t, &n, FILL_NORMAL, 2, h, in, "model.layers.%d.mlp.down_proj.weight", l);
        if (s->mlp_bias) add(t, &n, FILL_ZEROS, 1, h, 0, "model.layers.%d.mlp.down_proj.bias", l);
        add(t, &n, FILL_ONES, 1, h, 0, "model.layers.%d.input_layernorm.weight", l);
        add(t, &n, FILL_ONES, 1, h, 0, "model.layers.%d.post_attention_layernorm.weight", l);
    }
    add(t, &n, FILL_ONES, 1, h, 0, "model.norm.weight", 0);
    if (!s->tied) add(t, &n, FILL_NORMAL, 2, s->vocab, h, "lm_head.weight", 0);
    *out = t;
    return n;
}

size_t w8_synth_numel(const w8_synth_shape *s) {
    synth_tensor *t;
    synth_layout l = layout_of_shape(s);
    size_t n = tensor_list(&l, &t), total = 0;
    for (size_t i = 0; i < n; i++) total += t[i].numel;
    free(t);
    return total;
}

/* ------------------------------------------------------------ weights */

typedef struct {
    const w8_synth_opts *o;
    synth_tensor *t;
    size_t n;
    int nshards;
    float *f32;     /* SYNTH_BLOCK floats */
    void *conv;     /* SYNTH_BLOCK converted elements */
    w8_progress prog;
    size_t done_bytes;
} synth_state;

static void convert(w8_dtype dt, const float *src, void *dst, size_t n) {
    if (dt == W8_F32) {
        memcpy(dst, src, n * 4);
        return;
    }
    uint16_t *d = dst;
    if (dt == W8_F16) {
#pragma omp parallel for schedule(static) num_threads(w8_get_threads()) if (n > SYNTH_CHUNK)
        for (size_t i = 0; i < n; i++) d[i] = w8_f32_to_f16(src[i]);
    } else {
#pragma omp parallel for schedule(static) num_threads(w8_get_threads()) if (n > SYNTH_CHUNK)
        for (size_t i = 0; i < n; i++) d[i] = w8_f32_to_bf16(src[i]);
    }
}

static int write_tensor(synth_state *S, w8_stw *w, size_t ti) {
    const synth_tensor *t = &S->t[ti];
    size_t esz = w8_dtype_size(S->o->dtype);
    for (size_t first = 0; first < t->numel; first += SYNTH_BLOCK) {
        if (S->o->cancel && *S->o->cancel) return w8_seterr("synth: interrupted");
        size_t n = t->numel - first < SYNTH_BLOCK ? t->numel - first : SYNTH_BLOCK;
        if (t->fill == FILL_NORMAL) w8_synth_normal(S->o->seed, ti, first, SYNTH_STD, S->f32, n);
        else
            for (size_t i = 0; i < n; i++) S->f32[i] = t->fill == FILL_ONES ? 1.0f : 0.0f;
        convert(S->o->dtype, S->f32, S->conv, n);
        if (w8_stw_write_part(w, t->name, S->conv, n * esz) != 0) return -1;
        S->done_bytes += n * esz;
        if (!S->o->quiet) w8_progress_update(&S->prog, (long)(S->done_bytes >> 20), t->name);
    }
    return 0;
}

static void shard_name(char *buf, size_t n, int i, int count) {
    if (count == 1) snprintf(buf, n, "model.safetensors");
    else snprintf(buf, n, "model-%05d-of-%05d.safetensors", i + 1, count);
}

/* Assign tensors to shards in order, each shard at most shard_gb * 1e9 bytes
 * (HF's "5GB" is 5e9); a tensor bigger than that gets a shard of its own. */
static int assign_shards(synth_state *S) {
    size_t esz = w8_dtype_size(S->o->dtype);
    double limit = S->o->shard_gb > 0 ? S->o->shard_gb * 1e9 : 0;
    int shard = 0;
    double cur = 0;
    for (size_t i = 0; i < S->n; i++) {
        double b = (double)(S->t[i].numel * esz);
        if (limit > 0 && cur > 0 && cur + b > limit) {
            shard++;
            cur = 0;
        }
        S->t[i].shard = shard;
        cur += b;
    }
    return shard + 1;
}

static int write_shard(synth_state *S, const char *dir, int shard) {
    char fname[64];
    shard_name(fname, sizeof fname, shard, S->nshards);
    char *path = w8_path_join(dir, fname);
    w8_stw *w = w8_stw_create(path);
    free(path);
    if (!w) return -1;
    for (size_t i = 0; i < S->n; i++)
        if (S->t[i].shard == shard &&
            w8_stw_declare(w, S->t[i].name, S->o->dtype, S->t[i].ndim, S->t[i].shape) != 0)
            goto fail;
    if (w8_stw_set_meta(w, "format", "pt") != 0 || w8_stw_begin(w) != 0) goto fail;
    for (size_t i = 0; i < S->n; i++)
        if (S->t[i].shard == shard && write_tensor(S, w, i) != 0) goto fail;
    return w8_stw_finish(w);
fail:
    w8_stw_abort(w);
    return -1;
}

/* ------------------------------------------------------------ json files */

static int dump_json(json_t *v, const char *dir, const char *name) {
    char *path = w8_path_join(dir, name);
    /* precision 10 prints 1e-06 and 1000000.0 as Python's json does */
    int rc = json_dump_file(v, path, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    if (rc != 0) w8_seterr("%s: cannot write: %s", path, strerror(errno));
    free(path);
    json_decref(v);
    return rc ? -1 : 0;
}

static const char *torch_dtype_name(w8_dtype dt) {
    return dt == W8_F16 ? "float16" : dt == W8_BF16 ? "bfloat16" : "float32";
}

/* config.json as Qwen2's / Qwen3's own (keys sorted, as transformers writes
 * them; Qwen3 adds attention_bias and head_dim, writes rope_theta as an
 * integer and sliding_window as null, as the hub's files do). */
static int write_config(const w8_synth_opts *o, const char *dir) {
    const w8_synth_shape *s = o->shape;
    json_t *c = json_object();
    json_object_set_new(c, "architectures",
                        json_pack("[s]", s->qwen3 ? "Qwen3ForCausalLM" : "Qwen2ForCausalLM"));
    if (s->qwen3) json_object_set_new(c, "attention_bias", json_false());
    json_object_set_new(c, "attention_dropout", json_real(0.0));
    json_object_set_new(c, "bos_token_id", json_integer(QWEN_BOS));
    json_object_set_new(c, "eos_token_id", json_integer(QWEN_EOS));
    if (s->head_dim) json_object_set_new(c, "head_dim", json_integer(s->head_dim));
    json_object_set_new(c, "hidden_act", json_string("silu"));
    json_object_set_new(c, "hidden_size", json_integer(s->hidden));
    json_object_set_new(c, "initializer_range", json_real(0.02));
    json_object_set_new(c, "intermediate_size", json_integer(s->intermediate));
    json_object_set_new(c, "max_position_embeddings", json_integer(s->max_pos));
    json_object_set_new(c, "max_window_layers", json_integer(s->max_window_layers));
    json_object_set_new(c, "model_type", json_string(s->qwen3 ? "qwen3" : "qwen2"));
    json_object_set_new(c, "num_attention_heads", json_integer(s->n_heads));
    json_object_set_new(c, "num_hidden_layers", json_integer(s->n_layers));
    json_object_set_new(c, "num_key_value_heads", json_integer(s->n_kv_heads));
    json_object_set_new(c, "rms_norm_eps", json_real(1e-6));
    json_object_set_new(c, "rope_scaling", json_null());
    json_object_set_new(c, "rope_theta", s->qwen3 ? json_integer((json_int_t)s->rope_theta)
                                                  : json_real(s->rope_theta));
    json_object_set_new(c, "sliding_window",
                        s->sliding_window ? json_integer(s->sliding_window) : json_null());
    json_object_set_new(c, "tie_word_embeddings", json_boolean(s->tied));
    json_object_set_new(c, "torch_dtype", json_string(torch_dtype_name(o->dtype)));
    json_object_set_new(c, "transformers_version", json_string(s->qwen3 ? "4.51.0" : "4.43.1"));
    json_object_set_new(c, "use_cache", json_true());
    json_object_set_new(c, "use_sliding_window", json_false());
    json_object_set_new(c, "vocab_size", json_integer(s->vocab));
    return dump_json(c, dir, "config.json");
}

/* Qwen's generation_config.json ids; greedy by default (do_sample false)
 * so runs on random weights are reproducible. */
static int write_genconfig(const char *dir) {
    json_t *g = json_object();
    json_object_set_new(g, "bos_token_id", json_integer(QWEN_BOS));
    json_object_set_new(g, "do_sample", json_false());
    json_object_set_new(g, "eos_token_id", json_pack("[ii]", QWEN_EOS, QWEN_BOS));
    json_object_set_new(g, "pad_token_id", json_integer(QWEN_BOS));
    json_object_set_new(g, "transformers_version", json_string("4.43.1"));
    return dump_json(g, dir, "generation_config.json");
}

static int write_index(synth_state *S, const char *dir) {
    json_t *ix = json_object(), *wm = json_object();
    size_t total = 0, esz = w8_dtype_size(S->o->dtype);
    char fname[64];
    for (size_t i = 0; i < S->n; i++) {
        shard_name(fname, sizeof fname, S->t[i].shard, S->nshards);
        json_object_set_new(wm, S->t[i].name, json_string(fname));
        total += S->t[i].numel * esz;
    }
    json_object_set_new(ix, "metadata", json_pack("{sI}", "total_size", (json_int_t)total));
    json_object_set_new(ix, "weight_map", wm);
    return dump_json(ix, dir, "model.safetensors.index.json");
}

/* ------------------------------------------------------------ directory */

static int dir_nonempty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    int any = 0;
    while (!any && (e = readdir(d))) any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return any;
}

/* Files of a model directory that are weights (not copied by --config). */
static int is_weight_file(const char *name) {
    static const char *const ext[] = {".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json",
                                      ".pt", ".pth", ".gguf", ".msgpack", ".h5", ".ckpt", ".onnx"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t e = strlen(ext[i]);
        if (n >= e && !strcmp(name + n - e, ext[i])) return 1;
    }
    return 0;
}

/* config.json of a --config run: the source's bytes when nothing changes;
 * re-written with the new depth (and layer_types cut to it) or dtype
 * otherwise, changing the dtype key that the source used. */
static int write_config_from(const w8_synth_opts *o, const w8_config *c, int layers, const char *tmp) {
    char *src = w8_path_join(o->config_dir, "config.json"), *dst = w8_path_join(tmp, "config.json");
    int rc;
    if (layers == c->n_layers && !(o->dtype_given && o->dtype != (w8_dtype)c->torch_dtype)) {
        rc = w8_copy_file(src, dst);
    } else {
        json_error_t je;
        json_t *root = json_load_file(src, 0, &je);
        if (!root || !json_is_object(root)) {
            rc = w8_seterr("%s:%d: malformed JSON: %s", src, je.line, je.text);
        } else {
            json_object_set_new(root, "num_hidden_layers", json_integer(layers));
            json_t *lt = json_object_get(root, "layer_types");
            if (json_is_array(lt))
                while (json_array_size(lt) > (size_t)layers) json_array_remove(lt, json_array_size(lt) - 1);
            if (o->dtype_given) {
                const char *key = json_object_get(root, "dtype") && !json_object_get(root, "torch_dtype")
                                      ? "dtype" : "torch_dtype";
                json_object_set_new(root, key, json_string(torch_dtype_name(o->dtype)));
            }
            json_incref(root);
            rc = dump_json(root, tmp, "config.json");
        }
        json_decref(root);
    }
    free(src);
    free(dst);
    return rc;
}

static int copy_small_files(const w8_synth_opts *o, const w8_config *c, int layers, const char *tmp) {
    DIR *d = opendir(o->config_dir);
    if (!d) return w8_seterr("%s: cannot open: %s", o->config_dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.' || is_weight_file(e->d_name) || !strcmp(e->d_name, "config.json")) continue;
        char *src = w8_path_join(o->config_dir, e->d_name), *dst = w8_path_join(tmp, e->d_name);
        struct stat sb;
        if (stat(src, &sb) == 0 && S_ISREG(sb.st_mode)) rc = w8_copy_file(src, dst);
        free(src);
        free(dst);
    }
    closedir(d);
    return rc ? rc : write_config_from(o, c, layers, tmp);
}

/* The tensor layout of a run (and the config when --config is used). */
static int run_layout(const w8_synth_opts *o, w8_config *c, synth_layout *l) {
    if (o->config_dir) {
        if (w8_config_load(o->config_dir, c) != 0) return -1;
        *l = layout_of_config(c, o->layers);
    } else {
        *l = layout_of_shape(o->shape);
    }
    return 0;
}

int w8_synth_count(const w8_synth_opts *o, size_t *numel) {
    w8_config c;
    synth_layout l;
    if (run_layout(o, &c, &l) != 0) return -1;
    synth_tensor *t;
    size_t n = tensor_list(&l, &t);
    *numel = 0;
    for (size_t i = 0; i < n; i++) *numel += t[i].numel;
    free(t);
    return 0;
}

static int write_all(const w8_synth_opts *o, const char *tmp) {
    synth_state S = {.o = o};
    w8_config cfg;
    synth_layout lay;
    if (run_layout(o, &cfg, &lay) != 0) return -1;
    S.n = tensor_list(&lay, &S.t);
    S.nshards = assign_shards(&S);
    S.f32 = w8_xalloc_aligned(SYNTH_BLOCK * sizeof(float));
    S.conv = w8_xalloc_aligned(SYNTH_BLOCK * w8_dtype_size(o->dtype));
    size_t total = 0;
    for (size_t i = 0; i < S.n; i++) total += S.t[i].numel * w8_dtype_size(o->dtype);
    if (!o->quiet) w8_progress_begin(&S.prog, "synth (MB)", (long)(total >> 20));
    int rc = 0;
    for (int s = 0; s < S.nshards && rc == 0; s++) rc = write_shard(&S, tmp, s);
    if (!o->quiet) w8_progress_end(&S.prog);
    if (rc == 0 && S.nshards > 1) rc = write_index(&S, tmp);
    if (o->config_dir) {
        if (rc == 0) rc = copy_small_files(o, &cfg, lay.n_layers, tmp);
    } else {
        if (rc == 0) rc = write_config(o, tmp);
        if (rc == 0) rc = write_genconfig(tmp);
    }
    char *dst;
    if (rc == 0 && o->tokenizer_json) {
        dst = w8_path_join(tmp, "tokenizer.json");
        rc = w8_copy_file(o->tokenizer_json, dst);
        free(dst);
    }
    if (rc == 0 && o->tokenizer_config) {
        dst = w8_path_join(tmp, "tokenizer_config.json");
        rc = w8_copy_file(o->tokenizer_config, dst);
        free(dst);
    }
    free(S.t);
    free(S.f32);
    free(S.conv);
    return rc;
}

int w8_synth_write(const w8_synth_opts *o, const char *out_dir) {
    if (!o->shape == !o->config_dir) return w8_seterr("synth: give a shape or a config directory (one of them)");
    if (o->layers < 0) return w8_seterr("synth: --layers must not be negative");
    if (o->dtype != W8_F16 && o->dtype != W8_BF16 && o->dtype != W8_F32)
        return w8_seterr("synth: dtype %s is not a float type", w8_dtype_name(o->dtype));
    if (!(o->shard_gb >= 0) || o->shard_gb > 1e6)
        return w8_seterr("synth: shard size %g GB is out of range", o->shard_gb);
    struct stat sb;
    if (stat(out_dir, &sb) == 0 && (!S_ISDIR(sb.st_mode) || dir_nonempty(out_dir)))
        return w8_seterr("%s: already exists and is not an empty directory", out_dir);
    w8_dirtx tx;
    if (w8_dirtx_begin(&tx, out_dir, 0, "synth", NULL) != 0) return -1;
    int rc = write_all(o, tx.tmp);
    if (rc == 0) return w8_dirtx_commit(&tx);
    w8_dirtx_abort(&tx);
    return rc;
}

/* ----------------------------------------------------- outlier channels */

/* Which norm a tensor is scaled by: 1 for an outlier norm weight, 2 for a
 * linear weight reading it (columns divided), 0 for neither. */
static int outlier_role(const char *name) {
    static const char *const norms[] = {".input_layernorm.weight", ".post_attention_layernorm.weight"};
    static const char *const lins[] = {".self_attn.q_proj.weight", ".self_attn.k_proj.weight",
                                       ".self_attn.v_proj.weight", ".mlp.gate_proj.weight",
                                       ".mlp.up_proj.weight"};
    if (strncmp(name, "model.layers.", 13)) return 0;
    size_t n = strlen(name);
    for (size_t i = 0; i < 2; i++) {
        size_t m = strlen(norms[i]);
        if (n > m && !strcmp(name + n - m, norms[i])) return 1;
    }
    for (size_t i = 0; i < 5; i++) {
        size_t m = strlen(lins[i]);
        if (n > m && !strcmp(name + n - m, lins[i])) return 2;
    }
    return 0;
}

/* Whether a tensor of outlier_role `role` belongs to the norm weight `norm`:
 * the norm itself, or a linear layer that reads it (q/k/v the layer's
 * input_layernorm, gate/up its post_attention_layernorm). */
static int of_norm(const char *name, int role, const char *norm) {
    if (role == 1) return !strcmp(name, norm);
    const char *dot = strchr(name + 13, '.'); /* after "model.layers.N" */
    const char *reads = strstr(name, ".self_attn.") ? ".input_layernorm.weight"
                                                    : ".post_attention_layernorm.weight";
    size_t n = (size_t)(dot - name);
    return !strncmp(name, norm, n) && !strcmp(norm + n, reads);
}

/* norm: NULL for every norm, else only that one (w8_synth_outliers_at). */
static int outliers_into(const w8_st *st, const char *src_dir, const char *tmp, const char *norm,
                         int nch, float factor, uint64_t seed) {
    /* hidden from the first norm weight */
    int64_t hidden = 0;
    for (size_t i = 0; i < w8_st_count(st) && !hidden; i++) {
        const w8_tensor *t = w8_st_at(st, i);
        if (outlier_role(t->name) == 1 && t->ndim == 1) hidden = t->shape[0];
    }
    if (hidden <= 0) return w8_seterr("%s: no model.layers.N.input_layernorm.weight", src_dir);
    if (nch < 1 || nch > hidden)
        return w8_seterr("synth --outliers: %d channels of a hidden size of %lld", nch, (long long)hidden);
    int found = !norm;
    for (size_t i = 0; i < w8_st_count(st) && !found; i++)
        found = outlier_role(norm) == 1 && !strcmp(w8_st_at(st, i)->name, norm);
    if (!found) return w8_seterr("%s: no norm weight '%s'", src_dir, norm);
    char *is_out = w8_xcalloc((size_t)hidden, 1);
    int64_t step = hidden / nch;
    for (int j = 0; j < nch; j++) is_out[(int64_t)(seed % (uint64_t)step) + j * step] = 1;
    char *path = w8_path_join(tmp, "model.safetensors");
    w8_stw *w = w8_stw_create(path);
    free(path);
    int rc = w ? 0 : -1;
    for (size_t i = 0; i < w8_st_count(st) && rc == 0; i++) {
        const w8_tensor *t = w8_st_at(st, i);
        rc = w8_stw_declare(w, t->name, t->dtype, t->ndim, t->shape);
    }
    if (rc == 0) rc = w8_stw_begin(w);
    for (size_t i = 0; i < w8_st_count(st) && rc == 0; i++) {
        const w8_tensor *t = w8_st_at(st, i);
        int role = outlier_role(t->name);
        if (role && norm && !of_norm(t->name, role, norm)) role = 0;
        int fl = t->dtype == W8_F32 || t->dtype == W8_F16 || t->dtype == W8_BF16;
        int64_t cols = role == 1 ? t->shape[0] : t->ndim == 2 ? t->shape[1] : 0;
        if (!role || !fl || cols != hidden) {
            if (role && (!fl || cols != hidden)) {
                rc = w8_seterr("%s: tensor '%s' is not a float tensor over %lld channels", t->file,
                               t->name, (long long)hidden);
                break;
            }
            rc = w8_stw_write(w, t->name, t->data, t->nbytes);
            continue;
        }
        float *f = w8_xmalloc(t->numel * sizeof(float));
        w8_tensor_to_f32(t, f);
        for (size_t e = 0; e < t->numel; e++)
            if (is_out[e % (size_t)hidden]) f[e] = role == 1 ? f[e] * factor : f[e] / factor;
        void *buf = w8_xmalloc(t->nbytes);
        convert(t->dtype, f, buf, t->numel);
        rc = w8_stw_write(w, t->name, buf, t->nbytes);
        free(buf);
        free(f);
    }
    if (w) {
        if (rc == 0) rc = w8_stw_finish(w);
        else w8_stw_abort(w);
    }
    free(is_out);
    /* the other files (config, tokenizer) as they are */
    DIR *d = rc == 0 ? opendir(src_dir) : NULL;
    if (rc == 0 && !d) rc = w8_seterr("%s: cannot list: %s", src_dir, strerror(errno));
    struct dirent *e;
    while (d && rc == 0 && (e = readdir(d))) {
        const char *n = e->d_name;
        size_t l = strlen(n);
        if (n[0] == '.' || strstr(n, ".safetensors")) continue;
        (void)l;
        char *sp = w8_path_join(src_dir, n), *dp = w8_path_join(tmp, n);
        struct stat sb;
        if (stat(sp, &sb) == 0 && S_ISREG(sb.st_mode)) rc = w8_copy_file(sp, dp);
        free(sp);
        free(dp);
    }
    if (d) closedir(d);
    return rc;
}

int w8_synth_outliers(const char *src_dir, const char *out_dir, int n_channels, float factor,
                      uint64_t seed) {
    return w8_synth_outliers_at(src_dir, out_dir, NULL, n_channels, factor, seed);
}

int w8_synth_outliers_at(const char *src_dir, const char *out_dir, const char *norm,
                         int n_channels, float factor, uint64_t seed) {
    if (!(factor > 0) || !isfinite(factor))
        return w8_seterr("synth --outliers: factor %g must be positive", (double)factor);
    struct stat sb;
    if (stat(out_dir, &sb) == 0 && (!S_ISDIR(sb.st_mode) || dir_nonempty(out_dir)))
        return w8_seterr("%s: already exists and is not an empty directory", out_dir);
    w8_st *st = w8_st_open_dir(src_dir);
    if (!st) return -1;
    w8_dirtx tx;
    int rc = w8_dirtx_begin(&tx, out_dir, 0, "synth", NULL);
    if (rc == 0) {
        rc = outliers_into(st, src_dir, tx.tmp, norm, n_channels, factor, seed);
        if (rc == 0) rc = w8_dirtx_commit(&tx);
        else w8_dirtx_abort(&tx);
    }
    w8_st_close(st);
    return rc;
}

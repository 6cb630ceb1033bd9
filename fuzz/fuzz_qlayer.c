/*
 * fuzz_qlayer.c - the W8A8 layer loader (w8_model_load on a quantized
 * directory) with mutated tensors, then one forward pass of what it accepts.
 *
 * (quant_model_description.json's own parser is fuzzed by fuzz_config,
 * selector 2; here the description is valid JSON whose entries the input
 * changes, so the loader's use of it is what gets exercised.)
 *
 * Each input starts from a valid tiny W8A8 model written like quant writes
 * it: hidden 16, one layer, 2 heads of 8 (1 KV head), intermediate 32,
 * vocab 32, every linear layer int8 except lm_head.  Byte 0 picks variants:
 * bit 0 tied embeddings, bit 1 the bf16 layout (deq_scale F32, bf16 scales
 * and floats) instead of fp16 (deq_scale I64), bit 2 qwen2 (q/k/v biases),
 * bit 3 lm_head int8 too, bit 4 a model_quant_type other than W8A8.  The
 * rest is a list of 8-byte edits [op, tensor, a..f]: change a dtype, change
 * a shape, set one element or all of a tensor to a special value (0, -0,
 * negative, NaN, inf, denormal, huge; for an I64 deq_scale optionally with
 * its upper 32 bits set), overwrite raw bytes, delete a tensor, change its
 * description entry, add an optional tensor.  The directory is written into
 * a per-process temp dir, then loaded: the loader must refuse with a message
 * or succeed, and a loaded model must run a two-token forward pass; never a
 * crash or undefined behaviour.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../src/forward.h"
#include "../src/kv_cache.h"
#include "../src/model.h"
#include "../src/safetensors.h"
#include "../src/util.h"
#include "fuzz.h"

enum { HID = 16, NH = 2, NKV = 1, HD = 8, INTER = 32, VOCAB = 32, MAXT = 64, MAXDIM = 36 };

typedef struct {
    char name[96];
    w8_dtype dt;
    int ndim;
    int64_t shape[3];
    unsigned char *data;
    size_t nbytes;
    int gone;
    int qd; /* description entry: 0 "FLOAT", 1 "W8A8", 2 absent, 3 a number */
} ten;

static ten T[MAXT];
static int nt;
static char dir[80];
static uint32_t rng;

static uint32_t next(void) {
    rng = rng * 1664525u + 1013904223u;
    return rng >> 8;
}

static size_t numel(const ten *t) {
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

/* Resize the data to the shape and dtype, keeping what bytes fit. */
static void fit(ten *t) {
    size_t n = numel(t) * w8_dtype_size(t->dt);
    t->data = w8_xrealloc(t->data, n ? n : 1);
    if (n > t->nbytes) memset(t->data + t->nbytes, 0x11, n - t->nbytes);
    t->nbytes = n;
}

static void put(ten *t, size_t i, double v, uint32_t hi) {
    unsigned char *p = t->data + i * w8_dtype_size(t->dt);
    float f = (float)v;
    uint16_t h;
    switch (t->dt) {
    case W8_F32: memcpy(p, &f, 4); break;
    case W8_F16: h = w8_f32_to_f16(f); memcpy(p, &h, 2); break;
    case W8_BF16: h = w8_f32_to_bf16(f); memcpy(p, &h, 2); break;
    case W8_I8: case W8_U8: *p = (unsigned char)(isfinite(v) ? (long)fmax(fmin(v, 127), -128) : 0); break;
    case W8_I32: {
        int32_t x = isfinite(v) ? (int32_t)fmax(fmin(v, 2147483647.0), -2147483648.0) : INT32_MIN;
        memcpy(p, &x, 4);
        break;
    }
    default: { /* I64: deq_scale's fp32 bit pattern, upper half as given */
        uint32_t lo;
        memcpy(&lo, &f, 4);
        uint64_t x = (uint64_t)hi << 32 | lo;
        memcpy(p, &x, 8);
    }
    }
}

static ten *add(const char *name, w8_dtype dt, int ndim, int64_t d0, int64_t d1, int qd) {
    ten *t = &T[nt++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dt = dt;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->qd = qd;
    fit(t);
    return t;
}

static void add_float(const char *name, w8_dtype fdt, int ndim, int64_t d0, int64_t d1, double base) {
    ten *t = add(name, fdt, ndim, d0, d1, 0);
    for (size_t i = 0; i < numel(t); i++) put(t, i, base + ((int)(next() % 200) - 100) * 1e-3, 0);
}

/* One int8 layer's five tensors, as quant writes them. */
static void add_int8(const char *prefix, int n, int k, int bf16) {
    char name[96];
    w8_dtype sdt = bf16 ? W8_BF16 : W8_F16;
    snprintf(name, sizeof name, "%s.weight", prefix);
    ten *w = add(name, W8_I8, 2, n, k, 1);
    for (size_t i = 0; i < w->nbytes; i++) w->data[i] = (unsigned char)(next() % 255);
    snprintf(name, sizeof name, "%s.input_scale", prefix);
    put(add(name, sdt, 1, 1, 0, 1), 0, 0.02, 0);
    snprintf(name, sizeof name, "%s.input_offset", prefix);
    put(add(name, sdt, 1, 1, 0, 1), 0, -3, 0);
    snprintf(name, sizeof name, "%s.quant_bias", prefix);
    ten *qb = add(name, W8_I32, 1, n, 0, 1);
    for (int i = 0; i < n; i++) put(qb, (size_t)i, (double)((int)(next() % 2001) - 1000), 0);
    snprintf(name, sizeof name, "%s.deq_scale", prefix);
    ten *ds = add(name, bf16 ? W8_F32 : W8_I64, 1, n, 0, 1);
    for (int i = 0; i < n; i++) put(ds, (size_t)i, 1e-4 * (1 + next() % 9), 0);
}

static void build(uint8_t variant) {
    for (int i = 0; i < nt; i++) free(T[i].data);
    nt = 0;
    rng = 12345;
    int bf16 = (variant >> 1) & 1, qwen2 = (variant >> 2) & 1;
    w8_dtype fdt = bf16 ? W8_BF16 : W8_F16;
    add_float("model.embed_tokens.weight", fdt, 2, VOCAB, HID, 0);
    add_float("model.layers.0.input_layernorm.weight", fdt, 1, HID, 0, 1);
    add_float("model.layers.0.post_attention_layernorm.weight", fdt, 1, HID, 0, 1);
    static const char *lin[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                 "down_proj"};
    const int ns[7] = {NH * HD, NKV * HD, NKV * HD, HID, INTER, INTER, HID};
    const int ks[7] = {HID, HID, HID, NH * HD, HID, HID, INTER};
    for (int j = 0; j < 7; j++) {
        char prefix[96], name[120];
        snprintf(prefix, sizeof prefix, "model.layers.0.%s.%s", j < 4 ? "self_attn" : "mlp", lin[j]);
        add_int8(prefix, ns[j], ks[j], bf16);
        if (qwen2 && j < 3) { /* kept float beside quant_bias, as msModelSlim does */
            snprintf(name, sizeof name, "%s.bias", prefix);
            add_float(name, fdt, 1, ns[j], 0, 0);
        }
    }
    add_float("model.norm.weight", fdt, 1, HID, 0, 1);
    if ((variant >> 3) & 1)
        add_int8("lm_head", VOCAB, HID, bf16);
    else
        add_float("lm_head.weight", fdt, 2, VOCAB, HID, 0);
}

static const double special[] = {0.0, -0.0, -1.0, NAN, INFINITY, -INFINITY, 1e-45, 1e-39,
                                 3.4e38, 1e-30, 1e30, 127, -128, 128, -129, 0.5, 65504, 1e5,
                                 -1e-3, 2147483647.0};
enum { NSPECIAL = sizeof special / sizeof special[0] };

static const char *optional[] = {"model.layers.0.input_layernorm.bias", "model.norm.bias",
                                 "model.layers.0.self_attn.q_proj.bias",
                                 "model.layers.0.mlp.down_proj.bias", "lm_head.input_scale",
                                 "model.layers.0.self_attn.o_proj.weight_scale"};

static void edit(const uint8_t *e) {
    int op = e[0] % 8;
    if (op == 7) { /* add an optional tensor (or a stray one) */
        if (nt >= MAXT) return;
        const char *name = optional[e[1] % (sizeof optional / sizeof optional[0])];
        for (int i = 0; i < nt; i++)
            if (!strcmp(T[i].name, name)) return;
        add(name, (w8_dtype)(e[2] % W8_DTYPE_COUNT), 1, e[3] % 2 ? HID : e[4] % MAXDIM, 0, e[5] % 3);
        return;
    }
    ten *t = &T[e[1] % nt];
    size_t n = numel(t);
    switch (op) {
    case 0:
        t->dt = (w8_dtype)(e[2] % W8_DTYPE_COUNT);
        fit(t);
        break;
    case 1: {
        int d = e[2] % 3;
        if (e[3] == 255) {
            t->ndim = d;
        } else {
            while (t->ndim <= d) t->shape[t->ndim++] = 1;
            t->shape[d] = e[3] % MAXDIM;
        }
        fit(t);
        break;
    }
    case 2:
        if (n) put(t, (size_t)(e[3] | e[4] << 8) % n, special[e[2] % NSPECIAL], e[5] & 1 ? 0x80000001u * e[5] : 0);
        break;
    case 3:
        for (size_t i = 0; i < n; i++) put(t, i, special[e[2] % NSPECIAL], e[5] & 1 ? 0xffffffffu : 0);
        break;
    case 4:
        if (t->nbytes) {
            size_t at = (size_t)(e[2] | e[3] << 8) % t->nbytes;
            for (int i = 0; i < 3 && at + (size_t)i < t->nbytes; i++) t->data[at + (size_t)i] = e[4 + i];
        }
        break;
    case 5:
        t->gone = 1;
        break;
    default:
        t->qd = e[2] % 4;
    }
}

static void write_dir(uint8_t variant) {
    char *p = w8_path_join(dir, "model.safetensors");
    w8_stw *w = w8_stw_create(p);
    free(p);
    if (!w) abort();
    for (int i = 0; i < nt; i++)
        if (!T[i].gone && w8_stw_declare(w, T[i].name, T[i].dt, T[i].ndim, T[i].shape)) abort();
    if (w8_stw_set_meta(w, "format", "pt") || w8_stw_begin(w)) abort();
    for (int i = 0; i < nt; i++)
        if (!T[i].gone && w8_stw_write(w, T[i].name, T[i].data, T[i].nbytes)) abort();
    if (w8_stw_finish(w)) abort();

    json_t *q = json_object();
    json_object_set_new(q, "model_quant_type", json_string((variant >> 4) & 1 ? "W8A16" : "W8A8"));
    json_object_set_new(q, "version", json_string("1.0.0"));
    for (int i = 0; i < nt; i++) {
        if (T[i].qd == 2) continue;
        json_object_set_new(q, T[i].name, T[i].qd == 3 ? json_integer(8)
                                          : json_string(T[i].qd ? "W8A8" : "FLOAT"));
    }
    p = w8_path_join(dir, "quant_model_description.json");
    if (json_dump_file(q, p, 0)) abort();
    free(p);
    json_decref(q);

    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "{\"architectures\":[\"%s\"],\"model_type\":\"%s\",\"hidden_size\":%d,"
             "\"intermediate_size\":%d,\"num_hidden_layers\":1,\"num_attention_heads\":%d,"
             "\"num_key_value_heads\":%d,\"head_dim\":%d,\"vocab_size\":%d,"
             "\"max_position_embeddings\":64,\"rms_norm_eps\":1e-5,\"rope_theta\":10000.0,"
             "\"tie_word_embeddings\":%s,\"torch_dtype\":\"%s\"}",
             (variant >> 2) & 1 ? "Qwen2ForCausalLM" : "LlamaForCausalLM",
             (variant >> 2) & 1 ? "qwen2" : "llama", HID, INTER, NH, NKV, HD, VOCAB,
             variant & 1 ? "true" : "false", (variant >> 1) & 1 ? "bfloat16" : "float16");
    p = w8_path_join(dir, "config.json");
    FILE *f = fopen(p, "w");
    free(p);
    if (!f || fputs(cfg, f) < 0 || fclose(f)) abort();
}

/* A 6-row prompt: more rows than the decode team takes, so the batch path
 * runs, with its last layer for the last row only. */
static void run_forward(const w8_model *m) {
    enum { N = 6 };
    w8_ctx *c = w8_ctx_new(m, N);
    w8_kv *kv = w8_kv_new(&m->cfg, 16, 1);
    if (!c || !kv) abort();
    w8_seq s;
    w8_seq_init(&s);
    if (w8_kv_seq_reserve(kv, &s, N)) abort();
    int tok[N] = {1, 7, 3, 9, 2, 5}, pos[N] = {0, 1, 2, 3, 4, 5};
    w8_seq *seqs[N] = {&s, &s, &s, &s, &s, &s};
    w8_batch b = {N, tok, pos, seqs, NULL};
    float logits[VOCAB];
    if (w8_forward(c, m, kv, &b, logits) != 1) abort();
    w8_kv_seq_release(kv, &s);
    w8_kv_free(kv);
    w8_ctx_free(c);
}

static void cleanup(void) {
    w8_rm_rf(dir);
    for (int i = 0; i < nt; i++) free(T[i].data);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    /* tmpfs if there is one: the safetensors writer fsyncs, which on a disk
     * costs more than everything else an execution does */
    snprintf(dir, sizeof dir, "%s/w8a8-fuzz-qlayer-%d", w8_is_dir("/dev/shm") ? "/dev/shm" : "/tmp",
             (int)getpid());
    w8_mkdir_p(dir);
    atexit(cleanup);
    w8_set_threads(1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    build(data[0]);
    for (size_t i = 1; i + 8 <= size && i < 1 + 8 * 64; i += 8) edit(data + i);
    write_dir(data[0]);
    w8_clearerr();
    w8_model *m = w8_model_load(dir);
    if (getenv("W8A8_FUZZ_VERBOSE")) /* what a seed exercises */
        fprintf(stderr, "fuzz_qlayer: %s\n", m ? "loaded" : w8_lasterr());
    if (m) {
        run_forward(m);
        w8_model_free(m);
    } else if (!w8_lasterr()[0]) {
        abort(); /* a refusal must say why */
    }
    return 0;
}

/*
 * config.h - a model directory's description: config.json,
 * generation_config.json and quant_model_description.json.
 *
 * Supported architectures: Qwen2ForCausalLM, LlamaForCausalLM,
 * MistralForCausalLM (same shapes as LLaMA), Qwen3ForCausalLM (dense: LLaMA
 * shapes plus a per-head RMSNorm on q and k).  Anything else is refused by name.
 *
 * Configs of transformers 4.x and 5.x read alike: rope_parameters (5.x, also
 * nested per layer type) and rope_theta / rope_scaling (4.x) are the same
 * information, as are dtype and torch_dtype; layer_types is accepted.  A key
 * that changes the computation in a way we do not implement (a rope_type
 * other than default / linear / llama3 / dynamic within its original
 * context, partial_rotary_factor, a hidden_act other than silu, a layer type
 * other than full / sliding attention) is an error naming the file and the
 * key.  A sliding window that is switched on caps max_pos at the window,
 * where it equals full attention.
 */
#ifndef W8_CONFIG_H
#define W8_CONFIG_H

#include <jansson.h>

#include "safetensors.h"

#define W8_MAX_EOS 8

typedef enum { W8_ARCH_LLAMA = 0, W8_ARCH_QWEN2, W8_ARCH_MISTRAL, W8_ARCH_QWEN3 } w8_arch;
typedef enum { W8_ROPE_DEFAULT = 0, W8_ROPE_LINEAR, W8_ROPE_LLAMA3 } w8_rope_type;

typedef struct {
    w8_arch arch;
    char arch_name[64];   /* "Qwen2ForCausalLM" */
    char model_type[32];  /* "qwen2", "llama", "qwen3" */
    int hidden;           /* hidden_size */
    int n_layers;         /* num_hidden_layers */
    int n_heads;          /* num_attention_heads */
    int n_kv_heads;       /* num_key_value_heads (default n_heads) */
    int head_dim;         /* head_dim (default hidden / n_heads; Qwen3: 128) */
    int intermediate;     /* intermediate_size */
    int vocab;            /* vocab_size */
    int max_pos;          /* max_position_embeddings (at most an active sliding window) */
    float rms_eps;        /* rms_norm_eps */
    float rope_theta;     /* rope_theta or rope_parameters.rope_theta (default 10000) */
    w8_rope_type rope_type;
    float rope_factor;            /* linear and llama3 */
    float rope_low_freq_factor;   /* llama3 */
    float rope_high_freq_factor;  /* llama3 */
    int rope_orig_max_pos;        /* llama3 original_max_position_embeddings */
    int tie_embeddings;   /* tie_word_embeddings (default: false for llama, as HF) */
    int qkv_bias;         /* Qwen2: always true; LLaMA, Qwen3: attention_bias */
    int o_bias;           /* LLaMA attention_bias also biases o_proj */
    int mlp_bias;         /* LLaMA mlp_bias */
    int qk_norm;          /* Qwen3: RMSNorm q_norm / k_norm [head_dim] on each head */
    int torch_dtype;      /* w8_dtype of dtype, else torch_dtype (W8_BF16 if absent) */
    int quantize_w8a8;    /* config.json has "quantize": "w8a8" */
    /* token ids; -1 when unknown */
    int bos_id;
    int eos_ids[W8_MAX_EOS];
    int n_eos;
    int pad_id;
    /* generation defaults (generation_config.json), used when the user gives none */
    int do_sample;
    float temperature, top_p, repetition_penalty;
    int top_k;
} w8_config;

/* Read DIR/config.json and, if present, DIR/generation_config.json (its eos
 * ids replace config.json's).  Errors name the file and the key. */
int w8_config_load(const char *dir, w8_config *cfg);
/* Parse config.json / generation_config.json text (label names it in errors). */
int w8_config_parse(const char *json, size_t len, const char *label, w8_config *cfg);
int w8_genconfig_parse(const char *json, size_t len, const char *label, w8_config *cfg);
/* 1 if id is an eos id. */
int w8_config_is_eos(const w8_config *cfg, int id);

/* quant_model_description.json: tensor name -> "W8A8" | "W8A8_DYNAMIC" | "FLOAT". */
typedef struct w8_qdesc w8_qdesc;
/* The description file names a reader accepts, in the order they are tried
 * (msModelSlim versions write either; MindIE and vllm-ascend accept all). */
#define W8_QDESC_NFILES 3
extern const char *const w8_qdesc_files[W8_QDESC_NFILES];
/* Load the first of w8_qdesc_files that DIR has.
 * Returns 0 and *out = NULL when the directory has none (a float model),
 * 0 and *out set when loaded, -1 on a malformed file. */
int w8_qdesc_load(const char *dir, w8_qdesc **out);
w8_qdesc *w8_qdesc_parse(const char *json, size_t len, const char *label);
void w8_qdesc_free(w8_qdesc *q);
const char *w8_qdesc_model_type(const w8_qdesc *q); /* "W8A8" */
const char *w8_qdesc_version(const w8_qdesc *q);    /* may be NULL */
/* A description value.  The numbers keep the old int results (1 W8A8, 0
 * FLOAT, -1 no entry), so "== 1" still means the static int8 path. */
typedef enum {
    W8_QT_NONE = -1,        /* no entry (or not a string) */
    W8_QT_FLOAT = 0,
    W8_QT_W8A8 = 1,         /* static: input_scale/offset, quant_bias, deq_scale */
    W8_QT_W8A8_DYNAMIC = 2, /* per-token: weight_scale, weight_offset */
    W8_QT_OTHER = 3         /* a value FORMAT.md does not define (W4A16, ...) */
} w8_qtype;
w8_qtype w8_qtype_parse(const char *value); /* NULL -> W8_QT_NONE */
const char *w8_qtype_name(w8_qtype t);      /* "W8A8", ...; "missing" for NONE */
w8_qtype w8_qdesc_get(const w8_qdesc *q, const char *name);
/* The underlying JSON object (for inspect); borrowed. */
const json_t *w8_qdesc_json(const w8_qdesc *q);

#endif

/*
 * test_config.c - config.json / generation_config.json /
 * quant_model_description.json parsing: the stories260K copies, HF
 * defaults, and each malformed case with the message it must give.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/config.h"
#include "../src/util.h"
#include "test.h"

static int parse(const char *json, w8_config *c) {
    return w8_config_parse(json, strlen(json), "d/config.json", c);
}

/* Base config with the keys of the object fragment `extra` added or replaced. */
static int parse_with(const char *extra, w8_config *c) {
    char buf[2048];
    snprintf(buf, sizeof buf, "{%s}", extra);
    json_t *base = json_loads("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,"
                              "\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                              "\"intermediate_size\":96,\"vocab_size\":100}",
                              0, NULL);
    json_t *ex = json_loads(buf, 0, NULL);
    json_object_update(base, ex);
    char *s = json_dumps(base, JSON_COMPACT);
    int rc = parse(s, c);
    free(s);
    json_decref(base);
    json_decref(ex);
    return rc;
}

static void bad(const char *what, const char *extra, const char *needle) {
    w8_config c;
    w8_clearerr();
    int rc = parse_with(extra, &c);
    CHECK(rc != 0 && strstr(w8_lasterr(), needle) && strstr(w8_lasterr(), "d/config.json"),
          "refuses %s: %s", what, w8_lasterr());
}

static void test_stories(void) {
    char dir[512];
    w8_config c;
    snprintf(dir, sizeof dir, "%s/models/stories260K-hf-f32", shared_dir());
    int rc = w8_config_load(dir, &c);
    CHECK(rc == 0, "stories260K-hf-f32 config loads (%s)", rc ? w8_lasterr() : "");
    CHECK(c.arch == W8_ARCH_LLAMA && !strcmp(c.arch_name, "LlamaForCausalLM") &&
              !strcmp(c.model_type, "llama"),
          "llama arch");
    CHECK(c.hidden == 64 && c.n_layers == 5 && c.n_heads == 8 && c.n_kv_heads == 4 &&
              c.head_dim == 8 && c.intermediate == 172 && c.vocab == 512 && c.max_pos == 512,
          "stories sizes");
    CHECK(fabsf(c.rms_eps - 1e-5f) < 1e-12f && c.rope_theta == 10000.0f &&
              c.rope_type == W8_ROPE_DEFAULT,
          "eps 1e-5, theta 10000, default rope");
    CHECK(c.tie_embeddings == 1 && c.qkv_bias == 0 && c.o_bias == 0 && c.mlp_bias == 0,
          "tied, no biases");
    CHECK(c.bos_id == 1 && c.n_eos == 1 && c.eos_ids[0] == 2 && w8_config_is_eos(&c, 2) &&
              !w8_config_is_eos(&c, 1),
          "bos 1, eos 2");
    CHECK(c.torch_dtype == W8_F32 && c.quantize_w8a8 == 0 && c.do_sample == 0 &&
              c.temperature == 1.0f && c.top_k == 0 && c.top_p == 1.0f && c.repetition_penalty == 1.0f,
          "float32, generation defaults");

    snprintf(dir, sizeof dir, "%s/models/stories260K-as-qwen2-bf16-random-bias", shared_dir());
    rc = w8_config_load(dir, &c);
    CHECK(rc == 0, "stories260K qwen2 copy loads (%s)", rc ? w8_lasterr() : "");
    CHECK(c.arch == W8_ARCH_QWEN2 && c.qkv_bias == 1 && c.o_bias == 0 && c.head_dim == 8 &&
              c.n_kv_heads == 4 && c.torch_dtype == W8_BF16 && c.tie_embeddings == 1 &&
              c.eos_ids[0] == 2 && c.bos_id == 1,
          "qwen2 copy: qkv_bias, head_dim from hidden/heads, bf16");
    rc = w8_config_load("/nonexistent-model", &c);
    CHECK(rc != 0 && strstr(w8_lasterr(), "/nonexistent-model/config.json"), "missing dir: %s",
          w8_lasterr());
}

static void test_defaults(void) {
    w8_config c;
    CHECK(parse_with("", &c) == 0, "minimal llama config parses");
    CHECK(c.n_kv_heads == 4 && c.head_dim == 16 && c.max_pos == 2048 && c.rms_eps == 1e-6f &&
              c.rope_theta == 10000.0f && c.tie_embeddings == 0 && c.torch_dtype == W8_BF16 &&
              c.bos_id == -1 && c.n_eos == 0,
          "llama defaults (HF LlamaConfig)");
    const char *qwen =
        "{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":896,\"num_hidden_layers\":24,"
        "\"num_attention_heads\":14,\"num_key_value_heads\":2,\"intermediate_size\":4864,"
        "\"vocab_size\":151936,\"rope_theta\":1000000.0,\"tie_word_embeddings\":true,"
        "\"torch_dtype\":\"float16\",\"quantize\":\"w8a8\",\"eos_token_id\":[151645,151643]}";
    CHECK(parse(qwen, &c) == 0, "qwen2.5-0.5b-like config parses");
    CHECK(c.head_dim == 64 && c.max_pos == 32768 && c.rope_theta == 1e6f && c.torch_dtype == W8_F16 &&
              c.quantize_w8a8 == 1 && c.n_eos == 2 && c.eos_ids[1] == 151643 && c.qkv_bias,
          "qwen2 defaults, eos list, quantize w8a8");
    CHECK(parse_with("\"attention_bias\":true,\"mlp_bias\":true", &c) == 0 && c.qkv_bias && c.o_bias &&
              c.mlp_bias,
          "llama attention_bias / mlp_bias");
    CHECK(parse_with("\"rope_scaling\":{\"type\":\"linear\",\"factor\":4.0}", &c) == 0 &&
              c.rope_type == W8_ROPE_LINEAR && c.rope_factor == 4.0f,
          "rope_scaling linear");
    CHECK(parse_with("\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,"
                     "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192}",
                     &c) == 0 &&
              c.rope_type == W8_ROPE_LLAMA3 && c.rope_factor == 8.0f && c.rope_low_freq_factor == 1.0f &&
              c.rope_high_freq_factor == 4.0f && c.rope_orig_max_pos == 8192,
          "rope_scaling llama3");
    CHECK(parse_with("\"rope_scaling\":{\"rope_type\":\"default\"},\"dtype\":\"float32\"", &c) == 0 &&
              c.rope_type == W8_ROPE_DEFAULT && c.torch_dtype == W8_F32,
          "rope_scaling default, \"dtype\" key");
    const char *mistral = "{\"architectures\":[\"MistralForCausalLM\"],\"hidden_size\":64,"
                          "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"intermediate_size\":96,"
                          "\"vocab_size\":100,\"sliding_window\":4096}";
    CHECK(parse(mistral, &c) == 0 && c.arch == W8_ARCH_MISTRAL && c.max_pos == 4096 && !c.qkv_bias,
          "mistral parses; its 4096 sliding window caps the context at 4096");
    /* Qwen/Qwen3-0.6B's config.json as published (transformers 4.51) */
    const char *qwen3 =
        "{\"architectures\": [\"Qwen3ForCausalLM\"], \"attention_bias\": false, "
        "\"attention_dropout\": 0.0, \"bos_token_id\": 151643, \"eos_token_id\": 151645, "
        "\"head_dim\": 128, \"hidden_act\": \"silu\", \"hidden_size\": 1024, "
        "\"initializer_range\": 0.02, \"intermediate_size\": 3072, "
        "\"max_position_embeddings\": 40960, \"max_window_layers\": 28, \"model_type\": \"qwen3\", "
        "\"num_attention_heads\": 16, \"num_hidden_layers\": 28, \"num_key_value_heads\": 8, "
        "\"rms_norm_eps\": 1e-06, \"rope_scaling\": null, \"rope_theta\": 1000000, "
        "\"sliding_window\": null, \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\", "
        "\"transformers_version\": \"4.51.0\", \"use_cache\": true, \"use_sliding_window\": false, "
        "\"vocab_size\": 151936}";
    CHECK(parse(qwen3, &c) == 0 && c.arch == W8_ARCH_QWEN3 && !strcmp(c.model_type, "qwen3") &&
              !strcmp(c.arch_name, "Qwen3ForCausalLM"),
          "Qwen3-0.6B config parses");
    CHECK(c.hidden == 1024 && c.n_heads == 16 && c.n_kv_heads == 8 && c.head_dim == 128 &&
              c.n_heads * c.head_dim == 2048 && c.intermediate == 3072 && c.n_layers == 28 &&
              c.max_pos == 40960 && c.rope_theta == 1e6f && c.rms_eps == 1e-6f && c.tie_embeddings &&
              c.qk_norm && !c.qkv_bias && !c.o_bias && !c.mlp_bias,
          "qwen3: head_dim 128 with hidden 1024 / 16 heads, q/k norm, no bias, tied");
    const char *qwen3_min = "{\"architectures\":[\"Qwen3ForCausalLM\"],\"hidden_size\":64,"
                            "\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                            "\"intermediate_size\":96,\"vocab_size\":100,\"attention_bias\":true}";
    CHECK(parse(qwen3_min, &c) == 0 && c.head_dim == 128 && c.max_pos == 32768 &&
              !c.tie_embeddings && c.qkv_bias && c.o_bias && !c.mlp_bias && c.qk_norm,
          "qwen3 defaults (Qwen3Config): head_dim 128, not hidden / heads; attention_bias "
          "biases q/k/v and o");

    const char *gen = "{\"bos_token_id\":151643,\"eos_token_id\":[151645,151643],\"do_sample\":true,"
                      "\"temperature\":0.7,\"top_p\":0.8,\"top_k\":20,\"repetition_penalty\":1.05}";
    CHECK(w8_genconfig_parse(gen, strlen(gen), "d/generation_config.json", &c) == 0 &&
              c.bos_id == 151643 && c.n_eos == 2 && c.eos_ids[0] == 151645 && c.do_sample == 1 &&
              fabsf(c.temperature - 0.7f) < 1e-6f && fabsf(c.top_p - 0.8f) < 1e-6f && c.top_k == 20 &&
              fabsf(c.repetition_penalty - 1.05f) < 1e-6f,
          "generation_config overrides ids and sampling defaults");
    const char *badgen = "{\"top_p\":\"high\"}";
    CHECK(w8_genconfig_parse(badgen, strlen(badgen), "d/generation_config.json", &c) != 0 &&
              strstr(w8_lasterr(), "d/generation_config.json: key 'top_p': expected number, got string") &&
              c.top_k == 20,
          "generation_config wrong type refused, cfg kept: %s", w8_lasterr());
}

static void test_bad(void) {
    w8_config c;
    const char *gpt2 = "{\"architectures\":[\"GPT2LMHeadModel\"],\"hidden_size\":64}";
    CHECK(parse(gpt2, &c) != 0 &&
              !strcmp(w8_lasterr(), "d/config.json: unsupported architecture 'GPT2LMHeadModel' "
                                    "(supported: Qwen2ForCausalLM, LlamaForCausalLM, MistralForCausalLM, "
                                    "Qwen3ForCausalLM)"),
          "refuses unknown architecture: %s", w8_lasterr());
    CHECK(parse("{\"hidden_size\":64}", &c) != 0 && strstr(w8_lasterr(), "'architectures'"),
          "refuses missing architectures: %s", w8_lasterr());
    const char *nohid = "{\"architectures\":[\"LlamaForCausalLM\"],\"num_hidden_layers\":2}";
    CHECK(parse(nohid, &c) != 0 &&
              !strcmp(w8_lasterr(), "d/config.json: missing required key 'hidden_size'"),
          "refuses missing key: %s", w8_lasterr());
    CHECK(parse("{\"architectures\":", &c) != 0 && strstr(w8_lasterr(), "malformed JSON"),
          "refuses malformed JSON: %s", w8_lasterr());
    bad("wrong type", "\"rms_norm_eps\":\"small\"", "key 'rms_norm_eps': expected number, got string");
    bad("wrong type (bool)", "\"tie_word_embeddings\":1", "key 'tie_word_embeddings': expected boolean");
    bad("fractional int", "\"num_key_value_heads\":1.5", "key 'num_key_value_heads': expected integer");
    bad("bad rope type", "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4.0}",
        "key 'rope_scaling.type': 'yarn' is unsupported (supported: default, linear, llama3");
    bad("llama3 rope missing params", "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0}",
        "missing required key 'low_freq_factor'");
    bad("llama3 rope bad order",
        "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":4.0,"
        "\"high_freq_factor\":1.0,\"original_max_position_embeddings\":8192}",
        "low_freq_factor");
    bad("llama3 rope no orig max", "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,"
        "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0}", "original_max_position_embeddings");
    bad("linear rope without factor", "\"rope_scaling\":{\"type\":\"linear\"}", "'factor'");
    bad("rope_scaling not an object", "\"rope_scaling\":3", "rope_scaling");
    bad("absurd layers", "\"num_hidden_layers\":100000", "'num_hidden_layers'");
    bad("huge real for an int", "\"num_hidden_layers\":1e56", "key 'num_hidden_layers': expected integer");
    bad("zero heads", "\"num_attention_heads\":0", "'num_attention_heads'");
    bad("kv heads not dividing", "\"num_key_value_heads\":3", "not a multiple of num_key_value_heads 3");
    bad("odd head_dim", "\"head_dim\":15", "head_dim 15 is odd");
    bad("negative vocab", "\"vocab_size\":-5", "'vocab_size'");
    bad("huge vocab", "\"vocab_size\":100000000", "'vocab_size'");
    bad("bad eos list", "\"eos_token_id\":[1,\"x\"]", "eos_token_id");
    bad("too many eos", "\"eos_token_id\":[1,2,3,4,5,6,7,8,9]", "eos_token_id");
    bad("unknown torch_dtype", "\"torch_dtype\":\"float8\"", "'float8'");
    const char *nodiv = "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":66,\"num_hidden_layers\":2,"
                        "\"num_attention_heads\":4,\"intermediate_size\":96,\"vocab_size\":100}";
    CHECK(parse(nodiv, &c) != 0 && strstr(w8_lasterr(), "not divisible"), "refuses hidden %% heads: %s",
          w8_lasterr());
}

/* The real files of ../shared/realmodels: originals and transformers
 * 4.56 / 5.1 re-saves, each giving the fields transformers would use. */
static void test_realmodels(void) {
    w8_config c;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/realmodels/Llama-3.2-1B-Instruct", shared_dir());
    int rc = w8_config_load(dir, &c);
    CHECK(rc == 0, "Llama-3.2-1B-Instruct loads (%s)", rc ? w8_lasterr() : "");
    CHECK(c.rope_theta == 500000.0f && c.rope_type == W8_ROPE_LLAMA3 && c.rope_factor == 32.0f &&
              c.rope_low_freq_factor == 1.0f && c.rope_high_freq_factor == 4.0f &&
              c.rope_orig_max_pos == 8192 && c.max_pos == 131072 && c.head_dim == 64,
          "Llama-3.2: llama3 rope (theta 5e5, factor 32, 1/4, 8192), 131072 positions");
    CHECK(c.torch_dtype == W8_BF16 && c.tie_embeddings && c.n_eos == 3 && c.eos_ids[0] == 128001 &&
              c.eos_ids[2] == 128009 && c.bos_id == 128000 && fabsf(c.rms_eps - 1e-5f) < 1e-12f,
          "Llama-3.2: bf16, tied, eos [128001, 128008, 128009], bos 128000");

    snprintf(dir, sizeof dir, "%s/realmodels/Qwen2.5-0.5B-Instruct", shared_dir());
    rc = w8_config_load(dir, &c);
    CHECK(rc == 0, "Qwen2.5-0.5B-Instruct loads (%s)", rc ? w8_lasterr() : "");
    CHECK(c.arch == W8_ARCH_QWEN2 && c.rope_theta == 1e6f && c.rope_type == W8_ROPE_DEFAULT &&
              c.max_pos == 32768 && c.torch_dtype == W8_BF16 && c.n_eos == 2 &&
              c.eos_ids[0] == 151645 && c.eos_ids[1] == 151643 && c.pad_id == 151643,
          "Qwen2.5-0.5B: theta 1e6, sliding window off, bf16, eos from generation_config");

    snprintf(dir, sizeof dir, "%s/realmodels/Qwen2.5-1.5B-Instruct-tf5-resaved", shared_dir());
    rc = w8_config_load(dir, &c);
    CHECK(rc == 0, "Qwen2.5-1.5B-Instruct-tf5-resaved loads (%s)", rc ? w8_lasterr() : "");
    CHECK(c.rope_theta == 1e6f && c.rope_type == W8_ROPE_DEFAULT && c.torch_dtype == W8_F16 &&
              c.max_pos == 32768 && c.n_layers == 28 && c.tie_embeddings && c.n_eos == 2 &&
              c.eos_ids[0] == 151645,
          "Qwen2.5-1.5B tf5: theta 1e6 from rope_parameters, dtype float16, layer_types accepted");

    snprintf(dir, sizeof dir, "%s/realmodels/SmolLM2-360M-Instruct", shared_dir());
    rc = w8_config_load(dir, &c);
    CHECK(rc == 0, "SmolLM2-360M-Instruct loads (%s)", rc ? w8_lasterr() : "");
    CHECK(c.rope_theta == 100000.0f && c.rope_type == W8_ROPE_DEFAULT && c.torch_dtype == W8_BF16 &&
              c.n_heads == 15 && c.n_kv_heads == 5 && c.head_dim == 64 && c.n_eos == 1 &&
              c.eos_ids[0] == 2 && c.max_pos == 8192,
          "SmolLM2: integer rope_theta 100000, rope_scaling null, eos 2");

    snprintf(dir, sizeof dir, "%s/realmodels/TinyLlama-1.1B-Chat-v1.0-resaved", shared_dir());
    rc = w8_config_load(dir, &c);
    CHECK(rc == 0, "TinyLlama-1.1B-Chat-v1.0-resaved loads (%s)", rc ? w8_lasterr() : "");
    CHECK(c.rope_theta == 10000.0f && c.torch_dtype == W8_F32 && !c.tie_embeddings &&
              c.n_eos == 1 && c.eos_ids[0] == 2 && c.pad_id == 0 && c.max_pos == 2048,
          "TinyLlama 4.56: dtype float32 (the new key), theta 1e4, eos 2");
}

/* Compares every field of two configs. */
static int same_config(const w8_config *a, const w8_config *b) { return !memcmp(a, b, sizeof *a); }

/* transformers 4.x and 5.x spellings of the same model give the same config. */
static void test_tf5(void) {
    static const struct {
        const char *what, *v4, *v5;
    } pairs[] = {
        {"default rope", "\"rope_theta\":500000.0,\"torch_dtype\":\"float16\"",
         "\"rope_parameters\":{\"rope_theta\":500000.0,\"rope_type\":\"default\"},\"dtype\":\"float16\""},
        {"llama3 rope",
         "\"rope_theta\":500000.0,\"rope_scaling\":{\"factor\":32.0,\"high_freq_factor\":4.0,"
         "\"low_freq_factor\":1.0,\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"}",
         "\"rope_parameters\":{\"factor\":32.0,\"high_freq_factor\":4.0,\"low_freq_factor\":1.0,"
         "\"original_max_position_embeddings\":8192,\"rope_theta\":500000.0,\"rope_type\":\"llama3\"}"},
        {"linear rope, old 'type' key",
         "\"rope_theta\":10000,\"rope_scaling\":{\"type\":\"linear\",\"factor\":4}",
         "\"rope_parameters\":{\"rope_theta\":10000.0,\"rope_type\":\"linear\",\"factor\":4.0}"},
        {"rope per layer type", "\"rope_theta\":1000000.0,\"layer_types\":[\"full_attention\",\"full_attention\"]",
         "\"rope_parameters\":{\"full_attention\":{\"rope_theta\":1000000.0,\"rope_type\":\"default\"}},"
         "\"layer_types\":[\"full_attention\",\"full_attention\"]"},
        {"both dtype keys: dtype wins", "\"torch_dtype\":\"float32\"",
         "\"dtype\":\"float32\",\"torch_dtype\":\"bfloat16\""},
        {"null optional values", "", "\"rope_scaling\":null,\"rope_parameters\":null,\"sliding_window\":null,"
         "\"bos_token_id\":null,\"pad_token_id\":null,\"head_dim\":null,\"layer_types\":null"},
        {"empty rope_scaling falls back to rope_parameters", "\"rope_theta\":20000.0",
         "\"rope_scaling\":{},\"rope_parameters\":{\"rope_theta\":20000.0}"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        w8_config a, b;
        int ra = parse_with(pairs[i].v4, &a);
        int rb = ra == 0 ? parse_with(pairs[i].v5, &b) : -1;
        CHECK(ra == 0 && rb == 0 && same_config(&a, &b), "4.x and 5.x configs agree: %s (%s)",
              pairs[i].what, ra || rb ? w8_lasterr() : "");
    }
    w8_config c;
    CHECK(parse_with("\"rope_theta\":1.0e4,\"rope_parameters\":{\"rope_theta\":30000,\"rope_type\":\"default\"}",
                     &c) == 0 && c.rope_theta == 30000.0f,
          "rope_parameters' rope_theta wins over the top-level one (as transformers 5)");
    const char *odd = "{\"architectures\":[\"Qwen2ForCausalLM\"],\"hidden_size\":64,\"num_hidden_layers\":2,"
                      "\"num_attention_heads\":4,\"intermediate_size\":96,\"vocab_size\":100,"
                      "\"hidden_act\":\"silu\",\"use_sliding_window\":false,\"sliding_window\":4096,"
                      "\"max_position_embeddings\":32768,\"some_future_key\":{\"x\":[1,2]},"
                      "\"model_max_length\":1000000000000000019884624838656,\"rope_theta\":10000}";
    CHECK(parse(odd, &c) == 0 && c.max_pos == 32768 && c.rope_theta == 10000.0f,
          "unknown keys, a too-big integer and a switched-off window are accepted");
    CHECK(parse_with("\"use_sliding_window\":true,\"sliding_window\":1024,\"max_window_layers\":0,"
                     "\"max_position_embeddings\":32768", &c) == 0 && c.max_pos == 1024,
          "use_sliding_window true: the context is capped at the window (1024)");
    CHECK(parse_with("\"use_sliding_window\":true,\"sliding_window\":1024,\"max_window_layers\":2,"
                     "\"max_position_embeddings\":32768", &c) == 0 && c.max_pos == 32768,
          "use_sliding_window true but no layer past max_window_layers: full context");
    CHECK(parse_with("\"layer_types\":[\"full_attention\",\"sliding_attention\"],\"sliding_window\":512,"
                     "\"max_position_embeddings\":4096", &c) == 0 && c.max_pos == 512,
          "a sliding_attention layer: the context is capped at the window (512)");
    CHECK(parse_with("\"use_sliding_window\":true,\"sliding_window\":null,\"max_window_layers\":0,"
                     "\"max_position_embeddings\":32768", &c) == 0 && c.max_pos == 32768,
          "use_sliding_window true with sliding_window null: no window");
    CHECK(parse_with("\"use_sliding_window\":true,\"sliding_window\":65536,\"max_window_layers\":0,"
                     "\"max_position_embeddings\":32768", &c) == 0 && c.max_pos == 32768,
          "a window at least the context changes nothing");
    const char *mistral = "{\"architectures\":[\"MistralForCausalLM\"],\"hidden_size\":64,"
                          "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"intermediate_size\":96,"
                          "\"vocab_size\":100,\"sliding_window\":null,\"max_position_embeddings\":32768}";
    CHECK(parse(mistral, &c) == 0 && c.max_pos == 32768, "mistral with sliding_window null: full context");

    bad("unknown activation", "\"hidden_act\":\"gelu\"", "key 'hidden_act': 'gelu' is unsupported");
    bad("yarn in rope_parameters", "\"rope_parameters\":{\"rope_theta\":1e6,\"rope_type\":\"yarn\",\"factor\":4}",
        "key 'rope_parameters.rope_type': 'yarn' is unsupported");
    CHECK(parse_with("\"rope_scaling\":{\"rope_type\":\"dynamic\",\"factor\":2.0}", &c) == 0 &&
              c.rope_type == W8_ROPE_DEFAULT && c.rope_factor == 1.0f,
          "dynamic RoPE within max_position_embeddings is the default RoPE");
    bad("dynamic rope past its original context",
        "\"rope_scaling\":{\"rope_type\":\"dynamic\",\"factor\":2.0,\"original_max_position_embeddings\":1024}",
        "key 'rope_scaling.rope_type': 'dynamic' with original_max_position_embeddings 1024 below "
        "max_position_embeddings 2048");
    bad("per-layer rope, yarn", "\"rope_parameters\":{\"full_attention\":{\"rope_type\":\"yarn\",\"factor\":4}}",
        "key 'rope_parameters.full_attention.rope_type': 'yarn'");
    bad("partial rotary", "\"partial_rotary_factor\":0.5", "key 'partial_rotary_factor': 0.5 is unsupported");
    bad("partial rotary in rope_parameters",
        "\"rope_parameters\":{\"rope_theta\":1e4,\"partial_rotary_factor\":0.25}",
        "rope_parameters: key 'partial_rotary_factor'");
    bad("unknown layer type", "\"layer_types\":[\"full_attention\",\"linear_attention\"]",
        "key 'layer_types': element 1 ('linear_attention') is unsupported");
    bad("layer_types of the wrong length", "\"layer_types\":[\"full_attention\"]",
        "key 'layer_types': 1 entries for 2 layers");
    bad("rope_parameters not an object", "\"rope_parameters\":[1]", "key 'rope_parameters': expected object");
    bad("unknown dtype key value", "\"dtype\":\"float8_e4m3fn\"", "key 'dtype': 'float8_e4m3fn'");
}

static void test_qdesc(void) {
    const char *ok = "{\"model_quant_type\":\"W8A8\",\"version\":\"1.0.0\",\"group_size\":0,"
                     "\"model.layers.0.self_attn.q_proj.weight\":\"W8A8\","
                     "\"model.layers.0.mlp.down_proj.weight\":\"FLOAT\",\"lm_head.weight\":\"W4A16\","
                     "\"model.layers.0.mlp.up_proj.weight\":\"W8A8_DYNAMIC\"}";
    w8_qdesc *q = w8_qdesc_parse(ok, strlen(ok), "d/quant_model_description.json");
    CHECK(q != NULL, "description parses");
    if (q) {
        CHECK(!strcmp(w8_qdesc_model_type(q), "W8A8") && !strcmp(w8_qdesc_version(q), "1.0.0"),
              "model_quant_type and version");
        CHECK(w8_qdesc_get(q, "model.layers.0.self_attn.q_proj.weight") == 1 &&
                  w8_qdesc_get(q, "model.layers.0.mlp.down_proj.weight") == 0 &&
                  w8_qdesc_get(q, "lm_head.weight") == W8_QT_OTHER &&
                  w8_qdesc_get(q, "model.layers.0.mlp.up_proj.weight") == W8_QT_W8A8_DYNAMIC &&
                  w8_qdesc_get(q, "nope") == -1,
              "W8A8 / FLOAT / other / W8A8_DYNAMIC / absent");
        CHECK(json_is_object(w8_qdesc_json(q)), "json accessor");
        w8_qdesc_free(q);
    }
    const char *nover = "{\"model_quant_type\":\"W8A8\"}";
    q = w8_qdesc_parse(nover, strlen(nover), "d/q.json");
    CHECK(q && w8_qdesc_version(q) == NULL, "version optional");
    w8_qdesc_free(q);
    const char *bad1 = "{\"model_quant_type\":\"W8A8\",\"a.weight\":1}";
    q = w8_qdesc_parse(bad1, strlen(bad1), "d/q.json");
    CHECK(!q && strstr(w8_lasterr(), "d/q.json: key 'a.weight'"), "non-string entry refused: %s",
          w8_lasterr());
    const char *bad2 = "{\"a.weight\":\"W8A8\"}";
    q = w8_qdesc_parse(bad2, strlen(bad2), "d/q.json");
    CHECK(!q && strstr(w8_lasterr(), "model_quant_type"), "missing model_quant_type refused: %s",
          w8_lasterr());
    q = w8_qdesc_parse("[]", 2, "d/q.json");
    CHECK(!q && strstr(w8_lasterr(), "d/q.json"), "non-object refused");

    /* load: none -> float model; the _w8a8 file name; a broken file */
    char dir[] = "/tmp/w8cfg-XXXXXX";
    if (!mkdtemp(dir)) return;
    w8_qdesc *out = (w8_qdesc *)1;
    CHECK(w8_qdesc_load(dir, &out) == 0 && out == NULL, "no description: float model");
    char *p = w8_path_join(dir, "quant_model_description_w8a8.json");
    FILE *f = fopen(p, "w");
    fputs(ok, f);
    fclose(f);
    CHECK(w8_qdesc_load(dir, &out) == 0 && out &&
              w8_qdesc_get(out, "model.layers.0.mlp.down_proj.weight") == W8_QT_FLOAT,
          "quant_model_description_w8a8.json accepted");
    w8_qdesc_free(out);
    f = fopen(p, "w");
    fputs("{\"model_quant_type\":", f);
    fclose(f);
    CHECK(w8_qdesc_load(dir, &out) != 0 && strstr(w8_lasterr(), "quant_model_description_w8a8.json"),
          "broken description refused: %s", w8_lasterr());
    free(p);
    w8_rm_rf(dir);
}

int main(void) {
    test_stories();
    test_defaults();
    test_bad();
    test_realmodels();
    test_tf5();
    test_qdesc();
    TEST_DONE();
}

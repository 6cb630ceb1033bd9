/*
 * synth.h - write a float Hugging Face Qwen2 or Qwen3 model directory with
 * random weights and the real shapes of Qwen2.5-0.5B / 1.5B / Qwen2-7B /
 * Qwen3-0.6B / Qwen3-8B (or tiny shapes for tests), so quantization, loading
 * and speed can be exercised without downloading weights.
 *
 * Weights are normal(0, 0.02), norms 1 (Qwen3's q_norm / k_norm too),
 * Qwen2's q/k/v biases 0.  Numbers come from
 * w8_rng streams seeded per (seed, tensor, 64K-element chunk), so the files
 * are byte-identical for the same seed whatever the thread count.
 */
#ifndef W8_SYNTH_H
#define W8_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

typedef struct {
    const char *name;     /* "qwen2.5-0.5b" */
    int hidden, n_layers, n_heads, n_kv_heads, intermediate, vocab;
    int tied;             /* tie_word_embeddings (no lm_head.weight) */
    int max_pos, max_window_layers, sliding_window;
    double rope_theta;
    int qwen3;            /* Qwen3ForCausalLM: q_norm / k_norm, no q/k/v bias */
    int head_dim;         /* explicit head_dim (Qwen3); 0: hidden / n_heads */
} w8_synth_shape;

/* The shape called `name`, or NULL (error lists the known names). */
const w8_synth_shape *w8_synth_find_shape(const char *name);
/* Parameter count of a shape (e.g. 494032768 for qwen2.5-0.5b, 596049920 for
 * qwen3-0.6b, as the real models). */
size_t w8_synth_numel(const w8_synth_shape *s);
/* "qwen2.5-0.5b|...|tiny|qwen3-tiny" (for usage lines). */
const char *w8_synth_shape_names(void);

typedef struct {
    const w8_synth_shape *shape;
    w8_dtype dtype;             /* W8_F16 or W8_BF16 (W8_F32 also works) */
    uint64_t seed;
    double shard_gb;            /* > 0: shard into files of at most this many GB */
    const char *tokenizer_json; /* copied as tokenizer.json (NULL: none) */
    const char *tokenizer_config; /* copied as tokenizer_config.json (NULL: none) */
    int quiet;                  /* no progress output */
    /* If set, checked between blocks: nonzero stops the run with an error
     * (the command points it at a flag its SIGINT/SIGTERM handler sets). */
    const volatile int *cancel;
    /* Instead of `shape`: a real model directory's config.json decides the
     * tensor names and shapes (as transformers builds them for that config),
     * and its small files (config, tokenizer, templates) are copied. */
    const char *config_dir;
    int layers;                 /* > 0: keep only this many layers (config_dir) */
    int dtype_given;            /* dtype overrides the config's (config_dir) */
} w8_synth_opts;

/* Parameter count of what w8_synth_write(o) writes (shape or config). */
int w8_synth_count(const w8_synth_opts *o, size_t *numel);

/* Write the model into out_dir: built in "out_dir.w8a8-tmp-PID" (dirtx.h)
 * and renamed when complete, so a failure leaves nothing behind.  Refuses an
 * existing non-empty out_dir. */
int w8_synth_write(const w8_synth_opts *o, const char *out_dir);

/* A float model with strong per-channel activation outliers and the same
 * float function (issue 14's accuracy test, and sensitivity studies): copy
 * the float model at src_dir to out_dir (one model.safetensors in the
 * source dtype, the other files as they are), with n_channels channels of
 * every input_layernorm / post_attention_layernorm weight multiplied by
 * `factor` and the matching input columns of the layers reading that norm
 * (q/k/v, gate/up) divided by it.  The channels are the same in every
 * layer (as real outlier channels are): c_j = (seed mod step) + j * step,
 * step = hidden / n_channels.  Built under a temporary name and renamed. */
int w8_synth_outliers(const char *src_dir, const char *out_dir, int n_channels, float factor,
                      uint64_t seed);
/* The same for one norm only: the weight named `norm` (for example
 * "model.layers.2.post_attention_layernorm.weight") and the layers that read
 * it; every other tensor is copied as it is (a model whose few damaged
 * layers a sensitivity ranking must find).  NULL: every norm, as above. */
int w8_synth_outliers_at(const char *src_dir, const char *out_dir, const char *norm,
                         int n_channels, float factor, uint64_t seed);

/* Fill dst[0..n) with normal(0, std) values of tensor `tensor` (its index in
 * the file), starting at element `first`; deterministic in (seed, tensor,
 * element) whatever the chunking or thread count.  Exposed for tests. */
void w8_synth_normal(uint64_t seed, uint64_t tensor, uint64_t first, float std, float *dst,
                     size_t n);

#endif

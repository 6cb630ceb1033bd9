/*
 * model.h - a loaded model (float or W8A8) and its linear layers.
 *
 * Weights are memory-mapped; float matrices stay in their file dtype and are
 * converted on the fly by the kernels.  Each linear layer takes the int8 path
 * when quant_model_description.json says "W8A8" for its .weight, the float
 * path otherwise.  Layers that share an input (q/k/v, gate/up) are fused into
 * one GEMM when they take the same path (and, for int8, the same input
 * scale/offset, which FORMAT.md requires).
 */
#ifndef W8_MODEL_H
#define W8_MODEL_H

#include <stdint.h>

#include "config.h"
#include "kernels/kernels.h"
#include "safetensors.h"

/* One linear layer y = x W^T + b, W [n, k]. */
typedef struct {
    int n, k;
    int quantized;      /* 1: int8 path (q, in_scale, in_offset); 0: float path (f, bias) */
    int dynamic;        /* with quantized: W8A8_DYNAMIC, per-row activation scales
                         * (q packed with quant_bias 0 and deq_scale = weight_scale,
                         * bias the f32 float bias); in_scale/in_offset unused */
    w8_qmat q;
    int converted;      /* with dynamic: float in the file, quantized at load
                         * (W8_FLOAT_LAYERS_INT8); a fused group: any part */
    float in_scale;
    int in_offset;
    w8_fmat f;
    float *bias;        /* float / dynamic path bias [n] (owned) or NULL */
} w8_linear;

/* Linear layers that read the same input: q/k/v or gate/up.  parts[] are the
 * logical layers (n of each); when fused (all int8 with one input scale and
 * offset), fused_lin holds them stacked along n and parts[] keep only their
 * shape and quantization parameters (no packed weights). */
typedef struct {
    int n_parts;
    int part_n[3];
    int fused;
    w8_linear fused_lin;
    w8_linear parts[3];
} w8_linear_group;

typedef struct {
    float *attn_norm, *attn_norm_b;  /* [hidden] f32; _b from anti-outlier (NULL if none) */
    float *ffn_norm, *ffn_norm_b;
    w8_linear_group qkv;             /* q [nh*hd], k [nkv*hd], v [nkv*hd] */
    float *q_norm, *k_norm;          /* Qwen3: [head_dim] f32, per-head RMSNorm (else NULL) */
    w8_linear o;
    w8_linear_group gate_up;         /* gate [inter], up [inter] */
    w8_linear down;
} w8_layer;

/* What the loader does with the linear layers a directory keeps float
 * (a W8A8 recipe's lm_head and down_proj; every layer of a float
 * directory).  The files are never changed: this is a run-time choice. */
typedef enum {
    W8_FLOAT_LAYERS_FILE = 0, /* run them as the file stores them (default) */
    W8_FLOAT_LAYERS_INT8,     /* quantize them at load to W8A8_DYNAMIC: per-output-
                               * channel symmetric int8 weights (the quantizer's
                               * arithmetic, w8_wquant_*), per-token activations */
} w8_float_layers;

typedef struct {
    w8_float_layers float_layers;
} w8_load_opts;

typedef struct w8_model {
    char *dir;
    w8_config cfg;
    w8_st *st;
    int quantized;          /* directory is W8A8 (has a description) */
    int n_int8, n_float;    /* counts of linear layers by path */
    int n_dynamic;          /* ... of n_int8, W8A8_DYNAMIC */
    int n_converted;        /* ... of n_dynamic, float in the file, made int8 at load
                             * (W8_FLOAT_LAYERS_INT8) */
    const w8_tensor *embed; /* [vocab, hidden], file dtype */
    float *final_norm;      /* [hidden] */
    float *final_norm_b;
    w8_linear lm_head;      /* float (tied: points at embed) or int8 */
    w8_layer *layers;       /* [n_layers] */
    float *rope_inv_freq;   /* [head_dim / 2], rope scaling applied */
} w8_model;

w8_model *w8_model_load(const char *dir);
/* With options (NULL: the defaults, = w8_model_load). */
w8_model *w8_model_load_opts(const char *dir, const w8_load_opts *o);
/* "file" or "int8" (--float_layers); -1 with the error set otherwise. */
int w8_float_layers_parse(const char *s, w8_float_layers *out);
/* "float", "W8A8", "W8A8_DYNAMIC", or "W8A8+W8A8_DYNAMIC" (mixed), for
 * banners: what the file holds; with layers made int8 at load, followed by
 * " +int8 float layers" (a float directory: "float +int8 linears"). */
const char *w8_model_kind(const w8_model *m);
void w8_model_free(w8_model *m);

/* y[m, n] = x[m, k] W^T + b.  For an int8 layer the rows are quantized
 * with the layer's input scale/offset first (W8A8_DYNAMIC: each row with
 * its own scale, w8_gemm_i8_dyn) (scratch: m*k int8, may be NULL to
 * allocate).  Each row's result is bitwise independent of m and of the
 * other rows (int8 sums are exact; float layers use the row-invariant
 * w8_gemm_f), so batching never changes a sequence's output. */
void w8_linear_apply(const w8_linear *l, int m, const float *x, size_t ldx, float *y,
                     size_t ldy, int8_t *scratch);

/* The weight bytes the kernels read for l, as loaded: the packed int8 or
 * float copy, or the file's float rows in place.  Returns the size. */
size_t w8_linear_weights(const w8_linear *l, const void **w);

#endif

/*
 * sensitivity.h - how much quantizing each linear layer alone changes the
 * model's output (`quant --disable_level LN`, `--sensitivity_report`).
 *
 * The measure is the KL divergence KL(p_float || p_one) of the final
 * next-token distributions, averaged over every position of the
 * calibration samples, where p_one is the float model with only that layer
 * replaced by exactly the int8 layer the quantizer would write (same weight
 * scales, quant_bias, deq_scale, and the activation scale/offset from the
 * calibration ranges), run through the real int8 kernels.
 *
 * Why KL of the logits rather than the layer output's relative error: the
 * relative error is local, so it cannot rank layers of different kinds
 * against each other (an o_proj whose output is small next to the residual
 * stream can have a large relative error and no effect on the answer, while
 * a small error in an early q_proj can grow through every later layer); the
 * KL measures the effect on what the model says, which is what a user sees,
 * in one unit for every layer.  It costs one forward pass per layer per
 * sample, hence a capped number of samples.
 *
 * Smoothing (--anti_outlier) is not applied while measuring: the ranking is
 * that of plain W8A8.
 */
#ifndef W8_SENSITIVITY_H
#define W8_SENSITIVITY_H

#include <stdio.h>

#include "../safetensors.h"

/* The calibration samples used at most (each up to calib_seq_len tokens). */
#define W8_SENS_MAX_SAMPLES 16

/* Kinds of linear layer, in the order of a decoder layer. */
enum { W8_SENS_Q, W8_SENS_K, W8_SENS_V, W8_SENS_O, W8_SENS_GATE, W8_SENS_UP, W8_SENS_DOWN };

typedef struct {
    char name[160];  /* "model.layers.0.self_attn.q_proj" */
    int layer;       /* decoder layer */
    int kind;        /* W8_SENS_* */
    float in_scale;  /* the activation quantization it would get */
    int in_offset;
    double kl;       /* out: mean KL (nats per token) with only this layer int8 */
} w8_sens_layer;

typedef struct {
    int n_samples;   /* samples run */
    long n_tokens;   /* positions scored */
    double kl_all;   /* mean KL with every measured layer int8 */
    double kl_kept;  /* ... with every measured layer int8 except the n_disable worst */
    int n_disable;
} w8_sens_stats;

/* Measure every layer of l[0..n) on the float model at model_path over the
 * texts (at most W8_SENS_MAX_SAMPLES, each cut to seq_len tokens), then
 * kl_all and kl_kept for the n_disable layers of highest KL.  progress: a
 * bar on stderr when non-zero.  0 ok, -1 error. */
int w8_sens_measure(const char *model_path, char *const *texts, int n_texts, int seq_len,
                    w8_sens_layer *l, int n, int n_disable, w8_sens_stats *st, int progress);

/* The same measure for an existing pair of directories (`compare
 * --sensitivity`): each int8 unit of the W8A8 model swapped alone into the
 * float model, as loaded (a fused q/k/v or gate/up group counts as one
 * unit, named "...q_proj+k_proj+v_proj").  Refused when the W8A8 model's
 * norms differ from the float ones (smoothing folded in).  *out: the units
 * in forward order (caller frees).  0 ok, -1 error. */
int w8_sens_measure_pair(const char *float_dir, const char *quant_dir, char *const *texts,
                         int n_texts, int seq_len, w8_sens_layer **out, int *n_out,
                         w8_sens_stats *st, int progress);

/* order[0..n): indices of l by decreasing KL (ties: file order). */
void w8_sens_rank(const w8_sens_layer *l, int n, int *order);

/* "L2" or "2" (msModelSlim writes disable_level='L2'): 0 ok, -1 error. */
int w8_sens_parse_level(const char *s, int *n);

/* Write the ranking as JSON to path (via a temporary file and rename). */
int w8_sens_write_report(const char *path, const w8_sens_layer *l, int n, const int *order,
                         const w8_sens_stats *st);

/* Print the ranking (top max(10, n_disable) lines) to f. */
void w8_sens_print(FILE *f, const w8_sens_layer *l, int n, const int *order,
                   const w8_sens_stats *st);

#endif

/*
 * compare.h - where does quantization hurt?  Run a float model and its W8A8
 * copy over the same windows and measure, per layer, how far the quantized
 * residual stream (W8_OBS_LAYER_OUT) drifts from the float one, and at the
 * end how the next-token distributions differ.
 *
 * Per layer, averaged over tokens:  cosine similarity cos(a, b) and relative
 * error ||a - b|| / ||a|| of the hidden state (a = float, b = quantized), plus
 * the worst token's cosine.  For the logits: top-1 agreement, mean
 * KL(float || quant) in nats, and both models' perplexities over the windows
 * (scored as in ppl.h).  All sums in double.
 */
#ifndef W8_COMPARE_H
#define W8_COMPARE_H

#include "model.h"
#include "ppl.h"

typedef struct {
    double cos_sum, rel_sum; /* sums over tokens */
    double cos_min;          /* worst token */
    long n;                  /* tokens seen */
} w8_layer_cmp;

typedef struct {
    int n_layers;
    w8_layer_cmp *layers;   /* [n_layers] (owned) */
    long n_tokens;          /* logit rows compared */
    long top1_agree;        /* rows whose argmax matches */
    double kl_sum;          /* sum of KL(float || quant) over rows */
    double kl_max;
    w8_ppl_stats ppl_a;     /* float model */
    w8_ppl_stats ppl_b;     /* quantized model */
} w8_compare_result;

/* KL(p || q) with p = softmax(a), q = softmax(b), in double (nats). */
double w8_kl_logits(const float *a, const float *b, int vocab);

/* Run both models over the windows of ids[0..n) (options as in ppl.h).  The
 * models must have the same shape (layers, hidden size, vocabulary).  cb
 * (may be NULL) is called after each window with model A's running ppl.
 * Free the result with w8_compare_free, also after a failure. */
int w8_compare_eval(const w8_model *a, const w8_model *b, const int *ids, int n,
                    const w8_ppl_opts *o, w8_compare_result *out, w8_ppl_cb cb, void *ud);
void w8_compare_free(w8_compare_result *r);

/* Derived figures. */
double w8_compare_top1(const w8_compare_result *r); /* percent */
double w8_compare_kl(const w8_compare_result *r);   /* mean nats */

#endif

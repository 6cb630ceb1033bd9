/*
 * arith.h - FORMAT.md's quantization arithmetic, on its own: the activation
 * parameters from an observed range and one linear layer's int8 weights,
 * quant_bias and deq_scale.  The quantizer (quantize.c) and the sensitivity
 * measure (sensitivity.c) both use it; it depends on nothing but util and
 * the kernels' per-channel weight rounding (w8_wquant_*, which the loader
 * shares for --float_layers int8).
 */
#ifndef W8_QUANT_ARITH_H
#define W8_QUANT_ARITH_H

#include <stdint.h>

#include "../dtype.h"
#include "../kernels/kernels.h"

/* Weight scales are floored here so an all-zero row does not divide by 0
 * (the kernels' weight quantization, w8_wquant_scale, applies it). */
#define W8_QUANT_WSCALE_EPS W8_WSCALE_EPS
/* Activation scales are floored at the smallest normal of the storage dtype
 * (fp16: 2^-14) or at this for bf16, so the stored scale is never 0. */
#define W8_QUANT_ASCALE_EPS_BF16 1e-8f

/* Activation quantization from the observed range: lo = min(lo, 0), hi = max(hi, 0),
 * scale = (hi - lo) / 255 rounded to `store` (W8_F16 or W8_BF16, the dtype it is
 * saved in) and floored at that dtype's epsilon; offset = round(-lo / scale) - 128
 * computed from the ROUNDED scale, clamped to [-128, 127].  -1 if lo/hi are not
 * finite or the scale does not fit the dtype. */
int w8_quant_act_params(float lo, float hi, w8_dtype store, float *scale, int *offset);

/* Quantize one linear layer W [n, k] (f32) with optional bias [n] for an input
 * with (in_scale, in_offset): per row w_scale = max|W| / 127 (floored at
 * W8_QUANT_WSCALE_EPS, and raised where needed so the bias term of quant_bias
 * fits in int32), Wq = clamp(round(W / w_scale)), deq_scale = in_scale * w_scale
 * (f32), quant_bias = round(bias / deq_scale - in_offset * sum Wq) computed in
 * double from the stored f32 deq_scale.  Rows run in parallel (deterministic).
 * -1 (error names row) on non-finite input or int32 overflow. */
int w8_quant_linear(const float *w, const float *bias, int n, int k, float in_scale,
                    int in_offset, int8_t *wq, int32_t *quant_bias, float *deq_scale);

#endif

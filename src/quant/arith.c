/*
 * arith.c - FORMAT.md's arithmetic (see arith.h).
 */
#include "arith.h"

#include <math.h>

#include "../kernels/kernels.h"
#include "../util.h"

int w8_quant_act_params(float lo, float hi, w8_dtype store, float *scale, int *offset) {
    if (!isfinite(lo) || !isfinite(hi)) return w8_seterr("activation range is not finite");
    double l = lo < 0 ? lo : 0, h = hi > 0 ? hi : 0;
    float s = (float)((h - l) / 255.0);
    float eps = store == W8_F16 ? 6.103515625e-05f : W8_QUANT_ASCALE_EPS_BF16;
    if (!(s >= eps)) s = eps;
    /* round to the dtype it is stored in: deq_scale and quant_bias are then
     * computed from exactly what the runtime reads */
    float st = store == W8_F16 ? w8_f16_to_f32(w8_f32_to_f16(s))
                               : w8_bf16_to_f32(w8_f32_to_bf16(s));
    if (!isfinite(st) || st <= 0)
        return w8_seterr("activation range [%g, %g] does not fit an input_scale in %s", lo, hi,
                         w8_dtype_name(store));
    double off = nearbyint(-l / (double)st) - 128.0;
    if (off < -128) off = -128;
    if (off > 127) off = 127;
    *scale = st;
    *offset = (int)off;
    return 0;
}

/* One row: returns 0, or 1 for a non-finite value, 2 for quant_bias overflow.
 * The weight arithmetic itself is the kernels' (w8_wquant_*), shared with the
 * loader's --float_layers int8. */
static int quant_row(const float *w, float bias, int k, float in_scale, int in_offset,
                     int8_t *q, int32_t *qb, float *deq) {
    float ws;
    if (w8_wquant_scale(w, k, &ws) || !isfinite(bias)) return 1;
    /* A large bias on a tiny row would not fit quant_bias: raise the row's
     * scale until bias / deq_scale stays within 2^30. */
    double need = fabs((double)bias) / ((double)in_scale * 1073741824.0);
    if ((double)ws < need) ws = (float)(need * (1.0 + 1e-6));
    int32_t sum = w8_wquant_row(w, k, ws, q);
    float d = (float)((double)in_scale * (double)ws);
    double b = nearbyint((double)bias / (double)d - (double)in_offset * (double)sum);
    if (b < (double)INT32_MIN || b > (double)INT32_MAX) return 2;
    *qb = (int32_t)b;
    *deq = d;
    return 0;
}

int w8_quant_linear(const float *w, const float *bias, int n, int k, float in_scale,
                    int in_offset, int8_t *wq, int32_t *quant_bias, float *deq_scale) {
    int bad_row = n, bad_why = 0;
#pragma omp parallel for schedule(static) num_threads(w8_get_threads())
    for (int r = 0; r < n; r++) {
        int rc = quant_row(w + (size_t)r * k, bias ? bias[r] : 0.0f, k, in_scale, in_offset,
                           wq + (size_t)r * k, &quant_bias[r], &deq_scale[r]);
        if (rc) {
#pragma omp critical(w8_quant_bad)
            if (r < bad_row) {
                bad_row = r;
                bad_why = rc;
            }
        }
    }
    if (bad_row < n)
        return w8_seterr(bad_why == 1 ? "row %d has a non-finite weight or bias"
                                      : "row %d: quant_bias does not fit in int32",
                         bad_row);
    return 0;
}


/*
 * kernels_ref.c - the portable scalar kernels: plain loops that are the
 * specification every SIMD path is tested against, and the fallback on CPUs
 * without AVX2.
 *
 * Layout for the scalar int8 path: W is kept row-major [n, k] (a plain copy)
 * and the bias is quant_bias itself (activations are used as signed int8).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"
#include "kcore.h"
#include "kern_impl.h"

/* ------------------------------------------------------------------ int8 */

static void ref_qpack(w8_qmat *m, const int8_t *w, int n, int k, const int32_t *quant_bias,
                      const float *deq_scale) {
    (void)deq_scale;
    m->packed_bytes = (size_t)n * (size_t)k;
    m->packed = w8_xalloc_aligned(m->packed_bytes ? m->packed_bytes : 1);
    if (m->packed_bytes) memcpy(m->packed, w, m->packed_bytes);
    m->bias = w8_xmalloc((size_t)n * sizeof(int32_t) + 1);
    memcpy(m->bias, quant_bias, (size_t)n * sizeof(int32_t));
}

/* The epilogue, one formula for every ISA: the int32 add wraps (as the SIMD
 * add does), the conversion rounds to nearest even, then one multiply. */
static inline float epilogue(int32_t acc, int32_t bias, float scale) {
    int32_t s = (int32_t)((uint32_t)acc + (uint32_t)bias);
    return (float)s * scale;
}

static void ref_qgemm(const w8_qmat *w, int i0, int i1, const void *xv, size_t ldx, float *y,
                      size_t ldy, int n0, int n1, int yc) {
    const int8_t *x = xv;
    int k = w->k;
    for (int i = i0; i < i1; i++) {
        const int8_t *xi = x + (size_t)i * ldx;
        for (int j = n0; j < n1; j++) {
            const int8_t *wj = w->packed + (size_t)j * (size_t)k;
            int32_t acc = 0;
            for (int t = 0; t < k; t++) acc += (int32_t)xi[t] * (int32_t)wj[t];
            y[(size_t)i * ldy + (size_t)(j - yc)] = epilogue(acc, w->bias[j], w->scale[j]);
        }
    }
}

/* ------------------------------------------------- activation quantization */

static void ref_quant_rows(const float *x, int m, int k, size_t ldx, float scale, int offset,
                           int8_t *xq, size_t ldq) {
    float off = (float)offset;
    for (int i = 0; i < m; i++)
        for (int t = 0; t < k; t++)
            xq[(size_t)i * ldq + (size_t)t] = w8_kern_q1(x[(size_t)i * ldx + (size_t)t], scale, off);
}

static void ref_quant_dyn(const float *x, int k, int8_t *xq, float *s) {
    float amax = 0.0f;
    for (int t = 0; t < k; t++) amax = w8_kern_amax1(amax, x[t]);
    float sc = amax / 127.0f;
    *s = sc;
    if (amax == 0.0f) {
        memset(xq, 0, (size_t)k);
        return;
    }
    for (int t = 0; t < k; t++) xq[t] = w8_kern_qd1(x[t], sc);
}

float w8_ref_sumsq(const float *x, int k) {
    float lane[16] = { 0 };
    for (int t = 0; t < k; t++) {
        float sq = x[t] * x[t];
        lane[t & 15] = lane[t & 15] + sq;
    }
    for (int h = 8; h >= 1; h >>= 1)
        for (int l = 0; l < h; l++) lane[l] = lane[l] + lane[l + h];
    return lane[0];
}

static void ref_rmsnorm_rows(const float *x, int m, int k, size_t ldx, const float *g,
                             const float *b, float eps, float *y, size_t ldy, int8_t *xq,
                             size_t ldq, float scale, int offset) {
    float off = (float)offset;
    for (int i = 0; i < m; i++) {
        const float *xi = x + (size_t)i * ldx;
        float r = w8_kern_rms_inv(w8_ref_sumsq(xi, k), k, eps);
        for (int t = 0; t < k; t++) {
            float v = (xi[t] * r) * g[t];
            if (b) v = v + b[t];
            if (y) y[(size_t)i * ldy + (size_t)t] = v;
            if (xq) xq[(size_t)i * ldq + (size_t)t] = w8_kern_q1(v, scale, off);
        }
    }
}

/* ----------------------------------------------------------------- float */

static inline float ld_w(const void *w, w8_dtype dt, size_t idx) {
    switch (dt) {
    case W8_F16: return w8_f16_to_f32(((const uint16_t *)w)[idx]);
    case W8_BF16: return w8_bf16_to_f32(((const uint16_t *)w)[idx]);
    default: return ((const float *)w)[idx];
    }
}

/* Accumulates in double: the reference is the accurate answer the fast
 * paths (f32, other summation orders) are measured against. */
static void ref_fgemv(const w8_fmat *w, int i0, int i1, const float *x, size_t ldx, float *y,
                      size_t ldy, const float *bias, int n0, int n1) {
    int k = w->k;
    for (int i = i0; i < i1; i++) {
        const float *xi = x + (size_t)i * ldx;
        for (int j = n0; j < n1; j++) {
            double acc = 0;
            size_t base = (size_t)j * (size_t)k;
            for (int t = 0; t < k; t++) acc += (double)xi[t] * (double)ld_w(w->w, w->dtype, base + (size_t)t);
            y[(size_t)i * ldy + (size_t)j] = (float)acc + (bias ? bias[j] : 0.0f);
        }
    }
}

static void ref_fgemm(const w8_fmat *w, int m, const float *x, size_t ldx, float *y, size_t ldy,
                      const float *bias, int n0, int n1, float *scratch) {
    (void)scratch;
    ref_fgemv(w, 0, m, x, ldx, y, ldy, bias, n0, n1);
}

/* Packed matrices (kernels.h): each output one fmaf chain over k in order,
 * then + bias.  This is the order the SIMD kernels keep exactly (lane =
 * channel), so the fast paths must match it bit for bit.  BF16: pair words
 * of BF16 activations (pprep) times pair words of weights, odd element
 * first, as vdpbf16ps does. */
static float bf16_lo(uint32_t v) { return w8_bf16_to_f32((uint16_t)(v & 0xffffu)); }
static float bf16_hi(uint32_t v) { return w8_bf16_to_f32((uint16_t)(v >> 16)); }

static void ref_pprep(const float *x, int k, uint32_t *dst) {
    for (int s = 0; 2 * s < k; s++)
        dst[s] = w8_kern_bf16(x[2 * s]) | (2 * s + 1 < k ? w8_kern_bf16(x[2 * s + 1]) << 16 : 0);
}

static void ref_pgemm(const w8_fmat *w, int m, const float *x, size_t ldx, const uint32_t *xb,
                      size_t ldxb, float *y, size_t ldy, const float *bias, int n0, int n1) {
    size_t steps = w8_fp_steps(w), bb = w8_fmat_block_bytes(w);
    for (int j = n0; j < n1; j++) {
        const unsigned char *blk = (const unsigned char *)w->packed + (size_t)(j / W8_FP_NB) * bb;
        size_t c = (size_t)(j % W8_FP_NB);
        for (int i = 0; i < m; i++) {
            float acc = 0.0f;
            if (w->dtype == W8_BF16) {
                const uint32_t *xi = xb + (size_t)i * ldxb;
                for (size_t s = 0; s < steps; s++) {
                    uint32_t wv;
                    memcpy(&wv, blk + (s * W8_FP_NB + c) * 4, 4);
                    acc = fmaf(bf16_hi(xi[s]), bf16_hi(wv), acc);
                    acc = fmaf(bf16_lo(xi[s]), bf16_lo(wv), acc);
                }
            } else {
                const float *xi = x + (size_t)i * ldx;
                for (size_t s = 0; s < steps; s++)
                    acc = fmaf(xi[s], ld_w(blk, w->dtype, s * W8_FP_NB + c), acc);
            }
            y[(size_t)i * ldy + (size_t)j] = acc + (bias ? bias[j] : 0.0f);
        }
    }
}

/* ------------------------------------------------------------- attention */

static void ref_attn_scores(const float *q, const float *k, size_t ldk, int n, int d,
                            float scale, float *s) {
    for (int j = 0; j < n; j++) {
        const float *kj = k + (size_t)j * ldk;
        float acc = 0;
        for (int t = 0; t < d; t++) acc += q[t] * kj[t];
        s[j] = scale * acc;
    }
}

static void ref_attn_accum(const float *p, const float *v, size_t ldv, int n, int d,
                           float *out) {
    for (int j = 0; j < n; j++) {
        const float *vj = v + (size_t)j * ldv;
        for (int t = 0; t < d; t++) out[t] += p[j] * vj[t];
    }
}

/* ------------------------------------------------------------ elementwise */

static void ref_swiglu(const float *g, const float *u, int n, float *out, int8_t *xq,
                       float scale, int offset) {
    for (int t = 0; t < n; t++) {
        float v = g[t] / (1.0f + expf(-g[t])) * u[t];
        out[t] = v;
        if (xq) xq[t] = w8_kern_q1(v, scale, (float)offset);
    }
}

static void ref_softmax(float *x, int n) {
    float mx = x[0], sum = 0;
    for (int j = 1; j < n; j++)
        if (x[j] > mx) mx = x[j];
    for (int j = 0; j < n; j++) {
        x[j] = expf(x[j] - mx);
        sum += x[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < n; j++) x[j] *= inv;
}

static size_t ref_qkpad(int k) { return (size_t)k; }

const w8_kern_table w8_kern_ref = {
    .isa = W8_ISA_SCALAR,
    .qpack = ref_qpack,
    .qprep = NULL,
    .qkpad = ref_qkpad,
    .qnblock = 1,
    .qmblock = 16,
    .qgemm = ref_qgemm,
    .quant_rows = ref_quant_rows,
    .rmsnorm_rows = ref_rmsnorm_rows,
    .quant_dyn = ref_quant_dyn,
    .fgemv = ref_fgemv,
    .fgemm = ref_fgemm,
    .fnblock = 1,
    .fscratch = 0,
    .pgemm = ref_pgemm,
    .pprep = ref_pprep,
    .attn_scores = ref_attn_scores,
    .attn_accum = ref_attn_accum,
    .swiglu = ref_swiglu,
    .softmax = ref_softmax,
};

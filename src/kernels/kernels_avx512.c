/*
 * kernels_avx512.c - AVX-512 (F/BW/VL/DQ/VNNI) kernels.  Built with the
 * AVX-512 flags; only ever called after cpu.c saw those features.
 *
 * int8 layout (vpdpbusd wants 4 consecutive k bytes per 32-bit lane):
 *   W is cut into panels of 16 output channels; k is padded with zeros to a
 *   multiple of 4 (K4 = ceil(k / 4) groups).  Panel p, group g is 64 bytes:
 *   channel c's bytes W[16p + c][4g .. 4g + 3] at offset 4c.  Panels follow
 *   each other (panel stride K4 * 64 bytes), so one zmm load feeds 16
 *   channels and the kernel streams each panel front to back.
 *   vpdpbusd multiplies unsigned by signed bytes, so activations are fed as
 *   u8 = xq ^ 0x80 = xq + 128 and the bias absorbs -128 * rowsum(W).
 *
 * The int8 micro-kernel holds an MR x NP tile (up to 6 rows x 4 panels = 24
 * zmm accumulators): per k group it loads NP weight vectors and broadcasts
 * MR activation dwords, 24 vpdpbusd for 10 loads.  The weights of a 64
 * column group (64 * k bytes) stay in L2 while the rows are walked.
 */
#include <immintrin.h>
#include <string.h>

#include "../util.h"
#include "kern_impl.h"

#define AI static inline __attribute__((always_inline))

static inline __mmask16 tailmask16(int cnt) {
    return cnt >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cnt) - 1u);
}

/* ------------------------------------------------------------------ int8 */

enum { QMR = 6, QNP = 4 };

static size_t q_k4(int k) { return ((size_t)k + 3) / 4; }
static size_t q_kpad(int k) { return q_k4(k) * 4; }

static void q_pack(w8_qmat *m, const int8_t *w, int n, int k, const int32_t *quant_bias,
                   const float *deq_scale) {
    (void)deq_scale;
    size_t k4 = q_k4(k), np = ((size_t)n + 15) / 16;
    m->packed_bytes = np * k4 * 64;
    m->packed = w8_xalloc_aligned(m->packed_bytes ? m->packed_bytes : 64);
    memset(m->packed, 0, m->packed_bytes);
    m->bias = w8_xmalloc((size_t)n * sizeof(int32_t) + 1);
    for (int j = 0; j < n; j++) {
        const int8_t *wj = w + (size_t)j * (size_t)k;
        int8_t *dst = m->packed + ((size_t)j / 16) * k4 * 64 + (size_t)(j % 16) * 4;
        int32_t rowsum = 0;
        for (int t = 0; t < k; t++) {
            dst[(size_t)(t / 4) * 64 + (size_t)(t % 4)] = wj[t];
            rowsum += wj[t];
        }
        m->bias[j] = (int32_t)((uint32_t)quant_bias[j] - 128u * (uint32_t)rowsum);
    }
}

static void q_prep(const int8_t *x, int k, uint8_t *dst) {
    int t = 0;
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (; t + 64 <= k; t += 64)
        _mm512_storeu_si512(dst + t, _mm512_xor_si512(_mm512_loadu_si512(x + t), flip));
    if (t < k) {
        __mmask64 mk = ((__mmask64)1 << (k - t)) - 1;
        __m512i v = _mm512_maskz_loadu_epi8(mk, x + t);
        _mm512_mask_storeu_epi8(dst + t, mk, _mm512_xor_si512(v, flip));
    }
    /* zero padding up to a multiple of 4 (the weights there are zero too) */
    for (size_t p = (size_t)k; p < q_kpad(k); p++) dst[p] = 0;
}

AI void q_tile(const uint8_t *x, size_t ldx, const int8_t *wp, size_t pstride, size_t k4,
               float *y, size_t ldy, int ncols, const int32_t *bias, const float *scale,
               const int MR, const int NP) {
    __m512i acc[QMR][QNP];
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int p = 0; p < NP; p++) acc[r][p] = _mm512_setzero_si512();
    for (size_t g = 0; g < k4; g++) {
        __m512i b[QNP];
#pragma GCC unroll 4
        for (int p = 0; p < NP; p++)
            b[p] = _mm512_load_si512((const void *)(wp + (size_t)p * pstride + g * 64));
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            int32_t a32;
            memcpy(&a32, x + (size_t)r * ldx + g * 4, 4);
            __m512i a = _mm512_set1_epi32(a32);
#pragma GCC unroll 4
            for (int p = 0; p < NP; p++) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], a, b[p]);
        }
    }
    /* epilogue: (acc + bias) * scale, masked on the last panel's tail */
#pragma GCC unroll 4
    for (int p = 0; p < NP; p++) {
        int cnt = ncols - p * 16;
        __mmask16 mk = tailmask16(cnt);
        __m512i bv = _mm512_maskz_loadu_epi32(mk, bias + p * 16);
        __m512 sv = _mm512_maskz_loadu_ps(mk, scale + p * 16);
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc[r][p], bv)), sv);
            _mm512_mask_storeu_ps(y + (size_t)r * ldy + (size_t)p * 16, mk, v);
        }
    }
}

#define QT(MR, NP)                                                                            \
    static void q_tile_##MR##_##NP(const uint8_t *x, size_t ldx, const int8_t *wp,            \
                                   size_t pstride, size_t k4, float *y, size_t ldy, int ncols, \
                                   const int32_t *bias, const float *scale) {                 \
        q_tile(x, ldx, wp, pstride, k4, y, ldy, ncols, bias, scale, MR, NP);                  \
    }
#define QT_ROW(MR) QT(MR, 1) QT(MR, 2) QT(MR, 3) QT(MR, 4)
QT_ROW(1)
QT_ROW(2)
QT_ROW(3)
QT_ROW(4)
QT_ROW(5)
QT_ROW(6)

typedef void (*q_tile_fn)(const uint8_t *, size_t, const int8_t *, size_t, size_t, float *,
                          size_t, int, const int32_t *, const float *);
#define QT_NAMES(MR) { q_tile_##MR##_1, q_tile_##MR##_2, q_tile_##MR##_3, q_tile_##MR##_4 }
static const q_tile_fn q_tiles[QMR][QNP] = { QT_NAMES(1), QT_NAMES(2), QT_NAMES(3),
                                            QT_NAMES(4), QT_NAMES(5), QT_NAMES(6) };

static void q_gemm(const w8_qmat *w, int i0, int i1, const void *xv, size_t ldx, float *y,
                   size_t ldy, int n0, int n1) {
    const uint8_t *x = xv;
    size_t k4 = q_k4(w->k), pstride = k4 * 64;
    for (int c0 = n0; c0 < n1; c0 += 16 * QNP) {
        int ncols = n1 - c0 < 16 * QNP ? n1 - c0 : 16 * QNP;
        int np = (ncols + 15) / 16;
        const int8_t *wp = w->packed + (size_t)(c0 / 16) * pstride;
        for (int i = i0; i < i1; i += QMR) {
            int mr = i1 - i < QMR ? i1 - i : QMR;
            q_tiles[mr - 1][np - 1](x + (size_t)i * ldx, ldx, wp, pstride, k4,
                                    y + (size_t)i * ldy + (size_t)c0, ldy, ncols,
                                    w->bias + c0, w->scale + c0);
        }
    }
}

/* ------------------------------------------------- activation quantization */

/* clamp(round_half_even(v / scale) + offset) with the operand order of
 * w8_kern_q1 (max/min return the second operand for NaN). */
AI __m128i q16(__m512 v, __m512 sc, __m512 off) {
    __m512 r = _mm512_roundscale_ps(_mm512_div_ps(v, sc), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_add_ps(r, off);
    r = _mm512_max_ps(r, _mm512_set1_ps(-128.0f));
    r = _mm512_min_ps(r, _mm512_set1_ps(127.0f));
    return _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(r));
}

static void x_quant_rows(const float *x, int m, int k, size_t ldx, float scale, int offset,
                         int8_t *xq, size_t ldq) {
    __m512 sc = _mm512_set1_ps(scale), off = _mm512_set1_ps((float)offset);
    for (int i = 0; i < m; i++) {
        const float *xi = x + (size_t)i * ldx;
        int8_t *qi = xq + (size_t)i * ldq;
        for (int t = 0; t < k; t += 16) {
            __mmask16 mk = tailmask16(k - t);
            __m128i q = q16(_mm512_maskz_loadu_ps(mk, xi + t), sc, off);
            _mm_mask_storeu_epi8(qi + t, mk, q);
        }
    }
}

/* The sum of squares in w8_ref_sumsq's order: 16 lanes, then halving. */
static float x_sumsq(const float *x, int k) {
    __m512 acc = _mm512_setzero_ps();
    for (int t = 0; t < k; t += 16) {
        __m512 v = _mm512_maskz_loadu_ps(tailmask16(k - t), x + t);
        acc = _mm512_add_ps(acc, _mm512_mul_ps(v, v));
    }
    __m256 h8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
    __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
    __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
    __m128 h1 = _mm_add_ss(h2, _mm_movehdup_ps(h2));
    return _mm_cvtss_f32(h1);
}

static void x_rmsnorm_rows(const float *x, int m, int k, size_t ldx, const float *g,
                           const float *b, float eps, float *y, size_t ldy, int8_t *xq,
                           size_t ldq, float scale, int offset) {
    __m512 sc = _mm512_set1_ps(scale), off = _mm512_set1_ps((float)offset);
    for (int i = 0; i < m; i++) {
        const float *xi = x + (size_t)i * ldx;
        __m512 r = _mm512_set1_ps(w8_kern_rms_inv(x_sumsq(xi, k), k, eps));
        for (int t = 0; t < k; t += 16) {
            __mmask16 mk = tailmask16(k - t);
            __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, xi + t), r),
                                     _mm512_maskz_loadu_ps(mk, g + t));
            if (b) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, b + t));
            if (y) _mm512_mask_storeu_ps(y + (size_t)i * ldy + t, mk, v);
            if (xq) _mm_mask_storeu_epi8(xq + (size_t)i * ldq + t, mk, q16(v, sc, off));
        }
    }
}

/* ----------------------------------------------------------------- float */

/* 16 weights starting at element idx, widened to f32; masked lanes are 0. */
AI __m512 f_load(const void *w, w8_dtype dt, size_t idx, __mmask16 mk) {
    if (dt == W8_F32) return _mm512_maskz_loadu_ps(mk, (const float *)w + idx);
    __m256i h = _mm256_maskz_loadu_epi16(mk, (const uint16_t *)w + idx);
    if (dt == W8_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Rows [i0, i1) (at most 4) x channels [n0, n1), W streamed once: 4
 * channels at a time, each weight vector used for every row. */
AI void f_gemv_t(const w8_fmat *w, int i0, int i1, const float *x, size_t ldx, float *y,
                 size_t ldy, const float *bias, int n0, int n1, const w8_dtype dt) {
    int k = w->k, mr = i1 - i0;
    const float *xr[4];
    for (int r = 0; r < 4; r++) xr[r] = x + (size_t)(i0 + (r < mr ? r : 0)) * ldx;
    int j = n0;
    for (; j + 4 <= n1; j += 4) {
        __m512 acc[4][4];
        for (int c = 0; c < 4; c++)
            for (int r = 0; r < 4; r++) acc[c][r] = _mm512_setzero_ps();
        for (int t = 0; t < k; t += 16) {
            __mmask16 mk = tailmask16(k - t);
            __m512 xv[4];
            for (int r = 0; r < 4; r++)
                if (r < mr) xv[r] = _mm512_maskz_loadu_ps(mk, xr[r] + t);
            for (int c = 0; c < 4; c++) {
                __m512 wv = f_load(w->w, dt, (size_t)(j + c) * (size_t)k + (size_t)t, mk);
                for (int r = 0; r < 4; r++)
                    if (r < mr) acc[c][r] = _mm512_fmadd_ps(xv[r], wv, acc[c][r]);
            }
        }
        for (int r = 0; r < mr; r++)
            for (int c = 0; c < 4; c++)
                y[(size_t)(i0 + r) * ldy + (size_t)(j + c)] =
                    _mm512_reduce_add_ps(acc[c][r]) + (bias ? bias[j + c] : 0.0f);
    }
    for (; j < n1; j++) {
        __m512 acc[4] = { _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                          _mm512_setzero_ps() };
        for (int t = 0; t < k; t += 16) {
            __mmask16 mk = tailmask16(k - t);
            __m512 wv = f_load(w->w, dt, (size_t)j * (size_t)k + (size_t)t, mk);
            for (int r = 0; r < mr; r++)
                acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, xr[r] + t), wv, acc[r]);
        }
        for (int r = 0; r < mr; r++)
            y[(size_t)(i0 + r) * ldy + (size_t)j] =
                _mm512_reduce_add_ps(acc[r]) + (bias ? bias[j] : 0.0f);
    }
}

static void f_gemv(const w8_fmat *w, int i0, int i1, const float *x, size_t ldx, float *y,
                   size_t ldy, const float *bias, int n0, int n1) {
    switch (w->dtype) {
    case W8_BF16: f_gemv_t(w, i0, i1, x, ldx, y, ldy, bias, n0, n1, W8_BF16); break;
    case W8_F16: f_gemv_t(w, i0, i1, x, ldx, y, ldy, bias, n0, n1, W8_F16); break;
    default: f_gemv_t(w, i0, i1, x, ldx, y, ldy, bias, n0, n1, W8_F32); break;
    }
}

/* ------------------------------------------------------------- attention */

static void x_attn_scores(const float *q, const float *k, size_t ldk, int n, int d, float scale,
                          float *s) {
    for (int j = 0; j < n; j++) {
        const float *kj = k + (size_t)j * ldk;
        __m512 acc = _mm512_setzero_ps();
        for (int t = 0; t < d; t += 16) {
            __mmask16 mk = tailmask16(d - t);
            acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, q + t), _mm512_maskz_loadu_ps(mk, kj + t), acc);
        }
        s[j] = scale * _mm512_reduce_add_ps(acc);
    }
}

static void x_attn_accum(const float *p, const float *v, size_t ldv, int n, int d, float *out) {
    for (int t = 0; t < d; t += 16) {
        __mmask16 mk = tailmask16(d - t);
        __m512 o = _mm512_maskz_loadu_ps(mk, out + t);
        for (int j = 0; j < n; j++)
            o = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), _mm512_maskz_loadu_ps(mk, v + (size_t)j * ldv + t), o);
        _mm512_mask_storeu_ps(out + t, mk, o);
    }
}

const w8_kern_table w8_kern_avx512 = {
    .isa = W8_ISA_AVX512,
    .qpack = q_pack,
    .qprep = q_prep,
    .qkpad = q_kpad,
    .qnblock = 16 * QNP,
    .qmblock = 16 * QMR,
    .qgemm = q_gemm,
    .quant_rows = x_quant_rows,
    .rmsnorm_rows = x_rmsnorm_rows,
    .fgemv = f_gemv,
    .fgemm = NULL,
    .fnblock = 16,
    .fscratch = 0,
    .attn_scores = x_attn_scores,
    .attn_accum = x_attn_accum,
};

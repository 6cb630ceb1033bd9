/*
 * kernels_avx2.c - AVX2 + FMA + F16C kernels, for x86-64 CPUs without
 * AVX-512 VNNI.  Built with -mavx2 -mfma -mf16c; only called after cpu.c saw
 * those features.
 *
 * int8 layout: panels of 8 output channels; k padded with zeros to a
 * multiple of 4; panel p, group g is 32 bytes: channel c's bytes
 * W[8p + c][4g .. 4g + 3] at offset 4c.  vpmaddubsw would saturate, so the
 * kernel sign-extends the weights to int16 and multiplies with vpmaddwd
 * against activations that qprep already widened to int16 (signed, so the
 * bias is quant_bias unchanged).  vpmaddwd leaves two partial sums per
 * channel (k pairs 0-1 and 2-3); they are added once, at the end.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "../util.h"
#include "kcore.h"
#include "kern_impl.h"

#define AI static inline __attribute__((always_inline))

/* lanes [0, cnt) set, for maskload/maskstore */
static inline __m256i tailmask8(int cnt) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(cnt), idx);
}

/* ------------------------------------------------------------------ int8 */

enum { QMR = 4, QNB = 32 };

static size_t q_k4(int k) { return ((size_t)k + 3) / 4; }
static size_t q_kpad(int k) { return q_k4(k) * 4 * sizeof(int16_t); }

static void q_pack(w8_qmat *m, const int8_t *w, int n, int k, const int32_t *quant_bias,
                   const float *deq_scale) {
    (void)deq_scale;
    size_t k4 = q_k4(k), np = ((size_t)n + 7) / 8;
    m->packed_bytes = np * k4 * 32;
    m->packed = w8_xalloc_aligned(m->packed_bytes ? m->packed_bytes : 64);
    memset(m->packed, 0, m->packed_bytes);
    m->bias = w8_xmalloc((size_t)n * sizeof(int32_t) + 1);
#pragma omp parallel for schedule(static) num_threads(w8_get_threads()) \
    if ((size_t)n * (size_t)k > ((size_t)1 << 20))
    for (int j = 0; j < n; j++) {
        const int8_t *wj = w + (size_t)j * (size_t)k;
        int8_t *dst = m->packed + ((size_t)j / 8) * k4 * 32 + (size_t)(j % 8) * 4;
        for (int t = 0; t < k; t++) dst[(size_t)(t / 4) * 32 + (size_t)(t % 4)] = wj[t];
        m->bias[j] = quant_bias[j];
    }
}

static void q_prep(const int8_t *x, int k, uint8_t *dstv) {
    int16_t *dst = (int16_t *)(void *)dstv;
    int t = 0;
    for (; t + 16 <= k; t += 16)
        _mm256_storeu_si256((__m256i *)(dst + t), _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x + t))));
    for (; t < k; t++) dst[t] = x[t];
    for (size_t p = (size_t)k; p < q_k4(k) * 4; p++) dst[p] = 0;
}

/* MR (<= 4) rows x one 8-channel panel; named accumulators (GCC keeps an
 * array of vectors in memory). */
#define Q2_DECL(r)                                                                       \
    __m256i lo##r = _mm256_setzero_si256(), hi##r = lo##r;                                \
    const int16_t *x##r = x + (size_t)(r < MR ? r : 0) * ldx;
#define Q2_STEP(r)                                                                       \
    if (r < MR) {                                                                         \
        int64_t a64;                                                                      \
        memcpy(&a64, x##r + g * 4, 8);                                                    \
        __m256i a = _mm256_set1_epi64x(a64);                                              \
        lo##r = _mm256_add_epi32(lo##r, _mm256_madd_epi16(wl, a));                        \
        hi##r = _mm256_add_epi32(hi##r, _mm256_madd_epi16(wh, a));                        \
    }
/* hadd gives channels [0 1 4 5 | 2 3 6 7]; the permute restores the order */
#define Q2_STORE(r)                                                                      \
    if (r < MR) {                                                                         \
        __m256i acc = _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(lo##r, hi##r), perm); \
        __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(acc, bv)), sv);      \
        _mm256_maskstore_ps(y + (size_t)r * ldy, mk, v);                                  \
    }

AI void q_tile(const int16_t *x, size_t ldx, const int8_t *wp, size_t k4, float *y, size_t ldy,
               int ncols, const int32_t *bias, const float *scale, const int MR) {
    Q2_DECL(0) Q2_DECL(1) Q2_DECL(2) Q2_DECL(3)
    for (size_t g = 0; g < k4; g++) {
        __m256i wb = _mm256_load_si256((const __m256i *)(wp + g * 32));
        __m256i wl = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(wb));
        __m256i wh = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(wb, 1));
        Q2_STEP(0) Q2_STEP(1) Q2_STEP(2) Q2_STEP(3)
    }
    __m256i mk = tailmask8(ncols);
    __m256i bv = _mm256_maskload_epi32(bias, mk);
    __m256 sv = _mm256_maskload_ps(scale, mk);
    const __m256i perm = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    Q2_STORE(0) Q2_STORE(1) Q2_STORE(2) Q2_STORE(3)
}

#define QT(MR)                                                                                 \
    static void q_tile_##MR(const int16_t *x, size_t ldx, const int8_t *wp, size_t k4, float *y, \
                            size_t ldy, int ncols, const int32_t *bias, const float *scale) {  \
        q_tile(x, ldx, wp, k4, y, ldy, ncols, bias, scale, MR);                                \
    }
QT(1)
QT(2)
QT(3)
QT(4)
typedef void (*q_tile_fn)(const int16_t *, size_t, const int8_t *, size_t, float *, size_t, int,
                          const int32_t *, const float *);
static const q_tile_fn q_tiles[QMR] = { q_tile_1, q_tile_2, q_tile_3, q_tile_4 };

static void q_gemm(const w8_qmat *w, int i0, int i1, const void *xv, size_t ldx, float *y,
                   size_t ldy, int n0, int n1, int yc) {
    const int16_t *x = xv;
    size_t ldx16 = ldx / sizeof(int16_t);
    size_t k4 = q_k4(w->k), pstride = k4 * 32;
    for (int c0 = n0; c0 < n1; c0 += 8) {
        int ncols = n1 - c0 < 8 ? n1 - c0 : 8;
        const int8_t *wp = w->packed + (size_t)(c0 / 8) * pstride;
        for (int i = i0; i < i1; i += QMR) {
            int mr = i1 - i < QMR ? i1 - i : QMR;
            q_tiles[mr - 1](x + (size_t)i * ldx16, ldx16, wp, k4, y + (size_t)i * ldy + (size_t)(c0 - yc),
                            ldy, ncols, w->bias + c0, w->scale + c0);
        }
    }
}

/* ------------------------------------------------- activation quantization */

AI __m256i q8(__m256 v, __m256 sc, __m256 off) {
    __m256 r = _mm256_round_ps(_mm256_div_ps(v, sc), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_add_ps(r, off);
    r = _mm256_max_ps(r, _mm256_set1_ps(-128.0f));
    r = _mm256_min_ps(r, _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(r);
}

/* store the 8 int32 lanes (all in [-128, 127]) as 8 bytes */
static inline void store8(int8_t *dst, __m256i v) {
    __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    __m128i b8 = _mm_packs_epi16(w16, w16);
    _mm_storel_epi64((__m128i *)dst, b8);
}

static void v_quant_rows(const float *x, int m, int k, size_t ldx, float scale, int offset,
                         int8_t *xq, size_t ldq) {
    __m256 sc = _mm256_set1_ps(scale), off = _mm256_set1_ps((float)offset);
    for (int i = 0; i < m; i++) {
        const float *xi = x + (size_t)i * ldx;
        int8_t *qi = xq + (size_t)i * ldq;
        int t = 0;
        for (; t + 8 <= k; t += 8) store8(qi + t, q8(_mm256_loadu_ps(xi + t), sc, off));
        for (; t < k; t++) qi[t] = w8_kern_q1(xi[t], scale, (float)offset);
    }
}

/* w8_kern_qd1 on 8 lanes (max/min with the constant second: NaN -> -127) */
AI __m256i qd8(__m256 v, __m256 sc) {
    __m256 r = _mm256_round_ps(_mm256_div_ps(v, sc), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_max_ps(r, _mm256_set1_ps(-127.0f));
    r = _mm256_min_ps(r, _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(r);
}

static void v_quant_dyn(const float *x, int k, int8_t *xq, float *s) {
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 mv = _mm256_setzero_ps();
    int t = 0;
    /* max_ps(a, m) = a > m ? a : m: a NaN lane never replaces m */
    for (; t + 8 <= k; t += 8) mv = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + t), absm), mv);
    float lanes[8], amax = 0.0f;
    _mm256_storeu_ps(lanes, mv);
    for (int l = 0; l < 8; l++) amax = w8_kern_amax1(amax, lanes[l]);
    for (; t < k; t++) amax = w8_kern_amax1(amax, x[t]);
    float scale = amax / 127.0f;
    *s = scale;
    if (amax == 0.0f) {
        memset(xq, 0, (size_t)k);
        return;
    }
    __m256 sc = _mm256_set1_ps(scale);
    for (t = 0; t + 8 <= k; t += 8) store8(xq + t, qd8(_mm256_loadu_ps(x + t), sc));
    for (; t < k; t++) xq[t] = w8_kern_qd1(x[t], scale);
}

/* w8_ref_sumsq's order: lanes 0-7 in lo, 8-15 in hi, then the halving tree */
static float v_sumsq(const float *x, int k) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    int t = 0;
    for (; t + 16 <= k; t += 16) {
        __m256 a = _mm256_loadu_ps(x + t), b = _mm256_loadu_ps(x + t + 8);
        lo = _mm256_add_ps(lo, _mm256_mul_ps(a, a));
        hi = _mm256_add_ps(hi, _mm256_mul_ps(b, b));
    }
    if (t < k) {
        __m256 a = _mm256_maskload_ps(x + t, tailmask8(k - t));
        __m256 b = _mm256_maskload_ps(x + t + 8, tailmask8(k - t - 8));
        lo = _mm256_add_ps(lo, _mm256_mul_ps(a, a));
        hi = _mm256_add_ps(hi, _mm256_mul_ps(b, b));
    }
    __m256 h8 = _mm256_add_ps(lo, hi);
    __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
    __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
    __m128 h1 = _mm_add_ss(h2, _mm_movehdup_ps(h2));
    return _mm_cvtss_f32(h1);
}

static void v_rmsnorm_rows(const float *x, int m, int k, size_t ldx, const float *g,
                           const float *b, float eps, float *y, size_t ldy, int8_t *xq,
                           size_t ldq, float scale, int offset) {
    __m256 sc = _mm256_set1_ps(scale), off = _mm256_set1_ps((float)offset);
    for (int i = 0; i < m; i++) {
        const float *xi = x + (size_t)i * ldx;
        float rs = w8_kern_rms_inv(v_sumsq(xi, k), k, eps);
        __m256 r = _mm256_set1_ps(rs);
        float *yi = y ? y + (size_t)i * ldy : NULL;
        int8_t *qi = xq ? xq + (size_t)i * ldq : NULL;
        int t = 0;
        for (; t + 8 <= k; t += 8) {
            __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xi + t), r), _mm256_loadu_ps(g + t));
            if (b) v = _mm256_add_ps(v, _mm256_loadu_ps(b + t));
            if (yi) _mm256_storeu_ps(yi + t, v);
            if (qi) store8(qi + t, q8(v, sc, off));
        }
        for (; t < k; t++) {
            float v = (xi[t] * rs) * g[t];
            if (b) v = v + b[t];
            if (yi) yi[t] = v;
            if (qi) qi[t] = w8_kern_q1(v, scale, (float)offset);
        }
    }
}

/* ----------------------------------------------------------------- float */

AI __m256 f_load(const void *w, w8_dtype dt, size_t idx) {
    if (dt == W8_F32) return _mm256_loadu_ps((const float *)w + idx);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + idx));
    if (dt == W8_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

AI float f_scalar(const void *w, w8_dtype dt, size_t idx) {
    if (dt == W8_F32) return ((const float *)w)[idx];
    if (dt == W8_F16) return w8_f16_to_f32(((const uint16_t *)w)[idx]);
    return w8_bf16_to_f32(((const uint16_t *)w)[idx]);
}

static inline float hsum8(__m256 v) {
    __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
    return _mm_cvtss_f32(_mm_add_ss(h2, _mm_movehdup_ps(h2)));
}

/* One channel at a time for MR (<= 4) rows, 2 vectors of k per step; W
 * streamed once.  Named accumulators, as in the int8 kernel. */
#define G2_STEP(r)                                                                       \
    if (r < MR) {                                                                         \
        a##r = _mm256_fmadd_ps(_mm256_loadu_ps(x##r + t), w0, a##r);                      \
        b##r = _mm256_fmadd_ps(_mm256_loadu_ps(x##r + t + 8), w1, b##r);                  \
    }
#define G2_STEP1(r)                                                                      \
    if (r < MR) a##r = _mm256_fmadd_ps(_mm256_loadu_ps(x##r + t), w0, a##r);
#define G2_OUT(r)                                                                        \
    if (r < MR) {                                                                         \
        float s = hsum8(_mm256_add_ps(a##r, b##r));                                       \
        for (int u = t; u < k; u++) s += x##r[u] * f_scalar(w->w, dt, base + (size_t)u);  \
        y[(size_t)(i0 + r) * ldy + (size_t)j] = s + (bias ? bias[j] : 0.0f);              \
    }

AI void f_gemv_t(const w8_fmat *w, int i0, const float *x, size_t ldx, float *y, size_t ldy,
                 const float *bias, int n0, int n1, const w8_dtype dt, const int MR) {
    int k = w->k;
    const float *x0 = x + (size_t)i0 * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
    for (int j = n0; j < n1; j++) {
        size_t base = (size_t)j * (size_t)k;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0,
               b3 = a0;
        int t = 0;
        for (; t + 16 <= k; t += 16) {
            __m256 w0 = f_load(w->w, dt, base + (size_t)t), w1 = f_load(w->w, dt, base + (size_t)t + 8);
            G2_STEP(0) G2_STEP(1) G2_STEP(2) G2_STEP(3)
        }
        for (; t + 8 <= k; t += 8) {
            __m256 w0 = f_load(w->w, dt, base + (size_t)t);
            G2_STEP1(0) G2_STEP1(1) G2_STEP1(2) G2_STEP1(3)
        }
        G2_OUT(0) G2_OUT(1) G2_OUT(2) G2_OUT(3)
    }
}

#define FGV(DT, MR)                                                                          \
    static void f_gemv_##DT##_##MR(const w8_fmat *w, int i0, const float *x, size_t ldx,      \
                                   float *y, size_t ldy, const float *bias, int n0, int n1) { \
        f_gemv_t(w, i0, x, ldx, y, ldy, bias, n0, n1, W8_##DT, MR);                          \
    }
#define FGV_DT(DT) FGV(DT, 1) FGV(DT, 2) FGV(DT, 3) FGV(DT, 4)
FGV_DT(F32)
FGV_DT(F16)
FGV_DT(BF16)
typedef void (*f_gemv_fn)(const w8_fmat *, int, const float *, size_t, float *, size_t,
                          const float *, int, int);
static const f_gemv_fn f_gemvs[3][4] = {
    { f_gemv_F32_1, f_gemv_F32_2, f_gemv_F32_3, f_gemv_F32_4 },
    { f_gemv_F16_1, f_gemv_F16_2, f_gemv_F16_3, f_gemv_F16_4 },
    { f_gemv_BF16_1, f_gemv_BF16_2, f_gemv_BF16_3, f_gemv_BF16_4 },
};

static void f_gemv(const w8_fmat *w, int i0, int i1, const float *x, size_t ldx, float *y,
                   size_t ldy, const float *bias, int n0, int n1) {
    int d = w->dtype == W8_F16 ? 1 : w->dtype == W8_BF16 ? 2 : 0;
    f_gemvs[d][i1 - i0 - 1](w, i0, x, ldx, y, ldy, bias, n0, n1);
}

/* Packed float GEMM (layout in kernels.h): lane = output channel, one FMA
 * chain per output over k in order (the reference's fmaf chain, bit for
 * bit).  Tile: MR (<= 3) rows x half a 64-channel block (4 vectors of 8).
 * BF16 runs the arithmetic of the AVX-512 BF16 dot product: per k pair,
 * the odd element's FMA then the even one's, halves widened by mask and
 * shift, activations from pprep's pair words. */
enum { PMR = 3, PKC = 256 };

/* weights of vector v (8 channels) of half h at step sp, F32 or F16 */
AI __m256 p_wv(const unsigned char *sp, int h, int v, const w8_dtype dt) {
    size_t c = (size_t)(32 * h + 8 * v);
    if (dt == W8_F32) return _mm256_load_ps((const float *)sp + c);
    return _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(sp + 2 * c)));
}

AI __m256 bf_lo(__m256i v) { return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)); }
AI __m256 bf_hi(__m256i v) {
    return _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
}

#define PR_DECL(r, X)                                                                    \
    __m256 p##r##0, p##r##1, p##r##2, p##r##3;                                            \
    const X *x##r = x + (size_t)(r < MR ? r : 0) * ldx;                                   \
    float *y##r = y + (size_t)(r < MR ? r : 0) * ldy;                                     \
    if (r < MR && !first) {                                                               \
        p##r##0 = _mm256_maskload_ps(y##r, m0), p##r##1 = _mm256_maskload_ps(y##r + 8, m1); \
        p##r##2 = _mm256_maskload_ps(y##r + 16, m2);                                      \
        p##r##3 = _mm256_maskload_ps(y##r + 24, m3);                                      \
    } else {                                                                              \
        p##r##0 = p##r##1 = p##r##2 = p##r##3 = _mm256_setzero_ps();                      \
    }
#define PR_FMA(r, tt)                                                                    \
    if (r < MR) {                                                                         \
        __m256 a = _mm256_broadcast_ss(x##r + (tt));                                      \
        p##r##0 = _mm256_fmadd_ps(a, w0, p##r##0);                                        \
        p##r##1 = _mm256_fmadd_ps(a, w1, p##r##1);                                        \
        p##r##2 = _mm256_fmadd_ps(a, w2, p##r##2);                                        \
        p##r##3 = _mm256_fmadd_ps(a, w3, p##r##3);                                        \
    }
#define PR_BF(r)                                                                         \
    if (r < MR) {                                                                         \
        __m256i a = _mm256_set1_epi32((int)x##r[s]);                                      \
        __m256 ao = bf_hi(a), ae = bf_lo(a);                                              \
        p##r##0 = _mm256_fmadd_ps(ae, bf_lo(w0), _mm256_fmadd_ps(ao, bf_hi(w0), p##r##0)); \
        p##r##1 = _mm256_fmadd_ps(ae, bf_lo(w1), _mm256_fmadd_ps(ao, bf_hi(w1), p##r##1)); \
        p##r##2 = _mm256_fmadd_ps(ae, bf_lo(w2), _mm256_fmadd_ps(ao, bf_hi(w2), p##r##2)); \
        p##r##3 = _mm256_fmadd_ps(ae, bf_lo(w3), _mm256_fmadd_ps(ao, bf_hi(w3), p##r##3)); \
    }
#define PR_STORE(r)                                                                      \
    if (r < MR) {                                                                         \
        if (last) {                                                                       \
            p##r##0 = _mm256_add_ps(p##r##0, bb0), p##r##1 = _mm256_add_ps(p##r##1, bb1); \
            p##r##2 = _mm256_add_ps(p##r##2, bb2), p##r##3 = _mm256_add_ps(p##r##3, bb3); \
        }                                                                                 \
        _mm256_maskstore_ps(y##r, m0, p##r##0), _mm256_maskstore_ps(y##r + 8, m1, p##r##1); \
        _mm256_maskstore_ps(y##r + 16, m2, p##r##2);                                      \
        _mm256_maskstore_ps(y##r + 24, m3, p##r##3);                                      \
    }
#define P_HALF(tt)                                                                       \
    {                                                                                     \
        __m256 w0 = p_wv(sp, h, 0, dt), w1 = p_wv(sp, h, 1, dt);                          \
        __m256 w2 = p_wv(sp, h, 2, dt), w3 = p_wv(sp, h, 3, dt);                          \
        PR_FMA(0, tt) PR_FMA(1, tt) PR_FMA(2, tt)                                         \
    }
#define P_PF(sp) (void)(sp)
#define P_START(X)                                                                       \
    __m256i m0 = tailmask8(ncols), m1 = tailmask8(ncols - 8), m2 = tailmask8(ncols - 16), \
            m3 = tailmask8(ncols - 24);                                                   \
    PR_DECL(0, X) PR_DECL(1, X) PR_DECL(2, X)
#define P_FINISH()                                                                       \
    __m256 bb0 = _mm256_setzero_ps(), bb1 = bb0, bb2 = bb0, bb3 = bb0;                    \
    if (bias) {                                                                           \
        bb0 = _mm256_maskload_ps(bias, m0), bb1 = _mm256_maskload_ps(bias + 8, m1);       \
        bb2 = _mm256_maskload_ps(bias + 16, m2), bb3 = _mm256_maskload_ps(bias + 24, m3); \
    }                                                                                     \
    PR_STORE(0) PR_STORE(1) PR_STORE(2)

/* Rows x0.. (MR) x channels 32h .. 32h + ncols of one block, k-steps
 * [s0, s1); first: chains start at 0 (else continue from y); last: + bias
 * (+ 0 without one, as the reference). */
AI void p_tile(const float *x, size_t ldx, const unsigned char *blk, int h, size_t s0,
               size_t s1, float *y, size_t ldy, int ncols, int first, int last,
               const float *bias, const w8_dtype dt, const int MR) {
    const size_t SB = w8_fp_step_bytes(dt);
    P_START(float)
    W8_FP_WALK(blk, SB, s0, s1, P_HALF, P_PF)
    P_FINISH()
}

AI void pb_tile(const uint32_t *x, size_t ldx, const unsigned char *blk, int h, size_t s0,
                size_t s1, float *y, size_t ldy, int ncols, int first, int last,
                const float *bias, const int MR) {
    const size_t SB = w8_fp_step_bytes(W8_BF16);
    P_START(uint32_t)
    for (size_t s = s0; s < s1; s++) {
        const unsigned char *sp = blk + s * SB + (size_t)h * 128;
        __m256i w0 = _mm256_load_si256((const __m256i *)sp), w1 = _mm256_load_si256((const __m256i *)(sp + 32));
        __m256i w2 = _mm256_load_si256((const __m256i *)(sp + 64)), w3 = _mm256_load_si256((const __m256i *)(sp + 96));
        PR_BF(0) PR_BF(1) PR_BF(2)
    }
    P_FINISH()
}

typedef void (*p_tile_fn)(const void *, size_t, const unsigned char *, int, size_t, size_t,
                          float *, size_t, int, int, int, const float *);
#define PT(NAME, CALL)                                                                      \
    static void NAME(const void *x, size_t ldx, const unsigned char *blk, int h, size_t s0,  \
                     size_t s1, float *y, size_t ldy, int ncols, int first, int last,        \
                     const float *bias) {                                                   \
        CALL;                                                                               \
    }
#define PT_F(DT, MR) PT(p_tile_##DT##_##MR, p_tile(x, ldx, blk, h, s0, s1, y, ldy, ncols, first, last, bias, W8_##DT, MR))
#define PT_B(DT, MR) PT(p_tile_##DT##_##MR, pb_tile(x, ldx, blk, h, s0, s1, y, ldy, ncols, first, last, bias, MR))
PT_F(F32, 1) PT_F(F32, 2) PT_F(F32, 3)
PT_F(F16, 1) PT_F(F16, 2) PT_F(F16, 3)
PT_B(BF16, 1) PT_B(BF16, 2) PT_B(BF16, 3)
static const p_tile_fn p_tiles[3][PMR] = {
    { p_tile_F32_1, p_tile_F32_2, p_tile_F32_3 },
    { p_tile_F16_1, p_tile_F16_2, p_tile_F16_3 },
    { p_tile_BF16_1, p_tile_BF16_2, p_tile_BF16_3 },
};

static void p_gemm(const w8_fmat *w, int m, const float *x, size_t ldx, const uint32_t *xb,
                   size_t ldxb, float *y, size_t ldy, const float *bias, int n0, int n1) {
    int d = w->dtype == W8_F16 ? 1 : w->dtype == W8_BF16 ? 2 : 0;
    /* x rows as bytes: floats or pair words, 4 bytes either way */
    const char *xs = d == 2 ? (const char *)xb : (const char *)x;
    size_t ldxs = d == 2 ? ldxb : ldx;
    size_t steps = w8_fp_steps(w), bb = w8_fmat_block_bytes(w);
    size_t kc = m <= PMR ? steps : PKC;
    for (int c0 = n0; c0 < n1; c0 += W8_FP_NB) {
        const unsigned char *blk = (const unsigned char *)w->packed + (size_t)(c0 / W8_FP_NB) * bb;
        for (int h = 0; h < 2; h++) {
            int cb = c0 + 32 * h, ncols = n1 - cb < 32 ? n1 - cb : 32;
            if (ncols <= 0) break;
            for (size_t s0 = 0; s0 < steps; s0 += kc) {
                size_t s1 = s0 + kc < steps ? s0 + kc : steps;
                for (int i = 0; i < m; i += PMR) {
                    int mr = m - i < PMR ? m - i : PMR;
                    p_tiles[d][mr - 1](xs + (size_t)i * ldxs * 4, ldxs, blk, h, s0, s1,
                                       y + (size_t)i * ldy + (size_t)cb, ldy, ncols, s0 == 0,
                                       s1 == steps, bias ? bias + cb : NULL);
                }
            }
        }
    }
}

/* Activations to BF16 pair words (w8_kern_bf16 per element), 16 at a time:
 * bits in 32-bit lanes, then packed to 16 bits in element order. */
AI __m256i bf_bits8(__m256i u) {
    const __m256i absm = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)),
                                                   _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1))), 16);
    __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absm), inf);
    __m256i tiny = _mm256_cmpeq_epi32(_mm256_and_si256(u, inf), _mm256_setzero_si256());
    r = _mm256_blendv_epi8(r, _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40)), nan);
    return _mm256_blendv_epi8(r, _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x8000)), tiny);
}

static void p_prep(const float *x, int k, uint32_t *dst) {
    int t = 0;
    for (; t + 16 <= k; t += 16) {
        __m256i a = bf_bits8(_mm256_castps_si256(_mm256_loadu_ps(x + t)));
        __m256i b = bf_bits8(_mm256_castps_si256(_mm256_loadu_ps(x + t + 8)));
        /* packus interleaves 128-bit lanes: put them back in order */
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8);
        _mm256_storeu_si256((__m256i *)(dst + t / 2), p);
    }
    for (; t < k; t += 2)
        dst[t / 2] = w8_kern_bf16(x[t]) | (t + 1 < k ? w8_kern_bf16(x[t + 1]) << 16 : 0);
}

/* ------------------------------------------------------------- attention */

static void v_attn_scores(const float *q, const float *k, size_t ldk, int n, int d, float scale,
                          float *s) {
    int d8 = d & ~7;
    for (int j = 0; j < n; j++) {
        const float *kj = k + (size_t)j * ldk;
        __m256 acc = _mm256_setzero_ps();
        for (int t = 0; t < d8; t += 8)
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + t), _mm256_loadu_ps(kj + t), acc);
        float sum = hsum8(acc);
        for (int t = d8; t < d; t++) sum += q[t] * kj[t];
        s[j] = scale * sum;
    }
}

/* out += sum_j p[j] V_j: each output element one FMA chain over j in order
 * (independent of how the caller blocks the keys); 16 columns at a time so
 * two chains interleave. */
static void v_attn_accum(const float *p, const float *v, size_t ldv, int n, int d, float *out) {
    int t = 0;
    for (; t + 16 <= d; t += 16) {
        __m256 o0 = _mm256_loadu_ps(out + t), o1 = _mm256_loadu_ps(out + t + 8);
        for (int j = 0; j < n; j++) {
            const float *va = v + (size_t)j * ldv + t;
            __m256 pa = _mm256_set1_ps(p[j]);
            o0 = _mm256_fmadd_ps(pa, _mm256_loadu_ps(va), o0);
            o1 = _mm256_fmadd_ps(pa, _mm256_loadu_ps(va + 8), o1);
        }
        _mm256_storeu_ps(out + t, o0);
        _mm256_storeu_ps(out + t + 8, o1);
    }
    for (; t + 8 <= d; t += 8) {
        __m256 o = _mm256_loadu_ps(out + t);
        for (int j = 0; j < n; j++)
            o = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(v + (size_t)j * ldv + t), o);
        _mm256_storeu_ps(out + t, o);
    }
    for (; t < d; t++)
        for (int j = 0; j < n; j++) out[t] += p[j] * v[(size_t)j * ldv + (size_t)t];
}

/* ------------------------------------------------------------ elementwise */

/* exp(x) as in kernels_avx512.c, with 2^n built in the exponent field:
 * x is clamped to [-87.3, 88.7] so n stays a normal exponent (results below
 * ~1e-38 come out as ~1e-38 instead of denormal; above, ~3.4e38, not inf). */
AI __m256 exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-87.3f), x);
    x = _mm256_min_ps(_mm256_set1_ps(88.7f), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(W8_EXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(W8_EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(W8_EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(W8_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(W8_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(W8_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(W8_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(W8_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(W8_EXP_P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static void v_swiglu(const float *g, const float *u, int n, float *out, int8_t *xq, float scale,
                     int offset) {
    __m256 sc = _mm256_set1_ps(scale), off = _mm256_set1_ps((float)offset), one = _mm256_set1_ps(1.0f);
    int t = 0;
    for (; t + 8 <= n; t += 8) {
        __m256 gv = _mm256_loadu_ps(g + t);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv));
        __m256 v = _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + t));
        _mm256_storeu_ps(out + t, v);
        if (xq) store8(xq + t, q8(v, sc, off));
    }
    for (; t < n; t++) {
        float v = g[t] / (1.0f + expf(-g[t])) * u[t];
        out[t] = v;
        if (xq) xq[t] = w8_kern_q1(v, scale, (float)offset);
    }
}

static void v_softmax(float *x, int n) {
    float mx = x[0], sum = 0;
    for (int j = 1; j < n; j++)
        if (x[j] > mx) mx = x[j];
    __m256 m = _mm256_set1_ps(mx), s8 = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), m));
        _mm256_storeu_ps(x + j, e);
        s8 = _mm256_add_ps(s8, e);
    }
    sum = hsum8(s8);
    for (; j < n; j++) {
        x[j] = expf(x[j] - mx);
        sum += x[j];
    }
    float inv = 1.0f / sum;
    for (j = 0; j < n; j++) x[j] *= inv;
}

const w8_kern_table w8_kern_avx2 = {
    .isa = W8_ISA_AVX2,
    .qpack = q_pack,
    .qprep = q_prep,
    .qkpad = q_kpad,
    .qnblock = QNB,
    .qmblock = 16 * QMR,
    .qgemm = q_gemm,
    .quant_rows = v_quant_rows,
    .quant_dyn = v_quant_dyn,
    .rmsnorm_rows = v_rmsnorm_rows,
    .fgemv = f_gemv,
    .fgemm = NULL,
    .fnblock = 8,
    .fscratch = 0,
    .pgemm = p_gemm,
    .pprep = p_prep,
    .attn_scores = v_attn_scores,
    .attn_accum = v_attn_accum,
    .swiglu = v_swiglu,
    .softmax = v_softmax,
};

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
 *   The panel count is rounded up to whole groups of 4 (zero panels), so
 *   the micro-kernel always reads 4 panels and only masks its stores.
 *
 * The int8 micro-kernel holds an MR x 4 tile (up to 6 rows x 4 panels = 24
 * zmm accumulators): per k group it loads 4 weight vectors and broadcasts
 * MR activation dwords, 24 vpdpbusd for 10 loads.  The weights of a 64
 * column group (64 * k bytes) stay in L2 while the rows are walked.  On the
 * development host (Zen 5) one core runs it at ~650-740 GOPS of CPU time,
 * against ~780 for a bare vpdpbusd loop and oneDNN's 660-745 measured in the
 * same sitting (tools/bench_kernels -t 1).
 */
#include <immintrin.h>
#include <string.h>

#include "../util.h"
#include "kcore.h"
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
    /* panels rounded up to whole 64-column groups: the kernel always reads 4 */
    size_t k4 = q_k4(k), np = ((size_t)n + 16 * QNP - 1) / (16 * QNP) * QNP;
    m->packed_bytes = np * k4 * 64;
    m->packed = w8_xalloc_aligned(m->packed_bytes ? m->packed_bytes : 64);
    memset(m->packed, 0, m->packed_bytes);
    m->bias = w8_xmalloc((size_t)n * sizeof(int32_t) + 1);
    /* rows are independent: a 7B layer is ~70 MB, worth both cores at load */
#pragma omp parallel for schedule(static) num_threads(w8_get_threads()) \
    if ((size_t)n * (size_t)k > ((size_t)1 << 20))
    for (int j = 0; j < n; j++) {
        const int8_t *wj = w + (size_t)j * (size_t)k;
        int8_t *dst = m->packed + ((size_t)j / 16) * k4 * 64 + (size_t)(j % 16) * 4;
        int32_t rowsum = 0;
        int t = 0;
        for (; t + 4 <= k; t += 4) {
            memcpy(dst + (size_t)(t / 4) * 64, wj + t, 4);
            rowsum += wj[t] + wj[t + 1] + wj[t + 2] + wj[t + 3];
        }
        for (; t < k; t++) {
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

/* The micro-kernel: rows x0.. (MR of them, a compile-time constant after
 * inlining) times one 64-column group (4 panels; pack pads the last group
 * with zero panels).  The accumulators are named variables, not an array:
 * GCC spills arrays of vectors to the stack on every iteration. */
#define QROW_DECL(r)                                                                     \
    __m512i c##r##0 = _mm512_setzero_si512(), c##r##1 = c##r##0, c##r##2 = c##r##0,       \
            c##r##3 = c##r##0;                                                            \
    const uint8_t *x##r = x + (size_t)(r < MR ? r : 0) * ldx;
#define QROW_STEP(r)                                                                     \
    if (r < MR) {                                                                         \
        int32_t a32;                                                                      \
        memcpy(&a32, x##r + g * 4, 4);                                                    \
        __m512i a = _mm512_set1_epi32(a32);                                               \
        DPBUSD(c##r##0, a, b0);                                                                             \
        DPBUSD(c##r##1, a, b1);                                                                             \
        DPBUSD(c##r##2, a, b2);                                                                             \
        DPBUSD(c##r##3, a, b3);                                                                             \
    }
#define QROW_STORE(r)                                                                    \
    if (r < MR) {                                                                         \
        float *yr = y + (size_t)r * ldy;                                                  \
        q_store(yr, c##r##0, bias, scale, ncols);                                         \
        if (ncols > 16) q_store(yr + 16, c##r##1, bias + 16, scale + 16, ncols - 16);     \
        if (ncols > 32) q_store(yr + 32, c##r##2, bias + 32, scale + 32, ncols - 32);     \
        if (ncols > 48) q_store(yr + 48, c##r##3, bias + 48, scale + 48, ncols - 48);     \
    }

/* acc += u8(a) . s8(b) in 4-byte groups.  Inline asm ties the accumulator
 * to its register: with the intrinsic GCC 12 copies accumulators around
 * (and spills some) on every iteration of the 24-accumulator kernel. */
#define DPBUSD(acc, a, b) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b))

/* epilogue of 16 columns: (acc + bias) * scale, masked past the last column */
AI void q_store(float *y, __m512i acc, const int32_t *bias, const float *scale, int cnt) {
    __mmask16 mk = tailmask16(cnt);
    __m512i bv = _mm512_maskz_loadu_epi32(mk, bias);
    __m512 sv = _mm512_maskz_loadu_ps(mk, scale);
    _mm512_mask_storeu_ps(y, mk, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc, bv)), sv));
}

/* Single-row decode streams the four panels from DRAM with a software
 * prefetch this many bytes ahead into L2, besides the hardware's: in an
 * A/B on the development host (1.5B-shape GEMVs, 2 threads, each token's
 * rate over a read pass right after it) the median went from ~0.95 to ~1.0
 * of that pass's bandwidth (+2 to +6% per sitting; 0.5, 2 and 4 KB gave
 * about the same, 16 KB less).  The last steps of panel 3 run into the next
 * 64-column group, the thread's next item (team_gemm_i8 hands each thread a
 * contiguous range).  A prefetch never faults, past the buffer's end too. */
#define QPF 1024

AI void q_tile(const uint8_t *x, size_t ldx, const int8_t *wp, size_t pstride, size_t k4,
               float *y, size_t ldy, int ncols, const int32_t *bias, const float *scale,
               const int MR) {
    QROW_DECL(0) QROW_DECL(1) QROW_DECL(2) QROW_DECL(3) QROW_DECL(4) QROW_DECL(5)
    const int8_t *w0 = wp, *w1 = wp + pstride, *w2 = wp + 2 * pstride, *w3 = wp + 3 * pstride;
    /* The output lines are fetched for writing now, so that their misses
     * (a wide output such as gate/up, tens of MB, is never in cache)
     * overlap the k loop instead of stalling the stores at its end. */
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < ncols; c += 16) _mm_prefetch((const char *)(y + (size_t)r * ldy + c), _MM_HINT_ET0);
    for (size_t g = 0; g < k4; g++) {
        if (MR == 1) {
            _mm_prefetch((const char *)(w0 + g * 64 + QPF), _MM_HINT_T1);
            _mm_prefetch((const char *)(w1 + g * 64 + QPF), _MM_HINT_T1);
            _mm_prefetch((const char *)(w2 + g * 64 + QPF), _MM_HINT_T1);
            _mm_prefetch((const char *)(w3 + g * 64 + QPF), _MM_HINT_T1);
        }
        __m512i b0 = _mm512_load_si512((const void *)(w0 + g * 64));
        __m512i b1 = _mm512_load_si512((const void *)(w1 + g * 64));
        __m512i b2 = _mm512_load_si512((const void *)(w2 + g * 64));
        __m512i b3 = _mm512_load_si512((const void *)(w3 + g * 64));
        QROW_STEP(0) QROW_STEP(1) QROW_STEP(2) QROW_STEP(3) QROW_STEP(4) QROW_STEP(5)
    }
    QROW_STORE(0) QROW_STORE(1) QROW_STORE(2) QROW_STORE(3) QROW_STORE(4) QROW_STORE(5)
}

#define QT(MR)                                                                              \
    static void q_tile_##MR(const uint8_t *x, size_t ldx, const int8_t *wp, size_t pstride,  \
                            size_t k4, float *y, size_t ldy, int ncols, const int32_t *bias, \
                            const float *scale) {                                           \
        q_tile(x, ldx, wp, pstride, k4, y, ldy, ncols, bias, scale, MR);                    \
    }
QT(1)
QT(2)
QT(3)
QT(4)
QT(5)
QT(6)

typedef void (*q_tile_fn)(const uint8_t *, size_t, const int8_t *, size_t, size_t, float *,
                          size_t, int, const int32_t *, const float *);
static const q_tile_fn q_tiles[QMR] = { q_tile_1, q_tile_2, q_tile_3, q_tile_4, q_tile_5, q_tile_6 };

static void q_gemm(const w8_qmat *w, int i0, int i1, const void *xv, size_t ldx, float *y,
                   size_t ldy, int n0, int n1, int yc) {
    const uint8_t *x = xv;
    size_t k4 = q_k4(w->k), pstride = k4 * 64;
    for (int c0 = n0; c0 < n1; c0 += 16 * QNP) {
        int ncols = n1 - c0 < 16 * QNP ? n1 - c0 : 16 * QNP;
        const int8_t *wp = w->packed + (size_t)(c0 / 16) * pstride;
        for (int i = i0; i < i1; i += QMR) {
            int mr = i1 - i < QMR ? i1 - i : QMR;
            q_tiles[mr - 1](x + (size_t)i * ldx, ldx, wp, pstride, k4,
                                    y + (size_t)i * ldy + (size_t)(c0 - yc), ldy, ncols,
                                    w->bias + c0, w->scale + c0);
        }
    }
}

/* ------------------------------------------------- activation quantization */

/* roundscale's immediate: to nearest (ties to even), no exceptions (an
 * enum: clang wants a constant expression there) */
enum { QRN = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC };

/* clamp(round_half_even(v / scale) + offset) with the operand order of
 * w8_kern_q1 (max/min return the second operand for NaN).  (A divide-free
 * form, v * (1 / scale) with the division only near half-integers, gave
 * the same bits but was 10% slower in the quantizing RMSNorm and no faster
 * in SwiGLU inside a prompt pass: the divider is not the bottleneck there.) */
AI __m128i q16(__m512 v, __m512 sc, __m512 off) {
    __m512 r = _mm512_roundscale_ps(_mm512_div_ps(v, sc), QRN);
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

/* w8_kern_qd1 on 16 lanes (max/min with the constant second: NaN -> -127) */
AI __m128i qd16(__m512 v, __m512 sc) {
    __m512 r = _mm512_roundscale_ps(_mm512_div_ps(v, sc), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_max_ps(r, _mm512_set1_ps(-127.0f));
    r = _mm512_min_ps(r, _mm512_set1_ps(127.0f));
    return _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(r));
}

static void x_quant_dyn(const float *x, int k, int8_t *xq, float *s) {
    __m512 mv = _mm512_setzero_ps();
    /* max_ps(a, m) = a > m ? a : m: a NaN lane never replaces m; masked-off
     * lanes load +0, which never wins either */
    for (int t = 0; t < k; t += 16) {
        __mmask16 mk = tailmask16(k - t);
        mv = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(mk, x + t)), mv);
    }
    float lanes[16], amax = 0.0f;
    _mm512_storeu_ps(lanes, mv);
    for (int l = 0; l < 16; l++) amax = w8_kern_amax1(amax, lanes[l]);
    float scale = amax / 127.0f;
    *s = scale;
    if (amax == 0.0f) {
        memset(xq, 0, (size_t)k);
        return;
    }
    __m512 sc = _mm512_set1_ps(scale);
    for (int t = 0; t < k; t += 16) {
        __mmask16 mk = tailmask16(k - t);
        _mm_mask_storeu_epi8(xq + t, mk, qd16(_mm512_maskz_loadu_ps(mk, x + t), sc));
    }
}

/* The sum of squares in w8_ref_sumsq's order: 16 lanes, then halving. */
AI float sumsq_fold(__m512 acc) {
    __m256 h8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
    __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
    __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
    __m128 h1 = _mm_add_ss(h2, _mm_movehdup_ps(h2));
    return _mm_cvtss_f32(h1);
}

static float x_sumsq(const float *x, int k) {
    __m512 acc = _mm512_setzero_ps();
    for (int t = 0; t < k; t += 16) {
        __m512 v = _mm512_maskz_loadu_ps(tailmask16(k - t), x + t);
        acc = _mm512_add_ps(acc, _mm512_mul_ps(v, v));
    }
    return sumsq_fold(acc);
}

/* one row times r (the reciprocal RMS) and g (+ b), to y and/or xq */
AI void norm_row(const float *x, __m512 r, int k, const float *g, const float *b, float *y,
                 int8_t *xq, __m512 sc, __m512 off) {
    for (int t = 0; t < k; t += 16) {
        __mmask16 mk = tailmask16(k - t);
        __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + t), r),
                                 _mm512_maskz_loadu_ps(mk, g + t));
        if (b) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, b + t));
        if (y) _mm512_mask_storeu_ps(y + t, mk, v);
        if (xq) _mm_mask_storeu_epi8(xq + t, mk, q16(v, sc, off));
    }
}

static void x_rmsnorm_rows(const float *x, int m, int k, size_t ldx, const float *g,
                           const float *b, float eps, float *y, size_t ldy, int8_t *xq,
                           size_t ldq, float scale, int offset) {
    __m512 sc = _mm512_set1_ps(scale), off = _mm512_set1_ps((float)offset);
    for (int i = 0; i < m; i++) {
        const float *xi = x + (size_t)i * ldx;
        __m512 r = _mm512_set1_ps(w8_kern_rms_inv(x_sumsq(xi, k), k, eps));
        norm_row(xi, r, k, g, b, y ? y + (size_t)i * ldy : NULL, xq ? xq + (size_t)i * ldq : NULL,
                 sc, off);
    }
}

/* x += res with the sum of squares in the same pass: the sum's chain of
 * adds is the loop's limit (its order is fixed), so the residual add
 * rides along instead of being a pass over x of its own */
static void x_add_rmsnorm(float *x, const float *res, int k, const float *g, const float *b,
                          float eps, float *y, int8_t *xq, float scale, int offset) {
    __m512 acc = _mm512_setzero_ps();
    for (int t = 0; t < k; t += 16) {
        __mmask16 mk = tailmask16(k - t);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, x + t), _mm512_maskz_loadu_ps(mk, res + t));
        _mm512_mask_storeu_ps(x + t, mk, v);
        acc = _mm512_add_ps(acc, _mm512_mul_ps(v, v));
    }
    __m512 r = _mm512_set1_ps(w8_kern_rms_inv(sumsq_fold(acc), k, eps));
    norm_row(x, r, k, g, b, y, xq, _mm512_set1_ps(scale), _mm512_set1_ps((float)offset));
}

/* ----------------------------------------------------------------- float */

/* 16 weights starting at element idx, widened to f32; masked lanes are 0. */
AI __m512 f_load(const void *w, w8_dtype dt, size_t idx, __mmask16 mk) {
    if (dt == W8_F32) return _mm512_maskz_loadu_ps(mk, (const float *)w + idx);
    __m256i h = _mm256_maskz_loadu_epi16(mk, (const uint16_t *)w + idx);
    if (dt == W8_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* The float kernels compute every output y[i, j] in one fixed order, the
 * same for every m and every tiling: 16 lane partial sums (lane l gets
 * x[t] * w[t] for t = l mod 16, by FMA in increasing t, the last partial
 * vector masked), then _mm512_reduce_add_ps, then + bias.  So a row's result
 * never depends on the other rows of the call (batched decoding equals
 * single decoding bit for bit).  Only the tiling changes with m.
 *
 * Tile: MR (<= 4) rows x 6 channels = up to 24 accumulators; per 16 k it
 * loads MR activation vectors and 6 weight vectors (widened to f32 on the
 * fly), the channels being 6 sequential streams. */
#define FV_DECL(c)                                                                       \
    __m512 e##c##0 = _mm512_setzero_ps(), e##c##1 = e##c##0, e##c##2 = e##c##0,          \
           e##c##3 = e##c##0;                                                             \
    const size_t o##c = (size_t)(j + (c < nc ? c : 0)) * (size_t)k;
#define FV_STEP(c, mk)                                                                   \
    {                                                                                     \
        if (PF) _mm_prefetch((const char *)w->w + (o##c + (size_t)t) * esz + FPF, _MM_HINT_T0); \
        __m512 wv = f_load(w->w, dt, o##c + (size_t)t, mk);                               \
        e##c##0 = _mm512_fmadd_ps(xv0, wv, e##c##0);                                      \
        if (MR > 1) e##c##1 = _mm512_fmadd_ps(xv1, wv, e##c##1);                          \
        if (MR > 2) e##c##2 = _mm512_fmadd_ps(xv2, wv, e##c##2);                          \
        if (MR > 3) e##c##3 = _mm512_fmadd_ps(xv3, wv, e##c##3);                          \
    }
#define FV_XLOAD(mk)                                                                     \
    __m512 xv0 = _mm512_maskz_loadu_ps(mk, x0 + t), xv1 = xv0, xv2 = xv0, xv3 = xv0;      \
    if (MR > 1) xv1 = _mm512_maskz_loadu_ps(mk, x1 + t);                                  \
    if (MR > 2) xv2 = _mm512_maskz_loadu_ps(mk, x2 + t);                                  \
    if (MR > 3) xv3 = _mm512_maskz_loadu_ps(mk, x3 + t);
#define FV_OUT(c)                                                                        \
    if (c < nc) {                                                                         \
        float bj = bias ? bias[j + c] : 0.0f;                                             \
        y0[j + c] = _mm512_reduce_add_ps(e##c##0) + bj;                                   \
        if (MR > 1) y1[j + c] = _mm512_reduce_add_ps(e##c##1) + bj;                       \
        if (MR > 2) y2[j + c] = _mm512_reduce_add_ps(e##c##2) + bj;                       \
        if (MR > 3) y3[j + c] = _mm512_reduce_add_ps(e##c##3) + bj;                       \
    }
#define FV_ALL(m) m(0) m(1) m(2) m(3) m(4) m(5)
#define FV_STEPS(mk) FV_STEP(0, mk) FV_STEP(1, mk) FV_STEP(2, mk) FV_STEP(3, mk) FV_STEP(4, mk) FV_STEP(5, mk)

/* Software prefetch distance (bytes) for weights streamed from DRAM: on the
 * development host bf16 m = 1 went from ~14 to ~18 GB/s on one core.  Off
 * (PF = 0) when the weights were just converted into L2. */
#define FPF 2048

AI void f_gemv_t(const w8_fmat *w, int i0, const float *x, size_t ldx, float *y, size_t ldy,
                 const float *bias, int n0, int n1, const w8_dtype dt, const int MR,
                 const int PF) {
    int k = w->k, kfull = k & ~15;
    const size_t esz = dt == W8_F32 ? 4 : 2;
    const float *x0 = x + (size_t)i0 * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
    float *y0 = y + (size_t)i0 * ldy, *y1 = y0 + ldy, *y2 = y1 + ldy, *y3 = y2 + ldy;
    __mmask16 tail = tailmask16(k - kfull);
    for (int j = n0; j < n1; j += 6) {
        int nc = n1 - j < 6 ? n1 - j : 6;
        FV_ALL(FV_DECL)
        int t = 0;
        for (; t < kfull; t += 16) {
            FV_XLOAD(0xffff)
            FV_STEPS(0xffff)
        }
        if (t < k) {
            FV_XLOAD(tail)
            FV_STEPS(tail)
        }
        FV_ALL(FV_OUT)
    }
}

#define FGV(DT, MR)                                                                          \
    static void f_gemv_##DT##_##MR(const w8_fmat *w, int i0, const float *x, size_t ldx,      \
                                   float *y, size_t ldy, const float *bias, int n0, int n1) { \
        f_gemv_t(w, i0, x, ldx, y, ldy, bias, n0, n1, W8_##DT, MR, 1);                       \
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

/* The 4-row tile over f32 weights already in cache (no prefetch). */
static void f_tile4_l2(const w8_fmat *w, int i0, const float *x, size_t ldx, float *y,
                       size_t ldy, const float *bias, int n0, int n1) {
    f_gemv_t(w, i0, x, ldx, y, ldy, bias, n0, n1, W8_F32, 4, 0);
}

/* Prefill (m > 4) in the same per-output order as the GEMV: a block of
 * channels small enough for L2 (FBLK_BYTES as f32) is widened to f32 once
 * into scratch, then every 4-row group of x passes over it.  Row tails use
 * the GEMV tile on the same f32 block. */
enum { FBLK_BYTES = 384 << 10, FNB = 48 };

static void f_gemm(const w8_fmat *w, int m, const float *x, size_t ldx, float *y, size_t ldy,
                   const float *bias, int n0, int n1, float *scratch) {
    size_t k = (size_t)w->k;
    int cb = (int)(FBLK_BYTES / 4 / (k ? k : 1)) / 6 * 6;
    if (cb > FNB) cb = FNB;
    if (cb < 6) {
        /* k > 16K (7B down_proj: 18944): the scratch holds FBLK_BYTES / 4
         * floats, so widen only the channels that fit; with none, stream the
         * weights in their own dtype (same per-output order, same results) */
        cb = (int)(FBLK_BYTES / 4 / (k ? k : 1));
        if (cb < 1) {
            for (int i = 0; i < m; i += 4)
                f_gemv(w, i, i + 4 < m ? i + 4 : m, x, ldx, y, ldy, bias, n0, n1);
            return;
        }
    }
    for (int c0 = n0; c0 < n1; c0 += cb) {
        int nb = n1 - c0 < cb ? n1 - c0 : cb;
        w8_fmat blk = {.n = nb, .k = w->k, .dtype = W8_F32};
        if (w->dtype == W8_F32) {
            blk.w = (const float *)w->w + (size_t)c0 * k;
        } else {
            size_t cnt = (size_t)nb * k, base = (size_t)c0 * k, i = 0;
            for (; i + 16 <= cnt; i += 16)
                _mm512_storeu_ps(scratch + i, w->dtype == W8_F16 ? f_load(w->w, W8_F16, base + i, 0xffff)
                                                                 : f_load(w->w, W8_BF16, base + i, 0xffff));
            if (i < cnt) {
                __mmask16 mk = tailmask16((int)(cnt - i));
                _mm512_mask_storeu_ps(scratch + i, mk, w->dtype == W8_F16 ? f_load(w->w, W8_F16, base + i, mk)
                                                                          : f_load(w->w, W8_BF16, base + i, mk));
            }
            blk.w = scratch;
        }
        float *yb = y + c0;
        const float *bb = bias ? bias + c0 : NULL;
        int i = 0;
        for (; i + 4 <= m; i += 4) f_tile4_l2(&blk, i, x, ldx, yb, ldy, bb, 0, nb);
        if (i < m) f_gemvs[0][m - i - 1](&blk, i, x, ldx, yb, ldy, bb, 0, nb);
    }
}

/* Packed float GEMM (layout in kernels.h): lane = output channel, so each
 * output is one FMA chain over k in order, exactly the reference's fmaf
 * chain.  Tile: MR rows x one 64-channel block (4 vectors).  F32/F16: per k
 * it widens 4 weight vectors (vcvtph2ps or a load), broadcasts MR
 * activations and issues 4 * MR FMAs.  BF16: per k pair it loads 4 vectors
 * of pair words and issues 4 * MR vdpbf16ps against the broadcast pair word
 * of each row (BF16 activations from pprep), or, on a CPU without
 * AVX512_BF16, the same arithmetic as two FMAs (odd element first).
 * For prefill k is walked in blocks of PKC steps (64 channels x PKC steps
 * of W stay near L1 while every row group passes over them), the partial
 * sums kept in y between blocks: stores are exact, so the chain is the same
 * as one pass.  Decode (m <= PMR) makes one pass: W streams once. */
enum { PMR = 6, PKC = 256 };
/* Decode (MR <= 2) prefetches the weight stream this many bytes ahead:
 * the 0.5B lm_head went from ~37 to ~42-55 GB/s (2 threads, noisy host). */
#ifndef PPF
#define PPF 4096
#endif

/* weights of vector v (16 channels) at step sp, F32 or F16 */
AI __m512 p_wv(const unsigned char *sp, int v, const w8_dtype dt) {
    if (dt == W8_F32) return _mm512_load_ps((const float *)sp + 16 * v);
    return _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(sp + 32 * v)));
}

/* accumulators and row pointers; X: the rows' element type (float or pair words) */
#define PROW_DECL(r, X)                                                                  \
    __m512 p##r##0, p##r##1, p##r##2, p##r##3;                                            \
    const X *x##r = x + (size_t)(r < MR ? r : 0) * ldx;                                   \
    float *y##r = y + (size_t)(r < MR ? r : 0) * ldy;                                     \
    if (r < MR && !first) {                                                               \
        p##r##0 = _mm512_maskz_loadu_ps(m0, y##r);                                        \
        p##r##1 = _mm512_maskz_loadu_ps(m1, y##r + 16);                                   \
        p##r##2 = _mm512_maskz_loadu_ps(m2, y##r + 32);                                   \
        p##r##3 = _mm512_maskz_loadu_ps(m3, y##r + 48);                                   \
    } else {                                                                              \
        p##r##0 = p##r##1 = p##r##2 = p##r##3 = _mm512_setzero_ps();                      \
    }
#define PROW_FMA(r, tt)                                                                  \
    if (r < MR) {                                                                         \
        __m512 a = _mm512_set1_ps(x##r[tt]);                                              \
        p##r##0 = _mm512_fmadd_ps(a, w0, p##r##0);                                        \
        p##r##1 = _mm512_fmadd_ps(a, w1, p##r##1);                                        \
        p##r##2 = _mm512_fmadd_ps(a, w2, p##r##2);                                        \
        p##r##3 = _mm512_fmadd_ps(a, w3, p##r##3);                                        \
    }
#define PROW_STORE(r)                                                                    \
    if (r < MR) {                                                                         \
        if (last) {                                                                       \
            p##r##0 = _mm512_add_ps(p##r##0, bb0), p##r##1 = _mm512_add_ps(p##r##1, bb1); \
            p##r##2 = _mm512_add_ps(p##r##2, bb2), p##r##3 = _mm512_add_ps(p##r##3, bb3); \
        }                                                                                 \
        _mm512_mask_storeu_ps(y##r, m0, p##r##0);                                         \
        _mm512_mask_storeu_ps(y##r + 16, m1, p##r##1);                                    \
        _mm512_mask_storeu_ps(y##r + 32, m2, p##r##2);                                    \
        _mm512_mask_storeu_ps(y##r + 48, m3, p##r##3);                                    \
    }
#define PROW_ALL(M, ...) M(0, __VA_ARGS__) M(1, __VA_ARGS__) M(2, __VA_ARGS__) M(3, __VA_ARGS__) \
    M(4, __VA_ARGS__) M(5, __VA_ARGS__)
#define PROW_ALL0(M) M(0) M(1) M(2) M(3) M(4) M(5)
#define P_HALF(tt)                                                                       \
    {                                                                                     \
        __m512 w0 = p_wv(sp, 0, dt), w1 = p_wv(sp, 1, dt);                                \
        __m512 w2 = p_wv(sp, 2, dt), w3 = p_wv(sp, 3, dt);                                \
        PROW_ALL(PROW_FMA, tt)                                                            \
    }
#define P_PF(sp)                                                                         \
    if (PPF && MR <= 2)                                                                   \
        for (size_t o = 0; o < SB; o += 64) _mm_prefetch((const char *)(sp) + PPF + o, _MM_HINT_T0)

static inline __mmask16 colmask(int ncols, int p) {
    int cnt = ncols - 16 * p;
    return cnt <= 0 ? 0 : tailmask16(cnt);
}

/* the prologue shared by both tiles: column masks, accumulators (X: the
 * rows' element type, floats or pair words) */
#define P_START(X)                                                                       \
    __mmask16 m0 = colmask(ncols, 0), m1 = colmask(ncols, 1), m2 = colmask(ncols, 2),     \
              m3 = colmask(ncols, 3);                                                     \
    PROW_ALL(PROW_DECL, X)

/* the epilogue shared by both tiles: + bias on the last k block, masked store */
#define P_FINISH()                                                                       \
    __m512 bb0 = _mm512_setzero_ps(), bb1 = bb0, bb2 = bb0, bb3 = bb0;                    \
    if (bias) {                                                                           \
        bb0 = _mm512_maskz_loadu_ps(m0, bias);                                            \
        bb1 = _mm512_maskz_loadu_ps(m1, bias + 16);                                       \
        bb2 = _mm512_maskz_loadu_ps(m2, bias + 32);                                       \
        bb3 = _mm512_maskz_loadu_ps(m3, bias + 48);                                       \
    }                                                                                     \
    PROW_ALL0(PROW_STORE)

/* F32/F16: rows x0.. (MR of them) x one block, k-steps [s0, s1); first: start
 * the chains at 0 (else continue from y); last: finish with + bias (+ 0
 * when bias is NULL, as the reference does). */
AI void p_tile(const float *x, size_t ldx, const unsigned char *blk, size_t s0, size_t s1,
               float *y, size_t ldy, int ncols, int first, int last, const float *bias,
               const w8_dtype dt, const int MR) {
    const size_t SB = w8_fp_step_bytes(dt);
    P_START(float)
    W8_FP_WALK(blk, SB, s0, s1, P_HALF, P_PF)
    P_FINISH()
}

/* BF16: the same over pair steps.  NATIVE: vdpbf16ps on pair words x;
 * else two FMAs (odd element first, its order) with the weights' halves
 * widened and the activations already f32 (p_prep writes each BF16 value
 * as the float it is, two words per step: broadcast, no widening per row). */
#define PB_ROW(r)                                                                        \
    if (r < MR) {                                                                         \
        if (NATIVE) {                                                                     \
            __m512i a = _mm512_set1_epi32((int)x##r[s]);                                  \
            p##r##0 = _mm512_dpbf16_ps(p##r##0, (__m512bh)a, (__m512bh)w0);               \
            p##r##1 = _mm512_dpbf16_ps(p##r##1, (__m512bh)a, (__m512bh)w1);               \
            p##r##2 = _mm512_dpbf16_ps(p##r##2, (__m512bh)a, (__m512bh)w2);               \
            p##r##3 = _mm512_dpbf16_ps(p##r##3, (__m512bh)a, (__m512bh)w3);               \
        } else {                                                                          \
            __m512 ae = _mm512_castsi512_ps(_mm512_set1_epi32((int)x##r[2 * s]));          \
            __m512 ao = _mm512_castsi512_ps(_mm512_set1_epi32((int)x##r[2 * s + 1]));      \
            p##r##0 = _mm512_fmadd_ps(ae, bf_lo(w0), _mm512_fmadd_ps(ao, bf_hi(w0), p##r##0)); \
            p##r##1 = _mm512_fmadd_ps(ae, bf_lo(w1), _mm512_fmadd_ps(ao, bf_hi(w1), p##r##1)); \
            p##r##2 = _mm512_fmadd_ps(ae, bf_lo(w2), _mm512_fmadd_ps(ao, bf_hi(w2), p##r##2)); \
            p##r##3 = _mm512_fmadd_ps(ae, bf_lo(w3), _mm512_fmadd_ps(ao, bf_hi(w3), p##r##3)); \
        }                                                                                 \
    }

AI __m512 bf_lo(__m512i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)); }
AI __m512 bf_hi(__m512i v) {
    return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000u)));
}

AI void pb_tile(const uint32_t *x, size_t ldx, const unsigned char *blk, size_t s0, size_t s1,
                float *y, size_t ldy, int ncols, int first, int last, const float *bias,
                const int MR, const int NATIVE) {
    const size_t SB = w8_fp_step_bytes(W8_BF16);
    P_START(uint32_t)
    for (size_t s = s0; s < s1; s++) {
        const unsigned char *sp = blk + s * SB;
        P_PF(sp);
        __m512i w0 = _mm512_load_si512((const void *)sp), w1 = _mm512_load_si512((const void *)(sp + 64));
        __m512i w2 = _mm512_load_si512((const void *)(sp + 128)), w3 = _mm512_load_si512((const void *)(sp + 192));
        PROW_ALL0(PB_ROW)
    }
    P_FINISH()
}

typedef void (*p_tile_fn)(const void *, size_t, const unsigned char *, size_t, size_t, float *,
                          size_t, int, int, int, const float *);
#define PT(NAME, CALL)                                                                      \
    static void NAME(const void *x, size_t ldx, const unsigned char *blk, size_t s0, size_t s1, \
                     float *y, size_t ldy, int ncols, int first, int last, const float *bias) { \
        CALL;                                                                               \
    }
#define PT_F(DT, MR) PT(p_tile_##DT##_##MR, p_tile(x, ldx, blk, s0, s1, y, ldy, ncols, first, last, bias, W8_##DT, MR))
#define PT_B(NAT, MR) PT(pb_tile_##NAT##_##MR, pb_tile(x, ldx, blk, s0, s1, y, ldy, ncols, first, last, bias, MR, NAT))
#define PT_ROWS(M, A) M(A, 1) M(A, 2) M(A, 3) M(A, 4) M(A, 5) M(A, 6)
PT_ROWS(PT_F, F32)
PT_ROWS(PT_F, F16)
PT_ROWS(PT_B, 0)
PT_ROWS(PT_B, 1)
#define PT_LIST(P) { P##1, P##2, P##3, P##4, P##5, P##6 }
/* [F32, F16, BF16 emulated, BF16 native][rows - 1] */
static const p_tile_fn p_tiles[4][PMR] = {
    PT_LIST(p_tile_F32_), PT_LIST(p_tile_F16_), PT_LIST(pb_tile_0_), PT_LIST(pb_tile_1_),
};

/* Decode, one row: up to PQB whole blocks side by side, as many sequential
 * weight streams instead of one, each prefetched PQF bytes ahead into L2.  A
 * block's outputs are the chains of p_tile / pb_tile for MR = 1 in the same
 * order (from 0 over every step, then + bias, or + 0 without one), so the
 * bits do not change.  In an in-process A/B on the development host (F16
 * 1.5B-shape down_proj and lm_head, 2 threads, each token's rate over a read
 * pass right after it) one stream per thread reached 0.84-0.98 of that pass
 * and four reached 0.96-1.08 (+6 to +17% per sitting; two gained ~1%). */
enum { PQB = 4, PQF = 1024 };

/* block b of the tile at step s; the row is xs (F32, F16: D 0, 1), the
 * pair word xa (BF16 native, D 3) or the emulation's two words ae, ao (D 2) */
#define PQ_BLOCK(b)                                                                      \
    if (b < NB) {                                                                         \
        const unsigned char *sp = blk + (size_t)(b) * bb + s * SB;                        \
        for (size_t o = 0; o < SB; o += 64)                                               \
            _mm_prefetch((const char *)sp + PQF + o, _MM_HINT_T1);                        \
        if (D <= 1) {                                                                     \
            q##b##0 = _mm512_fmadd_ps(xs, p_wv(sp, 0, dt), q##b##0);                      \
            q##b##1 = _mm512_fmadd_ps(xs, p_wv(sp, 1, dt), q##b##1);                      \
            q##b##2 = _mm512_fmadd_ps(xs, p_wv(sp, 2, dt), q##b##2);                      \
            q##b##3 = _mm512_fmadd_ps(xs, p_wv(sp, 3, dt), q##b##3);                      \
        } else {                                                                          \
            __m512i w0 = _mm512_load_si512((const void *)sp);                             \
            __m512i w1 = _mm512_load_si512((const void *)(sp + 64));                      \
            __m512i w2 = _mm512_load_si512((const void *)(sp + 128));                     \
            __m512i w3 = _mm512_load_si512((const void *)(sp + 192));                     \
            if (D == 3) {                                                                 \
                q##b##0 = _mm512_dpbf16_ps(q##b##0, (__m512bh)xa, (__m512bh)w0);          \
                q##b##1 = _mm512_dpbf16_ps(q##b##1, (__m512bh)xa, (__m512bh)w1);          \
                q##b##2 = _mm512_dpbf16_ps(q##b##2, (__m512bh)xa, (__m512bh)w2);          \
                q##b##3 = _mm512_dpbf16_ps(q##b##3, (__m512bh)xa, (__m512bh)w3);          \
            } else {                                                                      \
                q##b##0 = _mm512_fmadd_ps(ae, bf_lo(w0), _mm512_fmadd_ps(ao, bf_hi(w0), q##b##0)); \
                q##b##1 = _mm512_fmadd_ps(ae, bf_lo(w1), _mm512_fmadd_ps(ao, bf_hi(w1), q##b##1)); \
                q##b##2 = _mm512_fmadd_ps(ae, bf_lo(w2), _mm512_fmadd_ps(ao, bf_hi(w2), q##b##2)); \
                q##b##3 = _mm512_fmadd_ps(ae, bf_lo(w3), _mm512_fmadd_ps(ao, bf_hi(w3), q##b##3)); \
            }                                                                             \
        }                                                                                 \
    }
#define PQ_DECL(b)                                                                       \
    __m512 q##b##0 = _mm512_setzero_ps(), q##b##1 = q##b##0, q##b##2 = q##b##0,           \
           q##b##3 = q##b##0;
#define PQ_STORE(b)                                                                      \
    if (b < NB) {                                                                         \
        const float *bi = bias ? bias + 64 * (b) : NULL;                                  \
        __m512 bb0 = _mm512_setzero_ps(), bb1 = bb0, bb2 = bb0, bb3 = bb0;                \
        if (bi) {                                                                         \
            bb0 = _mm512_loadu_ps(bi), bb1 = _mm512_loadu_ps(bi + 16);                    \
            bb2 = _mm512_loadu_ps(bi + 32), bb3 = _mm512_loadu_ps(bi + 48);               \
        }                                                                                 \
        _mm512_storeu_ps(y + 64 * (b), _mm512_add_ps(q##b##0, bb0));                      \
        _mm512_storeu_ps(y + 64 * (b) + 16, _mm512_add_ps(q##b##1, bb1));                 \
        _mm512_storeu_ps(y + 64 * (b) + 32, _mm512_add_ps(q##b##2, bb2));                 \
        _mm512_storeu_ps(y + 64 * (b) + 48, _mm512_add_ps(q##b##3, bb3));                 \
    }

AI void pq_tile(const void *xv, const unsigned char *blk, size_t bb, size_t steps, float *y,
                const float *bias, const w8_dtype dt, const int D, const int NB) {
    const size_t SB = w8_fp_step_bytes(dt);
    const float *xf = xv;
    const uint32_t *xw = xv;
    PQ_DECL(0) PQ_DECL(1) PQ_DECL(2) PQ_DECL(3)
    for (size_t s = 0; s < steps; s++) {
        __m512 xs = _mm512_setzero_ps(), ae = xs, ao = xs;
        __m512i xa = _mm512_setzero_si512();
        if (D <= 1) xs = _mm512_set1_ps(xf[s]);
        if (D == 3) xa = _mm512_set1_epi32((int)xw[s]);
        if (D == 2) {
            ae = _mm512_castsi512_ps(_mm512_set1_epi32((int)xw[2 * s]));
            ao = _mm512_castsi512_ps(_mm512_set1_epi32((int)xw[2 * s + 1]));
        }
        PQ_BLOCK(0) PQ_BLOCK(1) PQ_BLOCK(2) PQ_BLOCK(3)
    }
    PQ_STORE(0) PQ_STORE(1) PQ_STORE(2) PQ_STORE(3)
}

typedef void (*pq_tile_fn)(const void *, const unsigned char *, size_t, size_t, float *,
                           const float *);
#define PQT(NAME, DT, D, NB)                                                                \
    static void NAME##_##NB(const void *x, const unsigned char *blk, size_t bb, size_t steps, \
                            float *y, const float *bias) {                                  \
        pq_tile(x, blk, bb, steps, y, bias, DT, D, NB);                                     \
    }
#define PQT_NB(NAME, DT, D) PQT(NAME, DT, D, 2) PQT(NAME, DT, D, 3) PQT(NAME, DT, D, 4)
PQT_NB(pq_tile_f32, W8_F32, 0)
PQT_NB(pq_tile_f16, W8_F16, 1)
PQT_NB(pq_tile_bf16e, W8_BF16, 2)
PQT_NB(pq_tile_bf16n, W8_BF16, 3)
#define PQ_LIST(P) { P##_2, P##_3, P##_4 }
/* [F32, F16, BF16 emulated, BF16 native][blocks - 2], as p_tiles; a thread's
 * range rarely splits into whole fours (0.5B down_proj: 7 blocks a thread) */
static const pq_tile_fn pq_tiles[4][PQB - 1] = {
    PQ_LIST(pq_tile_f32), PQ_LIST(pq_tile_f16), PQ_LIST(pq_tile_bf16e), PQ_LIST(pq_tile_bf16n),
};

static void p_gemm(const w8_fmat *w, int m, const float *x, size_t ldx, const uint32_t *xb,
                   size_t ldxb, float *y, size_t ldy, const float *bias, int n0, int n1) {
    int d = w->dtype == W8_F32 ? 0 : w->dtype == W8_F16 ? 1 : 2 + w8_kern_bf16_native();
    /* x rows as bytes: floats or pair words, 4 bytes either way */
    const void *xs = d >= 2 ? (const void *)xb : (const void *)x;
    size_t ldxs = d >= 2 ? ldxb : ldx, esz = 4;
    size_t steps = w8_fp_steps(w), bb = w8_fmat_block_bytes(w);
    size_t kc = m <= PMR ? steps : PKC;
    if (m == 1)
        for (int nb; (nb = (n1 - n0) / W8_FP_NB) >= 2; n0 += nb * W8_FP_NB) {
            if (nb > PQB) nb = PQB;
            pq_tiles[d][nb - 2](xs, (const unsigned char *)w->packed + (size_t)(n0 / W8_FP_NB) * bb,
                                bb, steps, y + n0, bias ? bias + n0 : NULL);
        }
    for (int c0 = n0; c0 < n1; c0 += W8_FP_NB) {
        int ncols = n1 - c0 < W8_FP_NB ? n1 - c0 : W8_FP_NB;
        const unsigned char *blk = (const unsigned char *)w->packed + (size_t)(c0 / W8_FP_NB) * bb;
        for (size_t s0 = 0; s0 < steps; s0 += kc) {
            size_t s1 = s0 + kc < steps ? s0 + kc : steps;
            for (int i = 0; i < m; i += PMR) {
                int mr = m - i < PMR ? m - i : PMR;
                p_tiles[d][mr - 1]((const char *)xs + (size_t)i * ldxs * esz, ldxs, blk, s0, s1,
                                   y + (size_t)i * ldy + (size_t)c0, ldy, ncols, s0 == 0,
                                   s1 == steps, bias ? bias + c0 : NULL);
            }
        }
    }
}

/* Activations to BF16 pair words (w8_kern_bf16 per element), 16 at a time:
 * the bits are computed in 32-bit lanes, then narrowed (vpmovdw), which
 * puts element 2s in the low and 2s + 1 in the high half of word s.
 * Without AVX512_BF16, element t becomes word t, the float of its BF16
 * bits (bits << 16): what the emulation widened each pair word to. */
static void p_prep(const float *x, int k, uint32_t *dst) {
    const int native = w8_kern_bf16_native();
    const __m512i absm = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
    for (int t = 0; t < k; t += 16) {
        __mmask16 mk = tailmask16(k - t);
        __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(mk, x + t));
        __m512i r = _mm512_srli_epi32(
            _mm512_add_epi32(_mm512_add_epi32(u, bias), _mm512_and_si512(_mm512_srli_epi32(u, 16), one)), 16);
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absm), inf);
        __mmask16 tiny = _mm512_testn_epi32_mask(u, inf); /* exponent 0: zero, denormal */
        r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
        r = _mm512_mask_mov_epi32(r, tiny, _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x8000)));
        if (native) /* 16 halves = 8 words; an odd k leaves the last word's high half 0 */
            _mm256_mask_storeu_epi16((uint16_t *)dst + t, mk, _mm512_cvtepi32_epi16(r));
        else /* element t as the f32 of its BF16 bits: word t */
            _mm512_mask_storeu_epi32(dst + t, mk, _mm512_slli_epi32(r, 16));
    }
    if (k & 1) memset(native ? (char *)dst + 2 * (size_t)k : (char *)(dst + k), 0, native ? 2 : 4);
}

/* words per row of p_prep: pair words, or two floats per pair step */
static size_t p_xwords(const w8_fmat *w) { return w8_fp_steps(w) * (w8_kern_bf16_native() ? 1 : 2); }

/* ------------------------------------------------------------- attention */

/* Element i of the result = horizontal sum of a[i] (16 vectors in, one out):
 * a halving tree over 128-bit lanes, then within lanes, then one permute;
 * ~3 operations per key instead of a full reduction each. */
AI __m512 hsum16x16(__m512 a[16]) {
    __m512 x[8], z[4], v[2];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) /* key 2i in lanes 0-1, key 2i+1 in lanes 2-3 */
        x[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) /* keys 4i .. 4i+3 in lanes 0..3 */
        z[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0xDD));
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) /* lane l: keys 8i+l (elements 0-1), 8i+4+l (2-3) */
        v[i] = _mm512_add_ps(_mm512_shuffle_ps(z[2 * i], z[2 * i + 1], 0x44),
                             _mm512_shuffle_ps(z[2 * i], z[2 * i + 1], 0xEE));
    /* lane l: keys l, l+4, l+8, l+12 */
    __m512 r = _mm512_add_ps(_mm512_shuffle_ps(v[0], v[1], 0x88), _mm512_shuffle_ps(v[0], v[1], 0xDD));
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(idx, r);
}

static void x_attn_scores(const float *q, const float *k, size_t ldk, int n, int d, float scale,
                          float *s) {
    __m512 sc = _mm512_set1_ps(scale);
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 acc[16];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
        for (int t = 0; t < d; t += 16) {
            __mmask16 mk = tailmask16(d - t);
            __m512 qv = _mm512_maskz_loadu_ps(mk, q + t);
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                acc[i] = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(mk, k + (size_t)(j + i) * ldk + t), acc[i]);
        }
        _mm512_storeu_ps(s + j, _mm512_mul_ps(sc, hsum16x16(acc)));
    }
    for (; j < n; j++) {
        const float *kj = k + (size_t)j * ldk;
        __m512 acc = _mm512_setzero_ps();
        for (int t = 0; t < d; t += 16) {
            __mmask16 mk = tailmask16(d - t);
            acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, q + t), _mm512_maskz_loadu_ps(mk, kj + t), acc);
        }
        s[j] = scale * _mm512_reduce_add_ps(acc);
    }
}

/* w8_attn_scores_n for d a multiple of 16 up to 256: x_attn_scores's
 * arithmetic per key (lane l of the key's accumulator: one FMA chain over
 * t = l, l + 16, .. from 0; then the halving tree l + 8, l + 4, l + 2,
 * l + 1; then scale *) with the keys in the lanes instead.  A chunk of keys
 * is transposed once (kt: 16-key groups of d rows, kt[t] = key j's t-th
 * value in lane j) for every query; lane l's chain becomes a vector A_l over
 * 16 keys, the tree becomes 15 vertical adds per 16 keys (instead of the
 * ~30 shuffles of hsum16x16), and one K load feeds two queries.  Each query
 * is thus x_attn_scores bit for bit. */
enum { SN_BUF = 4096 }; /* floats of transposed keys on the stack (16 KB, L1) */

/* 16 rows of 16 floats (cnt real, the rest zero) -> kt[t * 16 + j] */
AI void sn_t16(const float *k, size_t ldk, int cnt, float *kt) {
    const __m512 z = _mm512_setzero_ps();
#define SN_LD(j) __m512 r##j = j < cnt ? _mm512_loadu_ps(k + (size_t)j * ldk) : z;
    SN_LD(0) SN_LD(1) SN_LD(2) SN_LD(3) SN_LD(4) SN_LD(5) SN_LD(6) SN_LD(7)
    SN_LD(8) SN_LD(9) SN_LD(10) SN_LD(11) SN_LD(12) SN_LD(13) SN_LD(14) SN_LD(15)
#undef SN_LD
    /* pairs of rows interleaved, then quads: u(4a + b) holds, in 128-bit
     * lane L, element 4L + b of rows 4a .. 4a + 3 */
#define SN_U(a, r0, r1, r2, r3)                                                          \
    __m512 t##a##0 = _mm512_unpacklo_ps(r0, r1), t##a##1 = _mm512_unpackhi_ps(r0, r1);  \
    __m512 t##a##2 = _mm512_unpacklo_ps(r2, r3), t##a##3 = _mm512_unpackhi_ps(r2, r3);  \
    __m512 u##a##0 = _mm512_shuffle_ps(t##a##0, t##a##2, 0x44);                          \
    __m512 u##a##1 = _mm512_shuffle_ps(t##a##0, t##a##2, 0xEE);                          \
    __m512 u##a##2 = _mm512_shuffle_ps(t##a##1, t##a##3, 0x44);                          \
    __m512 u##a##3 = _mm512_shuffle_ps(t##a##1, t##a##3, 0xEE);
    SN_U(0, r0, r1, r2, r3) SN_U(1, r4, r5, r6, r7) SN_U(2, r8, r9, r10, r11)
    SN_U(3, r12, r13, r14, r15)
#undef SN_U
    /* then a 4 x 4 transpose of 128-bit lanes: element t = 4L + b */
#define SN_O(b)                                                                          \
    {                                                                                     \
        __m512 v0 = _mm512_shuffle_f32x4(u0##b, u1##b, 0x88);                             \
        __m512 v1 = _mm512_shuffle_f32x4(u0##b, u1##b, 0xDD);                             \
        __m512 v2 = _mm512_shuffle_f32x4(u2##b, u3##b, 0x88);                             \
        __m512 v3 = _mm512_shuffle_f32x4(u2##b, u3##b, 0xDD);                             \
        _mm512_store_ps(kt + 16 * (0 + b), _mm512_shuffle_f32x4(v0, v2, 0x88));           \
        _mm512_store_ps(kt + 16 * (8 + b), _mm512_shuffle_f32x4(v0, v2, 0xDD));           \
        _mm512_store_ps(kt + 16 * (4 + b), _mm512_shuffle_f32x4(v1, v3, 0x88));           \
        _mm512_store_ps(kt + 16 * (12 + b), _mm512_shuffle_f32x4(v1, v3, 0xDD));          \
    }
    SN_O(0) SN_O(1) SN_O(2) SN_O(3)
#undef SN_O
}

/* B_e = A_e + A_(e+8), the chains of lanes e and e + 8 over the d / 16
 * chunks, for NQ queries against one 16-key group.  The empty asm keeps the
 * two key vectors, which every query uses, in registers: else GCC folds
 * their loads into each FMA and the loop is bound by loads (as in AN_CH
 * below); the query elements come in as the FMAs' broadcast operands.
 * The volatile asms fix the schedule GCC otherwise undoes: each chain
 * starts from its own zeroing idiom (not a copy of one zero register), and
 * each sum is made where it is written, not sunk to the end of the tile,
 * which kept every chain's two halves live and spilled them to the stack. */
#define SQ_B(e, B)                                                                       \
    __m512 B[SQ_MAX];                                                                     \
    {                                                                                     \
        __m512 x[SQ_MAX], y[SQ_MAX];                                                      \
        _Pragma("GCC unroll 4") for (int i = 0; i < NQ; i++) {                            \
            __asm__ volatile("vpxord %0, %0, %0" : "=v"(x[i]));                           \
            __asm__ volatile("vpxord %0, %0, %0" : "=v"(y[i]));                           \
        }                                                                                 \
        _Pragma("GCC unroll 4") for (int c = 0; c < nch; c++) {                           \
            size_t t = (size_t)(16 * c + (e));                                            \
            __m512 ke = _mm512_load_ps(kt + 16 * t), kf = _mm512_load_ps(kt + 16 * (t + 8)); \
            if (NQ > 1) __asm__("" : "+v"(ke), "+v"(kf));                                 \
            _Pragma("GCC unroll 4") for (int i = 0; i < NQ; i++) {                        \
                x[i] = _mm512_fmadd_ps(_mm512_set1_ps(q[i][t]), ke, x[i]);                \
                y[i] = _mm512_fmadd_ps(_mm512_set1_ps(q[i][t + 8]), kf, y[i]);            \
            }                                                                             \
        }                                                                                 \
        _Pragma("GCC unroll 4") for (int i = 0; i < NQ; i++) {                            \
            B[i] = _mm512_add_ps(x[i], y[i]);                                             \
            __asm__ volatile("" : "+v"(B[i]));                                            \
        }                                                                                 \
    }
#define SQ_ADD(R, A, B)                                                                  \
    __m512 R[SQ_MAX];                                                                     \
    _Pragma("GCC unroll 4") for (int i = 0; i < NQ; i++) {                                \
        R[i] = _mm512_add_ps(A[i], B[i]);                                                 \
        __asm__ volatile("" : "+v"(R[i]));                                                \
    }

/* NQ (<= SQ_MAX) queries x one group of 16 transposed keys kt, each
 * query's tree in the order ((b0 + b4) + (b2 + b6)) + ((b1 + b5) + (b3 +
 * b7)), which is hsum16x16's, so that few partial sums are live at a time:
 * at most 5 NQ + 2 vectors, no spills up to NQ = 4.  (A 2-query x 2-group
 * tile, 4 outputs as well, had 2 key vectors more per step and GCC spilled
 * it: prompt scores ran ~1.4x slower.) */
enum { SQ_MAX = 4 };
AI void sq_tile(const float *kt, const float *const *q, int nch, __m512 *r, const int NQ) {
    SQ_B(0, b0) SQ_B(4, b4) SQ_ADD(c0, b0, b4)
    SQ_B(2, b2) SQ_B(6, b6) SQ_ADD(c2, b2, b6) SQ_ADD(d0, c0, c2)
    SQ_B(1, b1) SQ_B(5, b5) SQ_ADD(c1, b1, b5)
    SQ_B(3, b3) SQ_B(7, b7) SQ_ADD(c3, b3, b7) SQ_ADD(d1, c1, c3) SQ_ADD(e, d0, d1)
#pragma GCC unroll 4
    for (int i = 0; i < NQ; i++) r[i] = e[i];
}
#undef SQ_B
#undef SQ_ADD

typedef void (*sq_fn)(const float *, const float *const *, int, __m512 *);
/* any nch, and nch = 4 (d = 64, the common head size) with the chunk loop
 * unrolled: the same operations in the same order without the loop */
#define SQT(NQ)                                                                             \
    static void sq_##NQ(const float *kt, const float *const *q, int nch, __m512 *r) {       \
        sq_tile(kt, q, nch, r, NQ);                                                         \
    }                                                                                       \
    static void sq4_##NQ(const float *kt, const float *const *q, int nch, __m512 *r) {      \
        (void)nch;                                                                          \
        sq_tile(kt, q, 4, r, NQ);                                                           \
    }
SQT(1) SQT(2) SQT(3) SQT(4)
static const sq_fn sq_tiles[SQ_MAX] = { sq_1, sq_2, sq_3, sq_4 };
static const sq_fn sq4_tiles[SQ_MAX] = { sq4_1, sq4_2, sq4_3, sq4_4 };

static void x_attn_scores_n(const float *q, size_t ldq, int nr, int nh, const float *k,
                            size_t ldk, const int *nk, int d, float scale, float *s,
                            size_t lds) {
    int nmax = 0;
    for (int i = 0; i < nr; i++) nmax = nk[i] > nmax ? nk[i] : nmax;
    if (d <= 0 || d % 16 || d > 256) {
        for (int i = 0; i < nr; i++)
            for (int h = 0; nk[i] > 0 && h < nh; h++)
                x_attn_scores(q + (size_t)i * ldq + (size_t)h * d, k, ldk, nk[i], d, scale,
                              s + ((size_t)i * nh + h) * lds);
        return;
    }
    float kt[SN_BUF] __attribute__((aligned(64)));
    int kc = SN_BUF / d / 16 * 16, nch = d / 16, nq = nr * nh;
    const sq_fn *tiles = nch == 4 ? sq4_tiles : sq_tiles;
    __m512 sc = _mm512_set1_ps(scale);
    for (int c0 = 0; c0 < nmax; c0 += kc) {
        int cn = nmax - c0 < kc ? nmax - c0 : kc;
        for (int j = 0; j < cn; j += 16)
            for (int t = 0; t < d; t += 16)
                sn_t16(k + (size_t)(c0 + j) * ldk + t, ldk, cn - j < 16 ? cn - j : 16,
                       kt + (size_t)j * d + 16 * (size_t)t);
        /* up to SQ_MAX queries at a time (those with keys in this chunk),
         * each 16-key group once for all of them */
        for (int qi = 0; qi < nq;) {
            const float *qp[SQ_MAX];
            float *sp[SQ_MAX];
            int nn[SQ_MAX], g = 0, nl = 0;
            for (; qi < nq && g < SQ_MAX; qi++) {
                int n = nk[qi / nh] - c0;
                n = n < 0 ? 0 : n > cn ? cn : n;
                if (n == 0) continue;
                qp[g] = q + (size_t)(qi / nh) * ldq + (size_t)(qi % nh) * d;
                sp[g] = s + (size_t)qi * lds + c0;
                nn[g++] = n;
                nl = n > nl ? n : nl;
            }
            for (int j = 0; j < nl; j += 16) {
                __m512 r[SQ_MAX];
                tiles[g - 1](kt + (size_t)j * d, qp, nch, r);
                for (int i = 0; i < g; i++)
                    _mm512_mask_storeu_ps(sp[i] + j, tailmask16(nn[i] - j > 0 ? nn[i] - j : 0),
                                          _mm512_mul_ps(sc, r[i]));
            }
        }
    }
}

/* out += sum_j p[j] V_j.  Each output element is one FMA chain over j in
 * order, whatever d, n or how the caller splits the keys into blocks (so
 * the result does not depend on the KV block size).  For d <= 128 the row
 * stays in registers and its d/16 chains interleave. */
#define AC_STEP(c)                                                                       \
    if (c < nch) o##c = _mm512_fmadd_ps(pa, _mm512_maskz_loadu_ps(mk##c, va + 16 * c), o##c);
#define AC_INIT(c)                                                                       \
    __mmask16 mk##c = c < nch ? tailmask16(d - 16 * c) : 0;                               \
    __m512 o##c = _mm512_maskz_loadu_ps(mk##c, out + 16 * c);
#define AC_OUT(c) if (c < nch) _mm512_mask_storeu_ps(out + 16 * c, mk##c, o##c);

static void x_attn_accum(const float *p, const float *v, size_t ldv, int n, int d, float *out) {
    if (d > 128) {
        for (int t = 0; t < d; t += 16) {
            __mmask16 mk = tailmask16(d - t);
            __m512 o = _mm512_maskz_loadu_ps(mk, out + t);
            for (int j = 0; j < n; j++)
                o = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), _mm512_maskz_loadu_ps(mk, v + (size_t)j * ldv + t), o);
            _mm512_mask_storeu_ps(out + t, mk, o);
        }
        return;
    }
    int nch = (d + 15) / 16;
    AC_INIT(0) AC_INIT(1) AC_INIT(2) AC_INIT(3) AC_INIT(4) AC_INIT(5) AC_INIT(6) AC_INIT(7)
    for (int j = 0; j < n; j++) {
        __m512 pa = _mm512_set1_ps(p[j]);
        const float *va = v + (size_t)j * ldv;
        AC_STEP(0) AC_STEP(1) AC_STEP(2) AC_STEP(3) AC_STEP(4) AC_STEP(5) AC_STEP(6) AC_STEP(7)
    }
    AC_OUT(0) AC_OUT(1) AC_OUT(2) AC_OUT(3) AC_OUT(4) AC_OUT(5) AC_OUT(6) AC_OUT(7)
}

/* Several queries over the same V rows, for d = 64 (up to 6 queries) and
 * d = 128 (up to 3): NQ x d/16 chains, each element's chain exactly
 * x_attn_accum's (fma over j in order from out's value), so the bits are
 * the same as one query at a time.  Other d: x_attn_accum per query. */
#define AN_DECL(q)                                                                       \
    __m512 o##q##0 = z, o##q##1 = z, o##q##2 = z, o##q##3 = z, o##q##4 = z, o##q##5 = z,  \
           o##q##6 = z, o##q##7 = z;                                                      \
    const float *p##q = p + (size_t)(q < NQ ? q : 0) * ldp;                               \
    float *u##q = out + (size_t)(q < NQ ? q : 0) * ldo;                                   \
    if (q < NQ) {                                                                         \
        o##q##0 = _mm512_loadu_ps(u##q), o##q##1 = _mm512_loadu_ps(u##q + 16);            \
        o##q##2 = _mm512_loadu_ps(u##q + 32), o##q##3 = _mm512_loadu_ps(u##q + 48);       \
        if (NCH > 4) {                                                                    \
            o##q##4 = _mm512_loadu_ps(u##q + 64), o##q##5 = _mm512_loadu_ps(u##q + 80);   \
            o##q##6 = _mm512_loadu_ps(u##q + 96), o##q##7 = _mm512_loadu_ps(u##q + 112);  \
        }                                                                                 \
    }
#define AN_BC(q) __m512 a##q = q < NQ ? _mm512_set1_ps(p##q[j]) : z;
#define AN_FMA(q, c) if (q < NQ) o##q##c = _mm512_fmadd_ps(a##q, vc, o##q##c);
/* the empty asm keeps vc in a register: else GCC folds the load into every
 * query's FMA and the loop is bound by loads (NQ + 1 per NQ FMAs) */
#define AN_CH(c)                                                                         \
    if (c < NCH) {                                                                        \
        __m512 vc = _mm512_loadu_ps(vj + 16 * c);                                         \
        if (NQ > 1) __asm__("" : "+v"(vc));                                               \
        AN_FMA(0, c) AN_FMA(1, c) AN_FMA(2, c) AN_FMA(3, c) AN_FMA(4, c) AN_FMA(5, c)     \
    }
#define AN_OUT(q)                                                                        \
    if (q < NQ) {                                                                         \
        _mm512_storeu_ps(u##q, o##q##0), _mm512_storeu_ps(u##q + 16, o##q##1);            \
        _mm512_storeu_ps(u##q + 32, o##q##2), _mm512_storeu_ps(u##q + 48, o##q##3);       \
        if (NCH > 4) {                                                                    \
            _mm512_storeu_ps(u##q + 64, o##q##4), _mm512_storeu_ps(u##q + 80, o##q##5);   \
            _mm512_storeu_ps(u##q + 96, o##q##6), _mm512_storeu_ps(u##q + 112, o##q##7);  \
        }                                                                                 \
    }

AI void an_tile(const float *p, size_t ldp, const float *v, size_t ldv, int n, float *out,
                size_t ldo, const int NQ, const int NCH) {
    const __m512 z = _mm512_setzero_ps();
    AN_DECL(0) AN_DECL(1) AN_DECL(2) AN_DECL(3) AN_DECL(4) AN_DECL(5)
    for (int j = 0; j < n; j++) {
        const float *vj = v + (size_t)j * ldv;
        AN_BC(0) AN_BC(1) AN_BC(2) AN_BC(3) AN_BC(4) AN_BC(5)
        AN_CH(0) AN_CH(1) AN_CH(2) AN_CH(3) AN_CH(4) AN_CH(5) AN_CH(6) AN_CH(7)
    }
    AN_OUT(0) AN_OUT(1) AN_OUT(2) AN_OUT(3) AN_OUT(4) AN_OUT(5)
}

typedef void (*an_fn)(const float *, size_t, const float *, size_t, int, float *, size_t);
#define ANT(NQ, NCH)                                                                        \
    static void an_##NQ##_##NCH(const float *p, size_t ldp, const float *v, size_t ldv, int n, \
                                float *out, size_t ldo) {                                   \
        an_tile(p, ldp, v, ldv, n, out, ldo, NQ, NCH);                                      \
    }
ANT(1, 4) ANT(2, 4) ANT(3, 4) ANT(4, 4) ANT(5, 4) ANT(6, 4) ANT(1, 8) ANT(2, 8) ANT(3, 8)
static const an_fn an64[6] = { an_1_4, an_2_4, an_3_4, an_4_4, an_5_4, an_6_4 };
static const an_fn an128[3] = { an_1_8, an_2_8, an_3_8 };

static void x_attn_accum_n(const float *p, size_t ldp, int nq, const float *v, size_t ldv, int n,
                           int d, float *out, size_t ldo) {
    if (d != 64 && d != 128) {
        for (int q = 0; q < nq; q++) x_attn_accum(p + (size_t)q * ldp, v, ldv, n, d, out + (size_t)q * ldo);
        return;
    }
    /* passes of at most 6 (3) queries, balanced: 7 heads = 4 + 3, not 6 + 1 */
    int gmax = d == 64 ? 6 : 3, passes = (nq + gmax - 1) / gmax, g = (nq + passes - 1) / passes;
    for (int q = 0; q < nq; q += g) {
        int cnt = nq - q < g ? nq - q : g;
        an_fn f = d == 64 ? an64[cnt - 1] : an128[cnt - 1];
        f(p + (size_t)q * ldp, ldp, v, ldv, n, out + (size_t)q * ldo, ldo);
    }
}

/* ------------------------------------------------------------ elementwise */

/* exp(x): n = round(x / ln2), r = x - n ln2 (two-part ln2), Cephes' degree-6
 * polynomial on |r| <= ln2 / 2, then scalef by 2^n (which also gives inf,
 * denormals and 0 at the ends).  Within ~2 ulp of expf; NaN stays NaN.
 * On N vectors in place (N a constant after inlining), step by step across
 * them: each lane gets the same operations in the same order whatever N,
 * but N = 4 keeps four independent ~60-cycle chains in flight where one
 * exp after the other left the ports waiting (softmax rows 1.07-1.12x in
 * isolation; within noise inside a prompt pass). */
AI void exp16n(__m512 *v, const int N) {
    __m512 n[4], r[4], p[4];
#pragma GCC unroll 4
    for (int i = 0; i < N; i++) { /* NaN: max/min keep the second operand */
        v[i] = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), v[i]));
        n[i] = _mm512_roundscale_ps(_mm512_mul_ps(v[i], _mm512_set1_ps(W8_EXP_LOG2E)), QRN);
    }
#pragma GCC unroll 4
    for (int i = 0; i < N; i++) {
        r[i] = _mm512_fnmadd_ps(n[i], _mm512_set1_ps(W8_EXP_LN2_HI), v[i]);
        r[i] = _mm512_fnmadd_ps(n[i], _mm512_set1_ps(W8_EXP_LN2_LO), r[i]);
    }
    static const float c[5] = { W8_EXP_P1, W8_EXP_P2, W8_EXP_P3, W8_EXP_P4, W8_EXP_P5 };
#pragma GCC unroll 4
    for (int i = 0; i < N; i++) p[i] = _mm512_set1_ps(W8_EXP_P0);
#pragma GCC unroll 5
    for (int k = 0; k < 5; k++)
#pragma GCC unroll 4
        for (int i = 0; i < N; i++) p[i] = _mm512_fmadd_ps(p[i], r[i], _mm512_set1_ps(c[k]));
#pragma GCC unroll 4
    for (int i = 0; i < N; i++)
        v[i] = _mm512_scalef_ps(_mm512_fmadd_ps(p[i], _mm512_mul_ps(r[i], r[i]),
                                                _mm512_add_ps(r[i], _mm512_set1_ps(1.0f))), n[i]);
}

AI __m512 exp16(__m512 x) {
    exp16n(&x, 1);
    return x;
}

AI __m512 silu_mul(__m512 gv, __m512 e, __m512 uv) {
    return _mm512_mul_ps(_mm512_div_ps(gv, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), uv);
}

/* SwiGLU and the quantization of its row (xq, when not NULL); flip (a
 * constant after inlining) stores the bytes as q_prep leaves them, q ^ 0x80
 * (swiglu_prep: down_proj's GEMM then reads them as they are).  out may be
 * NULL with xq. */
AI void swiglu_row(const float *g, const float *u, int n, float *out, int8_t *xq, float scale,
                   int offset, const int flip) {
    __m512 sc = _mm512_set1_ps(scale), off = _mm512_set1_ps((float)offset);
    const __m128i fl = _mm_set1_epi8((char)(flip ? 0x80 : 0));
    int t = 0;
    for (; t + 64 <= n; t += 64) { /* four vectors at a time, see exp16n */
        __m512 gv[4], e[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            gv[i] = _mm512_loadu_ps(g + t + 16 * i);
            e[i] = _mm512_sub_ps(_mm512_setzero_ps(), gv[i]);
        }
        exp16n(e, 4);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            __m512 v = silu_mul(gv[i], e[i], _mm512_loadu_ps(u + t + 16 * i));
            if (out) _mm512_storeu_ps(out + t + 16 * i, v);
            if (xq) {
                __m128i q = q16(v, sc, off);
                if (flip) q = _mm_xor_si128(q, fl);
                _mm_storeu_si128((__m128i *)(xq + t + 16 * i), q);
            }
        }
    }
    for (; t < n; t += 16) {
        __mmask16 mk = tailmask16(n - t);
        __m512 gv = _mm512_maskz_loadu_ps(mk, g + t);
        __m512 v = silu_mul(gv, exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv)), _mm512_maskz_loadu_ps(mk, u + t));
        if (out) _mm512_mask_storeu_ps(out + t, mk, v);
        if (xq) {
            __m128i q = q16(v, sc, off);
            if (flip) q = _mm_xor_si128(q, fl);
            _mm_mask_storeu_epi8(xq + t, mk, q);
        }
    }
}

static void x_swiglu(const float *g, const float *u, int n, float *out, int8_t *xq, float scale,
                     int offset) {
    swiglu_row(g, u, n, out, xq, scale, offset, 0);
}

static void x_swiglu_prep(const float *g, const float *u, int n, float *out, uint8_t *xp,
                          float scale, int offset) {
    swiglu_row(g, u, n, out, (int8_t *)xp, scale, offset, 1);
}

/* The row's max with four chains (one max_ps chain was latency-bound): for
 * values without NaN the max is the same whatever the grouping, except
 * the sign of a zero max, and x - (+0) and x - (-0) give exp16 the same
 * result.  A row with a NaN takes the one chain, whose order decides
 * which NaN (if any) wins. */
AI float sm_max(const float *x, int n) {
    __m512 m0 = _mm512_set1_ps(x[0]), m1 = m0, m2 = m0, m3 = m0;
    __mmask16 nan = 0;
    int j = 0;
    for (; j + 64 <= n; j += 64) {
        __m512 v0 = _mm512_loadu_ps(x + j), v1 = _mm512_loadu_ps(x + j + 16);
        __m512 v2 = _mm512_loadu_ps(x + j + 32), v3 = _mm512_loadu_ps(x + j + 48);
        nan |= _mm512_cmp_ps_mask(v0, v1, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v2, v3, _CMP_UNORD_Q);
        m0 = _mm512_max_ps(m0, v0), m1 = _mm512_max_ps(m1, v1);
        m2 = _mm512_max_ps(m2, v2), m3 = _mm512_max_ps(m3, v3);
    }
    for (; j < n; j += 16) {
        __m512 v = _mm512_mask_loadu_ps(m0, tailmask16(n - j), x + j);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        m0 = _mm512_max_ps(m0, v);
    }
    if (!nan)
        return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
    __m512 mx = _mm512_set1_ps(x[0]);
    for (j = 0; j < n; j += 16)
        mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, tailmask16(n - j), x + j));
    return _mm512_reduce_max_ps(mx);
}

static void x_softmax(float *x, int n) {
    __m512 m = _mm512_set1_ps(sm_max(x, n)), sum = _mm512_setzero_ps();
    int j = 0;
    for (; j + 64 <= n; j += 64) { /* four vectors at a time, see exp16n; the sum in order */
        __m512 e[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) e[i] = _mm512_sub_ps(_mm512_loadu_ps(x + j + 16 * i), m);
        exp16n(e, 4);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            _mm512_storeu_ps(x + j + 16 * i, e[i]);
            sum = _mm512_add_ps(sum, e[i]);
        }
    }
    for (; j < n; j += 16) {
        __mmask16 mk = tailmask16(n - j);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + j), m));
        _mm512_mask_storeu_ps(x + j, mk, e);
        sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(mk, e));
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int j = 0; j < n; j += 16) {
        __mmask16 mk = tailmask16(n - j);
        _mm512_mask_storeu_ps(x + j, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + j), inv));
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
    .quant_dyn = x_quant_dyn,
    .rmsnorm_rows = x_rmsnorm_rows,
    .add_rmsnorm = x_add_rmsnorm,
    .fgemv = f_gemv,
    .fgemm = f_gemm,
    .fnblock = FNB,
    .fscratch = FBLK_BYTES / 4 + 16,
    .pgemm = p_gemm,
    .pprep = p_prep,
    .pxwords = p_xwords,
    .attn_scores = x_attn_scores,
    .attn_accum = x_attn_accum,
    .attn_scores_n = x_attn_scores_n,
    .attn_accum_n = x_attn_accum_n,
    .swiglu = x_swiglu,
    .swiglu_prep = x_swiglu_prep,
    .softmax = x_softmax,
};

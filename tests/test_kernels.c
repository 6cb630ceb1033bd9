/*
 * test_kernels.c - every kernel family on every ISA this CPU has, against
 * plain loops written here (int8 GEMM, quantization) or against the scalar
 * reference kernels (RMSNorm bit for bit; float GEMM and attention within a
 * stated bound, the reference itself checked against double precision).
 *
 * Shapes are deliberately awkward: k in {1, 3, 4, 63, 64, 65, 172, 896} and a
 * large k = 4864 for the int32 range, n in {1, 3, 17, 64, 4864}, m in
 * {1, 2, 3, 7, 16, 33}, strided rows, operands at -128/127.
 */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/kernels/kernels.h"
#include "../src/util.h"
#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#define SLOW 1
#else
#define SLOW 0
#endif

static w8_rng rng;

static int8_t rand_i8(void) {
    /* a quarter of the values at the extremes, the rest uniform */
    uint64_t r = w8_rng_u64(&rng);
    if ((r & 7) == 0) return -128;
    if ((r & 7) == 1) return 127;
    return (int8_t)(r >> 8);
}

static void fill_i8(int8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = rand_i8();
}

static void fill_f(float *p, size_t n, float amp) {
    for (size_t i = 0; i < n; i++) p[i] = amp * w8_rng_normal(&rng);
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* ------------------------------------------------------------------ int8 */

/* Expected y from plain loops: exact int64 sum, then the epilogue formula. */
static float expect_i8(const int8_t *x, const int8_t *w, int k, int32_t qb, float ds) {
    int64_t acc = 0;
    for (int t = 0; t < k; t++) acc += (int64_t)x[t] * w[t];
    return (float)(int32_t)((uint32_t)(int32_t)acc + (uint32_t)qb) * ds;
}

/* One int8 case; returns the number of mismatches (also reported). */
static int check_i8(int m, int n, int k, int mode) {
    size_t ldx = (size_t)k + 5, ldy = (size_t)n + 3;
    int8_t *x = malloc((size_t)m * ldx), *w = malloc((size_t)n * k);
    int32_t *qb = malloc((size_t)n * sizeof *qb);
    float *ds = malloc((size_t)n * sizeof *ds), *y = malloc((size_t)m * ldy * sizeof *y);
    if (mode == 0) {
        fill_i8(x, (size_t)m * ldx);
        fill_i8(w, (size_t)n * k);
    } else { /* extremes: -128 x -128 everywhere (mode 1), or -128 x 127 (mode 2) */
        memset(x, -128, (size_t)m * ldx);
        memset(w, mode == 1 ? -128 : 127, (size_t)n * k);
    }
    for (int j = 0; j < n; j++) {
        qb[j] = (int32_t)(w8_rng_u64(&rng) % 200001) - 100000;
        ds[j] = mode ? 1.0f : 1e-4f * (1.0f + w8_rng_f32(&rng));
    }
    for (size_t i = 0; i < (size_t)m * ldy; i++) y[i] = -7.0f; /* sentinel for the stride gap */
    w8_qmat q;
    w8_qmat_pack(&q, w, n, k, qb, ds);
    w8_gemm_i8(&q, m, x, ldx, y, ldy);
    int bad = 0;
    for (int i = 0; i < m && bad < 3; i++) {
        for (int j = 0; j < n && bad < 3; j++) {
            float e = expect_i8(x + (size_t)i * ldx, w + (size_t)j * k, k, qb[j], ds[j]);
            float g = y[(size_t)i * ldy + j];
            if (!same_bits(e, g)) {
                bad++;
                EXPECT(0, "gemm_i8 m=%d n=%d k=%d mode=%d y[%d,%d] = %.9g, expected %.9g", m, n,
                       k, mode, i, j, g, e);
            }
        }
        for (size_t j = (size_t)n; j < ldy; j++)
            if (y[(size_t)i * ldy + j] != -7.0f) {
                bad++;
                EXPECT(0, "gemm_i8 m=%d n=%d k=%d wrote past column n", m, n, k);
                break;
            }
    }
    w8_qmat_free(&q);
    free(x), free(w), free(qb), free(ds), free(y);
    return bad;
}

static void test_gemm_i8(const char *isa) {
    static const int ks[] = { 1, 3, 4, 63, 64, 65, 172, 896 };
    static const int ns[] = { 1, 3, 17, 64 };
    static const int ms[] = { 1, 2, 3, 7, 16, 33 };
    int bad = 0, cases = 0;
    for (size_t a = 0; a < sizeof ks / sizeof *ks; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
            for (size_t c = 0; c < sizeof ms / sizeof *ms; c++) {
                if (SLOW && ks[a] == 896 && ms[c] > 7) continue;
                bad += check_i8(ms[c], ns[b], ks[a], 0), cases++;
            }
    CHECK(bad == 0, "%s gemm_i8 bit-exact on %d awkward shapes", isa, cases);
    bad = check_i8(1, 4864, 172, 0) + check_i8(7, 4864, 65, 0) + check_i8(2, 4864, 896, 0);
    if (!SLOW) bad += check_i8(33, 4864, 896, 0);
    CHECK(bad == 0, "%s gemm_i8 n=4864 (threads split columns)", isa);
    bad = check_i8(3, 17, 4864, 1) + check_i8(2, 33, 4864, 2) + check_i8(1, 64, 4864, 0);
    CHECK(bad == 0, "%s gemm_i8 k=4864 at -128/127 (int32 range)", isa);
}

/* ------------------------------------------------- activation quantization */

static int8_t expect_q(float v, float scale, int offset) {
    float r = nearbyintf(v / scale) + (float)offset;
    if (!(r > -128.0f)) r = -128.0f; /* NaN too */
    if (r > 127.0f) r = 127.0f;
    return (int8_t)r;
}

static void test_quant(const char *isa) {
    enum { M = 3, K = 173 };
    float x[M * K];
    int8_t q[M * (K + 2)];
    fill_f(x, M * K, 40.0f);
    /* ties must round to even, and the clamp and specials must hold */
    const float special[] = { 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f, -127.5f, 1e30f,
                              -1e30f, INFINITY, -INFINITY, NAN, -0.0f, 1e-40f };
    for (size_t i = 0; i < sizeof special / sizeof *special; i++) x[i * 7] = special[i];
    for (int pass = 0; pass < 2; pass++) {
        float scale = pass ? 0.37f : 1.0f;
        int offset = pass ? -9 : 0;
        memset(q, 55, sizeof q);
        w8_quant_rows(x, M, K, K, scale, offset, q, K + 2);
        int bad = 0;
        for (int i = 0; i < M; i++) {
            for (int t = 0; t < K; t++)
                if (q[i * (K + 2) + t] != expect_q(x[i * K + t], scale, offset)) bad++;
            if (q[i * (K + 2) + K] != 55 || q[i * (K + 2) + K + 1] != 55) bad++;
        }
        CHECK(bad == 0, "%s quant_rows exact (scale %g offset %d, ties to even, clamp, NaN/Inf)",
              isa, scale, offset);
    }
}

/* Values at and a few ulps around v / scale = j + 0.5 (where a quotient
 * computed without the true division could round the other way), for
 * awkward scales (tiny, huge, a reciprocal that is not a normal float),
 * through quant_rows and the quantizing RMSNorm (g = 1, so y = x * r). */
static void test_quant_ties(const char *isa) {
    static const float scales[] = { 1.0f, 0.37f, 3.0f, 0.1f, 7e-3f, 1.3e-5f, 2.5e3f, 1e-38f,
                                    3e38f, 1.0f / 3.0f, 0.0009765625f, 1.17549435e-38f };
    enum { K = 4 * 1000 + 5 };
    float *x = malloc(K * sizeof *x), *one = malloc(K * sizeof *one);
    int8_t *q = malloc(K), *q2 = malloc(K);
    int bad = 0, bad2 = 0;
    for (int k = 0; k < K; k++) one[k] = 1.0f;
    for (size_t s = 0; s < sizeof scales / sizeof *scales; s++) {
        float scale = scales[s];
        int offset = (int)s % 5 - 2;
        for (int k = 0; k < K - 5; k++) {
            int j = (int)(w8_rng_u64(&rng) % 400) - 200, d = k % 4;
            float v = ((float)j + 0.5f) * scale;
            int steps = (int)(w8_rng_u64(&rng) % 3);
            for (int u = 0; u < steps; u++) v = nextafterf(v, d & 1 ? INFINITY : -INFINITY);
            if (d == 3) v = (float)j * scale * (1.0f + 0x1p-22f * (float)(k % 7)); /* near integers */
            x[k] = v;
        }
        const float tail[5] = { NAN, INFINITY, -INFINITY, 1e-44f, -0.0f };
        for (int k = 0; k < 5; k++) x[K - 5 + k] = tail[k];
        w8_quant_rows(x, 1, K, K, scale, offset, q, K);
        for (int k = 0; k < K; k++)
            if (q[k] != expect_q(x[k], scale, offset)) bad++;
        /* the quantizing RMSNorm of a row of ones times x is x itself only
         * approximately; compare it with the scalar reference instead */
        w8_isa was = w8_isa_active();
        w8_rmsnorm_rows(x, 1, K - 5, K, one, NULL, 1e-6f, NULL, 0, q, K, scale, offset);
        w8_isa_force(W8_ISA_SCALAR);
        w8_rmsnorm_rows(x, 1, K - 5, K, one, NULL, 1e-6f, NULL, 0, q2, K, scale, offset);
        w8_isa_force(was);
        if (memcmp(q, q2, K - 5)) bad2++;
    }
    CHECK(bad == 0, "%s quant_rows at and around ties of v / scale for 12 scales (%d mismatches)",
          isa, bad);
    CHECK(bad2 == 0, "%s rmsnorm_rows' int8 rows near ties: the scalar reference's bits", isa);
    free(x), free(one), free(q), free(q2);
}

/* ------------------------------------------- W8A8_DYNAMIC (per-row scales) */

/* The spec of FORMAT.md written out independently of the kernels. */
static float expect_dyn_scale(const float *x, int k) {
    float amax = 0.0f;
    for (int t = 0; t < k; t++)
        if (fabsf(x[t]) > amax) amax = fabsf(x[t]);
    return amax / 127.0f;
}

static int8_t expect_qd(float v, float s) {
    if (s == 0.0f) return 0;
    float r = nearbyintf(v / s);
    if (!(r > -127.0f)) r = -127.0f; /* NaN too */
    if (r > 127.0f) r = 127.0f;
    return (int8_t)r;
}

static void test_quant_dyn(const char *isa) {
    static const int ks[] = { 1, 7, 15, 16, 17, 33, 173, 896 };
    int bad = 0, rows = 0;
    for (size_t a = 0; a < sizeof ks / sizeof *ks; a++) {
        int k = ks[a], m = 6;
        size_t ldx = (size_t)k + 3, ldq = (size_t)k + 2;
        float *x = malloc((size_t)m * ldx * sizeof *x), s[6];
        int8_t *q = malloc((size_t)m * ldq);
        fill_f(x, (size_t)m * ldx, 3.0f);
        /* row 1: all zeros (-0 too); row 2: one huge outlier; row 3: ties of
         * x / s (amax 127 gives s = 1); row 4: NaN and a denormal; row 5:
         * an infinity (s = inf: finite values go to 0, the inf to -127) */
        for (int t = 0; t < k; t++) x[ldx + t] = t & 1 ? -0.0f : 0.0f;
        x[2 * ldx + (size_t)(k / 2)] = -5000.0f;
        for (int t = 0; t < k; t++) x[3 * ldx + t] = (float)(t % 9) - 4.0f + 0.5f;
        x[3 * ldx] = 127.0f;
        x[4 * ldx + (size_t)(k - 1)] = NAN;
        x[4 * ldx] = 1e-40f;
        x[5 * ldx + (size_t)(k / 3)] = INFINITY;
        memset(q, 55, (size_t)m * ldq);
        w8_quant_rows_dyn(x, m, k, ldx, q, ldq, s);
        for (int i = 0; i < m; i++, rows++) {
            const float *xi = x + (size_t)i * ldx;
            float es = expect_dyn_scale(xi, k);
            int rb = !same_bits(es, s[i]);
            for (int t = 0; t < k; t++) rb += q[(size_t)i * ldq + t] != expect_qd(xi[t], es);
            rb += q[(size_t)i * ldq + k] != 55 || q[(size_t)i * ldq + k + 1] != 55;
            if (rb) EXPECT(0, "%s quant_rows_dyn k=%d row %d: %d mismatches", isa, k, i, rb);
            bad += rb;
        }
        if (k == 17) /* -2.5 and -1.5 both round to -2 */
            CHECK(s[1] == 0.0f && q[ldq] == 0 && s[3] == 1.0f && q[3 * ldq + 1] == -2 &&
                      q[3 * ldq + 2] == -2 && q[3 * ldq] == 127,
                  "%s quant_rows_dyn k=17: zero row s = 0, ties to even", isa);
        free(x), free(q);
    }
    CHECK(bad == 0, "%s quant_rows_dyn exact on %d rows (scale, ties, clamp, zero/NaN/Inf rows)",
          isa, rows);
}

/* y = (acc * ws) * s + b from plain loops, as FORMAT.md writes it. */
static int check_i8_dyn(int m, int n, int k, int with_bias) {
    size_t ldx = (size_t)k + 1, ldy = (size_t)n + 2;
    float *x = malloc((size_t)m * ldx * sizeof *x), *ws = malloc((size_t)n * sizeof *ws);
    float *b = malloc((size_t)n * sizeof *b), *y = malloc((size_t)m * ldy * sizeof *y);
    float *y1 = malloc((size_t)n * sizeof *y1);
    int8_t *w = malloc((size_t)n * k), *zq = calloc((size_t)n + 1, 1);
    int32_t *zb = calloc((size_t)n + 1, sizeof *zb);
    fill_f(x, (size_t)m * ldx, 2.0f);
    if (m > 2) /* an outlier row and an all-zero row */
        x[ldx + 0] = 900.0f, memset(x + 2 * ldx, 0, (size_t)k * sizeof *x);
    fill_i8(w, (size_t)n * k);
    for (int j = 0; j < n; j++) {
        ws[j] = 1e-3f * (1.0f + w8_rng_f32(&rng));
        b[j] = w8_rng_normal(&rng);
    }
    for (size_t i = 0; i < (size_t)m * ldy; i++) y[i] = -7.0f;
    w8_qmat q;
    w8_qmat_pack(&q, w, n, k, zb, ws);
    w8_gemm_i8_dyn(&q, m, x, ldx, NULL, y, ldy, with_bias ? b : NULL);
    int bad = 0;
    int8_t *xq = malloc((size_t)k);
    for (int i = 0; i < m && bad < 3; i++) {
        const float *xi = x + (size_t)i * ldx;
        float s = expect_dyn_scale(xi, k);
        for (int t = 0; t < k; t++) xq[t] = expect_qd(xi[t], s);
        /* the same row alone gives the same bits */
        w8_gemm_i8_dyn(&q, 1, xi, ldx, NULL, y1, (size_t)n, with_bias ? b : NULL);
        for (int j = 0; j < n && bad < 3; j++) {
            int64_t acc = 0;
            for (int t = 0; t < k; t++) acc += (int64_t)xq[t] * w[(size_t)j * k + t];
            float e = (float)(int32_t)acc * ws[j];
            e = e * s;
            if (with_bias) e = e + b[j];
            float g = y[(size_t)i * ldy + j];
            if (!same_bits(e, g) || !same_bits(g, y1[j])) {
                bad++;
                EXPECT(0, "gemm_i8_dyn m=%d n=%d k=%d y[%d,%d] = %.9g (alone %.9g), expected %.9g",
                       m, n, k, i, j, g, y1[j], e);
            }
        }
        for (size_t j = (size_t)n; j < ldy; j++)
            if (y[(size_t)i * ldy + j] != -7.0f) {
                bad++;
                EXPECT(0, "gemm_i8_dyn m=%d n=%d k=%d wrote past column n", m, n, k);
                break;
            }
    }
    w8_qmat_free(&q);
    free(x), free(ws), free(b), free(y), free(y1), free(w), free(zq), free(zb), free(xq);
    return bad;
}

static void test_gemm_i8_dyn(const char *isa) {
    static const int ks[] = { 1, 5, 64, 65, 173, 896 };
    static const int ns[] = { 1, 17, 64, 67 };
    static const int ms[] = { 1, 3, 7, 17, 33 };
    int bad = 0, cases = 0;
    for (size_t a = 0; a < sizeof ks / sizeof *ks; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
            for (size_t c = 0; c < sizeof ms / sizeof *ms; c++) {
                if (SLOW && ks[a] == 896 && ms[c] > 7) continue;
                bad += check_i8_dyn(ms[c], ns[b], ks[a], (int)(a + b + c) & 1), cases++;
            }
    CHECK(bad == 0, "%s gemm_i8_dyn = spec bit for bit, rows alone = batched (%d shapes)", isa,
          cases);
    bad = check_i8_dyn(5, 4864, 65, 1) + check_i8_dyn(2, 131, 4864, 0);
    if (!SLOW) bad += check_i8_dyn(40, 4864, 172, 1);
    CHECK(bad == 0, "%s gemm_i8_dyn n=4864 / k=4864 (threads split columns)", isa);
}

/* RMSNorm of the active ISA against the scalar reference, bit for bit. */
static void rms_run(w8_isa isa, const float *x, int m, int k, const float *g, const float *b,
                    float *y, int8_t *q) {
    w8_isa keep = w8_isa_active();
    w8_isa_force(isa);
    w8_rmsnorm_rows(x, m, k, k + 1, g, b, 1e-6f, y, k, q, k, 0.02f, 3);
    w8_isa_force(keep);
}

static void test_rmsnorm(const char *isa) {
    static const int ks[] = { 1, 3, 8, 15, 16, 17, 64, 172, 896, 1536 };
    int bad = 0, close = 1;
    for (size_t a = 0; a < sizeof ks / sizeof *ks; a++) {
        int k = ks[a], m = 5;
        float *x = malloc((size_t)m * (k + 1) * 4), *g = malloc((size_t)k * 4), *b = malloc((size_t)k * 4);
        float *y0 = malloc((size_t)m * k * 4), *y1 = malloc((size_t)m * k * 4);
        int8_t *q0 = malloc((size_t)m * k), *q1 = malloc((size_t)m * k);
        fill_f(x, (size_t)m * (k + 1), 3.0f);
        fill_f(g, (size_t)k, 1.0f);
        fill_f(b, (size_t)k, 0.1f);
        for (int withb = 0; withb < 2; withb++) {
            rms_run(W8_ISA_SCALAR, x, m, k, g, withb ? b : NULL, y0, q0);
            rms_run(w8_isa_active(), x, m, k, g, withb ? b : NULL, y1, q1);
            if (memcmp(y0, y1, (size_t)m * k * 4) || memcmp(q0, q1, (size_t)m * k)) bad++;
            /* and the reference is an RMSNorm: compare with double precision */
            for (int i = 0; i < m; i++) {
                double ss = 0;
                for (int t = 0; t < k; t++) ss += (double)x[i * (k + 1) + t] * x[i * (k + 1) + t];
                double r = 1.0 / sqrt(ss / k + 1e-6);
                for (int t = 0; t < k; t++) {
                    double n0 = x[i * (k + 1) + t] * r * g[t], bb = withb ? b[t] : 0;
                    if (fabs(n0 + bb - y0[i * k + t]) > 1e-5 * (fabs(n0) + fabs(bb))) close = 0;
                }
            }
        }
        /* y only, and xq only, give the same pieces */
        w8_rmsnorm_rows(x, m, k, k + 1, g, NULL, 1e-6f, NULL, 0, q1, k, 0.02f, 3);
        rms_run(W8_ISA_SCALAR, x, m, k, g, NULL, y0, q0);
        if (memcmp(q0, q1, (size_t)m * k)) bad++;
        free(x), free(g), free(b), free(y0), free(y1), free(q0), free(q1);
    }
    CHECK(bad == 0, "%s rmsnorm_rows (+bias, +quant) bit-exact vs reference", isa);
    CHECK(close, "%s rmsnorm_rows reference within 1e-5 of double precision", isa);
}

/* ----------------------------------------------------------------- float */

/* (safetensors.c's w8_dtype_name is another module's; keep this test standalone) */
static const char *dtname(w8_dtype dt) {
    return dt == W8_F32 ? "F32" : dt == W8_F16 ? "F16" : "BF16";
}

static float wval(const void *w, w8_dtype dt, size_t i) {
    if (dt == W8_F16) return w8_f16_to_f32(((const uint16_t *)w)[i]);
    if (dt == W8_BF16) return w8_bf16_to_f32(((const uint16_t *)w)[i]);
    return ((const float *)w)[i];
}

static int g_packed; /* check_f packs the matrix first (w8_fmat_pack) */

/* Relative to sum |x * w| (what summation order can change), tolerance 1e-5;
 * a packed matrix sums each output in one chain over k, whose rounding error
 * grows like sqrt(k): from k = 1000 on the bound grows with it. */
static int check_f(int m, int n, int k, w8_dtype dt) {
    size_t ldx = (size_t)k + 2, ldy = (size_t)n + 1;
    float *x = malloc((size_t)m * ldx * 4), *bias = malloc((size_t)n * 4);
    float *y = malloc((size_t)m * ldy * 4);
    void *w = malloc((size_t)n * k * 4);
    fill_f(x, (size_t)m * ldx, 1.0f);
    fill_f(bias, (size_t)n, 1.0f);
    for (size_t i = 0; i < (size_t)n * k; i++) {
        float v = 0.05f * w8_rng_normal(&rng);
        if (dt == W8_F32) ((float *)w)[i] = v;
        else if (dt == W8_F16) ((uint16_t *)w)[i] = w8_f32_to_f16(v);
        else ((uint16_t *)w)[i] = w8_f32_to_bf16(v);
    }
    w8_fmat fm = {.n = n, .k = k, .dtype = dt, .w = w};
    int usebias = (n & 1);
    if (g_packed) w8_fmat_pack(&fm, NULL, NULL);
    w8_gemm_f(&fm, m, x, ldx, y, ldy, usebias ? bias : NULL);
    w8_fmat_free(&fm);
    double tol = g_packed && k > 1000 ? 1e-5 * sqrt(k / 1000.0) : 1e-5;
    int bad = 0;
    for (int i = 0; i < m && bad < 3; i++)
        for (int j = 0; j < n && bad < 3; j++) {
            double e = usebias ? bias[j] : 0, mag = fabs(e);
            for (int t = 0; t < k; t++) {
                /* packed BF16 multiplies BF16-rounded activations */
                float xv = x[i * ldx + t];
                if (g_packed && dt == W8_BF16) xv = w8_bf16_to_f32(w8_f32_to_bf16(xv));
                double p = (double)xv * wval(w, dt, (size_t)j * k + t);
                e += p, mag += fabs(p);
            }
            double gv = y[i * ldy + j];
            if (!(fabs(gv - e) <= tol * mag + 1e-30)) {
                bad++;
                EXPECT(0, "gemm_f %s m=%d n=%d k=%d y[%d,%d] = %.9g, expected %.9g", dtname(dt),
                       m, n, k, i, j, gv, e);
            }
        }
    free(x), free(bias), free(y), free(w);
    return bad;
}

/* Row invariance: a row's result is the same bits whatever the other rows
 * of the call (batched decoding must equal single decoding). */
static void test_gemm_f_rows(const char *isa, int packed) {
    static const int shapes[][2] = { { 37, 300 }, { 200, 896 }, { 13, 4864 } };
    int bad = 0;
    for (int d = 0; d < 3; d++) {
        w8_dtype dt = d == 0 ? W8_F32 : d == 1 ? W8_F16 : W8_BF16;
        for (int s = 0; s < 3; s++) {
            int n = shapes[s][0], k = shapes[s][1], m = 11;
            float *x = malloc((size_t)m * k * 4), *ya = malloc((size_t)m * n * 4), *y1 = malloc((size_t)n * 4);
            float *bias = malloc((size_t)n * 4);
            uint16_t *w = malloc((size_t)n * k * 4);
            fill_f(x, (size_t)m * k, 1.0f);
            fill_f(bias, (size_t)n, 1.0f);
            for (size_t i = 0; i < (size_t)n * k * 2; i++) w[i] = (uint16_t)(w8_f32_to_bf16(0.05f * w8_rng_normal(&rng)) & 0xbfff);
            w8_fmat fm = {.n = n, .k = k, .dtype = dt, .w = w};
            if (packed) w8_fmat_pack(&fm, NULL, NULL);
            w8_gemm_f(&fm, m, x, k, ya, n, bias);
            for (int i = 0; i < m; i++) {
                w8_gemm_f(&fm, 1, x + (size_t)i * k, k, y1, n, bias);
                if (memcmp(y1, ya + (size_t)i * n, (size_t)n * 4)) bad++;
            }
            w8_gemm_f(&fm, 5, x + 3 * (size_t)k, k, ya, n, bias); /* rows 3..7 as a 5-row call */
            w8_gemm_f(&fm, 1, x + 7 * (size_t)k, k, y1, n, bias);
            if (memcmp(y1, ya + 4 * (size_t)n, (size_t)n * 4)) bad++;
            w8_fmat_free(&fm);
            free(x), free(ya), free(y1), free(bias), free(w);
        }
    }
    CHECK(bad == 0, "%s gemm_f%s row-invariant: m=11 and m=5 calls give each row's m=1 bits", isa,
          packed ? " packed" : "");
}

/* w8_fmat_pack hands the source back in whole-row slices, in order, that
 * cover it exactly (the model drops each slice's pages as it goes). */
typedef struct {
    const unsigned char *next;
    size_t total;
    int calls, bad;
} slice_log;

static void on_slice(const void *src, size_t bytes, void *ud) {
    slice_log *l = ud;
    if ((const unsigned char *)src != l->next) l->bad++;
    l->next = (const unsigned char *)src + bytes;
    l->total += bytes;
    l->calls++;
}

static void test_fmat_pack_slices(void) {
    int n = 70001, k = 301; /* 42 MB of BF16: more than one 32 MB slice */
    uint16_t *w = calloc((size_t)n * k, 2);
    w8_fmat fm = {.n = n, .k = k, .dtype = W8_BF16, .w = w};
    slice_log l = { (const unsigned char *)w, 0, 0, 0 };
    w8_fmat_pack(&fm, on_slice, &l);
    CHECK(l.bad == 0 && l.calls >= 2 && l.total == (size_t)n * k * 2,
          "fmat_pack slices: %d calls, contiguous, %zu of %zu bytes", l.calls, l.total,
          (size_t)n * k * 2);
    CHECK(fm.packed_bytes == (size_t)((n + 63) / 64) * 151 * 64 * 4,
          "fmat_pack size: 64-channel blocks of ceil(k / 2) BF16 pair steps");
    w8_fmat_free(&fm);
    free(w);
}

/* A source that is not aligned to its element size (a tensor in a
 * safetensors file after an odd-sized one) packs to the same bytes as an
 * aligned copy (and, under UBSan, without misaligned loads). */
static void test_fmat_pack_unaligned(void) {
    int n = 70, k = 9, same = 0;
    for (int d = 0; d < 3; d++) {
        w8_dtype dt = d == 0 ? W8_F32 : d == 1 ? W8_F16 : W8_BF16;
        size_t bytes = (size_t)n * k * w8_dtype_size(dt);
        unsigned char *a = malloc(bytes), *u = malloc(bytes + 3);
        for (size_t i = 0; i < bytes; i++) a[i] = (unsigned char)(i * 37 + 11);
        /* keep every value finite and normal whatever the dtype */
        for (size_t i = 0; i < bytes; i += w8_dtype_size(dt)) a[i + w8_dtype_size(dt) - 1] = 0x3f;
        memcpy(u + 2, a, bytes);
        w8_fmat fa = {.n = n, .k = k, .dtype = dt, .w = a}, fu = {.n = n, .k = k, .dtype = dt, .w = u + 2};
        w8_fmat_pack(&fa, NULL, NULL);
        w8_fmat_pack(&fu, NULL, NULL);
        same += fa.packed_bytes == fu.packed_bytes && !memcmp(fa.packed, fu.packed, fa.packed_bytes);
        w8_fmat_free(&fa);
        w8_fmat_free(&fu);
        free(a);
        free(u);
    }
    CHECK(same == 3, "fmat_pack of a source at 2 mod 4 equals the aligned one (%d/3 dtypes)", same);
}

/* A packed matrix gives the scalar reference's bits on every ISA (one fmaf
 * chain per output): odd k (BF16's last half-step), column tails, k blocks
 * of the prefill path (k = 600 > 256 steps for F32/F16), bias or not. */
static void test_gemm_f_packed_exact(const char *isa) {
    static const int ks[] = { 1, 2, 3, 17, 64, 513, 600 };
    static const int ns[] = { 1, 17, 64, 100 };
    static const int ms[] = { 1, 2, 5, 6, 7, 13 };
    w8_isa keep = w8_isa_active();
    int bad = 0, cases = 0, emulated = 0;
    for (int d = 0; d < 3; d++) {
        w8_dtype dt = d == 0 ? W8_F32 : d == 1 ? W8_F16 : W8_BF16;
        for (size_t a = 0; a < sizeof ks / sizeof *ks; a++)
            for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
                for (size_t c = 0; c < sizeof ms / sizeof *ms; c++) {
                    int m = ms[c], n = ns[b], k = ks[a];
                    size_t ldx = (size_t)k + 1, ldy = (size_t)n + 2;
                    float *x = malloc((size_t)m * ldx * 4), *bias = malloc((size_t)n * 4);
                    float *y = malloc((size_t)m * ldy * 4), *yr = malloc((size_t)m * ldy * 4);
                    uint16_t *w = malloc((size_t)n * k * 4);
                    fill_f(x, (size_t)m * ldx, 1.0f);
                    fill_f(bias, (size_t)n, 1.0f);
                    /* BF16 rounding ties (to even: 1 and 1.015625), denormals (to 0) */
                    static const float odd[] = { 1.00390625f, -1.01171875f, 1e-40f, -3e-39f, 0.0f, -0.0f };
                    for (size_t i = 0; i < (size_t)m * ldx; i += 5) x[i] = odd[i % 6];
                    for (size_t i = 0; i < (size_t)n * k * 2; i++)
                        w[i] = (uint16_t)(w8_f32_to_bf16(0.05f * w8_rng_normal(&rng)) & 0xbfff);
                    w[0] = 0x0001; /* a denormal BF16 weight (read as 0) */
                    w8_fmat fm = {.n = n, .k = k, .dtype = dt, .w = w};
                    w8_fmat_pack(&fm, NULL, NULL);
                    const float *bs = (m + n) & 1 ? bias : NULL;
                    w8_gemm_f(&fm, m, x, ldx, y, ldy, bs);
                    w8_isa_force(W8_ISA_SCALAR);
                    w8_gemm_f(&fm, m, x, ldx, yr, ldy, bs);
                    w8_isa_force(keep);
                    for (int i = 0; i < m; i++)
                        if (memcmp(y + (size_t)i * ldy, yr + (size_t)i * ldy, (size_t)n * 4)) bad++;
                    /* AVX-512 with the BF16 dot product and with its emulation */
                    if (dt == W8_BF16 && keep == W8_ISA_AVX512 && w8_isa_use_bf16(0) == 0) {
                        w8_gemm_f(&fm, m, x, ldx, y, ldy, bs);
                        w8_isa_use_bf16(1);
                        for (int i = 0; i < m; i++)
                            if (memcmp(y + (size_t)i * ldy, yr + (size_t)i * ldy, (size_t)n * 4)) bad++;
                        emulated++;
                    }
                    cases++;
                    w8_fmat_free(&fm);
                    free(x), free(bias), free(y), free(yr), free(w);
                }
    }
    CHECK(bad == 0, "%s gemm_f packed: the reference's bits on %d cases, %d also with the BF16 "
          "dot product emulated (rows differing: %d)", isa, cases, emulated, bad);
}

static void test_gemm_f(const char *isa) {
    static const int ks[] = { 1, 3, 4, 63, 64, 65, 172, 896 };
    static const int ns[] = { 1, 3, 17, 64 };
    static const int ms[] = { 1, 2, 3, 5, 7, 16, 33 };
    static const w8_dtype dts[] = { W8_F32, W8_F16, W8_BF16 };
    for (int d = 0; d < 3; d++) {
        int bad = 0, cases = 0;
        for (size_t a = 0; a < sizeof ks / sizeof *ks; a++)
            for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
                for (size_t c = 0; c < sizeof ms / sizeof *ms; c++) {
                    if (SLOW && ks[a] == 896 && ms[c] > 7) continue;
                    bad += check_f(ms[c], ns[b], ks[a], dts[d]), cases++;
                }
        bad += check_f(1, 4864, 172, dts[d]) + check_f(6, 4864, 65, dts[d]);
        if (!SLOW) bad += check_f(3, 300, 4864, dts[d]) + check_f(40, 200, 1100, dts[d]);
        CHECK(bad == 0, "%s gemm_f %s within 1e-5 on %d shapes", isa, dtname(dts[d]), cases + 4);
        /* k above the widened block's size (7B down_proj, k = 18944) and
         * above a whole channel's: the prefill path must stay in its scratch */
        bad = check_f(5, 13, 18944, dts[d]) + check_f(6, 2, 100000, dts[d]);
        CHECK(bad == 0, "%s gemm_f %s m>4 with k = 18944 and k = 100000", isa, dtname(dts[d]));
        /* packed: decode and prefill tiles, k blocks, column tails */
        static const int pm[] = { 1, 33 };
        g_packed = 1;
        bad = 0;
        for (size_t a = 0; a < sizeof ks / sizeof *ks; a++)
            for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
                for (size_t c = 0; c < 2; c++) bad += check_f(pm[c], ns[b], ks[a], dts[d]);
        bad += check_f(1, 4864, 172, dts[d]) + check_f(3, 13, 18944, dts[d]);
        if (!SLOW) bad += check_f(40, 200, 1100, dts[d]) + check_f(7, 300, 4864, dts[d]);
        g_packed = 0;
        CHECK(bad == 0, "%s gemm_f packed %s within 1e-5 (x sqrt(k / 1000) past k = 1000)", isa,
              dtname(dts[d]));
    }
}

/* ------------------------------------------------------------- attention */

static void test_attn(const char *isa) {
    static const int ds[] = { 8, 13, 64, 128, 200 };
    static const int ns[] = { 1, 5, 16, 33 };
    int bad = 0;
    for (size_t a = 0; a < 5; a++)
        for (size_t b = 0; b < 4; b++) {
            int d = ds[a], n = ns[b];
            size_t ld = (size_t)d + 3;
            float *q = malloc((size_t)d * 4), *kv = malloc((size_t)n * ld * 4), *s = malloc((size_t)n * 4);
            float *out = malloc((size_t)d * 4), *o0 = malloc((size_t)d * 4);
            fill_f(q, (size_t)d, 1.0f);
            fill_f(kv, (size_t)n * ld, 1.0f);
            fill_f(out, (size_t)d, 1.0f);
            memcpy(o0, out, (size_t)d * 4);
            w8_attn_scores(q, kv, ld, n, d, 0.125f, s);
            for (int j = 0; j < n; j++) {
                double e = 0, mag = 0;
                for (int t = 0; t < d; t++) e += (double)q[t] * kv[j * ld + t], mag += fabs(q[t] * kv[j * ld + t]);
                if (!(fabs(s[j] - 0.125 * e) <= 1e-6 * 0.125 * mag + 1e-30)) bad++;
            }
            w8_attn_accum(s, kv, ld, n, d, out);
            for (int t = 0; t < d; t++) {
                double e = o0[t], mag = fabs(o0[t]);
                for (int j = 0; j < n; j++) e += (double)s[j] * kv[j * ld + t], mag += fabs(s[j] * kv[j * ld + t]);
                if (!(fabs(out[t] - e) <= 1e-6 * mag + 1e-30)) bad++;
            }
            free(q), free(kv), free(s), free(out), free(o0);
        }
    CHECK(bad == 0, "%s attn_scores/attn_accum within 1e-6 (d in 8,13,64,128,200; n in 1,5,16,33)", isa);

    /* Splitting the keys into blocks (the KV block size) must not change a
     * single bit: 37 keys in one call vs blocks of 16 + 16 + 5. */
    bad = 0;
    for (size_t a = 0; a < 5; a++) {
        int d = ds[a], n = 37;
        size_t ld = (size_t)d + 1;
        float *q = malloc((size_t)d * 4), *kv = malloc((size_t)n * ld * 4);
        float *s1 = malloc((size_t)n * 4), *s2 = malloc((size_t)n * 4);
        float *o1 = calloc((size_t)d, 4), *o2 = calloc((size_t)d, 4);
        fill_f(q, (size_t)d, 1.0f);
        fill_f(kv, (size_t)n * ld, 1.0f);
        w8_attn_scores(q, kv, ld, n, d, 0.3f, s1);
        for (int j0 = 0; j0 < n; j0 += 16)
            w8_attn_scores(q, kv + (size_t)j0 * ld, ld, n - j0 < 16 ? n - j0 : 16, d, 0.3f, s2 + j0);
        w8_attn_accum(s1, kv, ld, n, d, o1);
        for (int j0 = 0; j0 < n; j0 += 16)
            w8_attn_accum(s1 + j0, kv + (size_t)j0 * ld, ld, n - j0 < 16 ? n - j0 : 16, d, o2);
        if (memcmp(s1, s2, (size_t)n * 4) || memcmp(o1, o2, (size_t)d * 4)) bad++;
        free(q), free(kv), free(s1), free(s2), free(o1), free(o2);
    }
    CHECK(bad == 0, "%s attention bit-identical whatever the key blocking (37 = 16+16+5)", isa);

    /* several queries over one V (a GQA group): each query's bits as alone */
    static const int gd[] = { 8, 64, 128, 200 };
    bad = 0;
    for (size_t a = 0; a < 4; a++)
        for (int nq = 1; nq <= 8; nq++) {
            int d = gd[a], n = 29;
            size_t ldv = (size_t)d + 3, ldp = (size_t)n + 2, ldo = (size_t)d + 5;
            float *p = malloc((size_t)nq * ldp * 4), *v = malloc((size_t)n * ldv * 4);
            float *o1 = malloc((size_t)nq * ldo * 4), *o2 = malloc((size_t)nq * ldo * 4);
            fill_f(p, (size_t)nq * ldp, 1.0f);
            fill_f(v, (size_t)n * ldv, 1.0f);
            fill_f(o1, (size_t)nq * ldo, 1.0f);
            memcpy(o2, o1, (size_t)nq * ldo * 4);
            w8_attn_accum_n(p, ldp, nq, v, ldv, n, d, o1, ldo);
            for (int q = 0; q < nq; q++) w8_attn_accum(p + q * ldp, v, ldv, n, d, o2 + q * ldo);
            if (memcmp(o1, o2, (size_t)nq * ldo * 4)) bad++;
            free(p), free(v), free(o1), free(o2);
        }
    CHECK(bad == 0, "%s attn_accum_n: each of 1..8 queries gets attn_accum's bits (d 8, 64, 128, 200)",
          isa);

    /* many queries over one key block (a prompt's rows x a GQA group): each
     * query's scores get attn_scores's bits, whatever its key count (none,
     * partial 16-key groups, more than one transposed chunk of keys) */
    static const int sd[] = { 8, 13, 16, 64, 128, 200, 256, 272 };
    static const int snr[] = { 1, 3, 8 }, snh[] = { 1, 2, 7 };
    bad = 0;
    for (size_t a = 0; a < 8; a++)
        for (size_t b = 0; b < 3; b++)
            for (size_t c = 0; c < 3; c++) {
                int d = sd[a], nr = snr[b], nh = snh[c], nmax = 150;
                size_t ldk = (size_t)d + 5, ldq = (size_t)nh * d + 3, lds = (size_t)nmax + 7;
                float *q = malloc((size_t)nr * ldq * 4), *kv = malloc((size_t)nmax * ldk * 4);
                float *s1 = malloc((size_t)nr * nh * lds * 4), *s2 = malloc((size_t)nr * nh * lds * 4);
                int nk[8];
                fill_f(q, (size_t)nr * ldq, 1.0f);
                fill_f(kv, (size_t)nmax * ldk, 1.0f);
                for (size_t t = 0; t < (size_t)nr * nh * lds; t++) s1[t] = s2[t] = -7.0f;
                for (int i = 0; i < nr; i++) /* 150, 0, -3, 1, 31, 64, 65, 17 */
                    nk[i] = (int[]){ 150, 0, -3, 1, 31, 64, 65, 17 }[(i + (int)a) % 8];
                w8_attn_scores_n(q, ldq, nr, nh, kv, ldk, nk, d, 0.3f, s1, lds);
                for (int i = 0; i < nr; i++)
                    for (int h = 0; nk[i] > 0 && h < nh; h++)
                        w8_attn_scores(q + i * ldq + (size_t)h * d, kv, ldk, nk[i], d, 0.3f,
                                       s2 + ((size_t)i * nh + h) * lds);
                if (memcmp(s1, s2, (size_t)nr * nh * lds * 4)) bad++;
                free(q), free(kv), free(s1), free(s2);
            }
    CHECK(bad == 0, "%s attn_scores_n: every query of 1..8 rows x 1..7 heads gets attn_scores's bits "
          "(d 8..272, 0..150 keys), nothing written past its keys", isa);
}

/* ------------------------------------------------------------ elementwise */

static void test_elementwise(const char *isa) {
    static const int ns[] = { 1, 7, 16, 17, 100, 4864 };
    int bad = 0, qbad = 0;
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        int n = ns[a], m = 3;
        size_t ld = 2 * (size_t)n + 1;
        float *gu = malloc((size_t)m * ld * 4), *out = malloc((size_t)m * n * 4);
        int8_t *q = malloc((size_t)m * n);
        fill_f(gu, (size_t)m * ld, 3.0f);
        const float special[] = { -100.0f, 100.0f, -1e4f, 0.0f, -0.0f, 88.0f, -88.0f, 1e-20f };
        for (size_t i = 0; i < sizeof special / sizeof *special && i < (size_t)n; i++) gu[i] = special[i];
        w8_swiglu_rows(m, n, gu, gu + n, ld, out, n, q, n, 0.05f, -4);
        for (int i = 0; i < m; i++)
            for (int t = 0; t < n; t++) {
                double g = gu[i * ld + t], u = gu[i * ld + n + t];
                double e = g / (1.0 + exp(-g)) * u, v = out[i * n + t];
                if (!(fabs(v - e) <= 1e-6 * fabs(e) + 1e-30)) {
                    if (bad++ < 3) EXPECT(0, "swiglu g=%g u=%g: %.9g, expected %.9g", g, u, v, e);
                }
                if (q[i * n + t] != expect_q(out[i * n + t], 0.05f, -4)) qbad++;
            }
        free(gu), free(out), free(q);
    }
    CHECK(bad == 0, "%s swiglu_rows within 1e-6 of double (incl. +-100, -1e4, 0)", isa);
    CHECK(qbad == 0, "%s swiglu_rows int8 output = quantized f32 output", isa);

    static const int sn[] = { 1, 5, 16, 17, 100, 1000 };
    bad = 0;
    for (size_t a = 0; a < sizeof sn / sizeof *sn; a++) {
        int n = sn[a];
        float *x = malloc((size_t)n * 4), *x0 = malloc((size_t)n * 4);
        fill_f(x, (size_t)n, 5.0f);
        if (n > 3) x[3] = -1e30f;
        memcpy(x0, x, (size_t)n * 4);
        w8_softmax(x, n);
        double mx = x0[0], sum = 0;
        for (int j = 1; j < n; j++) mx = x0[j] > mx ? x0[j] : mx;
        for (int j = 0; j < n; j++) sum += exp(x0[j] - mx);
        for (int j = 0; j < n; j++) {
            double e = exp(x0[j] - mx) / sum;
            if (!(fabs(x[j] - e) <= 2e-5 * e + 1e-30)) bad++; /* float x - max and sum */
        }
        free(x), free(x0);
    }
    CHECK(bad == 0, "%s softmax within 2e-5 of double (n in 1..1000, a -1e30 score)", isa);

    /* the row max, wherever it sits (any of the kernel's chains or the
     * tail): a max missed by 140 would overflow exp and give NaN or Inf;
     * all-zero rows of either sign give exactly 1/n; a NaN makes every
     * output NaN */
    bad = 0;
    float *x = malloc(300 * sizeof *x);
    for (int n = 1; n <= 300; n += (n < 70 ? 1 : 13))
        for (int p = 0; p < n; p += (n < 20 ? 1 : 7)) {
            for (int j = 0; j < n; j++) x[j] = -60.0f + (float)(j % 5);
            x[p] = 80.0f;
            w8_softmax(x, n);
            for (int j = 0; j < n; j++)
                if (!(x[j] >= 0.0f && x[j] <= x[p] && x[p] <= 1.0f)) bad++;
            for (int j = 0; j < n; j++) x[j] = (j + p) % 3 ? -0.0f : 0.0f;
            w8_softmax(x, n);
            for (int j = 0; j < n; j++)
                if (x[j] != 1.0f / (float)n) bad++;
            for (int j = 0; j < n; j++) x[j] = (float)(j % 7);
            x[p] = NAN;
            w8_softmax(x, n);
            for (int j = 0; j < n; j++)
                if (!isnan(x[j])) bad++;
        }
    free(x);
    CHECK(bad == 0, "%s softmax: the max found wherever it is (n 1..300), +-0 rows give 1/n, NaN spreads",
          isa);
}

/* The producer + GEMM fusions give the bits of the two separate calls:
 * RMSNorm (with and without a residual add and a norm bias), SwiGLU and
 * plain quantization, for few rows (made on the calling thread) and many
 * (made by the team), awkward k and n. */
static void test_fused(const char *isa) {
    static const int ms[] = { 1, 5, 17, 40 }, ks[] = { 20, 37, 64 }, ns[] = { 13, 70 };
    int bad = 0, cases = 0;
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 3; b++)
            for (size_t c = 0; c < 2; c++) {
                int m = ms[a], k = ks[b], n = ns[c];
                size_t ldx = (size_t)k + 3, ldy = (size_t)n + 2, ldq = (size_t)k + 1;
                int8_t *w = malloc((size_t)n * k), *q1 = calloc((size_t)m, ldq), *q2 = calloc((size_t)m, ldq);
                int32_t *qb = malloc((size_t)n * 4);
                float *ds = malloc((size_t)n * 4), *g = malloc((size_t)k * 4), *nb = malloc((size_t)k * 4);
                float *x1 = malloc((size_t)m * 2 * ldx * 4), *x2 = malloc((size_t)m * 2 * ldx * 4);
                float *res = malloc((size_t)m * ldx * 4);
                float *y1 = malloc((size_t)m * ldy * 4), *y2 = malloc((size_t)m * ldy * 4);
                float *o1 = malloc((size_t)m * ldx * 4), *o2 = malloc((size_t)m * ldx * 4);
                fill_i8(w, (size_t)n * k);
                for (int j = 0; j < n; j++) qb[j] = (int32_t)(w8_rng_u64(&rng) % 2001) - 1000, ds[j] = 1e-3f;
                fill_f(g, (size_t)k, 1.0f);
                fill_f(nb, (size_t)k, 0.1f);
                w8_qmat q;
                w8_qmat_pack(&q, w, n, k, qb, ds);
                for (int mode = 0; mode < 7; mode++) {
                    fill_f(x1, (size_t)m * 2 * ldx, 2.0f);
                    fill_f(res, (size_t)m * ldx, 2.0f);
                    memcpy(x2, x1, (size_t)m * 2 * ldx * 4);
                    for (size_t i = 0; i < (size_t)m * ldy; i++) y1[i] = y2[i] = -7.0f;
                    memset(q1, 0, (size_t)m * ldq), memset(q2, 0, (size_t)m * ldq);
                    memset(o1, 0, (size_t)m * ldx * 4), memset(o2, 0, (size_t)m * ldx * 4);
                    if (mode <= 2) { /* norm; mode 1: + residual; mode 2: + residual and bias */
                        const float *bb = mode == 2 ? nb : NULL, *rr = mode ? res : NULL;
                        if (rr)
                            for (int i = 0; i < m; i++)
                                for (int t = 0; t < k; t++) x1[i * ldx + t] += rr[i * ldx + t];
                        w8_rmsnorm_rows(x1, m, k, ldx, g, bb, 1e-6f, NULL, 0, q1, ldq, 0.02f, 3);
                        w8_gemm_i8(&q, m, q1, ldq, y1, ldy);
                        w8_rmsnorm_gemm_i8(x2, rr, m, k, ldx, g, bb, 1e-6f, q2, ldq, 0.02f, 3, &q, y2, ldy);
                    } else if (mode == 3) { /* swiglu: gate | up rows of 2 * ldx */
                        w8_swiglu_rows(m, k, x1, x1 + ldx, 2 * ldx, o1, ldx, q1, ldq, 0.05f, -4);
                        w8_gemm_i8(&q, m, q1, ldq, y1, ldy);
                        w8_swiglu_gemm_i8(m, k, x2, x2 + ldx, 2 * ldx, o2, ldx, q2, ldq, 0.05f, -4, &q, y2, ldy);
                    } else if (mode >= 5) { /* W8A8_DYNAMIC norm; mode 6: + residual, norm bias, bias */
                        const float *bb = mode == 6 ? nb : NULL, *rr = mode == 6 ? res : NULL;
                        if (rr)
                            for (int i = 0; i < m; i++)
                                for (int t = 0; t < k; t++) x1[i * ldx + t] += rr[i * ldx + t];
                        w8_rmsnorm_rows(x1, m, k, ldx, g, bb, 1e-6f, o1, ldx, NULL, 0, 1.0f, 0);
                        w8_gemm_i8_dyn(&q, m, o1, ldx, NULL, y1, ldy, mode == 6 ? ds : NULL);
                        w8_rmsnorm_gemm_i8_dyn(x2, rr, m, k, ldx, g, bb, 1e-6f, o2, ldx, NULL, &q, y2,
                                               ldy, mode == 6 ? ds : NULL);
                    } else {
                        w8_quant_rows(x1, m, k, ldx, 0.03f, -2, q1, ldq);
                        w8_gemm_i8(&q, m, q1, ldq, y1, ldy);
                        w8_quant_gemm_i8(x2, m, k, ldx, 0.03f, -2, q2, ldq, &q, y2, ldy);
                    }
                    cases++;
                    if (memcmp(y1, y2, (size_t)m * ldy * 4) || memcmp(q1, q2, (size_t)m * ldq) ||
                        memcmp(x1, x2, (size_t)m * 2 * ldx * 4) || memcmp(o1, o2, (size_t)m * ldx * 4)) {
                        if (bad++ < 3) EXPECT(0, "%s fused mode %d m=%d k=%d n=%d differs", isa, mode, m, k, n);
                    }
                }
                w8_qmat_free(&q);
                free(w), free(q1), free(q2), free(qb), free(ds), free(g), free(nb), free(x1), free(x2);
                free(res), free(y1), free(y2), free(o1), free(o2);
            }
    CHECK(bad == 0, "%s rmsnorm/swiglu/quant (static and W8A8_DYNAMIC) fused with gemm_i8: the bits "
          "of the separate calls (%d cases, m 1..40, residual, norm bias)", isa, cases);
}

/* gate/up GEMM with SwiGLU on its tiles: the bits of w8_rmsnorm_gemm_i8
 * then w8_swiglu_rows, with the f32 rows kept apart or written over the
 * gate columns; -1 (nothing written) where the column blocks do not split
 * inter evenly. */
static void test_fused_swiglu(const char *isa) {
    static const int ms[] = { 5, 17, 40 }, ks[] = { 37, 64 }, is[] = { 64, 96, 128, 70 };
    int bad = 0, ran = 0, refused = 0;
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 2; b++)
            for (size_t c = 0; c < 4; c++)
                for (int mode = 0; mode < 4; mode++) {
                    /* mode & 1: f32 SwiGLU rows to out (else int8 rows to xq2);
                     * mode & 2: y = NULL, gate/up only in the kernel's scratch */
                    int m = ms[a], k = ks[b], I = is[c], n = 2 * I, noy = mode >= 2, fo = mode & 1;
                    size_t ldx = (size_t)k + 3, ldy = (size_t)n + 5, ldo = (size_t)I + 2;
                    int8_t *w = malloc((size_t)n * k), *q1 = calloc((size_t)m, ldx), *q2 = calloc((size_t)m, ldx);
                    int8_t *r1 = calloc((size_t)m, ldo), *r2 = calloc((size_t)m, ldo);
                    int32_t *qb = malloc((size_t)n * 4);
                    float *ds = malloc((size_t)n * 4), *g = malloc((size_t)k * 4);
                    float *x1 = malloc((size_t)m * ldx * 4), *x2 = malloc((size_t)m * ldx * 4);
                    float *res = malloc((size_t)m * ldx * 4);
                    float *y1 = malloc((size_t)m * ldy * 4), *y2 = malloc((size_t)m * ldy * 4);
                    float *o1 = calloc((size_t)m * ldo, 4), *o2 = calloc((size_t)m * ldo, 4);
                    fill_i8(w, (size_t)n * k);
                    for (int j = 0; j < n; j++) qb[j] = (int32_t)(w8_rng_u64(&rng) % 2001) - 1000, ds[j] = 2e-3f;
                    fill_f(g, (size_t)k, 1.0f);
                    fill_f(x1, (size_t)m * ldx, 2.0f);
                    fill_f(res, (size_t)m * ldx, 2.0f);
                    memcpy(x2, x1, (size_t)m * ldx * 4);
                    for (size_t i = 0; i < (size_t)m * ldy; i++) y1[i] = y2[i] = -7.0f;
                    w8_qmat q;
                    w8_qmat_pack(&q, w, n, k, qb, ds);
                    /* the two calls */
                    for (int i = 0; i < m; i++)
                        for (int t = 0; t < k; t++) x1[i * ldx + t] += res[i * ldx + t];
                    w8_rmsnorm_rows(x1, m, k, ldx, g, NULL, 1e-6f, NULL, 0, q1, ldx, 0.02f, 3);
                    w8_gemm_i8(&q, m, q1, ldx, y1, ldy);
                    if (!fo) { /* f32 rows expected over the gate columns, int8 rows */
                        w8_swiglu_rows(m, I, y1, y1 + I, ldy, o1, ldo, r1, ldo, 0.05f, -4);
                        for (int i = 0; i < m; i++) memcpy(y1 + i * ldy, o1 + i * ldo, (size_t)I * 4);
                        memset(o1, 0, (size_t)m * ldo * 4);
                    } else
                        w8_swiglu_rows(m, I, y1, y1 + I, ldy, o1, ldo, NULL, 0, 0.05f, -4);
                    /* without y nothing may be written there */
                    if (noy)
                        for (size_t i = 0; i < (size_t)m * ldy; i++) y1[i] = -7.0f;
                    int rc = w8_rmsnorm_gemm_i8_swiglu(x2, res, m, k, ldx, g, NULL, 1e-6f, q2, ldx, 0.02f,
                                                       3, &q, noy ? NULL : y2, ldy, fo ? o2 : NULL, ldo,
                                                       fo ? NULL : r2, ldo, 0.05f, -4);
                    int blk = !strcmp(isa, "avx512") ? 64 : !strcmp(isa, "avx2") ? 32 : 1;
                    if (rc != 0) {
                        refused++;
                        if (I % blk == 0) bad++;
                        for (size_t i = 0; i < (size_t)m * ldy; i++)
                            if (y2[i] != -7.0f) { bad++; break; }
                    } else {
                        ran++;
                        if (I % blk) bad++;
                        if (memcmp(y1, y2, (size_t)m * ldy * 4) || memcmp(q1, q2, (size_t)m * ldx) ||
                            memcmp(x1, x2, (size_t)m * ldx * 4) || memcmp(r1, r2, (size_t)m * ldo) ||
                            memcmp(o1, o2, (size_t)m * ldo * 4))
                            if (bad++ < 3) EXPECT(0, "%s gate/up+swiglu m=%d k=%d inter=%d mode %d differs", isa, m, k, I, mode);
                    }
                    w8_qmat_free(&q);
                    free(w), free(q1), free(q2), free(r1), free(r2), free(qb), free(ds), free(g);
                    free(x1), free(x2), free(res), free(y1), free(y2), free(o1), free(o2);
                }
    CHECK(bad == 0 && ran > 0, "%s rmsnorm + gate/up gemm_i8 + swiglu fused: the bits of the separate calls "
          "(%d cases, %d refused where the column block does not divide inter)", isa, ran, refused);
}

/* The MLP with a static int8 down_proj in one call: the bits of
 * w8_rmsnorm_gemm_i8, w8_swiglu_rows and w8_gemm_i8(down); where the kernel
 * takes SwiGLU's rows in its own layout (AVX-512, whole column blocks) they
 * are q ^ 0x80, elsewhere q. */
static void test_fused_swiglu_down(const char *isa) {
    static const int ms[] = { 5, 17, 40 }, ks[] = { 37, 64 }, is[] = { 64, 96, 128, 70 },
                     nds[] = { 20, 33 };
    int bad = 0, ran = 0, flipped = 0;
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 2; b++)
            for (size_t c = 0; c < 4; c++)
                for (size_t e = 0; e < 2; e++) {
                    int m = ms[a], k = ks[b], I = is[c], n = 2 * I, nd = nds[e];
                    size_t ldx = (size_t)k + 3, ldy = (size_t)n + 5, ldo = (size_t)I, ldd = (size_t)nd + 1;
                    int8_t *w = malloc((size_t)n * k), *wd = malloc((size_t)nd * I);
                    int8_t *q1 = calloc((size_t)m, ldx), *q2 = calloc((size_t)m, ldx);
                    int8_t *r1 = calloc((size_t)m, ldo), *r2 = calloc((size_t)m, ldo);
                    int32_t *qb = malloc((size_t)n * 4), *qbd = malloc((size_t)nd * 4);
                    float *ds = malloc((size_t)n * 4), *dsd = malloc((size_t)nd * 4), *g = malloc((size_t)k * 4);
                    float *x1 = malloc((size_t)m * ldx * 4), *x2 = malloc((size_t)m * ldx * 4);
                    float *res = malloc((size_t)m * ldx * 4), *y1 = malloc((size_t)m * ldy * 4);
                    float *o1 = malloc((size_t)m * ldo * 4);
                    float *d1 = malloc((size_t)m * ldd * 4), *d2 = malloc((size_t)m * ldd * 4);
                    fill_i8(w, (size_t)n * k);
                    fill_i8(wd, (size_t)nd * I);
                    for (int j = 0; j < n; j++) qb[j] = (int32_t)(w8_rng_u64(&rng) % 2001) - 1000, ds[j] = 2e-3f;
                    for (int j = 0; j < nd; j++) qbd[j] = (int32_t)(w8_rng_u64(&rng) % 2001) - 1000, dsd[j] = 1e-3f;
                    fill_f(g, (size_t)k, 1.0f);
                    fill_f(x1, (size_t)m * ldx, 2.0f);
                    fill_f(res, (size_t)m * ldx, 2.0f);
                    memcpy(x2, x1, (size_t)m * ldx * 4);
                    for (size_t i = 0; i < (size_t)m * ldd; i++) d1[i] = d2[i] = -7.0f;
                    w8_qmat q, qd;
                    w8_qmat_pack(&q, w, n, k, qb, ds);
                    w8_qmat_pack(&qd, wd, nd, I, qbd, dsd);
                    for (int i = 0; i < m; i++)
                        for (int t = 0; t < k; t++) x1[i * ldx + t] += res[i * ldx + t];
                    w8_rmsnorm_rows(x1, m, k, ldx, g, NULL, 1e-6f, NULL, 0, q1, ldx, 0.02f, 3);
                    w8_gemm_i8(&q, m, q1, ldx, y1, ldy);
                    w8_swiglu_rows(m, I, y1, y1 + I, ldy, o1, ldo, r1, ldo, 0.05f, -4);
                    w8_gemm_i8(&qd, m, r1, ldo, d1, ldd);
                    int rc = w8_rmsnorm_gemm_i8_swiglu_down(x2, res, m, k, ldx, g, NULL, 1e-6f, q2, ldx,
                                                            0.02f, 3, &q, r2, ldo, 0.05f, -4, &qd, d2, ldd);
                    int blk = !strcmp(isa, "avx512") ? 64 : !strcmp(isa, "avx2") ? 32 : 1;
                    if (rc != 0) {
                        if (I % blk == 0) bad++;
                        for (size_t i = 0; i < (size_t)m * ldd; i++)
                            if (d2[i] != -7.0f) { bad++; break; }
                    } else {
                        ran++;
                        /* AVX-512's rows come in its GEMM's layout: q ^ 0x80 */
                        int flip = !strcmp(isa, "avx512");
                        flipped += flip;
                        for (size_t i = 0; i < (size_t)m * ldo; i++) r1[i] = (int8_t)(r1[i] ^ (flip ? 0x80 : 0));
                        if (I % blk || memcmp(d1, d2, (size_t)m * ldd * 4) || memcmp(q1, q2, (size_t)m * ldx) ||
                            memcmp(x1, x2, (size_t)m * ldx * 4) || memcmp(r1, r2, (size_t)m * ldo))
                            if (bad++ < 3) EXPECT(0, "%s mlp m=%d k=%d inter=%d down n=%d differs", isa, m, k, I, nd);
                    }
                    w8_qmat_free(&q), w8_qmat_free(&qd);
                    free(w), free(wd), free(q1), free(q2), free(r1), free(r2), free(qb), free(qbd);
                    free(ds), free(dsd), free(g), free(x1), free(x2), free(res), free(y1), free(o1);
                    free(d1), free(d2);
                }
    CHECK(bad == 0 && ran > 0, "%s rmsnorm + gate/up + swiglu + down in one call: the bits of the separate "
          "calls (%d cases, %d with the rows in down's layout)", isa, ran, flipped);
}

/* A matrix packed for one ISA keeps its kernel after the active ISA changes. */
static void test_layout_sticks(void) {
    w8_isa hw = w8_isa_detect();
    if (hw == W8_ISA_SCALAR) {
        CHECK(1, "skip layout test (scalar only)");
        return;
    }
    w8_isa_force(hw);
    int8_t w[17 * 20], x[2 * 20];
    int32_t qb[17] = { 0 };
    float ds[17], y[2 * 17];
    fill_i8(w, sizeof w);
    fill_i8(x, sizeof x);
    for (int j = 0; j < 17; j++) ds[j] = 1.0f;
    w8_qmat q;
    w8_qmat_pack(&q, w, 17, 20, qb, ds);
    w8_isa_force(W8_ISA_SCALAR);
    w8_gemm_i8(&q, 2, x, 20, y, 17);
    int bad = 0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 17; j++)
            if (!same_bits(y[i * 17 + j], expect_i8(x + i * 20, w + j * 20, 20, 0, 1.0f))) bad++;
    CHECK(q.isa == hw && bad == 0, "matrix packed for %s still right after forcing scalar", w8_isa_name(hw));
    w8_qmat_free(&q);
}

/* The first detection, from several threads at once (OpenMP workers and
 * server threads can all be first): every caller gets the one answer. */
static void *detect_thread(void *arg) {
    *(int *)arg = (int)w8_isa_detect();
    return NULL;
}

static void test_detect_threads(void) {
    pthread_t th[8];
    int got[8];
    for (int i = 0; i < 8; i++) pthread_create(&th[i], NULL, detect_thread, &got[i]);
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    int same = 0;
    for (int i = 0; i < 8; i++) same += got[i] == (int)w8_isa_detect();
    CHECK(same == 8, "8 threads detecting the ISA at once agree (%d/8, %s)", same,
          w8_isa_name(w8_isa_detect()));
}

/* A size whose rounding up to 64 bytes would wrap past SIZE_MAX must fail
 * as out of memory (abort), not wrap to a tiny block. */
static void test_aligned_alloc_wrap(void) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) _exit(3);
        void *p = w8_xalloc_aligned(SIZE_MAX - 10);
        free(p);
        _exit(0); /* reached only if the size wrapped */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(pid > 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
          "w8_xalloc_aligned(SIZE_MAX - 10) aborts as out of memory (status %d)", status);
}

/* ------------------------------------------------------------ decode team */

/* Every team GEMM, run by nt threads of one region (loops back to back with
 * no barrier between them, as forward.c does), gives w8_gemm_*'s bits.  The
 * packed float matrices (BF16, F16, F32) have 16 blocks, the last one
 * partial: a team thread's range goes to one-row kernels a few blocks at a
 * time (side by side, then the rest), the one-call GEMM one block at a time. */
enum { TEAM_V = 6 };
static int check_team_gemms(int nt, int m) {
    enum { N = 1000, K = 896 };
    int8_t *w = malloc((size_t)N * K), *x = malloc((size_t)m * K);
    int32_t *qb = malloc(N * sizeof *qb);
    float *ds = malloc(N * sizeof *ds), *bias = malloc(N * sizeof *bias);
    float *xf = malloc((size_t)m * K * sizeof *xf);
    uint16_t *wb = malloc((size_t)N * K * sizeof *wb), *wh = malloc((size_t)N * K * sizeof *wh);
    float *wf = malloc((size_t)N * K * sizeof *wf);
    float *ya[TEAM_V], *yb[TEAM_V];
    for (int v = 0; v < TEAM_V; v++) {
        ya[v] = malloc((size_t)m * N * sizeof(float));
        yb[v] = malloc((size_t)m * N * sizeof(float));
    }
    fill_i8(w, (size_t)N * K);
    fill_i8(x, (size_t)m * K);
    fill_f(xf, (size_t)m * K, 2.0f);
    fill_f(bias, N, 1.0f);
    for (int j = 0; j < N; j++) {
        qb[j] = (int32_t)(w8_rng_u64(&rng) % 2001) - 1000;
        ds[j] = 1e-4f * (1.0f + w8_rng_f32(&rng));
    }
    for (size_t i = 0; i < (size_t)N * K; i++) wb[i] = w8_f32_to_bf16(0.05f * w8_rng_normal(&rng));
    for (size_t i = 0; i < (size_t)N * K; i++) {
        wf[i] = 0.05f * w8_rng_normal(&rng);
        wh[i] = w8_f32_to_f16(wf[i]);
    }
    w8_qmat q;
    w8_qmat_pack(&q, w, N, K, qb, ds);
    w8_fmat fu = {.n = N, .k = K, .dtype = W8_BF16, .w = wb}, fp = fu;
    w8_fmat_pack(&fp, NULL, NULL);
    w8_fmat fh = {.n = N, .k = K, .dtype = W8_F16, .w = wh};
    w8_fmat ff = {.n = N, .k = K, .dtype = W8_F32, .w = wf};
    w8_fmat_pack(&fh, NULL, NULL);
    w8_fmat_pack(&ff, NULL, NULL);
    w8_gemm_i8(&q, m, x, K, ya[0], N);
    w8_gemm_i8_dyn(&q, m, xf, K, NULL, ya[1], N, bias);
    w8_gemm_f(&fu, m, xf, K, ya[2], N, bias);
    w8_gemm_f(&fp, m, xf, K, ya[3], N, bias);
    w8_gemm_f(&fh, m, xf, K, ya[4], N, bias);
    w8_gemm_f(&ff, m, xf, K, ya[5], N, NULL);
    w8_team *tm = w8_team_new();
    w8_team_reset(tm, nt, TEAM_V);
#pragma omp parallel num_threads(nt)
    {
        w8_team_gemm_i8(tm, &q, m, x, K, yb[0], N);
        w8_team_gemm_i8_dyn(tm, &q, m, xf, K, yb[1], N, bias);
        w8_team_gemm_f(tm, &fu, m, xf, K, yb[2], N, bias);
        w8_team_gemm_f(tm, &fp, m, xf, K, yb[3], N, bias);
        w8_team_gemm_f(tm, &fh, m, xf, K, yb[4], N, bias);
        w8_team_gemm_f(tm, &ff, m, xf, K, yb[5], N, NULL);
    }
    int bad = 0;
    for (int v = 0; v < TEAM_V; v++) {
        if (memcmp(ya[v], yb[v], (size_t)m * N * sizeof(float))) {
            bad++;
            EXPECT(0, "team gemm %d (%d threads, m=%d) differs from the one-call GEMM", v, nt, m);
        }
        free(ya[v]), free(yb[v]);
    }
    w8_team_free(tm);
    w8_qmat_free(&q);
    w8_fmat_free(&fp);
    w8_fmat_free(&fh);
    w8_fmat_free(&ff);
    free(w), free(x), free(qb), free(ds), free(bias), free(xf), free(wb), free(wh), free(wf);
    return bad;
}

/* The team's gate/up GEMM with SwiGLU on each item gives the bits of
 * w8_gemm_i8 then w8_swiglu_rows, as f32 rows or as the int8 down_proj
 * input; where the column block does not divide inter it refuses (-1)
 * before taking a loop, so the region's next loop is unaffected. */
static int check_team_swiglu(int nt, int m, int I, int *ran) {
    enum { K = 200 };
    int n = 2 * I;
    size_t ldo = (size_t)I + 3;
    int8_t *w = malloc((size_t)n * K), *x = malloc((size_t)m * K);
    int8_t *r1 = calloc((size_t)m, ldo), *r2 = calloc((size_t)m, ldo);
    int32_t *qb = malloc((size_t)n * sizeof *qb);
    float *ds = malloc((size_t)n * sizeof *ds), *y = malloc((size_t)m * n * sizeof *y);
    float *o1 = calloc((size_t)m * ldo, 4), *o2 = calloc((size_t)m * ldo, 4);
    float *y2 = malloc((size_t)m * n * sizeof *y2), *y3 = malloc((size_t)m * n * sizeof *y3);
    fill_i8(w, (size_t)n * K);
    fill_i8(x, (size_t)m * K);
    for (int j = 0; j < n; j++) {
        qb[j] = (int32_t)(w8_rng_u64(&rng) % 2001) - 1000;
        ds[j] = 2e-3f * (1.0f + w8_rng_f32(&rng));
    }
    w8_qmat q;
    w8_qmat_pack(&q, w, n, K, qb, ds);
    w8_gemm_i8(&q, m, x, K, y, n);
    w8_swiglu_rows(m, I, y, y + I, (size_t)n, o1, ldo, r1, ldo, 0.05f, -4);
    int rc[2] = { 0, 0 };
    w8_team *tm = w8_team_new();
    w8_team_reset(tm, nt, 3);
#pragma omp parallel num_threads(nt)
    {
        int a = w8_team_gemm_i8_swiglu(tm, &q, m, x, K, o2, ldo, NULL, 0, 1.0f, 0);
        int b = w8_team_gemm_i8_swiglu(tm, &q, m, x, K, NULL, 0, r2, ldo, 0.05f, -4);
        /* a plain team GEMM after them still gets its own loop */
        w8_team_gemm_i8(tm, &q, m, x, K, y2, n);
        w8_team_barrier(tm);
#pragma omp master
        rc[0] = a, rc[1] = b;
    }
    w8_gemm_i8(&q, m, x, K, y3, n);
    int bad = memcmp(y2, y3, (size_t)m * n * sizeof *y2) != 0;
    if (rc[0] != rc[1]) bad++;
    else if (rc[0] == 0) {
        ++*ran;
        bad += memcmp(o1, o2, (size_t)m * ldo * 4) != 0 || memcmp(r1, r2, (size_t)m * ldo) != 0;
    } else {
        /* refused: nothing written */
        for (size_t i = 0; i < (size_t)m * ldo; i++) bad += o2[i] != 0.0f || r2[i] != 0;
    }
    if (bad) EXPECT(0, "team gate/up+swiglu (%d threads, m=%d, inter=%d) differs", nt, m, I);
    w8_team_free(tm);
    w8_qmat_free(&q);
    free(w), free(x), free(r1), free(r2), free(qb), free(ds), free(y), free(o1), free(o2);
    free(y2), free(y3);
    return bad != 0;
}

static void test_team(const char *isa) {
    int bad = 0;
    for (int m = 1; m <= 4; m++) bad += check_team_gemms(2, m) + check_team_gemms(3, m);
    bad += check_team_gemms(1, 2);
    CHECK(bad == 0, "%s team GEMMs (int8, dynamic, bf16 in place, packed bf16/f16/f32; 1-3 threads, "
          "m = 1..4) bitwise equal the one-call GEMMs", isa);
    int sbad = 0, ran = 0, tries = 0;
    static const int inters[] = { 320, 96, 70 };
    for (int m = 1; m <= 4; m++)
        for (int i = 0; i < 3; i++, tries += 2)
            sbad += check_team_swiglu(2, m, inters[i], &ran) + check_team_swiglu(3, m, inters[i], &ran);
    CHECK(sbad == 0 && ran > 0, "%s team gate/up GEMM + SwiGLU: the bits of gemm_i8 then swiglu_rows "
          "(%d of %d ran, the rest refused: inter not a multiple of the column block)", isa, ran,
          tries);
}

/* Loops hand out each index once; what a thread writes before a barrier
 * every thread sees after it (each round checks the previous round's sums). */
static void test_team_loops(void) {
    enum { NT = 3, ROUNDS = 200, ITEMS = 37, PF_BYTES = 1 << 20 };
    int *hits = calloc((size_t)ROUNDS * ITEMS, sizeof(int)), seen_bad = 0;
    char *pf = calloc(PF_BYTES, 1);
    long sums[ROUNDS] = {0};
    w8_team *tm = w8_team_new();
    w8_team_reset(tm, NT, ROUNDS);
#pragma omp parallel num_threads(NT)
    {
        for (int r = 0; r < ROUNDS; r++) {
            int loop = w8_team_loop(tm);
            for (int it; (it = w8_team_take(tm, loop)) < ITEMS;) {
                __atomic_add_fetch(&hits[r * ITEMS + it], 1, __ATOMIC_RELAXED);
                if (it == 0) sums[r] = r * 1000L + omp_get_num_threads();
            }
            /* every third round the prefetching barrier (over a buffer, or
             * none): a waiting thread's prefetches must not change what it sees */
            if (r % 3 == 1) w8_team_barrier_next(tm, pf, PF_BYTES);
            else if (r % 3 == 2) w8_team_barrier_next(tm, NULL, 0);
            else w8_team_barrier(tm);
            if (sums[r] != r * 1000L + omp_get_num_threads())
                __atomic_add_fetch(&seen_bad, 1, __ATOMIC_RELAXED);
        }
    }
    int once = 1;
    for (int i = 0; i < ROUNDS * ITEMS; i++) once &= hits[i] == 1;
    CHECK(once, "team loops: %d loops of %d items, each item taken exactly once", ROUNDS, ITEMS);
    CHECK(seen_bad == 0, "team barrier (plain and prefetching the next matrix): every thread sees "
          "what another wrote before it (%d misses)", seen_bad);
    w8_team_free(tm);
    free(hits);
    free(pf);
}

int main(void) {
    test_detect_threads();
    test_aligned_alloc_wrap();
    w8_rng_seed(&rng, 12345);
    CHECK(w8_isa_force((w8_isa)7) == -1, "w8_isa_force rejects an unknown ISA");
    CHECK(!strcmp(w8_isa_name(W8_ISA_AVX512), "avx512") && !strcmp(w8_isa_name(W8_ISA_SCALAR), "scalar"),
          "isa names");
    for (int isa = W8_ISA_SCALAR; isa <= W8_ISA_AVX512; isa++) {
        const char *name = w8_isa_name((w8_isa)isa);
        if (w8_isa_force((w8_isa)isa) != 0) {
            CHECK(1, "skip %s (not supported)", name);
            continue;
        }
        CHECK(w8_isa_active() == (w8_isa)isa, "%s forced", name);
        test_gemm_i8(name);
        test_quant(name);
        test_quant_ties(name);
        test_quant_dyn(name);
        test_gemm_i8_dyn(name);
        test_rmsnorm(name);
        test_gemm_f(name);
        test_gemm_f_rows(name, 0);
        test_gemm_f_rows(name, 1);
        test_gemm_f_packed_exact(name);
        test_attn(name);
        test_elementwise(name);
        test_fused(name);
        test_fused_swiglu(name);
        test_fused_swiglu_down(name);
        test_team(name);
    }
    test_team_loops();
    test_layout_sticks();
    test_fmat_pack_slices();
    test_fmat_pack_unaligned();
    TEST_DONE();
}

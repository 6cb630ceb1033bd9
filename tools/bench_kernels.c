/*
 * bench_kernels.c - kernel micro-benchmark (not part of the test suite).
 *
 *   make build/bench_kernels
 *   build/bench_kernels [-t THREADS] [-i scalar|avx2|avx512|all] [-f FILTER] [-q]
 *
 * Times the real layer shapes of Qwen2.5-0.5B and 1.5B: int8 GEMM at m = 512
 * (GOPS = 2mnk / time, against PERF.md's VNNI peak of ~450 GOPS per core and
 * oneDNN's 810-880 GOPS on 2 threads), int8 and bf16 GEMV at m = 1 (GB/s of
 * weights streamed; the matrices are rotated through copies larger than L3 so
 * the weights come from DRAM, as in decode), small-m int8 (batched decode),
 * the float GEMM of prefill, RMSNorm+quantization, SwiGLU, one query's
 * attention and a prompt's (pattn: scores, softmax and the weighted V sum of
 * a 512-row causal prompt, one KV head, as forward.c runs them).  Each figure is the
 * median of repeated calls after a warm-up call.  -f keeps only the lines
 * whose name contains FILTER; -q runs fewer repetitions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../src/kernels/kernels.h"
#include "../src/util.h"

static int g_quick;

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds of one call (fn runs call number `it`), and in *cpu the
 * median process CPU time of a call divided by the thread count.  The
 * development host is shared: a call that is descheduled looks slow on the
 * wall clock, while its CPU time still says what the kernel costs when it
 * runs (for 1 thread exactly; with more threads it includes OpenMP waits). */
typedef void (*bench_fn)(void *ctx, int it);
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double time_median(bench_fn fn, void *ctx, double budget_s, double *cpu) {
    double t[64], c[64];
    int n = 0;
    fn(ctx, 0);
    double start = w8_now();
    if (g_quick) budget_s /= 4;
    while (n < 64 && (n < 3 || w8_now() - start < budget_s)) {
        double t0 = w8_now(), c0 = cpu_now();
        fn(ctx, n + 1);
        t[n] = w8_now() - t0;
        c[n++] = (cpu_now() - c0) / w8_get_threads();
    }
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    qsort(c, (size_t)n, sizeof *c, cmp_d);
    *cpu = c[n / 2];
    return t[n / 2];
}

/* Decode shapes rotate through copies of the matrix that together exceed
 * twice the last-level cache (at least 96 MB): the weights then come from
 * DRAM, as in decode (a 0.5B model's weights are bigger than any L3). */
static int decode_copies(size_t wbytes) {
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    size_t want = l3 > 0 ? 2 * (size_t)l3 : 0;
    if (want < ((size_t)96 << 20)) want = (size_t)96 << 20;
    if (want > ((size_t)1 << 30)) want = (size_t)1 << 30;
    size_t c = want / wbytes + 1;
    return c > 4096 ? 4096 : (int)c;
}

/* ------------------------------------------------------------------ int8 */

typedef struct {
    int m, n, k, copies;
    w8_qmat *q;
    int8_t *x;
    float *y;
} i8_ctx;

static void i8_run(void *c, int it) {
    i8_ctx *b = c;
    w8_gemm_i8(&b->q[it % b->copies], b->m, b->x, (size_t)b->k, b->y, (size_t)b->n);
}

static void bench_i8(const char *label, int m, int n, int k) {
    size_t wbytes = (size_t)n * k;
    int copies = m <= 16 ? decode_copies(wbytes) : 1;
    int8_t *w = malloc(wbytes);
    int32_t *qb = malloc((size_t)n * 4);
    float *ds = malloc((size_t)n * 4);
    w8_rng r;
    w8_rng_seed(&r, 1);
    for (size_t i = 0; i < wbytes; i++) w[i] = (int8_t)w8_rng_u64(&r);
    for (int j = 0; j < n; j++) qb[j] = j, ds[j] = 1e-3f;
    i8_ctx b = { m, n, k, copies, malloc(sizeof(w8_qmat) * (size_t)copies), malloc((size_t)m * k),
                 malloc((size_t)m * n * 4) };
    for (int c = 0; c < copies; c++) w8_qmat_pack(&b.q[c], w, n, k, qb, ds);
    for (size_t i = 0; i < (size_t)m * k; i++) b.x[i] = (int8_t)w8_rng_u64(&r);
    double cpu, t = time_median(i8_run, &b, m <= 16 ? 0.4 : 1.0, &cpu);
    double gops = 2.0 * m * n * k / t / 1e9, cgops = 2.0 * m * n * k / cpu / 1e9;
    if (m <= 16)
        printf("%-10s int8 m=%-3d k=%-5d n=%-6d %9.1f us  %7.1f GOPS  %6.1f GB/s weights"
               "  (cpu-time: %6.1f GB/s)\n", label, m, k, n, t * 1e6, gops, wbytes / t / 1e9,
               wbytes / cpu / 1e9);
    else
        printf("%-10s int8 m=%-3d k=%-5d n=%-6d %9.1f us  %7.1f GOPS  (cpu-time: %6.1f GOPS)\n",
               label, m, k, n, t * 1e6, gops, cgops);
    fflush(stdout);
    for (int c = 0; c < copies; c++) w8_qmat_free(&b.q[c]);
    free(b.q), free(b.x), free(b.y), free(w), free(qb), free(ds);
}

/* ----------------------------------------------------------------- float */

typedef struct {
    int m, copies, packed;
    w8_fmat *f;
    float *x, *y;
} f_ctx;

static void f_run(void *c, int it) {
    f_ctx *b = c;
    const w8_fmat *f = &b->f[it % b->copies];
    w8_gemm_f(f, b->m, b->x, (size_t)f->k, b->y, (size_t)f->n, NULL);
}

/* packed: the matrix packed at load (w8_fmat_pack), as a W8A8 model's float layers */
static void bench_f(const char *label, int m, int n, int k, w8_dtype dt, int packed) {
    size_t esz = dt == W8_F32 ? 4 : 2, wbytes = (size_t)n * k * esz;
    int copies = m <= 16 ? decode_copies(wbytes) : 1;
    uint16_t *w = malloc(wbytes * (size_t)copies);
    w8_rng r;
    w8_rng_seed(&r, 2);
    for (size_t i = 0; i < wbytes * (size_t)copies / 2; i++)
        w[i] = dt == W8_F32 ? (uint16_t)w8_rng_u64(&r) & 0x3fff
                            : w8_f32_to_bf16(0.05f * (w8_rng_f32(&r) - 0.5f));
    f_ctx b = { m, copies, packed, malloc(sizeof(w8_fmat) * (size_t)copies), malloc((size_t)m * k * 4),
                malloc((size_t)m * n * 4) };
    for (int c = 0; c < copies; c++) {
        w8_fmat f = {.n = n, .k = k, .dtype = dt, .w = (const char *)w + (size_t)c * wbytes};
        if (packed) w8_fmat_pack(&f, NULL, NULL);
        b.f[c] = f;
    }
    for (size_t i = 0; i < (size_t)m * k; i++) b.x[i] = w8_rng_f32(&r) - 0.5f;
    double cpu, t = time_median(f_run, &b, m <= 16 ? 0.4 : 1.0, &cpu);
    const char *dn = dt == W8_F32 ? "f32" : dt == W8_F16 ? "f16" : "bf16";
    printf("%-10s %-4s%s m=%-3d k=%-5d n=%-6d %9.1f us  %7.1f GFLOPS  %6.1f GB/s weights"
           "  (cpu-time: %6.1f GFLOPS)\n", label, dn, packed ? " packed" : "", m, k, n, t * 1e6, 2.0 * m * n * k / t / 1e9,
           wbytes / t / 1e9, 2.0 * m * n * k / cpu / 1e9);
    fflush(stdout);
    for (int c = 0; c < copies; c++) w8_fmat_free(&b.f[c]);
    free(b.f), free(b.x), free(b.y), free(w);
}

/* ------------------------------------------------------------- rmsnorm */

typedef struct {
    int m, k;
    float *x, *g;
    int8_t *q;
} r_ctx;

static void r_run(void *c, int it) {
    r_ctx *b = c;
    (void)it;
    w8_rmsnorm_rows(b->x, b->m, b->k, (size_t)b->k, b->g, NULL, 1e-6f, NULL, 0, b->q, (size_t)b->k,
                    0.05f, -3);
}

static void bench_rms(int m, int k) {
    r_ctx b = { m, k, malloc((size_t)m * k * 4), malloc((size_t)k * 4), malloc((size_t)m * k) };
    for (size_t i = 0; i < (size_t)m * k; i++) b.x[i] = (float)(i % 97) * 0.01f - 0.3f;
    for (int i = 0; i < k; i++) b.g[i] = 1.0f;
    double cpu, t = time_median(r_run, &b, 0.3, &cpu);
    printf("%-10s rmsnorm+quant m=%-3d k=%-5d %9.1f us  %6.2f Gelem/s\n", "norm", m, k, t * 1e6,
           (double)m * k / t / 1e9);
    free(b.x), free(b.g), free(b.q);
}

typedef struct {
    int m, n;
    float *gu, *out;
} s_ctx;

static void s_run(void *c, int it) {
    s_ctx *b = c;
    (void)it;
    w8_swiglu_rows(b->m, b->n, b->gu, b->gu + b->n, 2 * (size_t)b->n, b->out, (size_t)b->n, NULL,
                   0, 1.0f, 0);
}

static void bench_swiglu(int m, int n) {
    s_ctx b = { m, n, malloc((size_t)m * n * 8), malloc((size_t)m * n * 4) };
    for (size_t i = 0; i < (size_t)m * n * 2; i++) b.gu[i] = (float)(i % 1000) * 0.01f - 5.0f;
    double cpu, t = time_median(s_run, &b, 0.3, &cpu);
    printf("%-10s swiglu m=%-3d n=%-5d %9.1f us  %6.2f Gelem/s\n", "swiglu", m, n, t * 1e6,
           (double)m * n / t / 1e9);
    free(b.gu), free(b.out);
}

typedef struct {
    int n, d;
    float *q, *kv, *s, *out;
} a_ctx;

static void a_run(void *c, int it) {
    a_ctx *b = c;
    (void)it;
    w8_attn_scores(b->q, b->kv, (size_t)b->d, b->n, b->d, 0.125f, b->s);
    w8_softmax(b->s, b->n);
    w8_attn_accum(b->s, b->kv, (size_t)b->d, b->n, b->d, b->out);
}

/* one head of one query over n cached keys: scores, softmax, accumulate */
static void bench_attn(int n, int d) {
    a_ctx b = { n, d, malloc((size_t)d * 4), malloc((size_t)n * d * 4), malloc((size_t)n * 4),
                calloc((size_t)d, 4) };
    for (int i = 0; i < d; i++) b.q[i] = 0.01f * (float)(i % 7);
    for (size_t i = 0; i < (size_t)n * d; i++) b.kv[i] = 0.001f * (float)(i % 13);
    double cpu, t = time_median(a_run, &b, 0.3, &cpu);
    printf("%-10s attention n=%-5d d=%-4d %9.2f us  %6.1f ns/key  (cpu-time: %6.1f ns/key)\n",
           "attn", n, d, t * 1e6, t * 1e9 / n, cpu * 1e9 / n);
    free(b.q), free(b.kv), free(b.s), free(b.out);
}

/* A prompt's causal attention for the query heads of one KV head, as the
 * forward pass runs it (runs of 16 rows, KV blocks of 128 positions, V in
 * slices of 64 rows): scores, softmax and the weighted V sum timed apart.
 * GFLOP/s counts 2 flops per (query, key, element) of the causal triangle. */
enum { PA_ROWS = 16, PA_BS = 128, PA_VROWS = 64 };
typedef struct {
    int n, d, group, part;
    size_t ld, ldatt;
    float *q, *k, *v, *att, *out;
} pa_ctx;

static void pa_run(void *c, int it) {
    pa_ctx *b = c;
    (void)it;
    int nk[PA_ROWS];
    for (int r0 = 0; r0 < b->n; r0 += PA_ROWS) {
        int nr = b->n - r0 < PA_ROWS ? b->n - r0 : PA_ROWS, maxlen = r0 + nr;
        const float *q0 = b->q + (size_t)r0 * b->group * b->d;
        if (b->part == 0)
            for (int j0 = 0; j0 < maxlen; j0 += PA_BS) {
                for (int i = 0; i < nr; i++) {
                    int len = r0 + i + 1;
                    nk[i] = len - j0 < PA_BS ? len - j0 : PA_BS;
                }
                w8_attn_scores_n(q0, (size_t)b->group * b->d, nr, b->group, b->k + (size_t)j0 * b->ld,
                                 b->ld, nk, b->d, 0.125f, b->att + j0, b->ldatt);
            }
        if (b->part == 1)
            for (int i = 0; i < nr; i++)
                for (int g = 0; g < b->group; g++)
                    w8_softmax(b->att + ((size_t)i * b->group + g) * b->ldatt, r0 + i + 1);
        if (b->part == 2)
            for (int js = 0; js < maxlen; js += PA_VROWS)
                for (int i = 0; i < nr; i++) {
                    int left = r0 + i + 1 - js, nb = left < PA_VROWS ? left : PA_VROWS;
                    if (nb > 0)
                        w8_attn_accum_n(b->att + (size_t)i * b->group * b->ldatt + js, b->ldatt,
                                        b->group, b->v + (size_t)js * b->ld, b->ld, nb, b->d,
                                        b->out + ((size_t)r0 + i) * b->group * b->d, (size_t)b->d);
                }
    }
}

static void bench_pattn(int n, int d, int group, int kvheads) {
    static const char *names[3] = { "scores", "softmax", "accum" };
    pa_ctx b = { n, d, group, 0, (size_t)kvheads * d, (size_t)n, NULL, NULL, NULL, NULL, NULL };
    size_t kn = (size_t)n * b.ld, an = (size_t)PA_ROWS * group * n;
    b.q = malloc((size_t)n * group * d * 4), b.k = malloc(kn * 4), b.v = malloc(kn * 4);
    b.att = malloc(an * 4), b.out = calloc((size_t)n * group * d, 4);
    for (size_t i = 0; i < (size_t)n * group * d; i++) b.q[i] = 0.01f * (float)(i % 7);
    for (size_t i = 0; i < kn; i++) b.k[i] = 0.001f * (float)(i % 13), b.v[i] = 0.002f * (float)(i % 11);
    for (size_t i = 0; i < an; i++) b.att[i] = 0.001f;
    double pairs = (double)n * (n + 1) / 2 * group;
    for (b.part = 0; b.part < 3; b.part++) {
        double cpu, t = time_median(pa_run, &b, 0.3, &cpu);
        printf("%-10s prefill %-7s n=%-4d d=%-3d x%d %8.1f us %6.2f ns/pair  (cpu-time: %6.2f ns/pair",
               "pattn", names[b.part], n, d, group, t * 1e6, t * 1e9 / pairs, cpu * 1e9 / pairs);
        if (b.part != 1) printf(", %5.1f GFLOP/s", 2.0 * pairs * d / cpu / 1e9);
        printf(")\n");
    }
    free(b.q), free(b.k), free(b.v), free(b.att), free(b.out);
}

/* ------------------------------------------------------------------ main */

static const char *g_filter;
static int want(const char *name) { return !g_filter || strstr(name, g_filter); }

static void run_isa(void) {
    static const struct { const char *label; int k, n; } prefill[] = {
        { "0.5B-qkv", 896, 1152 },   { "0.5B-o", 896, 896 },      { "0.5B-gu", 896, 9728 },
        { "0.5B-down", 4864, 896 },  { "1.5B-qkv", 1536, 2048 },  { "1.5B-o", 1536, 1536 },
        { "1.5B-gu", 1536, 17920 }, { "1.5B-down", 8960, 1536 },
    };
    int scalar = w8_isa_active() == W8_ISA_SCALAR;
    for (size_t i = 0; i < sizeof prefill / sizeof *prefill; i++) {
        char name[64];
        snprintf(name, sizeof name, "prefill %s", prefill[i].label);
        if (want(name) && !scalar) bench_i8(prefill[i].label, 512, prefill[i].n, prefill[i].k);
    }
    for (size_t i = 0; i < sizeof prefill / sizeof *prefill; i++) {
        char name[64];
        snprintf(name, sizeof name, "decode %s", prefill[i].label);
        if (want(name)) bench_i8(prefill[i].label, 1, prefill[i].n, prefill[i].k);
    }
    static const int ms[] = { 2, 4, 8, 16 };
    for (size_t i = 0; i < 4; i++)
        if (want("batch")) bench_i8("batch-gu", ms[i], 9728, 896);
    if (want("lm_head")) bench_f("lm_head", 1, 151936, 896, W8_BF16, 0);
    if (want("lm_head")) bench_f("lm_head", 1, 151936, 896, W8_BF16, 1);
    if (want("lm_head") && !g_quick) bench_f("lm_head", 4, 151936, 896, W8_BF16, 0);
    if (want("lm_head") && !g_quick) bench_f("lm_head", 4, 151936, 896, W8_BF16, 1);
    if (want("fdown") && !scalar) bench_f("fdown", 512, 896, 4864, W8_BF16, 0);
    if (want("fdown") && !scalar) bench_f("fdown", 512, 896, 4864, W8_BF16, 1);
    if (want("fdown") && !scalar) bench_f("fdown", 64, 896, 4864, W8_BF16, 0);
    if (want("fdown")) bench_f("fdown", 1, 896, 4864, W8_BF16, 0);
    if (want("fdown")) bench_f("fdown", 1, 896, 4864, W8_BF16, 1);
    if (want("norm")) bench_rms(512, 896), bench_rms(1, 896);
    if (want("swiglu")) bench_swiglu(512, 4864), bench_swiglu(1, 4864);
    if (want("attn")) bench_attn(512, 64), bench_attn(512, 128);
    if (want("pattn")) bench_pattn(512, 64, 7, 2), bench_pattn(512, 128, 6, 2);
}

int main(int argc, char **argv) {
    const char *isa = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) w8_set_threads(atoi(argv[++i]));
        else if (!strcmp(argv[i], "-i") && i + 1 < argc) isa = argv[++i];
        else if (!strcmp(argv[i], "-f") && i + 1 < argc) g_filter = argv[++i];
        else if (!strcmp(argv[i], "-q")) g_quick = 1;
        else {
            fprintf(stderr, "usage: %s [-t THREADS] [-i scalar|avx2|avx512|all] [-f FILTER] [-q]\n", argv[0]);
            return !strcmp(argv[i], "-h") || !strcmp(argv[i], "--help") ? 0 : 1;
        }
    }
    for (int v = W8_ISA_SCALAR; v <= W8_ISA_AVX512; v++) {
        const char *name = w8_isa_name((w8_isa)v);
        if (isa ? strcmp(isa, "all") && strcmp(isa, name) : v != (int)w8_isa_detect()) continue;
        if (w8_isa_force((w8_isa)v)) {
            printf("# %s: not supported on this CPU\n", name);
            continue;
        }
        printf("# isa %s, %d threads\n", name, w8_get_threads());
        run_isa();
    }
    return 0;
}

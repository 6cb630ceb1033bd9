/* roofline.c - see roofline.h. */
#include "roofline.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "roofline_isa.h"
#include "util.h"

#define TARGET_S 0.1  /* seconds per timed run; the best of RUNS is kept */
#define RUNS 3
#define BUF_MIN ((size_t)64 << 20)
#define BUF_MAX ((size_t)512 << 20)

/* The scalar build's multiply-accumulate: int8 products into int32, over a
 * block the compiler may vectorize with baseline SSE2 (what scalar kernels
 * get).  The empty asm makes the block look changed each round, so the
 * invariant dot product is not hoisted out of the loop. */
static uint64_t dot_scalar(long iters) {
    int8_t a[256], b[256];
    for (int i = 0; i < 256; i++) {
        a[i] = (int8_t)(i * 7 + (int)iters);
        b[i] = (int8_t)(i * 13 + 1);
    }
    uint32_t acc = 0; /* wraps: only a dependency, never a result */
    for (long it = 0; it < iters; it++) {
        __asm__ volatile("" : : "r"(a), "r"(b) : "memory");
        for (int i = 0; i < 256; i++) acc += (uint32_t)(a[i] * b[i]);
    }
    return acc;
}

static uint64_t read_scalar(const void *p, size_t bytes) {
    const uint64_t *v = p;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i < bytes / 8; i += 4) {
        s0 += v[i];
        s1 += v[i + 1];
        s2 += v[i + 2];
        s3 += v[i + 3];
    }
    return s0 + s1 + s2 + s3;
}

/* MACs per round of the dot loop of isa */
static double dot_macs(w8_isa isa) {
    return isa == W8_ISA_AVX512 ? 64.0 * W8_ROOF_ACC : isa == W8_ISA_AVX2 ? 16.0 * W8_ROOF_ACC : 256.0;
}

static uint64_t dot(w8_isa isa, long iters) {
    return isa == W8_ISA_AVX512 ? w8_roof_dot_avx512(iters)
           : isa == W8_ISA_AVX2 ? w8_roof_dot_avx2(iters)
                                : dot_scalar(iters);
}

static uint64_t rd(w8_isa isa, const void *p, size_t bytes) {
    return isa == W8_ISA_AVX512 ? w8_roof_read_avx512(p, bytes)
           : isa == W8_ISA_AVX2 ? w8_roof_read_avx2(p, bytes)
                                : read_scalar(p, bytes);
}

static volatile uint64_t sink; /* results land here, so the loops must run */

/* Seconds for every thread to run `iters` rounds at once. */
static double time_dot(w8_isa isa, int nt, long iters) {
    uint64_t s = 0;
    double t0 = w8_now();
#pragma omp parallel num_threads(nt) reduction(+ : s)
    s += dot(isa, iters);
    double t = w8_now() - t0;
    sink += s;
    return t;
}

/* Seconds for the threads to read their slices of buf once. */
static double time_read(w8_isa isa, int nt, const unsigned char *buf, size_t bytes) {
    uint64_t s = 0;
    size_t slice = bytes / (size_t)nt / 256 * 256;
    double t0 = w8_now();
#pragma omp parallel num_threads(nt) reduction(+ : s)
    s += rd(isa, buf + (size_t)omp_get_thread_num() * slice, slice);
    double t = w8_now() - t0;
    sink += s;
    return t;
}

/* Rounds of the dot loop that take about TARGET_S on nt threads: grow the
 * count until a run takes a tenth of the target, then scale it. */
static long dot_iters(w8_isa isa, int nt) {
    long iters = 1024;
    double t;
    while ((t = time_dot(isa, nt, iters)) < TARGET_S / 10 && iters < (1L << 40)) iters *= 4;
    return (long)((double)iters * TARGET_S / (t > 1e-6 ? t : 1e-6)) + 1;
}

/* int8 ops/s of one timed run of iters rounds */
static double dot_rate(w8_isa isa, int nt, long iters) {
    double t = time_dot(isa, nt, iters);
    return 2.0 * dot_macs(isa) * (double)iters * nt / (t > 1e-9 ? t : 1e-9);
}

int w8_roofline_measure(w8_roofline *r) {
    memset(r, 0, sizeof *r);
    w8_isa isa = w8_isa_active();
    int nt = w8_get_threads();
    if (nt < 1) nt = 1;
    r->isa = w8_isa_name(isa);
    r->insn = isa == W8_ISA_AVX512 ? "vpdpbusd" : isa == W8_ISA_AVX2 ? "vpmaddwd" : "C loop";
    r->threads = nt;

    /* int8 peak: the best of RUNS runs of ~TARGET_S */
    long iters = dot_iters(isa, nt);
    for (int run = 0; run < RUNS; run++) {
        double ops = dot_rate(isa, nt, iters);
        if (ops > r->int8_ops) r->int8_ops = ops;
    }
    if (nt > 1) {
        long it1 = dot_iters(isa, 1);
        for (int run = 0; run < RUNS; run++) {
            double ops = dot_rate(isa, 1, it1);
            if (ops > r->int8_ops_1t) r->int8_ops_1t = ops;
        }
    }

    /* bandwidth: twice the last-level cache (within [64, 512] MiB), each
     * thread first touching its own slice (pages land near it, and are
     * real pages: an untouched buffer would read the shared zero page) */
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    r->llc_bytes = l3 > 0 ? (size_t)l3 : 0;
    size_t bytes = l3 > 0 ? (size_t)l3 * 2 : BUF_MIN;
    if (bytes < BUF_MIN) bytes = BUF_MIN;
    if (bytes > BUF_MAX) bytes = BUF_MAX;
    bytes = bytes / (256 * (size_t)nt) * (256 * (size_t)nt);
    unsigned char *buf = aligned_alloc(64, bytes);
    if (!buf) return w8_seterr("roofline: cannot allocate a %zu MiB read buffer", bytes >> 20);
    size_t slice = bytes / (size_t)nt;
#pragma omp parallel num_threads(nt)
    memset(buf + (size_t)omp_get_thread_num() * slice, 1, slice);
    r->buffer_bytes = bytes;
    time_read(isa, nt, buf, bytes); /* warm-up: TLB, page tables */
    double t_all = 0;
    for (int run = 0; run < 64 && (run < RUNS || t_all < TARGET_S * RUNS); run++) {
        double t = time_read(isa, nt, buf, bytes);
        t_all += t;
        double bw = (double)(slice / 256 * 256) * nt / (t > 1e-9 ? t : 1e-9);
        if (bw > r->read_bytes) r->read_bytes = bw;
    }
    free(buf);
    return 0;
}

/* ------------------------------------------------------------ probes */

double w8_roofline_dot_probe(void) {
    w8_isa isa = w8_isa_active();
    int nt = w8_get_threads();
    if (nt < 1) nt = 1;
    return dot_rate(isa, nt, dot_iters(isa, nt));
}

/* Every linear layer a decoded token runs, in order, lm_head last (a layer
 * has at most 3 (q/k/v) + 1 + 2 (gate/up) + 1).  Returns the count; the
 * caller frees *out. */
static int model_linears(const w8_model *m, const w8_linear ***out) {
    const w8_linear **v = w8_xcalloc((size_t)m->cfg.n_layers * 7 + 1, sizeof *v);
    int n = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const w8_layer *ly = &m->layers[l];
        const w8_linear_group *g[2] = {&ly->qkv, &ly->gate_up};
        for (int i = 0; i < 2; i++) {
            if (g[i]->fused) v[n++] = &g[i]->fused_lin;
            else
                for (int j = 0; j < g[i]->n_parts; j++) v[n++] = &g[i]->parts[j];
            v[n++] = i == 0 ? &ly->o : &ly->down;
        }
    }
    v[n++] = &m->lm_head;
    *out = v;
    return n;
}

/* Bytes read by this thread: its contiguous slice of each of the n weight
 * buffers (as the decode team's column ranges), whole 256-byte blocks from
 * a 64-byte boundary, one buffer after the other with no barrier between. */
static size_t read_slices(w8_isa isa, const w8_linear *const *lin, int n, int tid, int nt,
                          uint64_t *s) {
    size_t done = 0;
    for (int i = 0; i < n; i++) {
        const void *w;
        size_t bytes = w8_linear_weights(lin[i], &w);
        uintptr_t a = (uintptr_t)w, e = a + bytes;
        a = (a + 63) & ~(uintptr_t)63;
        if (!w || e <= a) continue;
        size_t len = e - a, lo = len * (size_t)tid / (size_t)nt / 256 * 256;
        size_t hi = len * (size_t)(tid + 1) / (size_t)nt / 256 * 256;
        if (hi > lo) {
            *s += rd(isa, (const void *)(a + lo), hi - lo);
            done += hi - lo;
        }
    }
    return done;
}

double w8_roofline_weights_probe(const w8_model *m) {
    const w8_linear **lin;
    int n = model_linears(m, &lin);
    w8_isa isa = w8_isa_active();
    int nt = w8_get_threads();
    if (nt < 1) nt = 1;
    /* passes until TARGET_S has gone by: a rate over a stretch of time, as
     * a repetition's tokens/s is */
    double t_all = 0, bytes = 0;
    uint64_t s = 0;
    while (t_all < TARGET_S) {
        size_t done = 0;
        double t0 = w8_now();
#pragma omp parallel num_threads(nt) reduction(+ : s, done)
        done += read_slices(isa, lin, n, omp_get_thread_num(), omp_get_num_threads(), &s);
        t_all += w8_now() - t0;
        bytes += (double)done;
        if (!done) break;
    }
    sink += s;
    free(lin);
    return t_all > 0 ? bytes / t_all : 0;
}

/* int8 MACs of one row of linear l, 0 for a float one */
static double int8_macs(const w8_linear *l) { return l->quantized ? (double)l->n * l->k : 0; }

void w8_roofline_model(const w8_model *m, int n_prompt, double *macs_per_token,
                       double *weight_bytes) {
    const w8_linear **lin;
    int n = model_linears(m, &lin);
    double macs = 0, bytes = 0;
    for (int i = 0; i < n; i++) {
        const void *w;
        bytes += (double)w8_linear_weights(lin[i], &w);
        /* lm_head (last) is read once per decoded token, but a prompt
         * computes it for its last row only: its MACs are not a prompt
         * token's work */
        if (i < n - 1) macs += int8_macs(lin[i]);
    }
    free(lin);
    /* the last layer's o_proj and MLP, which a prompt runs for its last row
     * only (forward.c's layers_batch): n_prompt - 1 rows' worth less */
    if (n_prompt > 1 && m->cfg.n_layers > 0) {
        const w8_layer *ly = &m->layers[m->cfg.n_layers - 1];
        double tail = int8_macs(&ly->o) + int8_macs(&ly->down);
        if (ly->gate_up.fused) tail += int8_macs(&ly->gate_up.fused_lin);
        else
            for (int j = 0; j < ly->gate_up.n_parts; j++) tail += int8_macs(&ly->gate_up.parts[j]);
        macs -= tail * (double)(n_prompt - 1) / n_prompt;
    }
    *macs_per_token = macs;
    *weight_bytes = bytes;
}

/* ------------------------------------------------------- pairing */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* the median of v[0..n) (n >= 1), which it sorts */
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void w8_roofline_paired(const double *rate, const double *probe, int reps, w8_roof_paired *out) {
    memset(out, 0, sizeof *out);
    if (reps < 1) return;
    double *f = w8_xmalloc((size_t)reps * 2 * sizeof *f), *c = f + reps;
    for (int pass = 0; pass < 2 && out->used == 0; pass++) {
        /* pass 0: the steady repetitions; pass 1 (none was): all */
        for (int r = 0; r < reps; r++) {
            double a = probe[r], b = probe[r + 1], hi = a > b ? a : b, lo = a < b ? a : b;
            int steady = lo > 0 && hi - lo <= W8_ROOF_STEADY * hi;
            if (pass == 0) out->steady += steady;
            if (pass == 0 && !steady) continue;
            double mean = (a + b) / 2;
            f[out->used] = mean > 0 ? rate[r] / mean : 0;
            c[out->used++] = mean;
        }
    }
    out->fraction = median(f, out->used);
    out->ceiling = median(c, out->used);
    free(f);
}

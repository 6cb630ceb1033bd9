/*
 * kernels.c - the public kernel entry points: pick the ISA table once, split
 * GEMMs over OpenMP threads, and own the per-thread scratch buffers.
 *
 * Work splitting (why it looks like this):
 *   - int8 GEMM: the output is cut into items of (qnblock columns x qmblock
 *     rows), ordered column-group-major, one contiguous range of them per
 *     thread, with stealing from the back of the others' ranges at the end
 *     (the host is shared, a thread may stall).  A thread's consecutive items
 *     share one weight column group, read from memory once and kept in L2
 *     while the rows are walked (with the items handed out one by one, both
 *     threads read every panel); for m = 1 each thread streams one contiguous
 *     slice of the weights.  (A software prefetch of the next panel during
 *     the current one measured 2-5% slower on the development host.)
 *     Activations are first converted once (xq ^ 0x80, padded) by all threads
 *     together into a buffer owned by the calling thread; down_proj's come
 *     from SwiGLU's epilogue already converted where the table can
 *     (swiglu_prep), since both threads write them column group by column
 *     group and a conversion pass would move half of them across cores.
 *     (An L2 prefetch of the next column group's panels during the first
 *     row chunk made no difference; cold weights measured as fast as hot.)
 *     W8A8_DYNAMIC (w8_gemm_i8_dyn) is the same GEMM on a matrix packed with
 *     quant_bias 0 and deq_scale = weight_scale (so the VNNI correction
 *     -128 * rowsum(W) still applies), after a per-row quantization, with
 *     the row scale and float bias applied to each tile in plain C.
 *   - float GEMM: column groups handed out dynamically; with m <= 4 each
 *     group streams W in place (lm_head decode), otherwise each thread
 *     widens L2-sized blocks of W into its own scratch.  Both keep every
 *     output's summation order (row invariance).  A matrix packed at load
 *     (w8_fmat_pack) goes to the ISA's pgemm, one 64-channel block per item.
 *   - small problems run on the calling thread: a parallel region costs
 *     microseconds, more than a tiny matmul.
 */
#include <float.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../util.h"
#include "kernels.h"
#include "kern_impl.h"

/* ------------------------------------------------------------ ISA tables */

static const w8_kern_table *g_tab; /* active table, chosen at first use */

static const w8_kern_table *table_for(w8_isa isa) {
    switch (isa) {
    case W8_ISA_AVX512: return &w8_kern_avx512;
    case W8_ISA_AVX2: return &w8_kern_avx2;
    default: return &w8_kern_ref;
    }
}

static const w8_kern_table *active(void) {
    /* A racing first call stores the same pointer; no lock needed. */
    const w8_kern_table *t = __atomic_load_n(&g_tab, __ATOMIC_ACQUIRE);
    if (!t) {
        t = table_for(w8_isa_detect());
        __atomic_store_n(&g_tab, t, __ATOMIC_RELEASE);
    }
    return t;
}

w8_isa w8_isa_active(void) { return active()->isa; }

int w8_isa_force(w8_isa isa) {
    if ((int)isa < 0 || isa > W8_ISA_AVX512) return w8_seterr("kernels: unknown ISA %d", (int)isa);
    if (isa > w8_isa_hw())
        return w8_seterr("kernels: this CPU cannot run %s kernels", w8_isa_name(isa));
    __atomic_store_n(&g_tab, table_for(isa), __ATOMIC_RELEASE);
    return 0;
}

/* ------------------------------------------------------------- scratch
 * Grow-only buffers kept per thread, so a GEMM call does not pay malloc and
 * page faults every time.  A thread-exit destructor frees them for threads
 * that end (server workers); live threads keep them reachable in TLS. */

enum { SLOT_QPREP, SLOT_FPACK, SLOT_PPREP, SLOT_DYNQ, SLOT_DYNS, SLOT_SWI, SLOT_RNG, SLOT_COUNT };
static __thread void *tls_buf[SLOT_COUNT];
static __thread size_t tls_cap[SLOT_COUNT];
static pthread_key_t g_key[SLOT_COUNT];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void key_init(void) {
    for (int s = 0; s < SLOT_COUNT; s++) pthread_key_create(&g_key[s], free);
}

static void *scratch(int slot, size_t bytes) {
    if (bytes > tls_cap[slot]) {
        pthread_once(&g_once, key_init);
        free(tls_buf[slot]);
        bytes = (bytes + 4095) & ~(size_t)4095;
        tls_buf[slot] = w8_xalloc_aligned(bytes);
        tls_cap[slot] = bytes;
        pthread_setspecific(g_key[slot], tls_buf[slot]);
    }
    return tls_buf[slot];
}

/* Inside a parallel region (forward.c's decode team) an entry point runs on
 * the calling thread: the team already splits the work. */
static int threads_for(double macs) {
    if (omp_in_parallel()) return 1;
    int nt = w8_get_threads();
    if (nt < 1) nt = 1;
    if (macs < 65536.0) nt = 1;
    return nt;
}

/* ------------------------------------------------------------------ int8 */

void w8_qmat_pack(w8_qmat *m, const int8_t *w, int n, int k, const int32_t *quant_bias,
                  const float *deq_scale) {
    const w8_kern_table *t = active();
    memset(m, 0, sizeof *m);
    m->n = n;
    m->k = k;
    m->isa = t->isa;
    m->scale = w8_xmalloc((size_t)n * sizeof(float) + 1);
    memcpy(m->scale, deq_scale, (size_t)n * sizeof(float));
    t->qpack(m, w, n, k, quant_bias, deq_scale);
}

void w8_qmat_free(w8_qmat *m) {
    if (!m) return;
    free(m->packed);
    free(m->bias);
    free(m->scale);
    memset(m, 0, sizeof *m);
}

/* The W8A8_DYNAMIC tail of one output tile, plain C shared by every ISA (this
 * file is built without FMA, and ISO C mode does not contract): the row
 * scale, then the float bias. */
static void dyn_tile(float *y, size_t ldy, int i0, int i1, int n0, int n1, const float *rs,
                     const float *bias) {
    for (int i = i0; i < i1; i++) {
        float *yi = y + (size_t)i * ldy;
        float s = rs[i];
        if (bias)
            for (int j = n0; j < n1; j++) yi[j] = yi[j] * s + bias[j];
        else
            for (int j = n0; j < n1; j++) yi[j] = yi[j] * s;
    }
}

/* A producer of the GEMM's int8 input rows (RMSNorm, SwiGLU, plain or
 * per-row dynamic quantization), run inside the GEMM's own parallel region: the two share
 * one fork/join and the rows are still in cache when qprep converts them.
 * Row i is made by the same kernel call as the standalone entry point's. */
typedef enum { PR_NORM = 1, PR_SWIGLU, PR_QUANT, PR_QDYN, PR_NORM_QDYN } prod_kind;
typedef struct {
    prod_kind kind;
    float *x;           /* NORM, NORM_QDYN: rows (updated in place when res != NULL) */
    const float *xc;    /* QUANT, QDYN: rows */
    float *rs;          /* QDYN: the row scales */
    const float *res;   /* NORM: added to x first */
    const float *a, *b; /* NORM: g, b; SWIGLU: gate, up */
    int k;              /* row length */
    size_t ldx;         /* x (NORM, QUANT) or gate/up (SWIGLU) row stride */
    float eps;
    float *out;         /* SWIGLU, NORM_QDYN: f32 rows */
    size_t ldout;
    int8_t *xq;         /* the int8 rows, stride ldq */
    size_t ldq;
    float scale;
    int offset;
} prod;

/* x += res, four at a time (GCC's -O2 leaves the plain loop scalar; an
 * add is exact per element, so the width does not matter) */
typedef float w8_v4f __attribute__((vector_size(16)));
static void add_row(float *x, const float *res, int k) {
    int j = 0;
    for (; j + 4 <= k; j += 4) {
        w8_v4f a, b;
        memcpy(&a, x + j, sizeof a);
        memcpy(&b, res + j, sizeof b);
        a += b;
        memcpy(x + j, &a, sizeof a);
    }
    for (; j < k; j++) x[j] += res[j];
}

/* x += res (res may be NULL), then one row of RMSNorm into y and/or xq:
 * in one pass over x where the ISA has add_rmsnorm */
static void add_norm_row(const w8_kern_table *t, const prod *p, float *x, const float *res,
                         float *y, int8_t *xq, float scale, int offset) {
    if (res && t->add_rmsnorm) {
        t->add_rmsnorm(x, res, p->k, p->a, p->b, p->eps, y, xq, scale, offset);
        return;
    }
    if (res) add_row(x, res, p->k);
    t->rmsnorm_rows(x, 1, p->k, p->ldx, p->a, p->b, p->eps, y, 0, xq, 0, scale, offset);
}

static void produce(const w8_kern_table *t, const prod *p, int i) {
    size_t r = (size_t)i;
    int8_t *xq = p->xq + r * p->ldq;
    switch (p->kind) {
    case PR_NORM:
        add_norm_row(t, p, p->x + r * p->ldx, p->res ? p->res + r * p->ldx : NULL, NULL, xq,
                     p->scale, p->offset);
        break;
    case PR_SWIGLU:
        t->swiglu(p->a + r * p->ldx, p->b + r * p->ldx, p->k, p->out + r * p->ldout, xq, p->scale,
                  p->offset);
        break;
    case PR_QUANT:
        t->quant_rows(p->xc + r * p->ldx, 1, p->k, p->ldx, p->scale, p->offset, xq, p->ldq);
        break;
    case PR_QDYN:
        t->quant_dyn(p->xc + r * p->ldx, p->k, xq, &p->rs[i]);
        break;
    case PR_NORM_QDYN: { /* the f32 norm, then its per-row quantization */
        float *o = p->out + r * p->ldout;
        add_norm_row(t, p, p->x + r * p->ldx, p->res ? p->res + r * p->ldx : NULL, o, NULL, 1.0f,
                     0);
        t->quant_dyn(o, p->k, xq, &p->rs[i]);
        break;
    }
    }
}

/* SwiGLU as the epilogue of a stacked [gate; up] GEMM: an item computes
 * the gate columns [n0, n1) and the up columns inter + [n0, n1) of its rows
 * and runs the row kernel on them while they are in cache.  n0 is a
 * multiple of the kernel's column block (16 floats or more), where every
 * ISA's row kernel is in its vector loop, so a segment gets the bits of the
 * whole row. */
typedef struct {
    int inter;
    float *out; /* NULL: over the gate columns of y */
    size_t ld_out;
    int8_t *xq;
    size_t ldq;
    float scale;
    int offset;
    int prep; /* xq gets swiglu_prep's bytes (the next GEMM's layout) */
} swi_epi;

/* SwiGLU on columns n0.. of row i (gate g, up u, n of them) into o and
 * se's quantized row: int8, or the next GEMM's layout with se->prep. */
static void swi_row(const w8_kern_table *pt, const swi_epi *se, const float *g, const float *u,
                    int n, float *o, int i, int n0) {
    int8_t *q = se->xq ? se->xq + (size_t)i * se->ldq + n0 : NULL;
    if (se->prep) pt->swiglu_prep(g, u, n, o, (uint8_t *)q, se->scale, se->offset);
    else pt->swiglu(g, u, n, o, q, se->scale, se->offset);
}

/* The gate | up tile of rows [i0, i1) in this thread's scratch (gate
 * columns n0.. then up columns inter + n0..), and SwiGLU on it: the tile
 * stays in cache and the [m, 2 inter] f32 rows never go out to memory. */
static void swi_tile(const w8_kern_table *t, const w8_kern_table *pt, const w8_qmat *w,
                     const swi_epi *se, const uint8_t *xs, size_t ldxs, int i0, int i1, int n0,
                     int n1) {
    int I = se->inter, nb = t->qnblock;
    size_t ldt = 2 * (size_t)nb;
    const uint8_t *xi = xs + (size_t)i0 * ldxs;
    float *tile = scratch(SLOT_SWI, (size_t)t->qmblock * ldt * sizeof(float));
    t->qgemm(w, 0, i1 - i0, xi, ldxs, tile, ldt, n0, n1, n0);
    t->qgemm(w, 0, i1 - i0, xi, ldxs, tile + nb, ldt, I + n0, I + n1, I + n0);
    for (int i = i0; i < i1; i++) {
        float *ti = tile + (size_t)(i - i0) * ldt;
        float *o = se->out ? se->out + (size_t)i * se->ld_out + n0 : ti;
        swi_row(pt, se, ti, ti + nb, n1 - n0, o, i, n0);
    }
}

/* Items [0, n) of a loop split into one contiguous range per thread: a
 * thread walks its own range front to back (its weights are one sequential
 * stream, as in a plain read of memory), up to `run` items at a time (*cnt
 * of them), then takes single items from the back of the range with the
 * most left.  A range's state is one word, (taken from the front, taken
 * from the back), changed by compare-and-swap only, so no item is handed
 * out twice.  n when nothing is left. */
static int range_next(uint64_t *r, int n, int run, int *cnt) {
    int nth = omp_get_num_threads(), tid = omp_get_thread_num();
    for (;;) {
        uint64_t v = __atomic_load_n(&r[tid], __ATOMIC_ACQUIRE);
        long a = (long)tid * n / nth + (long)(uint32_t)v, b = (long)(tid + 1) * n / nth - (long)(v >> 32);
        if (a >= b) break;
        int k = b - a < run ? (int)(b - a) : run;
        if (__atomic_compare_exchange_n(&r[tid], &v, v + (uint64_t)k, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            *cnt = k;
            return (int)a;
        }
    }
    for (;;) {
        int best = -1;
        long left = 0;
        uint64_t bv = 0;
        for (int o = 0; o < nth; o++) {
            if (o == tid) continue;
            uint64_t v = __atomic_load_n(&r[o], __ATOMIC_ACQUIRE);
            long a = (long)o * n / nth + (long)(uint32_t)v, b = (long)(o + 1) * n / nth - (long)(v >> 32);
            if (b - a > left) {
                left = b - a;
                best = o;
                bv = v;
            }
        }
        *cnt = 1;
        if (best < 0) return n;
        if (__atomic_compare_exchange_n(&r[best], &bv, bv + ((uint64_t)1 << 32), 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return (int)((long)(best + 1) * n / nth - (long)(bv >> 32) - 1);
    }
}

/* Whether w's stacked [gate; up] halves split into whole column blocks. */
static int swi_fits(const w8_qmat *w) {
    int inter = w->n / 2, nb = table_for(w->isa)->qnblock;
    return w->n % 2 == 0 && inter % nb == 0 && (nb % 16 == 0 || nb == 1);
}

/* w8_gemm_i8, and with rs != NULL the dynamic tail on each tile while it is
 * still in cache; with pr != NULL its rows x are made by pr first; with
 * se != NULL SwiGLU runs on each gate/up tile pair; prepped: x is already
 * in the layout qprep makes (swiglu_prep's rows). */
static void gemm_i8(const w8_qmat *w, int m, const int8_t *x, size_t ldx, float *y, size_t ldy,
                    const float *rs, const float *bias, const prod *pr, const swi_epi *se,
                    int prepped) {
    /* The layout decides the kernel: a matrix packed before w8_isa_force()
     * keeps running the kernel it was packed for. */
    const w8_kern_table *t = table_for(w->isa), *pt = pr || se ? active() : NULL;
    int n = w->n, k = w->k;
    if (m <= 0 || n <= 0) return;
    const void *xs = x;
    size_t ldxs = ldx, kp = 0;
    uint8_t *buf = NULL;
    if (t->qprep && !prepped) {
        kp = t->qkpad(k);
        buf = scratch(SLOT_QPREP, (size_t)m * kp);
        xs = buf;
        ldxs = kp;
    }
    int nb = t->qnblock, mb = t->qmblock, ncol = se ? se->inter : n;
    int ngroups = (ncol + nb - 1) / nb, mchunks = (m + mb - 1) / mb;
    int items = ngroups * mchunks;
    int nt = threads_for((double)m * n * k);
    if (nt > items) nt = items;
    /* a few rows are converted here: a barrier costs more than that (and on
     * a busy host it waits for the slowest thread to be scheduled at all) */
    int rows_here = m <= 16 || nt == 1;
    if (rows_here)
        for (int i = 0; i < m; i++) {
            if (pr) produce(pt, pr, i);
            if (buf) t->qprep(x + (size_t)i * ldx, k, buf + (size_t)i * kp);
        }
    /* the threads' item ranges (range_next), zeroed for this call */
    uint64_t *rng = scratch(SLOT_RNG, (size_t)nt * sizeof *rng);
    memset(rng, 0, (size_t)nt * sizeof *rng);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        if (!rows_here && (buf || pr)) {
            /* a contiguous block of rows each: one sequential stream of x
             * (and res) per thread, which the hardware prefetcher follows
             * (every other row was a new 3.5 KB stream at k = 896) */
            int tid = omp_get_thread_num(), nth = omp_get_num_threads();
            int ib = (int)((long)m * tid / nth), ie = (int)((long)m * (tid + 1) / nth);
            for (int i = ib; i < ie; i++) {
                if (pr) produce(pt, pr, i);
                if (buf) t->qprep(x + (size_t)i * ldx, k, buf + (size_t)i * kp);
            }
#pragma omp barrier
        }
        /* Items by column group, then row chunk, in one contiguous range
         * per thread: a thread reads each of its weight panels from memory
         * once (it stays in L2 for all the rows).  A thread done early takes
         * single items from the back of the others' ranges: on a shared
         * host one thread may be descheduled for a while. */
        for (int it, cnt; (it = range_next(rng, items, 1, &cnt)) < items;) {
            int g = it / mchunks, c = it % mchunks;
            int i0 = c * mb, i1 = i0 + mb < m ? i0 + mb : m;
            int n0 = g * nb, n1 = n0 + nb < ncol ? n0 + nb : ncol;
            if (se && !y) {
                swi_tile(t, pt, w, se, (const uint8_t *)xs, ldxs, i0, i1, n0, n1);
                continue;
            }
            t->qgemm(w, i0, i1, xs, ldxs, y, ldy, n0, n1, 0);
            if (rs) dyn_tile(y, ldy, i0, i1, n0, n1, rs, bias);
            if (se) {
                int I = se->inter;
                t->qgemm(w, i0, i1, xs, ldxs, y, ldy, I + n0, I + n1, 0);
                for (int i = i0; i < i1; i++) {
                    float *yi = y + (size_t)i * ldy;
                    float *o = se->out ? se->out + (size_t)i * se->ld_out + n0 : yi + n0;
                    swi_row(pt, se, yi + n0, yi + I + n0, n1 - n0, o, i, n0);
                }
            }
        }
    }
}

void w8_gemm_i8(const w8_qmat *w, int m, const int8_t *x, size_t ldx, float *y, size_t ldy) {
    gemm_i8(w, m, x, ldx, y, ldy, NULL, NULL, NULL, NULL, 0);
}

void w8_rmsnorm_gemm_i8(float *x, const float *res, int m, int k, size_t ldx, const float *g,
                        const float *b, float eps, int8_t *xq, size_t ldq, float scale,
                        int offset, const w8_qmat *w, float *y, size_t ldy) {
    prod p = { .kind = PR_NORM, .x = x, .res = res, .a = g, .b = b, .k = k, .ldx = ldx,
               .eps = eps, .xq = xq, .ldq = ldq, .scale = scale, .offset = offset };
    gemm_i8(w, m, xq, ldq, y, ldy, NULL, NULL, &p, NULL, 0);
}

int w8_rmsnorm_gemm_i8_swiglu(float *x, const float *res, int m, int k, size_t ldx,
                              const float *g, const float *b, float eps, int8_t *xq, size_t ldq,
                              float scale, int offset, const w8_qmat *w, float *y, size_t ldy,
                              float *out, size_t ld_out, int8_t *xq2, size_t ldq2, float scale2,
                              int offset2) {
    int inter = w->n / 2;
    if (!swi_fits(w)) return -1;
    prod p = { .kind = PR_NORM, .x = x, .res = res, .a = g, .b = b, .k = k, .ldx = ldx,
               .eps = eps, .xq = xq, .ldq = ldq, .scale = scale, .offset = offset };
    swi_epi se = { .inter = inter, .out = out, .ld_out = ld_out, .xq = xq2, .ldq = ldq2,
                   .scale = scale2, .offset = offset2 };
    gemm_i8(w, m, xq, ldq, y, ldy, NULL, NULL, &p, &se, 0);
    return 0;
}

int w8_rmsnorm_gemm_i8_swiglu_down(float *x, const float *res, int m, int k, size_t ldx,
                                   const float *g, const float *b, float eps, int8_t *xq,
                                   size_t ldq, float scale, int offset, const w8_qmat *w,
                                   int8_t *xq2, size_t ldq2, float scale2, int offset2,
                                   const w8_qmat *down, float *y2, size_t ldy2) {
    int inter = w->n / 2;
    if (!swi_fits(w) || down->k != inter) return -1;
    /* SwiGLU can write down_proj's activations in the layout its kernel
     * reads when both run the active table and a row needs no padding:
     * down's GEMM then skips its conversion pass over the [m, inter] rows
     * (which, made by both threads column group by column group, it read
     * and wrote half across cores) */
    const w8_kern_table *pt = active(), *dt = table_for(down->isa);
    int prep = pt->swiglu_prep && dt == pt && dt->qprep && dt->qkpad(inter) == (size_t)inter;
    prod p = { .kind = PR_NORM, .x = x, .res = res, .a = g, .b = b, .k = k, .ldx = ldx,
               .eps = eps, .xq = xq, .ldq = ldq, .scale = scale, .offset = offset };
    swi_epi se = { .inter = inter, .xq = xq2, .ldq = ldq2, .scale = scale2, .offset = offset2,
                   .prep = prep };
    gemm_i8(w, m, xq, ldq, NULL, 0, NULL, NULL, &p, &se, 0);
    gemm_i8(down, m, xq2, ldq2, y2, ldy2, NULL, NULL, NULL, NULL, prep);
    return 0;
}

void w8_swiglu_gemm_i8(int m, int n, const float *gate, const float *up, size_t ld_in,
                       float *out, size_t ld_out, int8_t *xq, size_t ldq, float scale,
                       int offset, const w8_qmat *w, float *y, size_t ldy) {
    prod p = { .kind = PR_SWIGLU, .a = gate, .b = up, .k = n, .ldx = ld_in, .out = out,
               .ldout = ld_out, .xq = xq, .ldq = ldq, .scale = scale, .offset = offset };
    gemm_i8(w, m, xq, ldq, y, ldy, NULL, NULL, &p, NULL, 0);
}

void w8_quant_gemm_i8(const float *x, int m, int k, size_t ldx, float scale, int offset,
                      int8_t *xq, size_t ldq, const w8_qmat *w, float *y, size_t ldy) {
    prod p = { .kind = PR_QUANT, .xc = x, .k = k, .ldx = ldx, .xq = xq,
               .ldq = ldq, .scale = scale, .offset = offset };
    gemm_i8(w, m, xq, ldq, y, ldy, NULL, NULL, &p, NULL, 0);
}

void w8_gemm_i8_dyn(const w8_qmat *w, int m, const float *x, size_t ldx, int8_t *xq, float *y,
                    size_t ldy, const float *bias) {
    if (m <= 0 || w->n <= 0) return;
    size_t k = (size_t)w->k;
    if (!xq) xq = scratch(SLOT_DYNQ, (size_t)m * k);
    float *rs = scratch(SLOT_DYNS, (size_t)m * sizeof(float));
    /* the rows are quantized in the GEMM's own parallel region (one
     * fork/join); every tile reads its rows' scales after the barrier */
    prod p = { .kind = PR_QDYN, .xc = x, .rs = rs, .k = w->k, .ldx = ldx, .xq = xq, .ldq = k };
    gemm_i8(w, m, xq, k, y, ldy, rs, bias, &p, NULL, 0);
}

void w8_rmsnorm_gemm_i8_dyn(float *x, const float *res, int m, int k, size_t ldx,
                            const float *g, const float *b, float eps, float *xn, size_t ldxn,
                            int8_t *xq, const w8_qmat *w, float *y, size_t ldy,
                            const float *bias) {
    if (m <= 0 || w->n <= 0) return;
    if (!xq) xq = scratch(SLOT_DYNQ, (size_t)m * (size_t)k);
    float *rs = scratch(SLOT_DYNS, (size_t)m * sizeof(float));
    prod p = { .kind = PR_NORM_QDYN, .x = x, .res = res, .a = g, .b = b, .k = k, .ldx = ldx,
               .eps = eps, .out = xn, .ldout = ldxn, .rs = rs, .xq = xq, .ldq = (size_t)k };
    gemm_i8(w, m, xq, (size_t)k, y, ldy, rs, bias, &p, NULL, 0);
}

/* ------------------------------------------------- weight quantization */

int w8_wquant_scale(const float *w, int k, float *ws) {
    float amax = 0;
    for (int j = 0; j < k; j++) {
        float a = fabsf(w[j]);
        if (!(a <= FLT_MAX)) return -1;
        if (a > amax) amax = a;
    }
    float s = amax / 127.0f;
    *ws = s < W8_WSCALE_EPS ? W8_WSCALE_EPS : s;
    return 0;
}

int32_t w8_wquant_row(const float *w, int k, float ws, int8_t *q) {
    /* Clamp, then round half to even by adding and subtracting 1.5 * 2^23
     * (exact for |v| <= 128 in the default rounding mode): the same result as
     * nearbyintf, which baseline x86-64 cannot inline, and the loop vectorizes.
     * Clamping first is equivalent because the bounds are integers. */
    const float magic = 12582912.0f;
    int32_t sum = 0;
    for (int j = 0; j < k; j++) {
        float v = w[j] / ws;
        v = v > 127.0f ? 127.0f : v;
        v = v < -128.0f ? -128.0f : v;
        float t = v + magic;
        int8_t iv = (int8_t)(int)(t - magic);
        q[j] = iv;
        sum += iv;
    }
    return sum;
}

/* ------------------------------------------------- activation quantization */

void w8_quant_rows(const float *x, int m, int k, size_t ldx, float scale, int offset, int8_t *xq,
                   size_t ldq) {
    const w8_kern_table *t = active();
    int nt = threads_for((double)m * k / 4);
    if (nt > m) nt = m;
    if (nt <= 1) { /* no parallel region at all: even an inactive one allocates a team */
        for (int i = 0; i < m; i++)
            t->quant_rows(x + (size_t)i * ldx, 1, k, ldx, scale, offset, xq + (size_t)i * ldq, ldq);
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int i = 0; i < m; i++)
        t->quant_rows(x + (size_t)i * ldx, 1, k, ldx, scale, offset, xq + (size_t)i * ldq, ldq);
}

void w8_quant_rows_dyn(const float *x, int m, int k, size_t ldx, int8_t *xq, size_t ldq,
                       float *s) {
    const w8_kern_table *t = active();
    int nt = threads_for((double)m * k / 2);
    if (nt > m) nt = m;
    if (nt <= 1) {
        for (int i = 0; i < m; i++) t->quant_dyn(x + (size_t)i * ldx, k, xq + (size_t)i * ldq, &s[i]);
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int i = 0; i < m; i++) t->quant_dyn(x + (size_t)i * ldx, k, xq + (size_t)i * ldq, &s[i]);
}

void w8_rmsnorm_rows(const float *x, int m, int k, size_t ldx, const float *g, const float *b,
                     float eps, float *y, size_t ldy, int8_t *xq, size_t ldq, float scale,
                     int offset) {
    const w8_kern_table *t = active();
    int nt = threads_for((double)m * k / 4);
    if (nt > m) nt = m;
    if (nt <= 1) {
        for (int i = 0; i < m; i++)
            t->rmsnorm_rows(x + (size_t)i * ldx, 1, k, ldx, g, b, eps,
                            y ? y + (size_t)i * ldy : NULL, ldy, xq ? xq + (size_t)i * ldq : NULL,
                            ldq, scale, offset);
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int i = 0; i < m; i++)
        t->rmsnorm_rows(x + (size_t)i * ldx, 1, k, ldx, g, b, eps, y ? y + (size_t)i * ldy : NULL,
                        ldy, xq ? xq + (size_t)i * ldq : NULL, ldq, scale, offset);
}

/* ----------------------------------------------------------------- float */

/* The source is the file's mapping, where a tensor need not be aligned to
 * its element size (safetensors does not require it; an odd-sized int8
 * tensor before it shifts it): elements are read with memcpy. */
static inline float ld_f32(const unsigned char *p, size_t i) {
    float v;
    memcpy(&v, p + 4 * i, 4);
    return v;
}

static inline uint16_t ld_u16(const unsigned char *p, size_t i) {
    uint16_t v;
    memcpy(&v, p + 2 * i, 2);
    return v;
}

static void pack_block(const w8_fmat *m, size_t b, unsigned char *dst) {
    size_t k = (size_t)m->k, steps = w8_fp_steps(m);
    memset(dst, 0, w8_fmat_block_bytes(m));
    for (size_t c = 0; c < W8_FP_NB; c++) {
        size_t j = b * W8_FP_NB + c;
        if (j >= (size_t)m->n) break;
        const unsigned char *src = (const unsigned char *)m->w + j * k * w8_dtype_size(m->dtype);
        if (m->dtype == W8_F32) {
            float *d = (float *)dst + c;
            for (size_t s = 0; s < steps; s++) d[s * W8_FP_NB] = ld_f32(src, s);
        } else if (m->dtype == W8_F16) {
            uint16_t *d = (uint16_t *)dst + c;
            for (size_t s = 0; s < steps; s++) d[s * W8_FP_NB] = ld_u16(src, s);
        } else {
            /* denormal weights become signed zeros: the BF16 dot product
             * reads them so, and every ISA must agree with it */
            uint32_t *d = (uint32_t *)dst + c;
            for (size_t s = 0; s < steps; s++) {
                uint32_t lo = ld_u16(src, 2 * s), hi = 2 * s + 1 < k ? ld_u16(src, 2 * s + 1) : 0;
                if (!(lo & 0x7f80u)) lo &= 0x8000u;
                if (!(hi & 0x7f80u)) hi &= 0x8000u;
                d[s * W8_FP_NB] = lo | hi << 16;
            }
        }
    }
}

void w8_fmat_pack(w8_fmat *m, void (*done)(const void *src, size_t bytes, void *ud), void *ud) {
    size_t nblk = ((size_t)m->n + W8_FP_NB - 1) / W8_FP_NB, bb = w8_fmat_block_bytes(m);
    size_t row_bytes = (size_t)m->k * w8_dtype_size(m->dtype);
    m->packed_bytes = nblk * bb;
    unsigned char *p = w8_xalloc_aligned(m->packed_bytes ? m->packed_bytes : 64);
    int nt = threads_for((double)m->packed_bytes);
    /* slices of ~32 MB of source, for the caller's done() */
    size_t per = ((size_t)32 << 20) / (bb ? bb : 1);
    if (per < 1) per = 1;
    for (size_t b0 = 0; b0 < nblk; b0 += per) {
        size_t b1 = b0 + per < nblk ? b0 + per : nblk;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(dynamic, 4)
        for (long b = (long)b0; b < (long)b1; b++) pack_block(m, (size_t)b, p + (size_t)b * bb);
        if (done) {
            size_t r0 = b0 * W8_FP_NB, r1 = b1 * W8_FP_NB < (size_t)m->n ? b1 * W8_FP_NB : (size_t)m->n;
            done((const unsigned char *)m->w + r0 * row_bytes, (r1 - r0) * row_bytes, ud);
        }
    }
    m->packed = p;
}

void w8_fmat_free(w8_fmat *m) {
    if (!m) return;
    free(m->packed);
    m->packed = NULL;
    m->packed_bytes = 0;
}

/* 64-channel blocks a one-row item of a packed float GEMM takes at once:
 * the AVX-512 kernel streams up to four side by side (PQB) */
enum { FP_RUN = 4 };

/* 32-bit words per row of BF16 activations that the ISA's pprep writes */
static size_t pprep_words(const w8_kern_table *t, const w8_fmat *w) {
    return t->pxwords ? t->pxwords(w) : w8_fp_steps(w);
}

void w8_gemm_f(const w8_fmat *w, int m, const float *x, size_t ldx, float *y, size_t ldy,
               const float *bias) {
    const w8_kern_table *t = active();
    int n = w->n;
    if (m <= 0 || n <= 0) return;
    int nt = threads_for((double)m * n * w->k);
    if (w->packed) {
        /* BF16: the activations become BF16 pair words once, for all blocks
         * (a few rows here; the whole team for a prompt, like qprep) */
        int nblk = (n + W8_FP_NB - 1) / W8_FP_NB;
        if (nt > nblk) nt = nblk;
        uint32_t *xb = NULL;
        size_t ldxb = 0;
        if (w->dtype == W8_BF16) {
            ldxb = pprep_words(t, w);
            xb = scratch(SLOT_PPREP, (size_t)m * ldxb * sizeof(uint32_t));
            if (m <= 16 || nt == 1)
                for (int i = 0; i < m; i++) t->pprep(x + (size_t)i * ldx, w->k, xb + (size_t)i * ldxb);
        }
        /* items of 64-channel blocks: for prefill one block, a column panel
         * the kernel walks in k blocks; for one row (a prompt's logits)
         * FP_RUN blocks, slices of the stream that the one-row kernel reads
         * side by side, as the decode team's items (one block at a time
         * streamed the 0.5B lm_head at ~20 GB/s of ~27) */
        int run = m == 1 ? FP_RUN : 1, nitems = (nblk + run - 1) / run;
#pragma omp parallel num_threads(nt) if (nt > 1)
        {
            if (xb && m > 16 && nt > 1) {
                int tid = omp_get_thread_num(), nth = omp_get_num_threads();
                for (int i = tid; i < m; i += nth)
                    t->pprep(x + (size_t)i * ldx, w->k, xb + (size_t)i * ldxb);
#pragma omp barrier
            }
#pragma omp for schedule(dynamic, 1) nowait
            for (int it = 0; it < nitems; it++) {
                int n0 = it * run * W8_FP_NB, n1 = n0 + run * W8_FP_NB < n ? n0 + run * W8_FP_NB : n;
                t->pgemm(w, m, x, ldx, xb, ldxb, y, ldy, bias, n0, n1);
            }
        }
        return;
    }
    int direct = m <= 4 || !t->fgemm;
    /* direct: 64-channel items (a few us of streaming each); packed: the
     * kernel's column group */
    int nb = direct ? 64 : t->fnblock;
    int ngroups = (n + nb - 1) / nb;
    if (nt > ngroups) nt = ngroups;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        float *sc = direct ? NULL : scratch(SLOT_FPACK, t->fscratch * sizeof(float));
#pragma omp for schedule(dynamic, 1) nowait
        for (int g = 0; g < ngroups; g++) {
            int n0 = g * nb, n1 = n0 + nb < n ? n0 + nb : n;
            if (direct) {
                for (int i = 0; i < m; i += 4)
                    t->fgemv(w, i, i + 4 < m ? i + 4 : m, x, ldx, y, ldy, bias, n0, n1);
            } else {
                t->fgemm(w, m, x, ldx, y, ldy, bias, n0, n1, sc);
            }
        }
    }
}

/* ------------------------------------------------------------- attention */

void w8_attn_scores(const float *q, const float *k, size_t ldk, int n, int d, float scale,
                    float *s) {
    if (n > 0) active()->attn_scores(q, k, ldk, n, d, scale, s);
}

void w8_attn_scores_n(const float *q, size_t ldq, int nr, int nh, const float *k, size_t ldk,
                      const int *nk, int d, float scale, float *s, size_t lds) {
    const w8_kern_table *t = active();
    if (nr <= 0 || nh <= 0) return;
    if (t->attn_scores_n) {
        t->attn_scores_n(q, ldq, nr, nh, k, ldk, nk, d, scale, s, lds);
        return;
    }
    for (int i = 0; i < nr; i++)
        for (int h = 0; nk[i] > 0 && h < nh; h++)
            t->attn_scores(q + (size_t)i * ldq + (size_t)h * d, k, ldk, nk[i], d, scale,
                           s + ((size_t)i * nh + h) * lds);
}

void w8_attn_accum(const float *p, const float *v, size_t ldv, int n, int d, float *out) {
    if (n > 0) active()->attn_accum(p, v, ldv, n, d, out);
}

void w8_attn_accum_n(const float *p, size_t ldp, int nq, const float *v, size_t ldv, int n,
                     int d, float *out, size_t ldo) {
    const w8_kern_table *t = active();
    if (n <= 0 || nq <= 0) return;
    if (t->attn_accum_n) {
        t->attn_accum_n(p, ldp, nq, v, ldv, n, d, out, ldo);
        return;
    }
    for (int q = 0; q < nq; q++) t->attn_accum(p + (size_t)q * ldp, v, ldv, n, d, out + (size_t)q * ldo);
}

/* ------------------------------------------------------------ elementwise */

void w8_swiglu_rows(int m, int n, const float *gate, const float *up, size_t ld_in, float *out,
                    size_t ld_out, int8_t *xq, size_t ldq, float scale, int offset) {
    const w8_kern_table *t = active();
    /* an exp costs ~10 multiply-adds: worth threads from a few rows on */
    int nt = threads_for((double)m * n * 8);
    if (nt > m) nt = m;
    if (nt <= 1) {
        for (int i = 0; i < m; i++)
            t->swiglu(gate + (size_t)i * ld_in, up + (size_t)i * ld_in, n, out + (size_t)i * ld_out,
                      xq ? xq + (size_t)i * ldq : NULL, scale, offset);
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int i = 0; i < m; i++)
        t->swiglu(gate + (size_t)i * ld_in, up + (size_t)i * ld_in, n, out + (size_t)i * ld_out,
                  xq ? xq + (size_t)i * ldq : NULL, scale, offset);
}

void w8_softmax(float *x, int n) {
    if (n > 0) active()->softmax(x, n);
}

/* ------------------------------------------------------------ decode team
 * See kernels.h.  The barrier spins for a short while (the other thread of
 * a decode step usually arrives within microseconds: the GEMM items are a
 * few microseconds each) and then sleeps on a futex.  libgomp's own waits
 * spin for milliseconds, which on a host with more runnable threads than
 * cores burns the time slice the late thread needs. */

/* one cache line per counter: a thread taking items of one loop does not
 * slow the threads still in the previous one */
enum { TEAM_PAD = 16 };

struct w8_team {
    unsigned arrived; /* threads at the current barrier */
    unsigned gen;     /* barrier generation, the futex word */
    int sleepers;     /* threads asleep on gen */
    int cap;          /* loops that ctr holds */
    int *ctr;         /* [cap * TEAM_PAD] next item of each loop */
    int nseq;         /* threads that seq holds */
    int *seq;         /* [nseq * TEAM_PAD] loops each thread has started */
    int rcap, rstride; /* loops and words per loop that rng holds */
    uint64_t *rng;    /* [rcap * rstride] items each thread took from the front (low
                       * half) and that others took from the back of its range (high) */
};

w8_team *w8_team_new(void) { return w8_xcalloc(1, sizeof(w8_team)); }

void w8_team_free(w8_team *t) {
    if (!t) return;
    free(t->ctr);
    free(t->seq);
    free(t->rng);
    free(t);
}

void w8_team_reset(w8_team *t, int nth, int n_loops) {
    if (n_loops > t->cap) {
        free(t->ctr);
        t->ctr = w8_xalloc_aligned((size_t)n_loops * TEAM_PAD * sizeof(int));
        t->cap = n_loops;
    }
    if (nth > t->nseq) {
        free(t->seq);
        t->seq = w8_xalloc_aligned((size_t)nth * TEAM_PAD * sizeof(int));
        t->nseq = nth;
    }
    int rs = (nth + 7) / 8 * 8;
    if (n_loops > t->rcap || rs > t->rstride) {
        free(t->rng);
        t->rng = w8_xalloc_aligned((size_t)n_loops * rs * sizeof(uint64_t));
        t->rcap = n_loops;
        t->rstride = rs;
    }
    memset(t->rng, 0, (size_t)t->rcap * t->rstride * sizeof(uint64_t));
    memset(t->ctr, 0, (size_t)t->cap * TEAM_PAD * sizeof(int));
    memset(t->seq, 0, (size_t)t->nseq * TEAM_PAD * sizeof(int));
    t->arrived = 0;
    t->sleepers = 0;
}

/* ~20-60 us of pause loops, depending on the clock: longer than the usual
 * imbalance, short next to a scheduler time slice */
enum { TEAM_SPIN = 1 << 16 };

/* Lines prefetched per round of a waiting thread's spin: a pause takes
 * ~140 cycles on recent Intel cores, one line per round would be a trickle. */
enum { TEAM_PF_BURST = 8 };

static void barrier(w8_team *t, const char *pf, size_t lines) {
    unsigned nth = (unsigned)omp_get_num_threads();
    unsigned g = __atomic_load_n(&t->gen, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&t->arrived, 1, __ATOMIC_ACQ_REL) == nth) {
        /* last one in: reset the count before the others can see the new
         * generation (they may reach the next barrier right away) */
        __atomic_store_n(&t->arrived, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&t->gen, g + 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&t->sleepers, __ATOMIC_SEQ_CST))
            syscall(SYS_futex, &t->gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
        return;
    }
    unsigned long long t0 = __builtin_ia32_rdtsc();
    while (__atomic_load_n(&t->gen, __ATOMIC_ACQUIRE) == g) {
        if (__builtin_ia32_rdtsc() - t0 > TEAM_SPIN) {
            /* seq_cst on both sides: either the last thread sees a sleeper
             * and wakes it, or this thread sees the new generation */
            __atomic_add_fetch(&t->sleepers, 1, __ATOMIC_SEQ_CST);
            while (__atomic_load_n(&t->gen, __ATOMIC_SEQ_CST) == g)
                syscall(SYS_futex, &t->gen, FUTEX_WAIT_PRIVATE, g, NULL, NULL, 0);
            __atomic_sub_fetch(&t->sleepers, 1, __ATOMIC_SEQ_CST);
            return;
        }
        if (lines) { /* the wait is memory time the next GEMM can use */
            for (int i = 0; i < TEAM_PF_BURST && lines; i++, lines--, pf += 64)
                __builtin_prefetch(pf, 0, 2);
            continue;
        }
        __builtin_ia32_pause();
    }
}

void w8_team_barrier(w8_team *t) { barrier(t, NULL, 0); }

/* at most this much of the next matrix is fetched while waiting: a few
 * barrier waits' worth at the read bandwidth, well inside L2 */
#define TEAM_PF_MAX ((size_t)256 << 10)

void w8_team_barrier_next(w8_team *t, const void *w, size_t bytes) {
    size_t nth = (size_t)omp_get_num_threads(), tid = (size_t)omp_get_thread_num();
    size_t a = bytes * tid / nth, e = bytes * (tid + 1) / nth;
    if (e - a > TEAM_PF_MAX) e = a + TEAM_PF_MAX;
    barrier(t, w ? (const char *)w + a : NULL, w ? (e - a) / 64 : 0);
}

/* A loop past the counters reset() made room for is the caller's miscount
 * (forward.c sizes them per layer): stop loudly rather than hand out items
 * twice. */
int w8_team_loop(w8_team *t) {
    int *s = &t->seq[(size_t)omp_get_thread_num() * TEAM_PAD];
    if (*s >= t->cap) {
        fprintf(stderr, "w8a8: internal error: decode team ran more than %d loops\n", t->cap);
        abort();
    }
    return (*s)++;
}

int w8_team_take(w8_team *t, int loop) {
    return __atomic_fetch_add(&t->ctr[(size_t)loop * TEAM_PAD], 1, __ATOMIC_RELAXED);
}

static int range_take_run(w8_team *t, int loop, int n, int run, int *cnt) {
    return range_next(t->rng + (size_t)loop * t->rstride, n, run, cnt);
}

static int range_take(w8_team *t, int loop, int n) {
    int cnt;
    return range_take_run(t, loop, n, 1, &cnt);
}

/* The team GEMMs: each thread converts the activations into its own scratch
 * (a few rows: cheaper than one more barrier), then takes column items with
 * range_take(), the same items and kernels as the one-call GEMMs above
 * (hence the same bits; only which thread computes an item changes). */
static void team_gemm_i8(w8_team *tm, const w8_qmat *w, int m, const int8_t *x, size_t ldx,
                         float *y, size_t ldy, const float *rs, const float *bias,
                         const swi_epi *se) {
    const w8_kern_table *t = table_for(w->isa);
    int loop = w8_team_loop(tm), n = w->n, k = w->k;
    if (m <= 0 || n <= 0) return;
    const void *xs = x;
    size_t ldxs = ldx;
    if (t->qprep) {
        size_t kp = t->qkpad(k);
        uint8_t *buf = scratch(SLOT_QPREP, (size_t)m * kp);
        for (int i = 0; i < m; i++) t->qprep(x + (size_t)i * ldx, k, buf + (size_t)i * kp);
        xs = buf;
        ldxs = kp;
    }
    int nb = t->qnblock, mb = t->qmblock, ncol = se ? se->inter : n;
    int ngroups = (ncol + nb - 1) / nb, mchunks = (m + mb - 1) / mb;
    for (int it; (it = range_take(tm, loop, ngroups * mchunks)) < ngroups * mchunks;) {
        int g = it / mchunks, c = it % mchunks;
        int i0 = c * mb, i1 = i0 + mb < m ? i0 + mb : m;
        int n0 = g * nb, n1 = n0 + nb < ncol ? n0 + nb : ncol;
        if (se) {
            swi_tile(t, active(), w, se, xs, ldxs, i0, i1, n0, n1);
            continue;
        }
        t->qgemm(w, i0, i1, xs, ldxs, y, ldy, n0, n1, 0);
        if (rs) dyn_tile(y, ldy, i0, i1, n0, n1, rs, bias);
    }
}

void w8_team_gemm_i8(w8_team *tm, const w8_qmat *w, int m, const int8_t *x, size_t ldx,
                     float *y, size_t ldy) {
    team_gemm_i8(tm, w, m, x, ldx, y, ldy, NULL, NULL, NULL);
}

int w8_team_gemm_i8_swiglu(w8_team *tm, const w8_qmat *w, int m, const int8_t *x, size_t ldx,
                           float *out, size_t ld_out, int8_t *xq, size_t ldq, float scale,
                           int offset) {
    if (!swi_fits(w)) return -1;
    swi_epi se = { .inter = w->n / 2, .out = out, .ld_out = ld_out, .xq = xq, .ldq = ldq,
                   .scale = scale, .offset = offset };
    team_gemm_i8(tm, w, m, x, ldx, NULL, 0, NULL, NULL, &se);
    return 0;
}

void w8_team_gemm_i8_dyn(w8_team *tm, const w8_qmat *w, int m, const float *x, size_t ldx,
                         float *y, size_t ldy, const float *bias) {
    size_t k = (size_t)w->k;
    int8_t *xq = scratch(SLOT_DYNQ, (size_t)(m > 0 ? m : 1) * k);
    float *rs = scratch(SLOT_DYNS, (size_t)(m > 0 ? m : 1) * sizeof(float));
    if (m > 0) w8_quant_rows_dyn(x, m, w->k, ldx, xq, k, rs);
    team_gemm_i8(tm, w, m, xq, k, y, ldy, rs, bias, NULL);
}

void w8_team_gemm_f(w8_team *tm, const w8_fmat *w, int m, const float *x, size_t ldx, float *y,
                    size_t ldy, const float *bias) {
    const w8_kern_table *t = active();
    int loop = w8_team_loop(tm), n = w->n;
    if (m <= 0 || n <= 0) return;
    if (w->packed) {
        uint32_t *xb = NULL;
        size_t ldxb = 0;
        if (w->dtype == W8_BF16) {
            ldxb = pprep_words(t, w);
            xb = scratch(SLOT_PPREP, (size_t)m * ldxb * sizeof(uint32_t));
            for (int i = 0; i < m; i++) t->pprep(x + (size_t)i * ldx, w->k, xb + (size_t)i * ldxb);
        }
        /* a few blocks at once: one-row kernels may stream them side by side */
        int nblk = (n + W8_FP_NB - 1) / W8_FP_NB, cnt;
        for (int b; (b = range_take_run(tm, loop, nblk, FP_RUN, &cnt)) < nblk;) {
            int n0 = b * W8_FP_NB, n1 = n0 + cnt * W8_FP_NB < n ? n0 + cnt * W8_FP_NB : n;
            t->pgemm(w, m, x, ldx, xb, ldxb, y, ldy, bias, n0, n1);
        }
        return;
    }
    /* in place, 64-channel items, 4 rows at a time: w8_gemm_f's m <= 4 path */
    int ngroups = (n + 63) / 64;
    for (int g; (g = range_take(tm, loop, ngroups)) < ngroups;) {
        int n0 = g * 64, n1 = n0 + 64 < n ? n0 + 64 : n;
        for (int i = 0; i < m; i += 4)
            t->fgemv(w, i, i + 4 < m ? i + 4 : m, x, ldx, y, ldy, bias, n0, n1);
    }
}

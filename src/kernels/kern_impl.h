/*
 * kern_impl.h - private contract between the dispatcher (kernels.c) and the
 * per-ISA kernel files (kernels_ref.c, kernels_avx2.c, kernels_avx512.c).
 *
 * Each ISA file fills one w8_kern_table.  The dispatcher picks the table once,
 * splits the work of the GEMM entry points over OpenMP threads, and calls the
 * table's single-threaded pieces on disjoint ranges.  Nothing here is visible
 * outside src/kernels/.
 *
 * int8 GEMM pieces:
 *   qpack   packs W into the ISA's layout (sets packed, bias, scale, isa).
 *   qprep   converts one activation row into the layout the kernel reads
 *           (e.g. xq ^ 0x80 as u8, zero-padded to qkpad(k) bytes); NULL when
 *           the kernel reads the caller's int8 rows directly.
 *   qgemm   rows [i0, i1) x columns [n0, n1) (n0 a multiple of qnblock); output
 *           (i, j) goes to y[i * ldy + j - yc] (yc = 0: y is the whole matrix;
 *           else y can be a small tile that starts at column yc).
 * float GEMM pieces:
 *   fgemv   rows [i0, i1) with i1 - i0 <= 4, columns [n0, n1), reading W in
 *           place (the decode path: streams W once).
 *   fgemm   all m rows, columns [n0, n1) (n0 a multiple of fnblock); may use
 *           scratch (fscratch floats, per thread) to repack W.  Must sum
 *           each output in fgemv's order (w8_gemm_f is row-invariant).
 *   pgemm   rows [0, m) x columns [n0, n1) of a packed matrix (n0 a
 *           multiple of W8_FP_NB): one FMA chain per output over k in
 *           order, then + bias (bit-identical to the reference's fmaf).
 *           BF16 reads the activations as pair words xb (pprep: word s =
 *           bf16(x[2s]) | bf16(x[2s + 1]) << 16, zero past k), F32/F16
 *           read x.
 */
#ifndef W8_KERN_IMPL_H
#define W8_KERN_IMPL_H

#include <math.h>
#include <string.h>

#include "ktypes.h"

typedef struct {
    w8_isa isa;
    /* int8 */
    void (*qpack)(w8_qmat *m, const int8_t *w, int n, int k, const int32_t *quant_bias,
                  const float *deq_scale);
    void (*qprep)(const int8_t *x, int k, uint8_t *dst); /* dst: qkpad(k) bytes */
    size_t (*qkpad)(int k);
    int qnblock;  /* column granularity of qgemm's n0 */
    int qmblock;  /* preferred row chunk for work splitting */
    void (*qgemm)(const w8_qmat *w, int i0, int i1, const void *x, size_t ldx, float *y,
                  size_t ldy, int n0, int n1, int yc);
    /* activation quantization */
    void (*quant_rows)(const float *x, int m, int k, size_t ldx, float scale, int offset,
                       int8_t *xq, size_t ldq);
    void (*rmsnorm_rows)(const float *x, int m, int k, size_t ldx, const float *g,
                         const float *b, float eps, float *y, size_t ldy, int8_t *xq,
                         size_t ldq, float scale, int offset);
    /* optional (NULL: x += res, then rmsnorm_rows): one row's residual add
     * and rmsnorm_rows on the sum (y and xq as there, no row strides), with
     * the same bits in fewer passes over x */
    void (*add_rmsnorm)(float *x, const float *res, int k, const float *g, const float *b,
                        float eps, float *y, int8_t *xq, float scale, int offset);
    /* one row of w8_quant_rows_dyn: *s = amax / 127, xq = w8_kern_qd1(x, *s) */
    void (*quant_dyn)(const float *x, int k, int8_t *xq, float *s);
    /* float */
    void (*fgemv)(const w8_fmat *w, int i0, int i1, const float *x, size_t ldx, float *y,
                  size_t ldy, const float *bias, int n0, int n1);
    void (*fgemm)(const w8_fmat *w, int m, const float *x, size_t ldx, float *y, size_t ldy,
                  const float *bias, int n0, int n1, float *scratch);
    int fnblock;
    size_t fscratch; /* floats of scratch per thread for fgemm */
    void (*pgemm)(const w8_fmat *w, int m, const float *x, size_t ldx, const uint32_t *xb,
                  size_t ldxb, float *y, size_t ldy, const float *bias, int n0, int n1);
    void (*pprep)(const float *x, int k, uint32_t *dst); /* ceil(k / 2) words */
    /* optional: 32-bit words per row that pprep writes (NULL: ceil(k / 2)) */
    size_t (*pxwords)(const w8_fmat *w);
    /* attention */
    void (*attn_scores)(const float *q, const float *k, size_t ldk, int n, int d, float scale,
                        float *s);
    void (*attn_accum)(const float *p, const float *v, size_t ldv, int n, int d, float *out);
    /* optional (NULL: attn_scores per query); same bits as attn_scores */
    void (*attn_scores_n)(const float *q, size_t ldq, int nr, int nh, const float *k,
                          size_t ldk, const int *nk, int d, float scale, float *s, size_t lds);
    /* optional (NULL: attn_accum per query); same bits as attn_accum */
    void (*attn_accum_n)(const float *p, size_t ldp, int nq, const float *v, size_t ldv, int n,
                         int d, float *out, size_t ldo);
    /* elementwise (one row) */
    void (*swiglu)(const float *g, const float *u, int n, float *out, int8_t *xq, float scale,
                   int offset);
    /* optional: swiglu whose quantized row comes out as this table's qprep
     * would leave it (for an n with qkpad(n) == n), so that an int8 GEMM
     * reads it without its own conversion pass; out may be NULL */
    void (*swiglu_prep)(const float *g, const float *u, int n, float *out, uint8_t *xp,
                        float scale, int offset);
    void (*softmax)(float *x, int n);
} w8_kern_table;

extern const w8_kern_table w8_kern_ref;
extern const w8_kern_table w8_kern_avx2;
extern const w8_kern_table w8_kern_avx512;


/* The sum of squares in the order every ISA must use so that RMSNorm is bit
 * exact across ISAs: 16 lane partial sums (lane l adds x[i]^2 for i = l mod 16,
 * in increasing i, multiply then add, no FMA), then a fixed halving tree
 * (l + 8, l + 4, l + 2, l + 1).  The reference implements it in plain C. */
float w8_ref_sumsq(const float *x, int k);

/* Everything after the sum of squares, shared by all ISAs' scalar tails:
 * the reciprocal RMS, and one element's normalize + quantize. */
static inline float w8_kern_rms_inv(float ss, int k, float eps) {
    return 1.0f / sqrtf(ss / (float)k + eps);
}

/* clamp(round_half_even(v / scale) + offset, -128, 127) done in float with the
 * comparison order of SIMD max/min, so NaN maps to -128 on every ISA. */
static inline int8_t w8_kern_q1(float v, float scale, float offset) {
    float r = nearbyintf(v / scale) + offset;
    r = r > -128.0f ? r : -128.0f;
    r = r < 127.0f ? r : 127.0f;
    return (int8_t)r;
}

/* Dynamic (per-row) quantization, the W8A8_DYNAMIC spec (FORMAT.md):
 * amax = max |x| with `a > m ? a : m` from +0 (NaN never wins; SIMD max_ps
 * with the running max as second operand does the same, and a max of
 * non-NaN absolute values is the same in any order), s = amax / 127 (a
 * true division), xq = clamp(round_half_even(x / s), -127, 127) with NaN
 * to -127 (max/min operand order as in w8_kern_q1).  amax = 0 is defined
 * as s = 0 and xq = 0 (no division by zero). */
static inline float w8_kern_amax1(float m, float v) {
    float a = fabsf(v);
    return a > m ? a : m;
}
static inline int8_t w8_kern_qd1(float v, float s) {
    float r = nearbyintf(v / s);
    r = r > -127.0f ? r : -127.0f;
    r = r < 127.0f ? r : 127.0f;
    return (int8_t)r;
}

/* The exp of the SIMD paths (exp8 in kernels_avx2.c, exp16 in
 * kernels_avx512.c), one set of constants: n = round(x log2(e)),
 * r = x - n ln2 with ln2 in two parts (HI exact in few bits, so n * HI is
 * exact), then Cephes' degree-6 polynomial for exp(r) on |r| <= ln2 / 2:
 * 1 + r + r^2 (P5 + r (P4 + r (P3 + r (P2 + r (P1 + r P0))))). */
#define W8_EXP_LOG2E 1.44269504088896341f
#define W8_EXP_LN2_HI 0.693359375f
#define W8_EXP_LN2_LO -2.12194440e-4f
#define W8_EXP_P0 1.9875691500e-4f
#define W8_EXP_P1 1.3981999507e-3f
#define W8_EXP_P2 8.3334519073e-3f
#define W8_EXP_P3 4.1665795894e-2f
#define W8_EXP_P4 1.6666665459e-1f
#define W8_EXP_P5 5.0000001201e-1f

/* f32 -> BF16 bits as the packed BF16 GEMM defines it: round to nearest
 * even, NaN kept quiet, denormals (and zero) to a signed zero. */
static inline uint32_t w8_kern_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
    if ((u & 0x7f800000u) == 0) return (u >> 16) & 0x8000u;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

/* Packed float layout helpers (kernels.h): values per k-step, k-steps per
 * block, and the byte size of one step of a block. */
static inline int w8_fp_unit(w8_dtype dt) { return dt == W8_BF16 ? 2 : 1; }
static inline size_t w8_fp_steps(const w8_fmat *m) {
    int u = w8_fp_unit(m->dtype);
    return ((size_t)m->k + (size_t)u - 1) / (size_t)u;
}
static inline size_t w8_fp_step_bytes(w8_dtype dt) {
    return (size_t)W8_FP_NB * (dt == W8_F16 ? 2 : 4);
}

/* The k walk shared by the F32/F16 packed float tiles, steps [s0, s1) of
 * one block at blk (step bytes SB): HALF(t) does the FMAs of element t with
 * the weights at `sp`, the step's address; PF(sp) is the ISA's prefetch
 * hook.  (BF16 has its own tiles: pair steps, odd element first.) */
#define W8_FP_WALK(blk, SB, s0, s1, HALF, PF)                                            \
    for (size_t s_ = (s0); s_ < (s1); s_++) {                                             \
        const unsigned char *sp = (blk) + s_ * (SB);                                      \
        PF(sp);                                                                           \
        HALF(s_)                                                                          \
    }

#endif

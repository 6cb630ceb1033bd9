/*
 * kernels.h - the compute kernels, one signature per family.
 *
 * Every family has a portable scalar reference (kernels_ref.c) that is the
 * specification, and fast paths for AVX2 (kernels_avx2.c) and AVX-512 VNNI
 * (kernels_avx512.c), each file built with its own -m flags.  The ISA is
 * chosen once, at first use, from CPUID (capped by the environment variable
 * W8A8_CPU=scalar|avx2|avx512); nothing outside src/kernels/ names an ISA.
 *
 * Threading: the GEMM entry points split their work over OpenMP threads
 * themselves (w8_get_threads()); callers pass whole matrices.
 */
#ifndef W8_KERNELS_H
#define W8_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "cpu.h"
#include "kcore.h"
#include "ktypes.h"

/* The ISA every kernel call uses; fixed at the first call (= w8_isa_detect()). */
w8_isa w8_isa_active(void);
/* Force the active ISA (tests); returns -1 if the CPU cannot run it. */
int w8_isa_force(w8_isa isa);

/* ------------------------------------------------------------------ int8
 * An int8 linear layer W[n, k] packed once at load time into the layout the
 * active kernel wants, with its epilogue constants.  For VNNI the activation
 * is fed as unsigned (xq ^ 0x80 = xq + 128), so pack stores
 * bias[j] = quant_bias[j] - 128 * sum_k W[j, k]: the correction is folded once. */

/* w: row-major [n, k] int8; quant_bias [n]; deq_scale [n] (f32 values). */
void w8_qmat_pack(w8_qmat *m, const int8_t *w, int n, int k, const int32_t *quant_bias,
                  const float *deq_scale);
void w8_qmat_free(w8_qmat *m);

/* y[i, j] = (sum_k x[i, k] * W[j, k] + quant_bias[j]) * deq_scale[j]
 * for i < m, j < n; x int8 with row stride ldx, y f32 with row stride ldy. */
void w8_gemm_i8(const w8_qmat *w, int m, const int8_t *x, size_t ldx, float *y, size_t ldy);

/* The producers of an int8 GEMM's input fused with it: the rows are made
 * (exactly as w8_rmsnorm_rows / w8_swiglu_rows / w8_quant_rows make them,
 * into xq) inside the GEMM's own parallel region, so a prompt pays one
 * fork/join instead of two.  The same bits as the two calls.
 *   w8_rmsnorm_gemm_i8: with res != NULL, x[i] += res[i] first (row stride
 *     ldx for both; x is updated in place, as a residual add before the
 *     norm); no f32 output.  Then y = W(quant(rmsnorm(x))).
 *   w8_swiglu_gemm_i8: out and xq as w8_swiglu_rows, then y = W(xq).
 *   w8_quant_gemm_i8: xq = quant(x), then y = W(xq). */
void w8_rmsnorm_gemm_i8(float *x, const float *res, int m, int k, size_t ldx, const float *g,
                        const float *b, float eps, int8_t *xq, size_t ldq, float scale,
                        int offset, const w8_qmat *w, float *y, size_t ldy);
/* w8_rmsnorm_gemm_i8 over a stacked [gate; up] matrix (w->n = 2 * inter
 * rows, gate first) with SwiGLU run on each output tile while it is in
 * cache: y[:, 0 .. 2 inter) gets w8_gemm_i8's output, then out and xq2 get
 * w8_swiglu_rows(m, inter, y, y + inter, ldy, out, ld_out, xq2, ldq2,
 * scale2, offset2)'s bits.  out == NULL: the SwiGLU output goes over the
 * gate columns of y (ld_out = ldy); xq2 may be NULL; xq2 must not overlap
 * xq.  y == NULL: the gate/up products are not kept (each tile lives in
 * per-thread scratch while SwiGLU reads it, so the [m, 2 inter] f32 rows
 * never go out to memory); out (when not NULL) and xq2 get the same bits.  Returns -1 (and does nothing) where the kernel's column blocks do
 * not split inter evenly: then call the two separately. */
int w8_rmsnorm_gemm_i8_swiglu(float *x, const float *res, int m, int k, size_t ldx,
                              const float *g, const float *b, float eps, int8_t *xq, size_t ldq,
                              float scale, int offset, const w8_qmat *w, float *y, size_t ldy,
                              float *out, size_t ld_out, int8_t *xq2, size_t ldq2, float scale2,
                              int offset2);
/* The MLP of a static int8 down_proj: w8_rmsnorm_gemm_i8_swiglu (y = NULL,
 * out = NULL, xq2 of ldq2 >= inter) and then w8_gemm_i8(down, m, xq2, ldq2,
 * y2, ldy2), with the same bits.  Where the kernel allows (AVX-512, inter a
 * multiple of 4), SwiGLU writes xq2 in down's own activation layout, so that
 * GEMM skips its conversion pass: xq2 then holds q ^ 0x80 rather than q.
 * Returns -1 (and does nothing) where w8_rmsnorm_gemm_i8_swiglu would, or
 * down->k != inter. */
int w8_rmsnorm_gemm_i8_swiglu_down(float *x, const float *res, int m, int k, size_t ldx,
                                   const float *g, const float *b, float eps, int8_t *xq,
                                   size_t ldq, float scale, int offset, const w8_qmat *w,
                                   int8_t *xq2, size_t ldq2, float scale2, int offset2,
                                   const w8_qmat *down, float *y2, size_t ldy2);
void w8_swiglu_gemm_i8(int m, int n, const float *gate, const float *up, size_t ld_in,
                       float *out, size_t ld_out, int8_t *xq, size_t ldq, float scale,
                       int offset, const w8_qmat *w, float *y, size_t ldy);
void w8_quant_gemm_i8(const float *x, int m, int k, size_t ldx, float scale, int offset,
                      int8_t *xq, size_t ldq, const w8_qmat *w, float *y, size_t ldy);
/* W8A8_DYNAMIC's fused producer: with res != NULL x[i] += res[i] first (as
 * w8_rmsnorm_gemm_i8), then xn = rmsnorm(x) in f32 (w8_rmsnorm_rows' bits),
 * then w8_gemm_i8_dyn(w, m, xn, ldxn, xq, y, ldy, bias)'s bits; k = w->k;
 * xq: m * k bytes or NULL (a per-thread buffer). */
void w8_rmsnorm_gemm_i8_dyn(float *x, const float *res, int m, int k, size_t ldx,
                            const float *g, const float *b, float eps, float *xn, size_t ldxn,
                            int8_t *xq, const w8_qmat *w, float *y, size_t ldy,
                            const float *bias);

/* W8A8_DYNAMIC (FORMAT.md): per-row symmetric activation quantization.
 * For each row i of k values: s[i] = max_t |x[i, t]| / 127 (fp32 division),
 * xq[i, t] = clamp(round_half_even(x[i, t] / s[i]), -127, 127) (a true
 * division, as the spec's round(x / s)); NaN inputs never raise the max and
 * quantize to -127; an all-zero row gives s[i] = 0 and xq = 0.  The same
 * bits on every ISA (kern_impl.h, w8_kern_qd1). */
void w8_quant_rows_dyn(const float *x, int m, int k, size_t ldx, int8_t *xq, size_t ldq,
                       float *s);

/* The dynamic int8 linear layer, y = x W^T + bias with per-row activation
 * scales: W packed by w8_qmat_pack with quant_bias = 0 and deq_scale =
 * weight_scale.  Quantizes x with w8_quant_rows_dyn (into xq, row stride k,
 * m * k bytes; NULL: a per-thread buffer) and then, for every output,
 *   y[i, j] = ((float)acc[i, j] * weight_scale[j]) * s[i] (+ bias[j])
 * in that order (fp32, no FMA): w8_gemm_i8's epilogue, then the row scale
 * and the float bias.  Row-invariant and the same bits on every ISA. */
void w8_gemm_i8_dyn(const w8_qmat *w, int m, const float *x, size_t ldx, int8_t *xq, float *y,
                    size_t ldy, const float *bias);

/* Per-output-channel symmetric int8 weights, FORMAT.md's arithmetic for a
 * W8A8 and a W8A8_DYNAMIC layer.  One implementation for the quantizer
 * (quant/arith.c, which may raise the scale for a static layer's bias) and
 * the loader (model.c, --float_layers int8), so a layer made at load has
 * the bits `quant --quant_type w8a8_dynamic` writes.
 * w8_wquant_scale: *ws = max_j |w[j]| / 127 (fp32), floored at
 * W8_WSCALE_EPS so an all-zero row does not divide by 0; -1 (ws untouched)
 * when a value is not finite.
 * w8_wquant_row: q[j] = clamp(round_half_even(w[j] / ws), -128, 127) (a true
 * fp32 division); returns sum_j q[j]. */
#define W8_WSCALE_EPS 1e-8f
int w8_wquant_scale(const float *w, int k, float *ws);
int32_t w8_wquant_row(const float *w, int k, float ws, int8_t *q);

/* xq[i] = clamp(round_half_even(x[i] / scale) + offset, -128, 127), rows of k. */
void w8_quant_rows(const float *x, int m, int k, size_t ldx, float scale, int offset,
                   int8_t *xq, size_t ldq);

/* RMSNorm of m rows fused with activation quantization:
 *   y = x / sqrt(mean(x^2) + eps) * g (+ b when b != NULL)
 * writes f32 y when y != NULL, and int8 xq = quant(y) when xq != NULL.
 * y may be x itself (ldy == ldx): a row is summed before it is written. */
void w8_rmsnorm_rows(const float *x, int m, int k, size_t ldx, const float *g, const float *b,
                     float eps, float *y, size_t ldy, int8_t *xq, size_t ldq, float scale,
                     int offset);

/* ----------------------------------------------------------------- float
 * A float linear layer W[n, k] (F32/F16/BF16).  Either read in place from
 * the mapped file and converted on the fly (w: row-major, not owned), or,
 * after w8_fmat_pack, from an owned copy in the layout below, which streams
 * as one sequential read (decode) and feeds a broadcast register tile
 * (prefill) without any per-call conversion.
 *
 * Packed layout (the same for every ISA): blocks of 64 output channels
 * (the last one zero-padded), each a run of k-steps; a step is 1 k for F32
 * and F16 (64 values, channel c at c) and 2 k for BF16 (64 32-bit words,
 * word c = W[c][2s] | W[c][2s + 1] << 16, the pair layout of the BF16 dot
 * product; denormal weights are stored as signed zeros).  Block b starts at
 * b * w8_fmat_block_bytes(). */

/* Pack w->w (must stay valid during the call; may be dropped after).  When
 * done != NULL it is called after each slice of rows is packed with that
 * slice of the source (whole rows, a few tens of MB), so the caller can drop
 * the source's pages as it goes: resident memory never holds both copies. */
void w8_fmat_pack(w8_fmat *m, void (*done)(const void *src, size_t bytes, void *ud), void *ud);
/* Frees the packed copy only (w is not owned). */
void w8_fmat_free(w8_fmat *m);

/* y[i, j] = sum_k x[i, k] * W[j, k] (+ bias[j] when bias != NULL)
 * Row-invariant: each output is summed in one fixed order whatever m and the
 * other rows are, so a row gives the same bits alone or in a batch.
 *   unpacked: 16 lane partial sums (lane l adds t = l mod 16 by FMA in
 *             increasing t), reduced by a fixed tree, then + bias;
 *   packed:   one FMA chain over t = 0 .. k-1 from 0, then + bias.  For
 *             BF16 the activations are first rounded to BF16 (as a bf16
 *             model's own matmul does) and each k pair adds the odd
 *             element's product before the even one's: the arithmetic of
 *             the AVX-512 BF16 dot product (vdpbf16ps), which then does a
 *             pair in one instruction.  Denormals are flushed to zero in
 *             the inputs.  The same bits on every ISA (the reference uses
 *             fmaf), except where an intermediate sum falls below 1.2e-38
 *             (the dot product flushes it, the emulation does not). */
void w8_gemm_f(const w8_fmat *w, int m, const float *x, size_t ldx, float *y, size_t ldy,
               const float *bias);

/* ------------------------------------------------------------- attention
 * Building blocks for attention over paged K/V (one block at a time). */
/* s[j] = scale * dot(q, K_j) for j < n, K_j = k + j * ldk, d elements each. */
void w8_attn_scores(const float *q, const float *k, size_t ldk, int n, int d, float scale,
                    float *s);
/* w8_attn_scores for the queries of nr rows x nh heads over the same keys
 * (a prompt's rows and the query heads that share one KV head): query
 * (i, h) = q + i * ldq + h * d gets keys 0 .. nk[i] - 1 (none when
 * nk[i] <= 0) into s + (i * nh + h) * lds.  Every score gets exactly
 * w8_attn_scores's bits; the key block is read (and rearranged) once for
 * all queries instead of once per query. */
void w8_attn_scores_n(const float *q, size_t ldq, int nr, int nh, const float *k, size_t ldk,
                      const int *nk, int d, float scale, float *s, size_t lds);
/* out[0..d) += sum_j p[j] * V_j for j < n, V_j = v + j * ldv. */
void w8_attn_accum(const float *p, const float *v, size_t ldv, int n, int d, float *out);
/* w8_attn_accum for nq queries over the same V rows (the query heads that
 * share one KV head): out_q = out + q * ldo gets p_q = p + q * ldp.  Every
 * query gets exactly w8_attn_accum's bits; V is read once for all and the
 * queries' FMA chains interleave (one query alone is latency-bound). */
void w8_attn_accum_n(const float *p, size_t ldp, int nq, const float *v, size_t ldv, int n,
                     int d, float *out, size_t ldo);

/* ------------------------------------------------------------ elementwise
 * Added after the first contract: the exp-heavy steps of a layer, which cost
 * more than the GEMMs in prefill when done with scalar expf.  exp is a SIMD
 * polynomial (within ~2 ulp of expf); results match the scalar reference to
 * ~1e-6 relative, not bit for bit. */
/* SwiGLU of m rows: out[i, t] = silu(gate[i, t]) * up[i, t] for t < n, with
 * silu(g) = g / (1 + exp(-g)); gate/up rows with stride ld_in, out with
 * ld_out.  When xq != NULL also writes the int8 quantization of out (same
 * rounding as w8_quant_rows) with row stride ldq. */
void w8_swiglu_rows(int m, int n, const float *gate, const float *up, size_t ld_in, float *out,
                    size_t ld_out, int8_t *xq, size_t ldq, float scale, int offset);
/* In place: x[j] = exp(x[j] - max) / sum_j exp(x[j] - max), j < n (n >= 1). */
void w8_softmax(float *x, int n);

/* ------------------------------------------------------------ decode team
 * A decode step (a few rows) streams each layer's weights in tens of
 * microseconds per GEMM; a parallel region per kernel call meant ~5 fork /
 * join pairs per layer, and on a shared host each one can wait for a
 * descheduled thread.  forward.c instead runs a whole step inside one
 * parallel region: every thread of it calls the functions below in the same
 * order, and they split the work among whichever threads come.
 *
 *   w8_team_reset   on one thread before the region: room for n_loops loops
 *                   (every w8_team_loop / team GEMM call is one) of nth threads
 *   w8_team_barrier all threads of the region wait for each other (a short
 *                   spin, then a futex sleep)
 *   w8_team_loop    starts the thread's next loop; w8_team_take then hands
 *                   out the loop's indices 0, 1, ... once each over all threads
 *   w8_team_gemm_*  the GEMMs above, split by column items over the team;
 *                   every thread converts the activations itself (its own
 *                   scratch), x is only read.  No barrier at the end: y is
 *                   complete after the next w8_team_barrier.  Same bits as
 *                   w8_gemm_i8 / w8_gemm_i8_dyn / w8_gemm_f.
 * Kernel entry points called inside a parallel region run on the calling
 * thread. */
typedef struct w8_team w8_team;
w8_team *w8_team_new(void);
void w8_team_free(w8_team *t);
void w8_team_reset(w8_team *t, int nth, int n_loops);
void w8_team_barrier(w8_team *t);
/* w8_team_barrier where a thread that waits prefetches into L2 the head of
 * its share of the next GEMM's weights [w, w + bytes): the team GEMMs give
 * thread i of n the items from i/n of the matrix on, so its first bytes
 * are about bytes * i / n on (at most 256 KB; w NULL: none). */
void w8_team_barrier_next(w8_team *t, const void *w, size_t bytes);
int w8_team_loop(w8_team *t);
int w8_team_take(w8_team *t, int loop);
void w8_team_gemm_i8(w8_team *t, const w8_qmat *w, int m, const int8_t *x, size_t ldx, float *y,
                     size_t ldy);
/* w8_rmsnorm_gemm_i8_swiglu's GEMM and SwiGLU on the team (x already
 * normalized and quantized; y never written); -1, before taking a loop,
 * when w's halves do not split into whole column blocks. */
int w8_team_gemm_i8_swiglu(w8_team *t, const w8_qmat *w, int m, const int8_t *x, size_t ldx,
                           float *out, size_t ld_out, int8_t *xq, size_t ldq, float scale,
                           int offset);
void w8_team_gemm_i8_dyn(w8_team *t, const w8_qmat *w, int m, const float *x, size_t ldx,
                         float *y, size_t ldy, const float *bias);
void w8_team_gemm_f(w8_team *t, const w8_fmat *w, int m, const float *x, size_t ldx, float *y,
                    size_t ldy, const float *bias);

#endif

/*
 * forward.c - the transformer forward pass (LLaMA / Qwen2 / Qwen3) over a
 * batch of token rows, float or W8A8, with paged KV.
 *
 * It reads like llama2.c's forward(): embed, then per layer
 *   rmsnorm (fused with int8 quantization when q/k/v are one int8 GEMM)
 *   -> q/k/v -> (Qwen3: per-head q/k RMSNorm) -> RoPE -> store K/V in the
 *   cache -> attention -> o_proj
 *   -> residual -> rmsnorm -> gate/up -> SwiGLU -> down -> residual,
 * then the final norm and lm_head for the rows that want logits only.
 *
 * Every linear layer runs once for all rows of the batch (the GEMMs thread
 * themselves); attention runs per (row, head) in parallel, each row reading
 * its own sequence's blocks for positions 0..pos.  A decode step (a few
 * rows) runs the same steps in one parallel region instead ("decode
 * team").  All scratch lives in w8_ctx, sized once for max_rows: nothing is
 * allocated per token.
 * Arithmetic is f32 throughout (softmax with max subtraction).
 */
#include "forward.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Query rows attended together: consecutive positions of one sequence (a
 * prompt) share every key block up to the first row's position, so each
 * K/V block is fetched once for ATT_ROWS rows instead of once per row (at
 * long contexts K/V no longer fit L2 and that fetch was the cost). */
enum { ATT_ROWS = 16 };

/* Keys per slice of the weighted sum of V (see attend()): 64 rows of one
 * head (16 KB at d = 64) stay in L1 while every row of the run reads them. */
enum { ATT_VROWS = 64 };

/* Row stride of the attention scratch: the positions plus 16 floats, so
 * that the rows (up to ATT_ROWS x group of them, read and written together)
 * do not sit a multiple of 4 KB apart, on the same L1 sets. */
static size_t att_ld(int cap) { return (size_t)cap + 16; }

/* A decode step of up to TEAM_ROWS rows runs as one parallel region (see
 * "decode team" below); TEAM_LOOPS bounds the work loops a layer starts. */
enum { TEAM_ROWS = 4, TEAM_LOOPS = 12 };

struct w8_ctx {
    int max_rows;
    int hidden, qdim, kvdim, qkvdim, inter, head_dim, max_pos;
    float *x;        /* [R, hidden] residual stream */
    float *xn;       /* [R, hidden] normalized rows (f32) */
    int8_t *xq;      /* [R, max k] quantized rows */
    int8_t *xq2;     /* [R, inter] quantized SwiGLU rows (while xq feeds gate/up) */
    float *qkv;      /* [R, qdim + 2 kvdim] */
    float *att_out;  /* [R, qdim] */
    float *tmp;      /* [R, hidden] o_proj / down output */
    float *gu;       /* [R, 2 inter] gate | up */
    float *act;      /* [R, inter] silu(gate) * up */
    float *cosb;     /* [R, head_dim / 2] */
    float *sinb;
    int n_threads;   /* attention scratch slots */
    int group;       /* query heads per KV head */
    float *att;      /* [n_threads, ATT_ROWS, group, att_ld(att_cap)] scores / probabilities */
    int att_cap;     /* positions att holds per thread (grows up to max_pos) */
    int *rows;       /* [R] indices of the rows that want logits */
    int *run_start;  /* [R + 1] first row of each attention run */
    int *kpos;       /* [R] positions of the rows the last layer keeps */
    w8_seq **kseq;   /* [R] their sequences */
    w8_team *team;   /* decode team: loop counters and barrier */
    float *tx;       /* [n_threads, TEAM_ROWS, hidden] each thread's copy of x */
    float *txn;      /* [n_threads, TEAM_ROWS, hidden] each thread's normalized rows */
    int8_t *txq;     /* [n_threads, TEAM_ROWS, max k] each thread's quantized rows */
    int maxk;
    w8_observer obs;
    void *obs_ud;
};

static float *falloc(size_t n) { return w8_xalloc_aligned((n ? n : 1) * sizeof(float)); }

w8_ctx *w8_ctx_new(const w8_model *m, int max_rows) {
    const w8_config *c = &m->cfg;
    if (max_rows <= 0) {
        w8_seterr("forward: max_rows %d must be positive", max_rows);
        return NULL;
    }
    w8_ctx *x = w8_xcalloc(1, sizeof *x);
    size_t R = (size_t)max_rows;
    x->max_rows = max_rows;
    x->hidden = c->hidden;
    x->qdim = c->n_heads * c->head_dim;
    x->kvdim = c->n_kv_heads * c->head_dim;
    x->qkvdim = x->qdim + 2 * x->kvdim;
    x->inter = c->intermediate;
    x->head_dim = c->head_dim;
    x->max_pos = c->max_pos;
    int maxk = x->hidden;
    if (x->qdim > maxk) maxk = x->qdim;
    if (x->inter > maxk) maxk = x->inter;
    x->x = falloc(R * x->hidden);
    x->xn = falloc(R * x->hidden);
    x->xq = w8_xalloc_aligned(R * (size_t)maxk);
    x->xq2 = w8_xalloc_aligned(R * (size_t)x->inter + 1);
    x->qkv = falloc(R * x->qkvdim);
    x->att_out = falloc(R * x->qdim);
    x->tmp = falloc(R * x->hidden);
    x->gu = falloc(R * 2 * (size_t)x->inter);
    x->act = falloc(R * x->inter);
    x->cosb = falloc(R * (x->head_dim / 2));
    x->sinb = falloc(R * (x->head_dim / 2));
    x->n_threads = omp_get_max_threads();
    if (w8_get_threads() > x->n_threads) x->n_threads = w8_get_threads();
    /* Sized for 4096 positions and grown on demand (rarely, outside the
     * token loop's steady state): a config's max_position_embeddings may be
     * huge or hostile, and most runs never get near it. */
    x->att_cap = x->max_pos < 4096 ? x->max_pos : 4096;
    x->group = c->n_heads / c->n_kv_heads;
    x->att = falloc((size_t)x->n_threads * ATT_ROWS * x->group * att_ld(x->att_cap));
    x->run_start = w8_xmalloc((R + 1) * sizeof(int));
    x->rows = w8_xmalloc(R * sizeof(int));
    x->kpos = w8_xmalloc(R * sizeof(int));
    x->kseq = w8_xmalloc(R * sizeof(w8_seq *));
    size_t TR = (size_t)x->n_threads * TEAM_ROWS;
    x->maxk = maxk;
    x->team = w8_team_new();
    x->tx = falloc(TR * x->hidden);
    x->txn = falloc(TR * x->hidden);
    x->txq = w8_xalloc_aligned(TR * (size_t)maxk);
    return x;
}

void w8_ctx_free(w8_ctx *c) {
    if (!c) return;
    free(c->x);
    free(c->xn);
    free(c->xq);
    free(c->xq2);
    free(c->qkv);
    free(c->att_out);
    free(c->tmp);
    free(c->gu);
    free(c->act);
    free(c->cosb);
    free(c->sinb);
    free(c->att);
    free(c->rows);
    free(c->run_start);
    free(c->kpos);
    free(c->kseq);
    w8_team_free(c->team);
    free(c->tx);
    free(c->txn);
    free(c->txq);
    free(c);
}

void w8_ctx_set_observer(w8_ctx *c, w8_observer fn, void *ud) {
    c->obs = fn;
    c->obs_ud = ud;
}

int w8_ctx_max_rows(const w8_ctx *c) { return c->max_rows; }

static void observe(w8_ctx *c, int layer, w8_obs_point what, const float *x, int m, int k) {
    if (c->obs) c->obs(c->obs_ud, layer, what, x, m, k);
}

/* Everything about the batch is checked before any state changes, so an
 * error leaves the cache and the sequences as they were. */
static int check_batch(const w8_ctx *c, const w8_model *m, w8_kv *kv, const w8_batch *b) {
    if (b->n <= 0 || b->n > c->max_rows)
        return w8_seterr("forward: batch of %d rows (1..%d allowed)", b->n, c->max_rows);
    int bs = w8_kv_block_size(kv);
    for (int i = 0; i < b->n; i++) {
        if (b->tokens[i] < 0 || b->tokens[i] >= m->cfg.vocab)
            return w8_seterr("forward: token id %d out of range (vocab %d)", b->tokens[i],
                             m->cfg.vocab);
        if (!b->seq[i]) return w8_seterr("forward: row %d has no sequence", i);
        int p = b->pos[i];
        if (p < 0 || p >= c->max_pos)
            return w8_seterr("forward: position %d outside the context (0..%d)", p,
                             c->max_pos - 1);
        if (p / bs >= b->seq[i]->n_blocks)
            return w8_seterr("forward: position %d past the sequence's reserved KV blocks "
                             "(%d blocks of %d tokens)",
                             p, b->seq[i]->n_blocks, bs);
    }
    return 0;
}

/* x[r] = embedding row of tokens[r], converted to f32. */
static void embed_rows(const w8_model *m, const int *tokens, int n, float *x) {
    const w8_tensor *e = m->embed;
    int H = m->cfg.hidden;
    size_t es = w8_dtype_size(e->dtype);
    for (int r = 0; r < n; r++) {
        const unsigned char *src = (const unsigned char *)e->data + (size_t)tokens[r] * H * es;
        float *dst = x + (size_t)r * H;
        if (e->dtype == W8_F32) {
            memcpy(dst, src, (size_t)H * 4);
        } else {
            for (int i = 0; i < H; i++) {
                uint16_t h;
                memcpy(&h, src + 2 * (size_t)i, 2);
                dst[i] = e->dtype == W8_BF16 ? w8_bf16_to_f32(h) : w8_f16_to_f32(h);
            }
        }
    }
}

static void add_rows(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* Add the residual res (when not NULL) to x, normalize x and run a group of
 * linear layers reading it; part i's output goes to columns
 * [off_i, off_i + n_i) of y (row stride ldy). */
static void run_group(w8_ctx *c, const w8_linear_group *g, float *x, const float *res, int n,
                      const float *nw, const float *nb, float eps, float *y, size_t ldy,
                      int layer, w8_obs_point pt) {
    size_t H = (size_t)c->hidden;
    if (g->fused && !g->fused_lin.dynamic && !c->obs) {
        /* one int8 GEMM with the residual add, norm and quantization of its
         * rows in its own parallel region (one fork/join per group) */
        const w8_linear *l = &g->fused_lin;
        w8_rmsnorm_gemm_i8(x, res, n, c->hidden, H, nw, nb, eps, c->xq, H, l->in_scale,
                           l->in_offset, &l->q, y, ldy);
        return;
    }
    if (g->fused && g->fused_lin.quantized && g->fused_lin.dynamic && !c->obs) {
        /* W8A8_DYNAMIC: the same, with the f32 norm and its per-row scales */
        const w8_linear *l = &g->fused_lin;
        w8_rmsnorm_gemm_i8_dyn(x, res, n, c->hidden, H, nw, nb, eps, c->xn, H, c->xq, &l->q, y,
                               ldy, l->bias);
        return;
    }
    if (res) add_rows(x, res, (size_t)n * H);
    if (g->fused && !g->fused_lin.dynamic) {
        /* one int8 GEMM: normalize and quantize in one pass (f32 rows only for the observer) */
        const w8_linear *l = &g->fused_lin;
        w8_rmsnorm_rows(x, n, c->hidden, H, nw, nb, eps, c->obs ? c->xn : NULL, H, c->xq, H,
                        l->in_scale, l->in_offset);
        observe(c, layer, pt, c->xn, n, c->hidden);
        w8_gemm_i8(&l->q, n, c->xq, H, y, ldy);
        return;
    }
    w8_rmsnorm_rows(x, n, c->hidden, H, nw, nb, eps, c->xn, H, NULL, 0, 1.0f, 0);
    observe(c, layer, pt, c->xn, n, c->hidden);
    if (g->fused) { /* W8A8_DYNAMIC: one per-row scale for the stacked parts */
        w8_linear_apply(&g->fused_lin, n, c->xn, H, y, ldy, c->xq);
        return;
    }
    size_t off = 0;
    for (int i = 0; i < g->n_parts; i++) {
        w8_linear_apply(&g->parts[i], n, c->xn, H, y + off, ldy, c->xq);
        off += (size_t)g->part_n[i];
    }
}

/* cos/sin of every row's position: freqs = pos * inv_freq in f32, as HF does.
 * A prompt's rows are split over the threads (each value is one libm call
 * whatever the thread; serial, a 512-row prompt waited ~1 ms on it). */
static void rope_tables(w8_ctx *c, const w8_model *m, const int *pos, int n) {
    int half = c->head_dim / 2, nt = n >= 64 ? w8_get_threads() : 1;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int r = 0; r < n; r++)
        for (int i = 0; i < half; i++) {
            float f = (float)pos[r] * m->rope_inv_freq[i];
            c->cosb[(size_t)r * half + i] = cosf(f);
            c->sinb[(size_t)r * half + i] = sinf(f);
        }
}

/* HF apply_rotary_pos_emb with rotate_half: pairs (i, i + d/2), not interleaved. */
/* Four at a time in a generic vector (GCC -O2 left the loop scalar): each
 * element still gets a * c - b * s, two rounded products and a rounded
 * difference (ISO C does not contract them into an FMA). */
typedef float rope_v4 __attribute__((vector_size(16)));
static void rope_heads(float *v, int n_heads, int hd, const float *cs, const float *sn) {
    int half = hd / 2;
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * hd;
        int i = 0;
        for (; i + 4 <= half; i += 4) {
            rope_v4 a, b, c, s;
            memcpy(&a, x + i, sizeof a);
            memcpy(&b, x + i + half, sizeof b);
            memcpy(&c, cs + i, sizeof c);
            memcpy(&s, sn + i, sizeof s);
            rope_v4 lo = a * c - b * s, hi = b * c + a * s;
            memcpy(x + i, &lo, sizeof lo);
            memcpy(x + i + half, &hi, sizeof hi);
        }
        for (; i < half; i++) {
            float a = x[i], b = x[i + half];
            x[i] = a * cs[i] - b * sn[i];
            x[i + half] = b * cs[i] + a * sn[i];
        }
    }
}

/* Qwen3's q_norm / k_norm (HF Qwen3Attention): after the projection, each
 * head's head_dim values are RMS-normalized on their own with a weight
 * shared by all heads, before RoPE; V is not normalized.  The rows of one
 * token's heads are contiguous, so a head is a "row" of the norm kernel
 * (in place: it reads each element before writing it). */
static void qk_norm_heads(float *v, int n_heads, int hd, const float *g, float eps) {
    w8_rmsnorm_rows(v, n_heads, hd, (size_t)hd, g, NULL, eps, v, (size_t)hd, NULL, 0, 1.0f, 0);
}

/* Row r, KV head g: (the Qwen3 q/k norm and) RoPE on the query heads that
 * share g and on key head g, then key and value head g into the cache at the
 * row's position.  Heads are independent, so any split of (row, head) gives
 * the same bits. */
static void rope_and_store_head(w8_ctx *c, const w8_model *m, w8_kv *kv, const w8_batch *b,
                                int layer, int r, int g) {
    int half = c->head_dim / 2, hd = c->head_dim, group = c->group;
    const w8_layer *L = &m->layers[layer];
    float *q = c->qkv + (size_t)r * c->qkvdim, *k = q + c->qdim, *v = k + c->kvdim;
    q += (size_t)g * group * hd;
    k += (size_t)g * hd;
    v += (size_t)g * hd;
    const float *cs = c->cosb + (size_t)r * half, *sn = c->sinb + (size_t)r * half;
    if (L->q_norm) {
        qk_norm_heads(q, group, hd, L->q_norm, m->cfg.rms_eps);
        qk_norm_heads(k, 1, hd, L->k_norm, m->cfg.rms_eps);
    }
    rope_heads(q, group, hd, cs, sn);
    rope_heads(k, 1, hd, cs, sn);
    memcpy(w8_kv_k(kv, b->seq[r], layer, b->pos[r]) + (size_t)g * hd, k, (size_t)hd * sizeof(float));
    memcpy(w8_kv_v(kv, b->seq[r], layer, b->pos[r]) + (size_t)g * hd, v, (size_t)hd * sizeof(float));
}

/* Causal attention of rows r0 .. r0 + nr - 1 (positions pos0 .. pos0 + nr - 1
 * of sequence s) for the query heads that share KV head kvh, block by block.
 * att: scratch of nr * group rows of ldatt >= pos0 + nr floats.  Scores and
 * softmax run per head; the weighted sum of V reads each V row once for the
 * group.  Each (row, head) gets the same arithmetic, in the same order,
 * whatever the rows or heads around it and whatever the block size. */
static void attend(const w8_ctx *c, w8_kv *kv, const w8_seq *s, int pos0, int nr, int r0,
                   int group, int kvh, int layer, float *att, size_t ldatt) {
    int bs = w8_kv_block_size(kv), hd = c->head_dim, maxlen = pos0 + nr;
    size_t ld = w8_kv_row_stride(kv);
    float scale = 1.0f / sqrtf((float)hd);
    /* scores: all nr x group queries over one key block in one call */
    const float *q0 = c->qkv + (size_t)r0 * c->qkvdim + (size_t)kvh * group * hd;
    int nk[ATT_ROWS];
    for (int j0 = 0, bi = 0; j0 < maxlen; j0 += bs, bi++) {
        const float *kb = w8_kv_block_k(kv, layer, s->blocks[bi]) + (size_t)kvh * hd;
        for (int i = 0; i < nr; i++) {
            int len = pos0 + i + 1;
            nk[i] = len - j0 < bs ? len - j0 : bs;
        }
        w8_attn_scores_n(q0, (size_t)c->qkvdim, nr, group, kb, ld, nk, hd, scale, att + j0,
                         ldatt);
    }
    for (int i = 0; i < nr; i++) {
        for (int g = 0; g < group; g++) w8_softmax(att + ((size_t)i * group + g) * ldatt, pos0 + i + 1);
        memset(c->att_out + (size_t)(r0 + i) * c->qdim + (size_t)kvh * group * hd, 0,
               (size_t)group * hd * sizeof(float));
    }
    /* V in slices of ATT_VROWS rows, each used by every row of the run
     * before the next: one head's slice of a whole block (rows ld floats
     * apart, a multiple of 512 bytes) falls on a fraction of the L1 sets
     * and was fetched from L2 again for every row.  Splitting the keys is
     * exact: an output's FMA chain just continues from its stored value. */
    for (int j0 = 0, bi = 0; j0 < maxlen; j0 += bs, bi++) {
        const float *vb = w8_kv_block_v(kv, layer, s->blocks[bi]) + (size_t)kvh * hd;
        for (int js = 0; js < bs && j0 + js < maxlen; js += ATT_VROWS) {
            int ne = bs - js < ATT_VROWS ? bs - js : ATT_VROWS;
            for (int i = 0; i < nr; i++) {
                int left = pos0 + i + 1 - (j0 + js), nb = left < ne ? left : ne;
                if (nb <= 0) continue;
                float *out = c->att_out + (size_t)(r0 + i) * c->qdim + (size_t)kvh * group * hd;
                w8_attn_accum_n(att + (size_t)i * group * ldatt + j0 + js, ldatt, group,
                                vb + (size_t)js * ld, ld, nb, hd, out, (size_t)hd);
            }
        }
    }
}

/* Cut the batch into runs of rows that attend together (see ATT_ROWS);
 * a decode batch gives one run per row.  Returns the number of runs. */
static int attention_runs(w8_ctx *c, const w8_batch *b) {
    int nrun = 0;
    for (int r = 0; r < b->n;) {
        int e = r + 1;
        while (e < b->n && e - r < ATT_ROWS && b->seq[e] == b->seq[r] && b->pos[e] == b->pos[r] + (e - r))
            e++;
        c->run_start[nrun++] = r;
        r = e;
    }
    c->run_start[nrun] = b->n;
    return nrun;
}

/* The rows that want logits (c->rows[0 .. keep->n - 1]) moved to the
 * front of the q/k/v and residual rows, and keep made their batch. */
static int keep_rows(w8_ctx *c, const w8_batch *b, w8_batch *keep) {
    size_t H = (size_t)c->hidden, D = (size_t)c->qkvdim;
    for (int j = 0; j < keep->n; j++) {
        int r = c->rows[j]; /* ascending, r >= j: moving rows forward is safe */
        if (r != j) {
            memcpy(c->qkv + (size_t)j * D, c->qkv + (size_t)r * D, D * sizeof(float));
            memcpy(c->x + (size_t)j * H, c->x + (size_t)r * H, H * sizeof(float));
        }
        c->kpos[j] = b->pos[r];
        c->kseq[j] = b->seq[r];
    }
    keep->tokens = NULL;
    keep->pos = c->kpos;
    keep->seq = c->kseq;
    keep->want = NULL;
    return attention_runs(c, keep);
}

/* RoPE, the cache store of every row (all heads), then attention.  With
 * keep (the last layer, see layers_batch) only its rows attend, after
 * keep_rows has moved them to the front. */
static void attention(w8_ctx *c, const w8_model *m, w8_kv *kv, const w8_batch *b, int layer,
                      w8_batch *keep) {
    int nh = m->cfg.n_heads, nkv = m->cfg.n_kv_heads, group = nh / nkv, hd = c->head_dim;
    int nt = w8_get_threads();
    if (nt > c->n_threads) nt = c->n_threads;
    int nrun = attention_runs(c, b), tasks = nrun * nkv;
    const w8_batch *q = keep ? keep : b;
    /* Small work (a decode step of a short sequence) costs less than waking
     * the thread team: run it on the calling thread. */
    long work = 0;
    for (int r = 0; r < b->n; r++) work += (long)(b->pos[r] + 1) * nh * hd;
    if (work < (1L << 17)) nt = 1;
    /* RoPE and the cache store first, split over the same threads (serial,
     * they were ~2% of a prompt's wall time with the other thread idle);
     * the loop's barrier then makes every row's keys visible to every run */
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#pragma omp for schedule(static)
        for (int t = 0; t < b->n * nkv; t++) rope_and_store_head(c, m, kv, b, layer, t / nkv, t % nkv);
        if (keep) {
#pragma omp single
            tasks = keep_rows(c, b, keep) * nkv;
        }
        /* last runs first: in a prompt they have the most keys (balance) */
#pragma omp for schedule(dynamic, 1) nowait
        for (int t = tasks - 1; t >= 0; t--) {
            int run = t / nkv, g = t % nkv, r0 = c->run_start[run], nr = c->run_start[run + 1] - r0;
            float *att = c->att + (size_t)omp_get_thread_num() * ATT_ROWS * group * att_ld(c->att_cap);
            attend(c, kv, q->seq[r0], q->pos[r0], nr, r0, group, g, layer, att, att_ld(c->att_cap));
        }
    }
}

/* act = silu(gate) * up from gu = [gate | up], then down_proj.  An int8
 * down_proj gets its input quantized in the same pass. */
static void swiglu_down(w8_ctx *c, const w8_linear *down, int n, int layer) {
    size_t I = (size_t)c->inter;
    if (down->quantized && !down->dynamic && !c->obs) {
        w8_swiglu_gemm_i8(n, c->inter, c->gu, c->gu + I, 2 * I, c->act, I, c->xq, I,
                          down->in_scale, down->in_offset, &down->q, c->tmp, (size_t)c->hidden);
        return;
    }
    if (down->quantized && !down->dynamic) {
        w8_swiglu_rows(n, c->inter, c->gu, c->gu + I, 2 * I, c->act, I, c->xq, I,
                       down->in_scale, down->in_offset);
        observe(c, layer, W8_OBS_DOWN_IN, c->act, n, c->inter);
        w8_gemm_i8(&down->q, n, c->xq, I, c->tmp, (size_t)c->hidden);
        return;
    }
    w8_swiglu_rows(n, c->inter, c->gu, c->gu + I, 2 * I, c->act, I, NULL, 0, 1.0f, 0);
    observe(c, layer, W8_OBS_DOWN_IN, c->act, n, c->inter);
    w8_linear_apply(down, n, c->act, I, c->tmp, (size_t)c->hidden, c->xq);
}

/* One static int8 [gate; up] GEMM, whose tiles can feed SwiGLU directly
 * (an observer wants the gate/up rows themselves). */
static int swiglu_fusable(const w8_ctx *c, const w8_layer *L) {
    const w8_linear *gu = &L->gate_up.fused_lin;
    return L->gate_up.fused && gu->quantized && !gu->dynamic && !c->obs &&
           L->gate_up.n_parts == 2 && L->gate_up.part_n[0] == c->inter &&
           gu->q.n == 2 * c->inter;
}

/* The MLP block after the attention's residual (x += tmp):
 * rmsnorm -> gate/up -> SwiGLU -> down, into tmp.  With one int8 gate/up
 * GEMM and no observer, the norm runs in the GEMM's parallel region and
 * SwiGLU on each gate/up tile while it is in cache (no pass over the
 * [R, 2 inter] gate/up rows in memory); else the steps one by one. */
static void mlp(w8_ctx *c, const w8_model *m, const w8_layer *L, int n, int layer) {
    const w8_linear *gu = &L->gate_up.fused_lin, *down = &L->down;
    size_t H = (size_t)c->hidden, I = (size_t)c->inter;
    if (swiglu_fusable(c, L)) {
        /* an int8 down_proj needs only the quantized rows (made in its
         * GEMM's layout where the kernel can), a float one act: gate/up
         * stay in the GEMM's scratch tiles (y = NULL) */
        if (down->quantized && !down->dynamic) {
            if (w8_rmsnorm_gemm_i8_swiglu_down(c->x, c->tmp, n, c->hidden, H, L->ffn_norm,
                                               L->ffn_norm_b, m->cfg.rms_eps, c->xq, H,
                                               gu->in_scale, gu->in_offset, &gu->q, c->xq2, I,
                                               down->in_scale, down->in_offset, &down->q, c->tmp,
                                               H) == 0)
                return;
        } else if (w8_rmsnorm_gemm_i8_swiglu(c->x, c->tmp, n, c->hidden, H, L->ffn_norm,
                                             L->ffn_norm_b, m->cfg.rms_eps, c->xq, H, gu->in_scale,
                                             gu->in_offset, &gu->q, NULL, 2 * I, c->act, I, NULL, I,
                                             down->in_scale, down->in_offset) == 0) {
            w8_linear_apply(down, n, c->act, I, c->tmp, H, c->xq);
            return;
        }
    }
    run_group(c, &L->gate_up, c->x, c->tmp, n, L->ffn_norm, L->ffn_norm_b, m->cfg.rms_eps, c->gu,
              2 * I, layer, W8_OBS_GATEUP_IN);
    swiglu_down(c, down, n, layer);
}

/* Make the attention scratch hold positions 0..max_pos_in_batch.  Out of
 * memory is an error, not an abort: the server's scheduler fails the
 * running requests and goes on (as when the KV pool is out of blocks). */
static int grow_att(w8_ctx *c, const w8_batch *b) {
    int need = 0;
    for (int r = 0; r < b->n; r++)
        if (b->pos[r] + 1 > need) need = b->pos[r] + 1;
    if (need <= c->att_cap) return 0;
    int cap = c->att_cap <= INT_MAX / 2 && c->att_cap * 2 > need ? c->att_cap * 2 : need;
    if (cap > c->max_pos) cap = c->max_pos;
    size_t n = (size_t)c->n_threads * ATT_ROWS * (size_t)c->group * att_ld(cap);
    void *p = NULL;
    if (n > SIZE_MAX / sizeof(float) || posix_memalign(&p, 64, n * sizeof(float)) != 0)
        return w8_seterr("forward: out of memory for attention scores over %d positions "
                         "(%zu floats)", cap, n);
    free(c->att);
    c->att = p;
    c->att_cap = cap;
    return 0;
}

/* Every layer over all rows of the batch; each kernel call threads itself.
 * A residual add (x += tmp) is left to the next group's norm, which does it
 * row by row in its own pass (pending); an observer sees every layer's
 * output, so with one it is done at once.
 * Past the last layer's cache store only the `need` rows that want logits
 * (c->rows) matter: that layer's attention, o_proj and MLP run for them
 * alone, moved to the front (a prompt's last row instead of all of them,
 * ~1/n_layers of its work).  Each kept row gets the same arithmetic as in
 * the full batch: the GEMMs compute every row on its own.  An observer
 * wants every row.  Returns the rows left in c->x: n, or need (in the
 * order of c->rows). */
static int layers_batch(w8_ctx *c, const w8_model *m, w8_kv *kv, const w8_batch *b, int need) {
    const w8_config *cfg = &m->cfg;
    int n = b->n;
    size_t H = (size_t)c->hidden;
    const float *pending = NULL;
    for (int l = 0; l < cfg->n_layers; l++) {
        const w8_layer *L = &m->layers[l];
        w8_batch keep = { .n = need };
        int trim = l == cfg->n_layers - 1 && need < n && !c->obs;
        /* attention block: rmsnorm -> q/k/v -> (q/k norm) RoPE -> cache -> attention -> o_proj */
        run_group(c, &L->qkv, c->x, pending, n, L->attn_norm, L->attn_norm_b, cfg->rms_eps,
                  c->qkv, (size_t)c->qkvdim, l, W8_OBS_QKV_IN);
        pending = NULL;
        attention(c, m, kv, b, l, trim ? &keep : NULL); /* with RoPE and the cache store */
        if (trim) n = need;
        if (n == 0) break;
        observe(c, l, W8_OBS_O_IN, c->att_out, n, c->qdim);
        w8_linear_apply(&L->o, n, c->att_out, (size_t)c->qdim, c->tmp, H, c->xq);
        /* MLP block: (residual) rmsnorm -> gate/up -> SwiGLU -> down */
        mlp(c, m, L, n, l);
        pending = c->tmp;
        if (c->obs) {
            add_rows(c->x, c->tmp, (size_t)n * H);
            pending = NULL;
            observe(c, l, W8_OBS_LAYER_OUT, c->x, n, c->hidden);
        }
    }
    if (pending) add_rows(c->x, pending, (size_t)n * H);
    return n;
}

/* ------------------------------------------------------------ decode team
 * A decode step streams every weight once and does little else, but each
 * kernel call above opens (and joins) its own parallel region, ~5 per layer,
 * plus serial pieces (norms, RoPE, SwiGLU) while the other thread waits.
 * For a few rows the whole step runs instead in one parallel region: every
 * thread keeps its own copy of the residual stream x and does the cheap
 * per-row work (residual add, RMSNorm, activation quantization) itself,
 * redundantly, so only the GEMMs (column items), attention ((run, KV head)
 * tasks) and SwiGLU (column slices) are split, with one barrier after each
 * (6 a layer).  Every output is computed by the same kernel in the same
 * order as in layers_batch: the bits do not change. */

/* this thread's private rows */
typedef struct {
    float *x;    /* [n, hidden] residual stream */
    float *xn;   /* [n, hidden] normalized rows */
    int8_t *xq;  /* [n, max k] quantized rows */
} team_rows;

/* w8_linear_apply split over the team (x is shared and only read) */
static void team_linear(w8_team *tm, const w8_linear *l, int n, const float *x, size_t ldx,
                        float *y, size_t ldy, int8_t *xq) {
    if (!l->quantized) {
        w8_team_gemm_f(tm, &l->f, n, x, ldx, y, ldy, l->bias);
    } else if (l->dynamic) {
        w8_team_gemm_i8_dyn(tm, &l->q, n, x, ldx, y, ldy, l->bias);
    } else {
        w8_quant_rows(x, n, l->k, ldx, l->in_scale, l->in_offset, xq, (size_t)l->k);
        w8_team_gemm_i8(tm, &l->q, n, xq, (size_t)l->k, y, ldy);
    }
}

/* run_group on the team, normalizing this thread's copy of x */
static void team_group(w8_ctx *c, w8_team *tm, const w8_linear_group *g, team_rows *p, int n,
                       const float *nw, const float *nb, float eps, float *y, size_t ldy) {
    size_t H = (size_t)c->hidden;
    if (g->fused && !g->fused_lin.dynamic) {
        const w8_linear *l = &g->fused_lin;
        w8_rmsnorm_rows(p->x, n, c->hidden, H, nw, nb, eps, NULL, H, p->xq, H, l->in_scale,
                        l->in_offset);
        w8_team_gemm_i8(tm, &l->q, n, p->xq, H, y, ldy);
        return;
    }
    w8_rmsnorm_rows(p->x, n, c->hidden, H, nw, nb, eps, p->xn, H, NULL, 0, 1.0f, 0);
    if (g->fused) {
        team_linear(tm, &g->fused_lin, n, p->xn, H, y, ldy, p->xq);
        return;
    }
    size_t off = 0;
    for (int i = 0; i < g->n_parts; i++) {
        team_linear(tm, &g->parts[i], n, p->xn, H, y + off, ldy, p->xq);
        off += (size_t)g->part_n[i];
    }
}

/* RoPE, cache store and attention as (run, KV head) tasks: a task stores
 * its rows' key of that head before it reads the keys (team_threads() made
 * sure no other run writes to the same sequence). */
static void team_attention(w8_ctx *c, const w8_model *m, w8_kv *kv, const w8_batch *b, int l,
                           int nrun, w8_team *tm) {
    int nkv = m->cfg.n_kv_heads, group = c->group;
    float *att = c->att + (size_t)omp_get_thread_num() * ATT_ROWS * group * att_ld(c->att_cap);
    int loop = w8_team_loop(tm);
    for (int t; (t = w8_team_take(tm, loop)) < nrun * nkv;) {
        int run = t / nkv, g = t % nkv, r0 = c->run_start[run], nr = c->run_start[run + 1] - r0;
        for (int r = r0; r < r0 + nr; r++) rope_and_store_head(c, m, kv, b, l, r, g);
        attend(c, kv, b->seq[r0], b->pos[r0], nr, r0, group, g, l, att, att_ld(c->att_cap));
    }
}
/* This thread's slice of SwiGLU (and the int8 down_proj's input
 * quantization): whole 64-column chunks, a multiple of every ISA's vector
 * width, so each element takes the same path as in a whole-row call. */
static void team_swiglu(w8_ctx *c, const w8_linear *down, int n) {
    int I = c->inter, nch = (I + 63) / 64, tid = omp_get_thread_num(), nth = omp_get_num_threads();
    int a = (int)((long)nch * tid / nth) * 64, e = (int)((long)nch * (tid + 1) / nth) * 64;
    if (e > I) e = I;
    if (a >= e) return;
    int q = down->quantized && !down->dynamic;
    w8_swiglu_rows(n, e - a, c->gu + a, c->gu + (size_t)I + a, 2 * (size_t)I, c->act + a,
                   (size_t)I, q ? c->xq + a : NULL, (size_t)I, q ? down->in_scale : 1.0f,
                   q ? down->in_offset : 0);
}

/* A barrier before the GEMM of l (a group: its first part): a thread that
 * waits meanwhile fetches the head of its share of l's weights. */
static void barrier_before(w8_team *tm, const w8_linear *l) {
    const void *w;
    size_t bytes = w8_linear_weights(l, &w);
    w8_team_barrier_next(tm, w, bytes);
}

static const w8_linear *group_first(const w8_linear_group *g) {
    return g->fused ? &g->fused_lin : &g->parts[0];
}

/* rmsnorm (quantized for gate/up) on this thread's rows, then the team's
 * gate/up items with SwiGLU as mlp() runs them: act for a float down_proj,
 * its quantized input for an int8 one.  -1 if the layout does not split. */
static int team_gate_up_swiglu(w8_ctx *c, w8_team *tm, const w8_layer *L, team_rows *p, int n,
                               float eps) {
    const w8_linear *gu = &L->gate_up.fused_lin, *down = &L->down;
    size_t H = (size_t)c->hidden, I = (size_t)c->inter;
    int qdown = down->quantized && !down->dynamic;
    w8_rmsnorm_rows(p->x, n, c->hidden, H, L->ffn_norm, L->ffn_norm_b, eps, NULL, H, p->xq, H,
                    gu->in_scale, gu->in_offset);
    return w8_team_gemm_i8_swiglu(tm, &gu->q, n, p->xq, H, qdown ? NULL : c->act, I,
                                  qdown ? c->xq : NULL, I, down->in_scale, down->in_offset);
}

/* a layer of layers_batch on the team; a barrier after each step whose output every
 * thread reads */
static void team_layer(w8_ctx *c, const w8_model *m, w8_kv *kv, const w8_batch *b, int l,
                       int nrun, w8_team *tm, team_rows *p) {
    const w8_layer *L = &m->layers[l];
    const w8_config *cfg = &m->cfg;
    int n = b->n;
    size_t H = (size_t)c->hidden, I = (size_t)c->inter;
    /* attention block (a thread that waits at a barrier fetches the next
     * matrix's head) */
    team_group(c, tm, &L->qkv, p, n, L->attn_norm, L->attn_norm_b, cfg->rms_eps, c->qkv,
               (size_t)c->qkvdim);
    barrier_before(tm, &L->o);
    team_attention(c, m, kv, b, l, nrun, tm);
    w8_team_barrier(tm);
    team_linear(tm, &L->o, n, c->att_out, (size_t)c->qdim, c->tmp, H, p->xq);
    barrier_before(tm, group_first(&L->gate_up));
    add_rows(p->x, c->tmp, (size_t)n * H);
    /* MLP block: SwiGLU on each gate/up item where it can (one barrier
     * and one pass over the gate/up rows fewer) */
    if (!swiglu_fusable(c, L) || team_gate_up_swiglu(c, tm, L, p, n, cfg->rms_eps) != 0) {
        team_group(c, tm, &L->gate_up, p, n, L->ffn_norm, L->ffn_norm_b, cfg->rms_eps, c->gu,
                   2 * I);
        w8_team_barrier(tm);
        team_swiglu(c, &L->down, n);
    }
    barrier_before(tm, &L->down);
    if (L->down.quantized && !L->down.dynamic)
        w8_team_gemm_i8(tm, &L->down.q, n, c->xq, I, c->tmp, H);
    else
        team_linear(tm, &L->down, n, c->act, I, c->tmp, H, p->xq);
    barrier_before(tm, l + 1 < cfg->n_layers ? group_first(&m->layers[l + 1].qkv) : &m->lm_head);
    add_rows(p->x, c->tmp, (size_t)n * H);
}

/* Threads for a decode team, or 1 for the batch path: a few rows, no
 * observer (it wants the shared f32 buffers), and each sequence in one
 * attention run (a run writes its keys and then reads its sequence's). */
static int team_threads(const w8_ctx *c, const w8_batch *b, int nrun) {
    int nt = w8_get_threads();
    if (nt > c->n_threads) nt = c->n_threads;
    if (nt < 2 || b->n > TEAM_ROWS || c->obs) return 1;
    for (int i = 0; i < nrun; i++)
        for (int j = i + 1; j < nrun; j++)
            if (b->seq[c->run_start[i]] == b->seq[c->run_start[j]]) return 1;
    return nt;
}

/* Every layer, the final norm of the nw wanted rows (c->rows) and lm_head,
 * in one parallel region.  (c->x is left as embed_rows wrote it: nothing
 * reads it after a step.) */
static void forward_team(w8_ctx *c, const w8_model *m, w8_kv *kv, const w8_batch *b, int nrun,
                         int nt, int nw, float *logits) {
    int n = b->n;
    size_t H = (size_t)c->hidden, TR = TEAM_ROWS;
    w8_team_reset(c->team, nt, m->cfg.n_layers * TEAM_LOOPS + TEAM_LOOPS);
#pragma omp parallel num_threads(nt)
    {
        size_t tid = (size_t)omp_get_thread_num();
        team_rows p = {c->tx + tid * TR * H, c->txn + tid * TR * H,
                       c->txq + tid * TR * (size_t)c->maxk};
        memcpy(p.x, c->x, (size_t)n * H * sizeof(float));
        for (int l = 0; l < m->cfg.n_layers; l++) team_layer(c, m, kv, b, l, nrun, c->team, &p);
        for (int j = 0; j < nw; j++)
            w8_rmsnorm_rows(p.x + (size_t)c->rows[j] * H, 1, c->hidden, H, m->final_norm,
                            m->final_norm_b, m->cfg.rms_eps, p.xn + (size_t)j * H, H, NULL, 0,
                            1.0f, 0);
        if (nw > 0 && logits)
            team_linear(c->team, &m->lm_head, nw, p.xn, H, logits, (size_t)m->cfg.vocab, p.xq);
        /* wait here rather than in the region's closing barrier: libgomp's
         * spins for milliseconds, a late thread's whole time slice */
        w8_team_barrier(c->team);
    }
}

int w8_forward(w8_ctx *c, const w8_model *m, w8_kv *kv, const w8_batch *b, float *logits) {
    if (check_batch(c, m, kv, b) || grow_att(c, b)) return -1;
    const w8_config *cfg = &m->cfg;
    int n = b->n;
    size_t H = (size_t)c->hidden;
    /* the rows that want logits, compacted */
    int nw = 0;
    for (int r = 0; r < n; r++)
        if (b->want ? b->want[r] : r == n - 1) c->rows[nw++] = r;

    embed_rows(m, b->tokens, n, c->x);
    rope_tables(c, m, b->pos, n);
    int nrun = attention_runs(c, b), nt = team_threads(c, b, nrun);
    if (nt > 1) {
        forward_team(c, m, kv, b, nrun, nt, nw, logits);
    } else {
        int left = layers_batch(c, m, kv, b, logits ? nw : 0);
        /* final norm and lm_head for the wanted rows only */
        for (int j = 0; j < nw && logits; j++)
            w8_rmsnorm_rows(c->x + (size_t)(left == n ? c->rows[j] : j) * H, 1, c->hidden, H, m->final_norm,
                            m->final_norm_b, cfg->rms_eps, c->xn + (size_t)j * H, H, NULL, 0,
                            1.0f, 0);
        if (nw > 0 && logits)
            w8_linear_apply(&m->lm_head, nw, c->xn, H, logits, (size_t)cfg->vocab, c->xq);
    }
    for (int r = 0; r < n; r++) {
        int len = b->pos[r] + 1;
        if (b->seq[r]->len < len) b->seq[r]->len = len;
    }
    return nw;
}

/*
 * test_forward.c - the forward pass against an independent float64 forward
 * written here (plain double loops over the safetensors tensors), the known
 * greedy ids of stories260K (README.md of the shared data), batching and
 * paging invariance, prefill chunking, and KV pool exhaustion.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/generate.h"
#include "../src/quant/quantize.h"
#include "../src/sampler.h"
#include "../src/util.h"
#include "test.h"

#include <jansson.h>

/* greedy from BOS, float64 reference (shared/README.md) */
static const int STORIES_IDS[40] = {403, 407, 261, 378, 432, 383, 286, 261, 376, 298,
                                    315, 421, 395, 317, 426, 338, 401, 396, 267, 337,
                                    410, 408, 419, 292, 411, 322, 265, 282, 295, 433,
                                    426, 385, 328, 432, 358, 394, 261, 370, 432, 352};
static const int RANDBIAS_IDS[40] = {403, 407, 261, 378, 432, 383, 286, 261, 376, 298,
                                     315, 421, 395, 317, 426, 338, 401, 396, 267, 337,
                                     410, 408, 419, 292, 411, 322, 265, 282, 295, 433,
                                     426, 385, 328, 432, 358, 263, 377, 267, 265, 282};

static char *model_path(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/models/%s", shared_dir(), name);
    return buf;
}

/* ------------------------------------------------------------ float64 reference */

static double *tens(const w8_model *m, const char *name) {
    const w8_tensor *t = w8_st_find(m->st, name);
    if (!t) return NULL;
    double *d = malloc(t->numel * sizeof(double));
    for (size_t i = 0; i < t->numel; i++) d[i] = w8_tensor_get_f32(t, i);
    return d;
}

/* y[T, n] = x[T, k] W^T (+ b) with W, b read by name */
static double *ref_linear(const w8_model *m, const char *wname, const char *bname,
                          const double *x, int T, int n, int k) {
    double *w = tens(m, wname), *b = bname ? tens(m, bname) : NULL;
    double *y = calloc((size_t)T * n, sizeof(double));
    for (int t = 0; t < T; t++)
        for (int j = 0; j < n; j++) {
            double a = b ? b[j] : 0;
            for (int i = 0; i < k; i++) a += x[(size_t)t * k + i] * w[(size_t)j * k + i];
            y[(size_t)t * n + j] = a;
        }
    free(w);
    free(b);
    return y;
}

static void ref_rmsnorm(const w8_model *m, const char *gname, const double *x, double *y, int T,
                        int H) {
    double *g = tens(m, gname);
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int i = 0; i < H; i++) ss += x[(size_t)t * H + i] * x[(size_t)t * H + i];
        double r = 1.0 / sqrt(ss / H + m->cfg.rms_eps);
        for (int i = 0; i < H; i++) y[(size_t)t * H + i] = x[(size_t)t * H + i] * r * g[i];
    }
    free(g);
}

static void ref_rope(double *v, int T, int nh, int hd, double theta) {
    for (int t = 0; t < T; t++)
        for (int h = 0; h < nh; h++) {
            double *x = v + ((size_t)t * nh + h) * hd;
            for (int i = 0; i < hd / 2; i++) {
                double f = t / pow(theta, 2.0 * i / hd), c = cos(f), s = sin(f);
                double a = x[i], b = x[i + hd / 2];
                x[i] = a * c - b * s;
                x[i + hd / 2] = b * c + a * s;
            }
        }
}

/* Logits of the last position of tokens[0..T) (a fresh sequence). */
static void ref_forward(const w8_model *m, const int *tok, int T, double *logits) {
    const w8_config *c = &m->cfg;
    int H = c->hidden, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads;
    int qd = nh * hd, kvd = nkv * hd, I = c->intermediate;
    char n1[256], n2[256];
    double *emb = tens(m, "model.embed_tokens.weight");
    double *x = malloc((size_t)T * H * sizeof(double)), *xn = malloc((size_t)T * H * 8);
    for (int t = 0; t < T; t++) memcpy(x + (size_t)t * H, emb + (size_t)tok[t] * H, H * 8);
    for (int l = 0; l < c->n_layers; l++) {
        snprintf(n1, sizeof n1, "model.layers.%d.input_layernorm.weight", l);
        ref_rmsnorm(m, n1, x, xn, T, H);
        double *qkv[3];
        const char *nm[3] = {"q", "k", "v"};
        for (int p = 0; p < 3; p++) {
            snprintf(n1, sizeof n1, "model.layers.%d.self_attn.%s_proj.weight", l, nm[p]);
            snprintf(n2, sizeof n2, "model.layers.%d.self_attn.%s_proj.bias", l, nm[p]);
            qkv[p] = ref_linear(m, n1, c->qkv_bias ? n2 : NULL, xn, T, p ? kvd : qd, H);
        }
        if (c->qk_norm) { /* Qwen3: every head of q and k RMS-normalized on its own */
            snprintf(n1, sizeof n1, "model.layers.%d.self_attn.q_norm.weight", l);
            ref_rmsnorm(m, n1, qkv[0], qkv[0], T * nh, hd);
            snprintf(n1, sizeof n1, "model.layers.%d.self_attn.k_norm.weight", l);
            ref_rmsnorm(m, n1, qkv[1], qkv[1], T * nkv, hd);
        }
        ref_rope(qkv[0], T, nh, hd, c->rope_theta);
        ref_rope(qkv[1], T, nkv, hd, c->rope_theta);
        double *att = calloc((size_t)T * qd, sizeof(double)), *sc = malloc(T * sizeof(double));
        for (int t = 0; t < T; t++)
            for (int h = 0; h < nh; h++) {
                int g = h / (nh / nkv);
                const double *q = qkv[0] + (size_t)t * qd + h * hd;
                double mx = -1e300, sum = 0;
                for (int s = 0; s <= t; s++) {
                    double a = 0;
                    for (int i = 0; i < hd; i++) a += q[i] * qkv[1][(size_t)s * kvd + g * hd + i];
                    sc[s] = a / sqrt((double)hd);
                    if (sc[s] > mx) mx = sc[s];
                }
                for (int s = 0; s <= t; s++) sum += (sc[s] = exp(sc[s] - mx));
                for (int s = 0; s <= t; s++)
                    for (int i = 0; i < hd; i++)
                        att[(size_t)t * qd + h * hd + i] +=
                            sc[s] / sum * qkv[2][(size_t)s * kvd + g * hd + i];
            }
        snprintf(n1, sizeof n1, "model.layers.%d.self_attn.o_proj.weight", l);
        snprintf(n2, sizeof n2, "model.layers.%d.self_attn.o_proj.bias", l);
        double *o = ref_linear(m, n1, c->o_bias ? n2 : NULL, att, T, H, qd);
        for (size_t i = 0; i < (size_t)T * H; i++) x[i] += o[i];
        snprintf(n1, sizeof n1, "model.layers.%d.post_attention_layernorm.weight", l);
        ref_rmsnorm(m, n1, x, xn, T, H);
        snprintf(n1, sizeof n1, "model.layers.%d.mlp.gate_proj.weight", l);
        double *gt = ref_linear(m, n1, NULL, xn, T, I, H);
        snprintf(n1, sizeof n1, "model.layers.%d.mlp.up_proj.weight", l);
        double *up = ref_linear(m, n1, NULL, xn, T, I, H);
        for (size_t i = 0; i < (size_t)T * I; i++) gt[i] = gt[i] / (1 + exp(-gt[i])) * up[i];
        snprintf(n1, sizeof n1, "model.layers.%d.mlp.down_proj.weight", l);
        double *d = ref_linear(m, n1, NULL, gt, T, H, I);
        for (size_t i = 0; i < (size_t)T * H; i++) x[i] += d[i];
        for (int p = 0; p < 3; p++) free(qkv[p]);
        free(att);
        free(sc);
        free(o);
        free(gt);
        free(up);
        free(d);
    }
    ref_rmsnorm(m, "model.norm.weight", x + (size_t)(T - 1) * H, xn, 1, H);
    double *lm = c->tie_embeddings ? emb : tens(m, "lm_head.weight");
    for (int v = 0; v < c->vocab; v++) {
        double a = 0;
        for (int i = 0; i < H; i++) a += xn[i] * lm[(size_t)v * H + i];
        logits[v] = a;
    }
    if (lm != emb) free(lm);
    free(emb);
    free(x);
    free(xn);
}

/* ------------------------------------------------------------------ helpers */

/* Last-position logits of one prompt through w8_forward (prefill in one call). */
static int engine_logits(const w8_model *m, const int *tok, int T, int block_size, float *out) {
    w8_ctx *c = w8_ctx_new(m, T);
    w8_kv *kv = w8_kv_new(&m->cfg, block_size, (T + block_size - 1) / block_size);
    w8_seq s;
    w8_seq_init(&s);
    int *pos = malloc(T * sizeof(int));
    w8_seq **sq = malloc(T * sizeof(w8_seq *));
    for (int i = 0; i < T; i++) {
        pos[i] = i;
        sq[i] = &s;
    }
    int rc = w8_kv_seq_reserve(kv, &s, T);
    w8_batch b = {T, tok, pos, sq, NULL};
    if (!rc) rc = w8_forward(c, m, kv, &b, out) == 1 ? 0 : -1;
    w8_kv_seq_release(kv, &s);
    w8_kv_free(kv);
    w8_ctx_free(c);
    free(pos);
    free(sq);
    return rc;
}

static double max_rel_err(const float *a, const double *ref, int n) {
    double md = 0, mr = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs(a[i] - ref[i]);
        if (d > md) md = d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return md / (mr > 0 ? mr : 1);
}

static void test_vs_reference_dir(const char *dir, const char *name) {
    w8_model *m = w8_model_load(dir);
    CHECK(m != NULL, "%s loads (%s)", name, m ? "" : w8_lasterr());
    if (!m) return;
    int prompts[3][24], lens[3] = {1, 7, 24};
    for (int p = 0; p < 3; p++) {
        prompts[p][0] = 1;
        for (int i = 1; i < lens[p]; i++) prompts[p][i] = STORIES_IDS[(i * 7 + p) % 40];
    }
    float *lg = malloc(m->cfg.vocab * sizeof(float));
    double *ref = malloc(m->cfg.vocab * sizeof(double));
    for (int p = 0; p < 3; p++) {
        ref_forward(m, prompts[p], lens[p], ref);
        int rc = engine_logits(m, prompts[p], lens[p], 4, lg);
        double e = rc ? 1 : max_rel_err(lg, ref, m->cfg.vocab);
        CHECK(e < 1e-4, "%s: %d-token prompt, last logits vs float64: max rel err %.2e", name,
              lens[p], e);
    }
    free(lg);
    free(ref);
    w8_model_free(m);
}

static void test_vs_reference(const char *name) { test_vs_reference_dir(model_path(name), name); }

/* Greedy generation of n prompts in one batch; ids[i] gets up to max_new ids. */
static int gen(const w8_model *m, int n, const int *const *prompts, const int *lens,
               int max_new, int block_size, int max_rows, int **ids, int *n_ids) {
    w8_ctx *c = w8_ctx_new(m, max_rows);
    int blocks = 0;
    for (int i = 0; i < n; i++) blocks += (lens[i] + max_new + block_size - 1) / block_size;
    w8_kv *kv = w8_kv_new(&m->cfg, block_size, blocks);
    w8_gen_opts o;
    w8_gen_opts_default(&o, max_new);
    w8_gen_out *out = calloc((size_t)(n > 0 ? n : 1), sizeof *out);
    int rc = w8_generate(m, c, kv, n, prompts, lens, &o, out, NULL);
    for (int i = 0; i < n && !rc; i++) {
        ids[i] = out[i].ids;
        n_ids[i] = out[i].n_ids;
    }
    if (!rc && w8_kv_free_blocks(kv) != w8_kv_total_blocks(kv)) rc = w8_seterr("blocks leaked");
    free(out);
    w8_kv_free(kv);
    w8_ctx_free(c);
    return rc;
}

static void test_greedy_from_bos(const char *name, const int *want) {
    w8_model *m = w8_model_load(model_path(name));
    if (!m) {
        CHECK(0, "%s loads: %s", name, w8_lasterr());
        return;
    }
    int bos = 1, len = 1, *ids = NULL, n = 0;
    const int *pr = &bos;
    int rc = gen(m, 1, &pr, &len, 40, 128, 64, &ids, &n);
    int same = !rc && n == 40 && !memcmp(ids, want, sizeof(int) * 40);
    CHECK(same, "%s: greedy from BOS gives the 40 reference ids", name);
    if (!same && !rc) {
        printf("#  got:");
        for (int i = 0; i < n; i++) printf(" %d", ids[i]);
        printf("\n");
    }
    free(ids);
    w8_model_free(m);
}


/* The last layer runs past its cache store only for the rows that want
 * logits: their logits are bitwise those of a batch that wants every row,
 * whichever rows are wanted, and the cache is complete (a decode step after
 * a batch that wanted no logits at all matches one after the full batch). */
static void test_last_layer_rows(const w8_model *m) {
    enum { T = 12, N = T + 3 };
    int V = m->cfg.vocab, tok[N], pos[N], bad = 0;
    float *all = malloc((size_t)N * V * sizeof(float)), *lg = malloc((size_t)N * V * sizeof(float));
    float *d0 = malloc(V * sizeof(float)), *d1 = malloc(V * sizeof(float));
    w8_seq *sq[N];
    /* want sets: every row; rows 2 and 14; the last row (NULL); none */
    const int sets[3][2] = {{2, 14}, {0, 7}, {14, -1}};
    for (int v = -1; v < 5; v++) {
        w8_ctx *c = w8_ctx_new(m, N);
        w8_kv *kv = w8_kv_new(&m->cfg, 8, 8);
        w8_seq s1, s2;
        w8_seq_init(&s1);
        w8_seq_init(&s2);
        w8_kv_seq_reserve(kv, &s1, 4);
        w8_kv_seq_reserve(kv, &s2, T + 1);
        for (int i = 0; i < 3; i++) tok[i] = STORIES_IDS[i + 20], pos[i] = i, sq[i] = &s1;
        for (int i = 0; i < T; i++) tok[3 + i] = i ? STORIES_IDS[i] : 1, pos[3 + i] = i, sq[3 + i] = &s2;
        char want[N];
        memset(want, v == -1, sizeof want);
        if (v >= 0 && v < 3)
            for (int j = 0; j < 2; j++)
                if (sets[v][j] >= 0) want[sets[v][j]] = 1;
        w8_batch b = {N, tok, pos, sq, v == 3 ? NULL : want};
        int nl = w8_forward(c, m, kv, &b, v == 4 ? NULL : (v == -1 ? all : lg));
        if (v == -1) bad += nl != N;
        for (int j = 0, k = 0; v >= 0 && v < 4 && j < N; j++) {
            int wanted = v == 3 ? j == N - 1 : want[j];
            if (wanted) bad += memcmp(lg + (size_t)k++ * V, all + (size_t)j * V, V * sizeof(float)) != 0;
        }
        /* one decode row of s2 after the batch */
        int dt = STORIES_IDS[T], dp = T;
        w8_seq *ds = &s2;
        w8_batch d = {1, &dt, &dp, &ds, NULL};
        w8_forward(c, m, kv, &d, v == -1 ? d0 : d1);
        if (v >= 0) bad += memcmp(d0, d1, V * sizeof(float)) != 0;
        w8_kv_seq_release(kv, &s1);
        w8_kv_seq_release(kv, &s2);
        w8_kv_free(kv);
        w8_ctx_free(c);
    }
    CHECK(bad == 0, "%s: logits of the wanted rows (all, two, last, none) and the next decode step "
          "are bitwise those of a batch wanting every row (%d differ)",
          m->quantized ? "W8A8" : "float", bad);
    free(all);
    free(lg);
    free(d0);
    free(d1);
}

/* One decode row's logits are bitwise the same whatever the number of rows
 * decoded with it (m = 1 .. 9 crosses the kernels' GEMV/GEMM switch). */
static void test_decode_rows_invariant(const w8_model *m) {
    enum { NS = 9, L = 6 };
    int V = m->cfg.vocab, bad = 0;
    float *ref = malloc(V * sizeof(float)), *lg = malloc((size_t)NS * V * sizeof(float));
    for (int rows = 1; rows <= NS; rows++) {
        w8_ctx *c = w8_ctx_new(m, NS * L);
        w8_kv *kv = w8_kv_new(&m->cfg, 8, NS);
        w8_seq s[NS];
        int tok[NS * L], pos[NS * L];
        w8_seq *sq[NS * L];
        char want[NS * L];
        /* prefill L - 1 tokens of each sequence, then one decode row each */
        int n = 0;
        for (int i = 0; i < rows; i++) {
            w8_seq_init(&s[i]);
            w8_kv_seq_reserve(kv, &s[i], L);
            for (int p = 0; p < L - 1; p++, n++) {
                tok[n] = p ? STORIES_IDS[(p * 3 + i) % 40] : 1;
                pos[n] = p;
                sq[n] = &s[i];
                want[n] = 0;
            }
        }
        want[n - 1] = 1;
        w8_batch b = {n, tok, pos, sq, want};
        w8_forward(c, m, kv, &b, lg);
        for (int i = 0; i < rows; i++) {
            tok[i] = STORIES_IDS[i];
            pos[i] = L - 1;
            sq[i] = &s[i];
            want[i] = 1;
        }
        w8_batch d = {rows, tok, pos, sq, want};
        int nl = w8_forward(c, m, kv, &d, lg);
        if (rows == 1) memcpy(ref, lg, V * sizeof(float));
        bad += nl != rows || memcmp(lg, ref, V * sizeof(float)) != 0;
        for (int i = 0; i < rows; i++) w8_kv_seq_release(kv, &s[i]);
        w8_kv_free(kv);
        w8_ctx_free(c);
    }
    CHECK(bad == 0, "%s: a decode row's logits are bitwise equal for 1..%d rows per step (%d differ)",
          m->quantized ? "W8A8" : "float", NS, bad);
    free(ref);
    free(lg);
    test_last_layer_rows(m);
}

static void test_batching(void) {
    w8_model *m = w8_model_load(model_path("stories260K-hf-f32"));
    if (!m) {
        CHECK(0, "load: %s", w8_lasterr());
        return;
    }
    enum { NP = 4, NEW = 24 };
    int p0[1] = {1}, p1[5] = {1, 403, 407, 261, 378}, p2[12], p3[3] = {1, 333, 290};
    for (int i = 0; i < 12; i++) p2[i] = i ? STORIES_IDS[(i * 5) % 40] : 1;
    const int *pr[NP] = {p0, p1, p2, p3};
    int lens[NP] = {1, 5, 12, 3};
    int *alone[NP], na[NP], *batch[NP], nb[NP], *paged[NP], np_[NP], *chunk[NP], nc[NP];
    int ok = 1;
    for (int i = 0; i < NP; i++) ok &= gen(m, 1, &pr[i], &lens[i], NEW, 128, 64, &alone[i], &na[i]) == 0;
    CHECK(ok, "each prompt alone generates");
    ok &= gen(m, NP, pr, lens, NEW, 128, 64, batch, nb) == 0;
    CHECK(ok, "the four prompts in one batch generate (%s)", ok ? "" : w8_lasterr());
    ok &= gen(m, NP, pr, lens, NEW, 4, 64, paged, np_) == 0;
    CHECK(ok, "block size 4 generates");
    ok &= gen(m, NP, pr, lens, NEW, 4, 5, chunk, nc) == 0;
    CHECK(ok, "prefill chunked to 5 rows generates");
    if (!ok) return;
    int same_b = 1, same_p = 1, same_c = 1;
    for (int i = 0; i < NP; i++) {
        same_b &= nb[i] == na[i] && !memcmp(batch[i], alone[i], na[i] * sizeof(int));
        same_p &= np_[i] == na[i] && !memcmp(paged[i], alone[i], na[i] * sizeof(int));
        same_c &= nc[i] == na[i] && !memcmp(chunk[i], alone[i], na[i] * sizeof(int));
    }
    CHECK(na[0] == NEW && !memcmp(alone[0], STORIES_IDS, NEW * sizeof(int)),
          "BOS alone gives the reference ids");
    CHECK(same_b, "batched greedy ids equal each prompt run alone");
    CHECK(same_p, "block size 4 (many blocks per sequence) equals block size 128");
    CHECK(same_c, "prefill chunked over several forward calls equals one call");
    for (int i = 0; i < NP; i++) {
        free(alone[i]);
        free(batch[i]);
        free(paged[i]);
        free(chunk[i]);
    }

    /* logits of one row do not depend on the rest of the batch (bitwise) */
    int T = 12;
    float *a = malloc(m->cfg.vocab * 4), *b = malloc(m->cfg.vocab * 4 * 2);
    engine_logits(m, p2, T, 128, a);
    engine_logits(m, p2, T, 4, b);
    CHECK(!memcmp(a, b, m->cfg.vocab * 4), "logits bitwise equal with KV blocks of 4 and 128");
    w8_ctx *c = w8_ctx_new(m, 32);
    w8_kv *kv = w8_kv_new(&m->cfg, 16, 4);
    w8_seq s1, s2;
    w8_seq_init(&s1);
    w8_seq_init(&s2);
    w8_kv_seq_reserve(kv, &s1, 3);
    w8_kv_seq_reserve(kv, &s2, T);
    int tok[15], pos[15];
    w8_seq *sq[15];
    char want[15] = {0};
    for (int i = 0; i < 3; i++) tok[i] = p3[i], pos[i] = i, sq[i] = &s1;
    for (int i = 0; i < T; i++) tok[3 + i] = p2[i], pos[3 + i] = i, sq[3 + i] = &s2;
    want[2] = want[14] = 1;
    w8_batch bt = {15, tok, pos, sq, want};
    int nl = w8_forward(c, m, kv, &bt, b);
    CHECK(nl == 2 && !memcmp(b + m->cfg.vocab, a, m->cfg.vocab * 4),
          "a row's logits are bitwise equal alone and inside a mixed batch");
    CHECK(s1.len == 3 && s2.len == T, "forward updates each sequence's length");
    /* a row past the reserved blocks is an error, nothing computed */
    int ptok = 5, ppos = 16;
    w8_seq *ps = &s1;
    w8_batch bad = {1, &ptok, &ppos, &ps, NULL};
    CHECK(w8_forward(c, m, kv, &bad, b) == -1 && strstr(w8_lasterr(), "reserved"),
          "position past the reserved blocks: %s", w8_lasterr());
    ptok = 600;
    ppos = 3;
    CHECK(w8_forward(c, m, kv, &bad, b) == -1 && strstr(w8_lasterr(), "token id"),
          "token id out of range: %s", w8_lasterr());
    w8_kv_seq_release(kv, &s1);
    w8_kv_seq_release(kv, &s2);
    w8_kv_free(kv);
    w8_ctx_free(c);
    free(a);
    free(b);
    test_decode_rows_invariant(m);

    /* a position past the scratch's first size (4096) grows it */
    {
        int saved = m->cfg.max_pos;
        ((w8_model *)m)->cfg.max_pos = 100000;
        w8_ctx *cg = w8_ctx_new(m, 4);
        w8_kv *kg = w8_kv_new(&m->cfg, 512, 10);
        w8_seq sg;
        w8_seq_init(&sg);
        w8_kv_seq_reserve(kg, &sg, 4501);
        int gt = 1, gp = 4500;
        w8_seq *gs = &sg;
        w8_batch gb = {1, &gt, &gp, &gs, NULL};
        float *gl = malloc(m->cfg.vocab * sizeof(float));
        int fin = w8_forward(cg, m, kg, &gb, gl) == 1;
        for (int i = 0; i < m->cfg.vocab && fin; i++) fin = isfinite(gl[i]);
        CHECK(fin, "position 4500 (past the first attention scratch size) runs, finite logits");
        free(gl);
        w8_kv_seq_release(kg, &sg);
        w8_kv_free(kg);
        w8_ctx_free(cg);
        ((w8_model *)m)->cfg.max_pos = saved;
    }

    /* exhaustion: 2 blocks of 4 tokens cannot hold 1 + 24 tokens */
    c = w8_ctx_new(m, 8);
    kv = w8_kv_new(&m->cfg, 4, 2);
    w8_gen_opts o;
    w8_gen_opts_default(&o, NEW);
    w8_gen_out out[2];
    const int *two[2] = {p0, p1};
    int l2[2] = {1, 5};
    int rc = w8_generate(m, c, kv, 2, two, l2, &o, out, NULL);
    CHECK(rc == -1 && strstr(w8_lasterr(), "out of blocks"), "KV pool exhaustion is an error: %s",
          w8_lasterr());
    CHECK(w8_kv_free_blocks(kv) == 2 && out[0].ids == NULL, "after the error every block is free");
    w8_kv_free(kv);
    w8_ctx_free(c);
    w8_model_free(m);
}


/* ------------------------------------------------------------------ W8A8
 * A W8A8 copy of stories260K written here by FORMAT.md's arithmetic (fp16
 * flavour: input_scale/offset F16, deq_scale as I64 bit patterns), with
 * activation ranges from the float model's observer.  Layer 1's v_proj gets
 * a different input scale and layer 2's k_proj stays float, so the loader's
 * unfused int8 and mixed paths run too. */

typedef struct {
    float lo[8][W8_OBS_COUNT], hi[8][W8_OBS_COUNT];
} calib;

static void calib_obs(void *ud, int layer, w8_obs_point what, const float *x, int m, int k) {
    calib *c = ud;
    for (size_t i = 0; i < (size_t)m * k; i++) {
        if (x[i] < c->lo[layer][what]) c->lo[layer][what] = x[i];
        if (x[i] > c->hi[layer][what]) c->hi[layer][what] = x[i];
    }
}

typedef struct {
    char name[192];
    w8_dtype dt;
    int ndim;
    int64_t shape[2];
    void *data;
    size_t nbytes;
} qentry;

static qentry *add_entry(qentry *e, int *n, const char *name, w8_dtype dt, int ndim, int64_t d0,
                         int64_t d1, size_t nbytes) {
    qentry *q = &e[(*n)++];
    snprintf(q->name, sizeof q->name, "%s", name);
    q->dt = dt;
    q->ndim = ndim;
    q->shape[0] = d0;
    q->shape[1] = d1;
    q->nbytes = nbytes;
    q->data = malloc(nbytes ? nbytes : 1);
    return q;
}

/* Quantize float tensor `prefix.weight` [n, k] with the activation range lo..hi. */
static void quant_layer(const w8_model *m, qentry *e, int *ne, const char *prefix, float lo,
                        float hi) {
    char nm[160];
    snprintf(nm, sizeof nm, "%s.weight", prefix);
    const w8_tensor *t = w8_st_find(m->st, nm);
    int n = (int)t->shape[0], k = (int)t->shape[1];
    if (lo > 0) lo = 0;
    if (hi < 0) hi = 0;
    float scale = w8_f16_to_f32(w8_f32_to_f16((hi - lo) / 255));
    float off = w8_round_even(-lo / scale) - 128;
    if (off < -128) off = -128;
    if (off > 127) off = 127;
    qentry *w = add_entry(e, ne, nm, W8_I8, 2, n, k, (size_t)n * k);
    snprintf(nm, sizeof nm, "%s.input_scale", prefix);
    qentry *is = add_entry(e, ne, nm, W8_F16, 1, 1, 0, 2);
    snprintf(nm, sizeof nm, "%s.input_offset", prefix);
    qentry *io = add_entry(e, ne, nm, W8_F16, 1, 1, 0, 2);
    snprintf(nm, sizeof nm, "%s.quant_bias", prefix);
    qentry *qb = add_entry(e, ne, nm, W8_I32, 1, n, 0, 4 * (size_t)n);
    snprintf(nm, sizeof nm, "%s.deq_scale", prefix);
    qentry *ds = add_entry(e, ne, nm, W8_I64, 1, n, 0, 8 * (size_t)n);
    *(uint16_t *)is->data = w8_f32_to_f16(scale);
    *(uint16_t *)io->data = w8_f32_to_f16(off);
    for (int j = 0; j < n; j++) {
        float amax = 0;
        for (int i = 0; i < k; i++) {
            float v = fabsf(w8_tensor_get_f32(t, (size_t)j * k + i));
            if (v > amax) amax = v;
        }
        float ws = amax / 127 > 1e-8f ? amax / 127 : 1e-8f;
        long sum = 0;
        for (int i = 0; i < k; i++) {
            float q = w8_round_even(w8_tensor_get_f32(t, (size_t)j * k + i) / ws);
            q = q < -128 ? -128 : q > 127 ? 127 : q;
            ((int8_t *)w->data)[(size_t)j * k + i] = (int8_t)q;
            sum += (long)q;
        }
        float deq = scale * ws;
        uint32_t bits;
        memcpy(&bits, &deq, 4);
        ((int64_t *)ds->data)[j] = (int64_t)bits;
        ((int32_t *)qb->data)[j] = (int32_t)w8_round_even(-off * (float)sum);
    }
}

static int is_quantized_name(const char *name) {
    static const char *parts[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"};
    for (int i = 0; i < 6; i++)
        if (strstr(name, parts[i])) return !strstr(name, "layers.2.self_attn.k_proj");
    return 0;
}

static int write_w8a8(const w8_model *m, const calib *cb, const char *src, const char *dir) {
    qentry *e = calloc(4096, sizeof *e);
    int ne = 0;
    for (size_t i = 0; i < w8_st_count(m->st); i++) {
        const w8_tensor *t = w8_st_at(m->st, i);
        if (is_quantized_name(t->name)) continue;
        qentry *q = add_entry(e, &ne, t->name, t->dtype, t->ndim, t->shape[0],
                              t->ndim > 1 ? t->shape[1] : 0, t->nbytes);
        memcpy(q->data, t->data, t->nbytes);
    }
    const char *attn[4] = {"q_proj", "k_proj", "v_proj", "o_proj"}, *mlp[2] = {"gate_proj", "up_proj"};
    char p[128];
    for (int l = 0; l < m->cfg.n_layers; l++) {
        for (int j = 0; j < 4; j++) {
            snprintf(p, sizeof p, "model.layers.%d.self_attn.%s", l, attn[j]);
            if (!is_quantized_name(p)) continue;
            w8_obs_point pt = j == 3 ? W8_OBS_O_IN : W8_OBS_QKV_IN;
            float hi = cb->hi[l][pt] * (l == 1 && j == 2 ? 1.5f : 1.0f);
            quant_layer(m, e, &ne, p, cb->lo[l][pt], hi);
        }
        for (int j = 0; j < 2; j++) {
            snprintf(p, sizeof p, "model.layers.%d.mlp.%s", l, mlp[j]);
            quant_layer(m, e, &ne, p, cb->lo[l][W8_OBS_GATEUP_IN], cb->hi[l][W8_OBS_GATEUP_IN]);
        }
    }
    w8_mkdir_p(dir);
    char *path = w8_path_join(dir, "quant_model_weight_w8a8.safetensors");
    w8_stw *w = w8_stw_create(path);
    int rc = w ? 0 : -1;
    for (int i = 0; i < ne && !rc; i++) rc = w8_stw_declare(w, e[i].name, e[i].dt, e[i].ndim, e[i].shape);
    if (!rc) rc = w8_stw_begin(w);
    for (int i = 0; i < ne && !rc; i++) rc = w8_stw_write(w, e[i].name, e[i].data, e[i].nbytes);
    if (!rc) rc = w8_stw_finish(w);
    else if (w) w8_stw_abort(w);
    free(path);
    json_t *d = json_object();
    json_object_set_new(d, "model_quant_type", json_string("W8A8"));
    json_object_set_new(d, "version", json_string("1.0.0"));
    for (int i = 0; i < ne; i++) {
        int q = is_quantized_name(e[i].name);
        json_object_set_new(d, e[i].name, json_string(q ? "W8A8" : "FLOAT"));
    }
    path = w8_path_join(dir, "quant_model_description.json");
    if (!rc) rc = json_dump_file(d, path, 0);
    free(path);
    json_decref(d);
    char *s = w8_path_join(src, "config.json"), *dst = w8_path_join(dir, "config.json");
    if (!rc) rc = w8_copy_file(s, dst);
    free(s);
    free(dst);
    for (int i = 0; i < ne; i++) free(e[i].data);
    free(e);
    return rc;
}

/* One int8 layer through w8_linear_apply equals FORMAT.md's formula on the file's tensors. */
static void check_int8_layer(const w8_model *q) {
    const w8_linear *l = &q->layers[0].qkv.fused_lin;
    int k = l->k, n = l->n;
    float x[2 * 64], y[2 * 128];
    w8_rng r;
    w8_rng_seed(&r, 3);
    for (int i = 0; i < 2 * k; i++) x[i] = w8_rng_normal(&r);
    w8_linear_apply(l, 2, x, (size_t)k, y, (size_t)n, NULL);
    const char *names[3] = {"q_proj", "k_proj", "v_proj"};
    double maxerr = 0;
    int row0 = 0;
    for (int p = 0; p < 3; p++) {
        char nm[128];
        snprintf(nm, sizeof nm, "model.layers.0.self_attn.%s.weight", names[p]);
        const w8_tensor *w = w8_st_find(q->st, nm);
        snprintf(nm, sizeof nm, "model.layers.0.self_attn.%s.quant_bias", names[p]);
        const w8_tensor *qb = w8_st_find(q->st, nm);
        snprintf(nm, sizeof nm, "model.layers.0.self_attn.%s.deq_scale", names[p]);
        const w8_tensor *ds = w8_st_find(q->st, nm);
        int pn = (int)w->shape[0];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < pn; j++) {
                long acc = 0;
                for (int c = 0; c < k; c++) {
                    float v = w8_round_even(x[i * k + c] / l->in_scale) + l->in_offset;
                    v = v < -128 ? -128 : v > 127 ? 127 : v;
                    acc += (long)v * ((const int8_t *)w->data)[(size_t)j * k + c];
                }
                int32_t b;
                int64_t d64;
                memcpy(&b, (const char *)qb->data + 4 * j, 4);
                memcpy(&d64, (const char *)ds->data + 8 * j, 8);
                uint32_t bits = (uint32_t)d64;
                float deq;
                memcpy(&deq, &bits, 4);
                double want = (double)(acc + b) * deq, got = y[i * n + row0 + j];
                double e = fabs(got - want) / (fabs(want) > 1e-3 ? fabs(want) : 1e-3);
                if (e > maxerr) maxerr = e;
            }
        row0 += pn;
    }
    CHECK(maxerr < 1e-5, "int8 q/k/v (fused) equals (sum xq*Wq + quant_bias) * deq_scale from "
                         "the file: max rel err %.2e", maxerr);
}

static void test_w8a8(void) {
    const char *src = model_path("stories260K-hf-f32");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", src);
    w8_model *m = w8_model_load(dir);
    if (!m) {
        CHECK(0, "load: %s", w8_lasterr());
        return;
    }
    /* calibrate on a few prompts */
    calib cb;
    for (int l = 0; l < 8; l++)
        for (int p = 0; p < W8_OBS_COUNT; p++) cb.lo[l][p] = cb.hi[l][p] = 0;
    float *lg = malloc(m->cfg.vocab * sizeof(float));
    for (int p = 0; p < 4; p++) {
        int tok[40];
        tok[0] = 1;
        for (int i = 1; i < 40; i++) tok[i] = STORIES_IDS[(i * (p + 1) + p) % 40];
        w8_ctx *c = w8_ctx_new(m, 40);
        w8_ctx_set_observer(c, calib_obs, &cb);
        w8_kv *kv = w8_kv_new(&m->cfg, 16, 3);
        w8_seq s;
        w8_seq_init(&s);
        w8_kv_seq_reserve(kv, &s, 40);
        int pos[40];
        w8_seq *sq[40];
        for (int i = 0; i < 40; i++) pos[i] = i, sq[i] = &s;
        w8_batch b = {40, tok, pos, sq, NULL};
        w8_forward(c, m, kv, &b, lg);
        w8_kv_seq_release(kv, &s);
        w8_kv_free(kv);
        w8_ctx_free(c);
    }
    CHECK(cb.hi[4][W8_OBS_DOWN_IN] > 0 && cb.lo[0][W8_OBS_QKV_IN] < 0,
          "the observer sees every layer's inputs");
    char tmpl[] = "/tmp/w8a8_test_forward_XXXXXX";
    char *tmp = mkdtemp(tmpl);
    int rc = tmp ? write_w8a8(m, &cb, src, tmp) : -1;
    CHECK(rc == 0, "wrote a W8A8 copy (%s)", rc ? w8_lasterr() : tmp);
    w8_model *q = rc ? NULL : w8_model_load(tmp);
    CHECK(q != NULL, "the W8A8 copy loads (%s)", q ? "" : w8_lasterr());
    if (q) {
        /* 5 layers * 6 int8 - 1 float k_proj = 29 int8; 5 down + 1 k_proj + lm_head float */
        CHECK(q->quantized && q->n_int8 == 29 && q->n_float == 7, "int8 %d, float %d linear layers",
              q->n_int8, q->n_float);
        CHECK(q->layers[0].qkv.fused && q->layers[0].gate_up.fused,
              "layer 0: q/k/v and gate/up fused into int8 GEMMs");
        CHECK(!q->layers[1].qkv.fused && q->layers[1].qkv.parts[2].quantized,
              "layer 1: v_proj with its own input scale runs unfused");
        CHECK(!q->layers[2].qkv.fused && !q->layers[2].qkv.parts[1].quantized &&
                  q->layers[2].qkv.parts[0].quantized,
              "layer 2: float k_proj next to int8 q/v");
        CHECK(!q->layers[0].down.quantized, "down_proj stays float");
        CHECK(q->layers[0].down.f.packed && q->lm_head.f.packed && !m->lm_head.f.packed,
              "a W8A8 model's float layers are packed (a float directory's are not)");
        check_int8_layer(q);
        test_decode_rows_invariant(q);
        int bos = 1, len = 1, *fi = NULL, *qi = NULL, nf = 0, nq = 0;
        const int *pr = &bos;
        gen(m, 1, &pr, &len, 40, 16, 8, &fi, &nf);
        int grc = gen(q, 1, &pr, &len, 40, 16, 8, &qi, &nq);
        int agree = 0;
        while (!grc && agree < nq && agree < nf && qi[agree] == fi[agree]) agree++;
        printf("# W8A8 stories260K (own quantization) greedy agrees with float for %d of 40 tokens\n",
               agree);
        CHECK(grc == 0 && nq == 40 && agree >= 5,
              "W8A8 greedy from BOS runs and starts like float (%d tokens agree)", agree);
        free(fi);
        free(qi);
        w8_model_free(q);
    }
    if (tmp) w8_rm_rf(tmp);
    free(lg);
    w8_model_free(m);
}

/* ------------------------------------------------------------------ Qwen3 */

/* A tiny random f32 Qwen3 directory in dir: hidden 64, 4 heads of head_dim
 * 32 (q is 128 wide, not 64: head_dim != hidden / heads, as in Qwen3-0.6B),
 * 2 KV heads, q_norm / k_norm weights around 1 but not 1, tied embeddings.
 * skip names a tensor left out (NULL: none). */
static int write_tiny_qwen3(const char *dir, const char *skip) {
    enum { H = 64, NH = 4, NKV = 2, HD = 32, I = 96, V = 512, NL = 2 };
    static const char cfg[] =
        "{\"architectures\": [\"Qwen3ForCausalLM\"], \"model_type\": \"qwen3\", "
        "\"attention_bias\": false, \"head_dim\": 32, \"hidden_size\": 64, "
        "\"intermediate_size\": 96, \"max_position_embeddings\": 256, "
        "\"num_attention_heads\": 4, \"num_hidden_layers\": 2, \"num_key_value_heads\": 2, "
        "\"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000, \"tie_word_embeddings\": true, "
        "\"torch_dtype\": \"float32\", \"vocab_size\": 512}";
    struct {
        char name[96];
        int64_t shape[2];
        int ndim;
        float mean, std;
    } t[32];
    int n = 0;
#define T2(nm, a, b, sd) \
    (snprintf(t[n].name, 96, "%s", nm), t[n].shape[0] = a, t[n].shape[1] = b, t[n].ndim = 2, \
     t[n].mean = 0, t[n].std = sd, n++)
#define T1(nm, a, mu, sd) \
    (snprintf(t[n].name, 96, "%s", nm), t[n].shape[0] = a, t[n].ndim = 1, t[n].mean = mu, \
     t[n].std = sd, n++)
    char nm[96];
    T2("model.embed_tokens.weight", V, H, 1.0f);
    for (int l = 0; l < NL; l++) {
        static const char *const lin[7] = {"self_attn.q_proj", "self_attn.k_proj",
                                           "self_attn.v_proj", "self_attn.o_proj",
                                           "mlp.gate_proj",    "mlp.up_proj", "mlp.down_proj"};
        const int64_t rows[7] = {NH * HD, NKV * HD, NKV * HD, H, I, I, H};
        const int64_t cols[7] = {H, H, H, NH * HD, H, H, I};
        for (int j = 0; j < 7; j++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, lin[j]);
            T2(nm, rows[j], cols[j], 0.15f);
        }
        snprintf(nm, sizeof nm, "model.layers.%d.self_attn.q_norm.weight", l);
        T1(nm, HD, 1.0f, 0.5f);
        snprintf(nm, sizeof nm, "model.layers.%d.self_attn.k_norm.weight", l);
        T1(nm, HD, 1.0f, 0.5f);
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        T1(nm, H, 1.0f, 0.1f);
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
        T1(nm, H, 1.0f, 0.1f);
    }
    T1("model.norm.weight", H, 1.0f, 0.1f);
#undef T1
#undef T2
    if (w8_mkdir_p(dir) != 0) return -1;
    char *p = w8_path_join(dir, "config.json");
    FILE *f = fopen(p, "w");
    int rc = f && fputs(cfg, f) >= 0 ? 0 : -1;
    if (f && fclose(f) != 0) rc = -1;
    free(p);
    p = w8_path_join(dir, "model.safetensors");
    w8_stw *w = rc ? NULL : w8_stw_create(p);
    free(p);
    if (!w) return -1;
    for (int i = 0; i < n && !rc; i++)
        if (!skip || strcmp(t[i].name, skip)) rc = w8_stw_declare(w, t[i].name, W8_F32, t[i].ndim, t[i].shape);
    if (!rc) rc = w8_stw_begin(w);
    w8_rng r;
    w8_rng_seed(&r, 13);
    for (int i = 0; i < n && !rc; i++) {
        size_t ne = (size_t)t[i].shape[0] * (size_t)(t[i].ndim == 2 ? t[i].shape[1] : 1);
        float *d = malloc(ne * sizeof(float));
        for (size_t e = 0; e < ne; e++) d[e] = t[i].mean + t[i].std * w8_rng_normal(&r);
        if (!skip || strcmp(t[i].name, skip)) rc = w8_stw_write(w, t[i].name, d, ne * sizeof(float));
        free(d);
    }
    if (!rc) return w8_stw_finish(w);
    w8_stw_abort(w);
    return -1;
}

/* Qwen3: the engine's forward (q_norm / k_norm per head before RoPE, head_dim
 * 32 with hidden 64) equals the float64 reference; batching stays bitwise;
 * a directory without k_norm is refused by name. */
static void test_qwen3(void) {
    char tmpl[] = "/tmp/w8a8_test_qwen3_XXXXXX";
    char *tmp = mkdtemp(tmpl);
    CHECK(tmp != NULL, "temporary directory");
    if (!tmp) return;
    char *ok_dir = w8_path_join(tmp, "q3"), *bad_dir = w8_path_join(tmp, "q3-no-knorm");
    CHECK(write_tiny_qwen3(ok_dir, NULL) == 0, "wrote a tiny random Qwen3 (%s)", ok_dir);
    w8_model *m = w8_model_load(ok_dir);
    CHECK(m && m->cfg.arch == W8_ARCH_QWEN3 && m->cfg.qk_norm && m->cfg.head_dim == 32 &&
              m->cfg.n_heads * m->cfg.head_dim != m->cfg.hidden && !m->cfg.qkv_bias &&
              m->layers[1].q_norm && m->layers[1].k_norm,
          "Qwen3 config: head_dim 32 with hidden 64 and 4 heads, q/k norm loaded, no q/k/v bias");
    if (m) {
        /* the q/k norm must matter here, or the comparison below proves nothing */
        float *a = malloc(m->cfg.vocab * sizeof(float)), *b = malloc(m->cfg.vocab * sizeof(float));
        int tok[6] = {1, 403, 407, 261, 378, 432};
        int rc = engine_logits(m, tok, 6, 4, a);
        float *saved = m->layers[0].k_norm;
        float ones[32];
        for (int i = 0; i < 32; i++) ones[i] = 1.0f;
        m->layers[0].k_norm = ones;
        rc |= engine_logits(m, tok, 6, 4, b);
        m->layers[0].k_norm = saved;
        double diff = 0;
        for (int i = 0; i < m->cfg.vocab; i++) diff = fmax(diff, fabs(a[i] - b[i]));
        CHECK(rc == 0 && diff > 1e-3, "k_norm's weight changes the logits (max diff %.3g)", diff);
        free(a);
        free(b);
        test_decode_rows_invariant(m);
        w8_model_free(m);
    }
    test_vs_reference_dir(ok_dir, "Qwen3 tiny (random q_norm/k_norm)");
    CHECK(write_tiny_qwen3(bad_dir, "model.layers.1.self_attn.k_norm.weight") == 0,
          "wrote a Qwen3 without layer 1's k_norm");
    m = w8_model_load(bad_dir);
    const char *e = m ? "" : w8_lasterr();
    CHECK(!m && strstr(e, "model.layers.1.self_attn.k_norm.weight") && strstr(e, "missing") &&
              strstr(e, "Qwen3ForCausalLM"),
          "a Qwen3 without k_norm is refused: %s", e);
    w8_model_free(m);
    free(ok_dir);
    free(bad_dir);
    w8_rm_rf(tmp);
}

/* ------------------------------------------------- 4.x and 5.x configs */

#define STORIES_SHAPE                                                                      \
    "\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 64,"   \
    " \"intermediate_size\": 172, \"num_hidden_layers\": 5, \"num_attention_heads\": 8,"         \
    " \"num_key_value_heads\": 4, \"head_dim\": 8, \"vocab_size\": 512,"                          \
    " \"max_position_embeddings\": 512, \"rms_norm_eps\": 1e-05, \"hidden_act\": \"silu\","        \
    " \"tie_word_embeddings\": true, \"bos_token_id\": 1, \"eos_token_id\": 2, "

/* The stories260K-hf-f16 weights in DIR with config.json `cfg`; the last
 * logits of a 24-token prompt into out.  0 on success. */
static int logits_with_config(const char *dir, const char *cfg, float *out, int vocab) {
    w8_rm_rf(dir);
    w8_mkdir_p(dir);
    char *src = w8_path_join(model_path("stories260K-hf-f16"), "model.safetensors");
    char *dst = w8_path_join(dir, "model.safetensors"), *cp = w8_path_join(dir, "config.json");
    int rc = w8_copy_file(src, dst);
    FILE *f = fopen(cp, "w");
    if (f) {
        fputs(cfg, f);
        fclose(f);
    }
    free(src);
    free(dst);
    free(cp);
    w8_model *m = rc == 0 ? w8_model_load(dir) : NULL;
    rc = -1;
    if (m && m->cfg.vocab == vocab) {
        int tok[24];
        tok[0] = 1;
        for (int i = 1; i < 24; i++) tok[i] = STORIES_IDS[i - 1];
        rc = engine_logits(m, tok, 24, 4, out);
    }
    if (!m) printf("# %s\n", w8_lasterr());
    w8_model_free(m);
    w8_rm_rf(dir);
    return rc;
}

/* A config as transformers 4.x writes it and the same one re-saved by 5.x
 * (rope_parameters instead of rope_theta / rope_scaling, dtype instead of
 * torch_dtype, layer_types) give bitwise the same logits on the same
 * weights; a config without the RoPE scaling gives different ones, so the
 * scaling is really read from both. */
static void test_config_generations(void) {
    static const struct {
        const char *what, *v4, *v5;
    } cases[] = {
        {"llama3 RoPE",
         "{" STORIES_SHAPE "\"rope_theta\": 500000.0, \"rope_scaling\": {\"factor\": 8.0,"
         " \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0, \"original_max_position_embeddings\": 64,"
         " \"rope_type\": \"llama3\"}, \"torch_dtype\": \"float16\", \"transformers_version\": \"4.45.0\"}",
         "{" STORIES_SHAPE "\"dtype\": \"float16\", \"layer_types\": [\"full_attention\","
         " \"full_attention\", \"full_attention\", \"full_attention\", \"full_attention\"],"
         " \"rope_parameters\": {\"factor\": 8.0, \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0,"
         " \"original_max_position_embeddings\": 64, \"rope_theta\": 500000.0, \"rope_type\": \"llama3\"},"
         " \"transformers_version\": \"5.1.0\"}"},
        {"linear RoPE",
         "{" STORIES_SHAPE "\"rope_theta\": 20000, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 4},"
         " \"torch_dtype\": \"float16\"}",
         "{" STORIES_SHAPE "\"rope_parameters\": {\"full_attention\": {\"rope_theta\": 20000.0,"
         " \"rope_type\": \"linear\", \"factor\": 4.0}}, \"dtype\": \"float16\"}"},
    };
    const char *plain = "{" STORIES_SHAPE "\"rope_theta\": 10000.0, \"torch_dtype\": \"float16\"}";
    char d4[64], d5[64];
    snprintf(d4, sizeof d4, "/tmp/w8a8-test-fwd4-%ld", (long)getpid());
    snprintf(d5, sizeof d5, "/tmp/w8a8-test-fwd5-%ld", (long)getpid());
    int V = 512;
    float *a = malloc(V * sizeof(float)), *b = malloc(V * sizeof(float)), *c = malloc(V * sizeof(float));
    int rc = logits_with_config(d4, plain, c, V);
    CHECK(rc == 0, "stories260K weights with a written config run");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int ra = logits_with_config(d4, cases[i].v4, a, V);
        int rb = logits_with_config(d5, cases[i].v5, b, V);
        CHECK(ra == 0 && rb == 0 && !memcmp(a, b, V * sizeof(float)),
              "%s: 4.x and 5.x configs give bitwise equal logits", cases[i].what);
        CHECK(rc == 0 && ra == 0 && memcmp(a, c, V * sizeof(float)) != 0,
              "%s: the scaling changes the logits (it is read, not defaulted)", cases[i].what);
    }
    free(a);
    free(b);
    free(c);
}

/* W8A8_DYNAMIC and the mixed recipe (issue 14), through the quantizer: the
 * layers load on their own paths, fused groups stay fused, a decode row's
 * logits do not depend on the batch, and greedy output starts like float. */
/* Quantize src into dst with a small calibration (4 x 32 tokens); the
 * recipe's model type (NULL: the config's) and quant type.  Returns w8_quantize's code. */
static int quant_small(const char *src, const char *dst, const char *model_type,
                       w8_quant_type qt, w8_quant_report *rep) {
    w8_quant_opts o;
    w8_quant_opts_init(&o);
    o.model_path = src;
    o.save_path = dst;
    if (model_type) o.model_type = model_type;
    o.quant_type = qt;
    o.calib_samples = 4;
    o.calib_seq_len = 32;
    return w8_quantize(&o, rep);
}

static void test_dynamic(const char *name, w8_quant_type qt) {
    const char *what = qt == W8_QUANT_DYNAMIC ? "w8a8_dynamic" : "w8a8_mix";
    char src[4096], tmpl[] = "/tmp/w8a8_test_dyn_XXXXXX", dst[4200];
    snprintf(src, sizeof src, "%s", model_path(name));
    char *tmp = mkdtemp(tmpl);
    if (!tmp) {
        CHECK(0, "mkdtemp");
        return;
    }
    snprintf(dst, sizeof dst, "%s/q", tmp);
    w8_quant_report rep;
    int rc = quant_small(src, dst, NULL, qt, &rep);
    CHECK(rc == 0, "%s: %s quantizes (%s)", name, what, rc ? w8_lasterr() : "");
    w8_model *q = rc ? NULL : w8_model_load(dst), *m = w8_model_load(src);
    CHECK(q && m, "%s: %s loads (%s)", name, what, q ? "" : w8_lasterr());
    if (q && m) {
        const w8_layer *L = &q->layers[0];
        if (qt == W8_QUANT_DYNAMIC) {
            CHECK(rep.n_samples == 0 && q->n_dynamic == q->n_int8 && q->n_int8 > 0,
                  "%s: no calibration; all %d int8 layers dynamic", name, q->n_int8);
            CHECK(rep.n_layer_quantizations == rep.n_quant,
                  "%s: each weight read and quantized once (%d for %d layers)", name,
                  rep.n_layer_quantizations, rep.n_quant);
            CHECK(L->qkv.fused && L->qkv.fused_lin.dynamic && L->gate_up.fused &&
                      L->gate_up.fused_lin.dynamic && L->o.dynamic,
                  "%s: dynamic q/k/v and gate/up fused", name);
            CHECK(!m->cfg.qkv_bias || (L->qkv.fused_lin.bias != NULL),
                  "%s: the fused dynamic q/k/v carries the float bias", name);
        } else {
            CHECK(rep.n_samples > 0 && L->down.quantized && L->down.dynamic &&
                      L->qkv.fused && !L->qkv.fused_lin.dynamic && !L->o.dynamic &&
                      q->n_dynamic == q->cfg.n_layers,
                  "%s: mixed: static q/k/v/o/gate/up, dynamic down_proj (%d)", name, q->n_dynamic);
        }
        test_decode_rows_invariant(q);
        int bos = 1, len = 1, *fi = NULL, *qi = NULL, nf = 0, nq = 0;
        const int *pr = &bos;
        gen(m, 1, &pr, &len, 40, 16, 8, &fi, &nf);
        int grc = gen(q, 1, &pr, &len, 40, 16, 8, &qi, &nq);
        int agree = 0;
        while (!grc && agree < nq && agree < nf && qi[agree] == fi[agree]) agree++;
        CHECK(grc == 0 && nq == 40 && agree >= 10,
              "%s: %s greedy from BOS starts like float (%d of 40 tokens agree)", name, what, agree);
        free(fi);
        free(qi);
    }
    w8_model_free(q);
    w8_model_free(m);
    w8_rm_rf(tmp);
}

/* Last-position logits of the prefixes tok[0..L) for L = 8 .. 8 + n - 1. */
static int prefix_logits(const w8_model *m, int n, float *out) {
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = engine_logits(m, STORIES_IDS, 8 + i, 16, out + (size_t)i * m->cfg.vocab);
    return rc;
}

/* Mean KL(p || q) of softmax rows and their top-1 agreement (0..1). */
static double kl_top1(const float *p, const float *q, int n, int V, double *top1) {
    double kl = 0;
    int agree = 0;
    for (int i = 0; i < n; i++) {
        const float *a = p + (size_t)i * V, *b = q + (size_t)i * V;
        double ma = a[0], mb = b[0], sa = 0, sb = 0;
        int ia = 0, ib = 0;
        for (int j = 1; j < V; j++) {
            if (a[j] > ma) ma = a[j], ia = j;
            if (b[j] > mb) mb = b[j], ib = j;
        }
        for (int j = 0; j < V; j++) sa += exp(a[j] - ma), sb += exp(b[j] - mb);
        double la = ma + log(sa), lb = mb + log(sb);
        for (int j = 0; j < V; j++) kl += exp(a[j] - la) * ((a[j] - la) - (b[j] - lb));
        agree += ia == ib;
    }
    *top1 = (double)agree / n;
    return kl / n;
}

/* A layer made int8 at load gives the same bits on every ISA the CPU has,
 * and row i of a 7-row call equals row i alone (the whole model's logits are
 * not compared across ISAs: its exp-based steps differ by an ulp there). */
static int converted_bitwise(const w8_linear *l, const char *what, const char *name) {
    enum { M = 7 };
    float *x = malloc(sizeof(float) * M * l->k), *ref = malloc(sizeof(float) * M * l->n);
    float *y = malloc(sizeof(float) * M * l->n);
    uint64_t r = 88172645463325252ull;
    for (int i = 0; i < M * l->k; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        x[i] = (float)((double)(r >> 11) / 9007199254740992.0 - 0.5) * (i % 61 == 0 ? 40 : 2);
    }
    w8_isa keep = w8_isa_active();
    int bad = 0, n_isa = 0;
    for (int isa = W8_ISA_SCALAR; isa <= (int)w8_isa_hw(); isa++) {
        if (w8_isa_force((w8_isa)isa)) continue;
        n_isa++;
        w8_linear_apply(l, M, x, (size_t)l->k, y, (size_t)l->n, NULL);
        if (isa == W8_ISA_SCALAR) memcpy(ref, y, sizeof(float) * M * l->n);
        bad += memcmp(y, ref, sizeof(float) * M * l->n) != 0;
        for (int i = 0; i < M; i++) {
            w8_linear_apply(l, 1, x + (size_t)i * l->k, (size_t)l->k, y, (size_t)l->n, NULL);
            bad += memcmp(y, ref + (size_t)i * l->n, sizeof(float) * l->n) != 0;
        }
    }
    w8_isa_force(keep);
    CHECK(bad == 0 && n_isa >= 1 && l->converted,
          "%s: %s made int8 at load: the same bits on %d ISAs, 7 rows = each alone", name, what,
          n_isa);
    free(x);
    free(ref);
    free(y);
    return bad;
}

/* --float_layers int8 (issue 20): a W8A8 directory's float layers (the
 * Qwen2 recipe's down_proj, the tied lm_head) are quantized at load to
 * W8A8_DYNAMIC; the default load is untouched; the arithmetic is the
 * quantizer's (a float directory made int8 at load gives the bits of its
 * `quant --quant_type w8a8_dynamic --model_type llama` copy made int8 at
 * load); a decode row does not depend on the batch; the logits move, but
 * little. */
static void test_float_layers_int8(const char *name) {
    char src[4096], tmpl[] = "/tmp/w8a8_test_fl8_XXXXXX", st[4200], dy[4200];
    snprintf(src, sizeof src, "%s", model_path(name));
    char *tmp = mkdtemp(tmpl);
    if (!tmp) {
        CHECK(0, "mkdtemp");
        return;
    }
    snprintf(st, sizeof st, "%s/st", tmp);
    snprintf(dy, sizeof dy, "%s/dyn", tmp);
    w8_quant_report rep;
    w8_quant_opts dflt;
    w8_quant_opts_init(&dflt);
    int rc = quant_small(src, st, "qwen2", dflt.quant_type, &rep);
    if (rc == 0) rc = quant_small(src, dy, "llama", W8_QUANT_DYNAMIC, &rep);
    CHECK(rc == 0, "%s: Qwen2-recipe W8A8 and every-linear W8A8_DYNAMIC copies (%s)", name,
          rc ? w8_lasterr() : "");
    w8_load_opts i8 = {W8_FLOAT_LAYERS_INT8}, fl = {W8_FLOAT_LAYERS_FILE};
    w8_model *f = w8_model_load(src), *q = rc ? NULL : w8_model_load_opts(st, &fl);
    w8_model *q8 = rc ? NULL : w8_model_load_opts(st, &i8);
    w8_model *f8 = w8_model_load_opts(src, &i8), *d8 = rc ? NULL : w8_model_load_opts(dy, &i8);
    CHECK(f && q && q8 && f8 && d8, "%s: loads with --float_layers file and int8 (%s)", name,
          f && q && q8 && f8 && d8 ? "" : w8_lasterr());
    if (f && q && q8 && f8 && d8) {
        int nl = q->cfg.n_layers, V = q->cfg.vocab;
        CHECK(q->n_converted == 0 && !q->layers[0].down.quantized && !q->lm_head.quantized &&
                  !strcmp(w8_model_kind(q), "W8A8"),
              "%s: file: down_proj and lm_head float, as stored", name);
        int conv = 1;
        for (int l = 0; l < nl; l++) {
            const w8_linear *d = &q8->layers[l].down;
            conv &= d->quantized && d->dynamic && d->converted;
        }
        CHECK(conv && q8->lm_head.dynamic && q8->lm_head.converted && q8->n_float == 0 &&
                  q8->n_converted == nl + 1 && q8->n_int8 == q->n_int8 + q->n_float &&
                  q8->layers[0].qkv.fused && !q8->layers[0].qkv.fused_lin.dynamic &&
                  !strcmp(w8_model_kind(q8), "W8A8 +int8 float layers"),
              "%s: int8: %d down_proj + tied lm_head made W8A8_DYNAMIC, static layers kept (%s)",
              name, nl, w8_model_kind(q8));
        CHECK(f8->n_float == 0 && f8->n_converted == f8->n_int8 && f8->layers[0].qkv.fused &&
                  f8->layers[0].qkv.fused_lin.dynamic &&
                  !strcmp(w8_model_kind(f8), "float +int8 linears"),
              "%s: a float directory with int8: every linear W8A8_DYNAMIC, q/k/v fused", name);
        /* the tied lm_head's int8 copy is separate; the lookup still reads the
         * mapped float rows (their pages were dropped, not unmapped) */
        CHECK(f8->embed->nbytes == f->embed->nbytes && f8->lm_head.f.w == NULL &&
                  memcmp(f8->embed->data, f->embed->data, f->embed->nbytes) == 0 &&
                  memcmp(q8->embed->data, f->embed->data, f->embed->nbytes) == 0,
              "%s: the embedding lookup still reads the file's float rows", name);
        enum { NP = 24 };
        float *lf = malloc(sizeof(float) * NP * V), *lq = malloc(sizeof(float) * NP * V);
        float *l8 = malloc(sizeof(float) * NP * V), *lf8 = malloc(sizeof(float) * NP * V);
        float *ld8 = malloc(sizeof(float) * NP * V);
        rc = prefix_logits(f, NP, lf) || prefix_logits(q, NP, lq) || prefix_logits(q8, NP, l8) ||
             prefix_logits(f8, NP, lf8) || prefix_logits(d8, NP, ld8);
        CHECK(rc == 0, "%s: forward passes", name);
        if (rc == 0) {
            CHECK(memcmp(lf8, ld8, sizeof(float) * NP * V) == 0,
                  "%s: float dir made int8 at load = its w8a8_dynamic copy made int8 at load, "
                  "bit for bit (one weight arithmetic)", name);
            CHECK(memcmp(lq, l8, sizeof(float) * NP * V) != 0,
                  "%s: int8 float layers change the logits", name);
            double t1q, t18, kq = kl_top1(lf, lq, NP, V, &t1q), k8 = kl_top1(lf, l8, NP, V, &t18);
            double t1x, kx = kl_top1(lq, l8, NP, V, &t1x);
            CHECK(k8 < 0.01 && t18 >= 0.9 && kx < 0.01 && t1x >= 0.9,
                  "%s: vs float KL %.5f top-1 %.0f%% (file: KL %.5f top-1 %.0f%%); vs file KL "
                  "%.5f top-1 %.0f%%",
                  name, k8, 100 * t18, kq, 100 * t1q, kx, 100 * t1x);
        }
        free(lf);
        free(lq);
        free(l8);
        free(lf8);
        free(ld8);
        test_decode_rows_invariant(q8);
        test_decode_rows_invariant(f8);
        converted_bitwise(&q8->layers[nl - 1].down, "down_proj", name);
        converted_bitwise(&q8->lm_head, "tied lm_head", name);
        converted_bitwise(&f8->layers[0].qkv.fused_lin, "fused q/k/v of a float dir", name);
    }
    w8_model_free(f);
    w8_model_free(q);
    w8_model_free(q8);
    w8_model_free(f8);
    w8_model_free(d8);
    CHECK(w8_float_layers_parse("int8", &i8.float_layers) == 0 &&
              w8_float_layers_parse("file", &fl.float_layers) == 0 &&
              w8_float_layers_parse("fp8", &i8.float_layers) != 0 &&
              strstr(w8_lasterr(), "file, int8"),
          "--float_layers values: file, int8; others refused naming them");
    w8_rm_rf(tmp);
}

int main(void) {
    w8_set_threads(2);
    test_vs_reference("stories260K-hf-f32");
    test_vs_reference("stories260K-hf-bf16");
    test_vs_reference("stories260K-as-qwen2-bf16-random-bias");
    test_greedy_from_bos("stories260K-hf-f32", STORIES_IDS);
    test_greedy_from_bos("stories260K-hf-bf16", STORIES_IDS);
    test_greedy_from_bos("stories260K-hf-f16", STORIES_IDS);
    test_greedy_from_bos("stories260K-as-qwen2-bf16-zero-bias", STORIES_IDS);
    test_greedy_from_bos("stories260K-as-qwen2-bf16-random-bias", RANDBIAS_IDS);
    test_batching();
    test_w8a8();
    test_qwen3();
    test_config_generations();
    test_dynamic("stories260K-as-qwen2-bf16-random-bias", W8_QUANT_DYNAMIC);
    test_dynamic("stories260K-hf-f16", W8_QUANT_DYNAMIC);
    test_dynamic("stories260K-as-qwen2-bf16-random-bias", W8_QUANT_MIX);
    test_float_layers_int8("stories260K-hf-f16");
    test_float_layers_int8("stories260K-as-qwen2-bf16-random-bias");
    TEST_DONE();
}

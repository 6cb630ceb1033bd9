/*
 * test_ppl.c - perplexity, compare and bench libraries on stories260K.
 *
 * The perplexity of w8_ppl_eval is checked against an independent
 * computation written here: one w8_forward call per window with every row
 * wanted, log-softmax in double, and the two scores summed by position
 * (full window: targets 1..ctx-1; llama.cpp's second half: targets
 * ctx/2+1..ctx-1).  Then chunked batches, window limits, bad input, and
 * compare/bench on the same model, and bench --roofline's pairing of
 * repetitions with the probes around them.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/bench.h"
#include "../src/compare.h"
#include "../src/forward.h"
#include "../src/kv_cache.h"
#include "../src/model.h"
#include "../src/ppl.h"
#include "../src/roofline.h"
#include "../src/tokenizer/tokenizer.h"
#include "../src/util.h"
#include "test.h"

#define EXCERPT_BYTES 3000
#define CTX 64

static char *path_in_shared(const char *rel) {
    return w8_path_join(shared_dir(), rel);
}

/* log softmax(logits)[t] in double, written independently of w8_logprob. */
static double ref_logsoftmax(const float *l, int vocab, int t) {
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < vocab; i++) mx = l[i] > mx ? l[i] : mx;
    for (int i = 0; i < vocab; i++) s += exp(l[i] - mx);
    return l[t] - mx - log(s);
}

/* Reference: per window one forward call over all ctx rows. */
static int ref_ppl(const w8_model *m, const int *ids, int n, int ctx, int bos, double *nll_full,
                   long *n_full, double *nll_half, long *n_half) {
    int vocab = m->cfg.vocab, nw = n / ctx;
    w8_kv *kv = w8_kv_new(&m->cfg, 16, (ctx + 15) / 16);
    w8_ctx *c = w8_ctx_new(m, ctx);
    int *win = malloc(sizeof(int) * ctx), *pos = malloc(sizeof(int) * ctx);
    w8_seq **seqs = malloc(sizeof(w8_seq *) * ctx);
    char *want = malloc(ctx);
    float *logits = malloc(sizeof(float) * ctx * vocab);
    w8_seq s;
    *nll_full = *nll_half = 0;
    *n_full = *n_half = 0;
    int rc = kv && c ? 0 : -1;
    for (int w = 0; w < nw && rc == 0; w++) {
        w8_seq_init(&s);
        if (w8_kv_seq_reserve(kv, &s, ctx) != 0) rc = -1;
        for (int i = 0; i < ctx; i++) {
            win[i] = i == 0 && bos >= 0 ? bos : ids[w * ctx + i];
            pos[i] = i;
            seqs[i] = &s;
            want[i] = 1;
        }
        w8_batch b = {ctx, win, pos, seqs, want};
        if (rc == 0 && w8_forward(c, m, kv, &b, logits) != ctx) rc = -1;
        for (int p = 0; rc == 0 && p + 1 < ctx; p++) {
            double nll = -ref_logsoftmax(logits + (size_t)p * vocab, vocab, win[p + 1]);
            *nll_full += nll;
            (*n_full)++;
            if (p >= ctx / 2) {
                *nll_half += nll;
                (*n_half)++;
            }
        }
        w8_kv_seq_release(kv, &s);
        free(s.blocks);
    }
    free(win);
    free(pos);
    free(seqs);
    free(want);
    free(logits);
    w8_ctx_free(c);
    w8_kv_free(kv);
    return rc;
}

static int rel_close(double a, double b, double tol) {
    return fabs(a - b) <= tol * fmax(fabs(a), fabs(b)) + 1e-12;
}

static void test_helpers(void) {
    float u[8] = {0};
    CHECK(fabs(w8_logprob(u, 8, 3) + log(8.0)) < 1e-12, "logprob of uniform logits is -ln 8");
    float big[3] = {1000.f, 0.f, -1000.f};
    CHECK(fabs(w8_logprob(big, 3, 0)) < 1e-12 && isfinite(w8_logprob(big, 3, 2)),
          "logprob stays finite for logits of +-1000");
    CHECK(w8_logprob(u, 8, 8) == -INFINITY && w8_logprob(u, 8, -1) == -INFINITY,
          "logprob of an id outside the vocabulary is -inf");
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 4}, c[4] = {4, 3, 2, 1};
    CHECK(w8_kl_logits(a, b, 4) == 0, "KL of identical logits is 0");
    /* KL(p||q) by hand for p = softmax(a), q = softmax(c). */
    double za = 0, zc = 0, kl = 0;
    for (int i = 0; i < 4; i++) za += exp(a[i]), zc += exp(c[i]);
    for (int i = 0; i < 4; i++) kl += exp(a[i]) / za * ((a[i] - log(za)) - (c[i] - log(zc)));
    CHECK(rel_close(w8_kl_logits(a, c, 4), kl, 1e-12), "KL matches the definition (%.6f)", kl);
    CHECK(w8_argmax(c, 4) == 0 && w8_argmax(a, 4) == 3, "argmax");
    w8_nll_sum s = {0};
    w8_nll_add(&s, log(2.0));
    w8_nll_add(&s, log(8.0));
    CHECK(rel_close(w8_nll_ppl(&s), 4.0, 1e-12), "ppl = exp(mean nll) (geometric mean 4)");
    w8_nll_sum e = {0};
    CHECK(isnan(w8_nll_ppl(&e)), "ppl of nothing is NaN");
}

static void test_ppl(const w8_model *m, const w8_tok *tok, const char *text, size_t len) {
    int *ids = NULL;
    int n = w8_tok_encode(tok, text, len, 1, &ids);
    CHECK(n > 4 * CTX, "excerpt tokenizes to %d tokens (> 4 windows of %d)", n, CTX);
    if (n <= 4 * CTX) return;
    int bos = 1; /* stories: the tokenizer prepends BOS = 1 */
    CHECK(ids[0] == bos, "tokenized text starts with BOS");

    double rf, rh;
    long nf, nh;
    CHECK(ref_ppl(m, ids, n, CTX, bos, &rf, &nf, &rh, &nh) == 0, "reference computation ran");
    int nw = n / CTX;

    w8_ppl_opts o = {CTX, 0, 0, bos};
    w8_ppl_stats st;
    int rc = w8_ppl_eval(m, ids, n, &o, &st, NULL, NULL);
    CHECK(rc == 0, "w8_ppl_eval runs%s%s", rc ? ": " : "", rc ? w8_lasterr() : "");
    CHECK(st.n_windows == nw, "%d windows of %d", st.n_windows, CTX);
    CHECK(st.full.n == (long)nw * (CTX - 1) && st.full.n == nf,
          "full window scores ctx-1 tokens per window (%ld)", st.full.n);
    CHECK(st.half.n == (long)nw * (CTX - 1 - CTX / 2) && st.half.n == nh,
          "second half scores exactly targets ctx/2+1..ctx-1 (%ld)", st.half.n);
    CHECK(rel_close(st.full.nll, rf, 1e-9), "full-window nll equals the reference (%.9f vs %.9f)",
          st.full.nll, rf);
    CHECK(rel_close(st.half.nll, rh, 1e-9), "second-half nll equals the reference (%.9f vs %.9f)",
          st.half.nll, rh);
    double pf = w8_nll_ppl(&st.full), ph = w8_nll_ppl(&st.half);
    printf("# stories260K f32 on %d tokens, ctx %d: ppl full %.4f, second half %.4f\n", n, CTX,
           pf, ph);
    CHECK(pf > 1.5 && pf < 20 && ph > 1.5 && ph < 20,
          "perplexity in the sane range for stories260K (%.3f, %.3f)", pf, ph);
    CHECK(isfinite(w8_nll_ppl_err(&st.half)) && w8_nll_ppl_err(&st.half) > 0,
          "error estimate is finite and positive");

    /* The window in chunks of 16 and 23 rows (last chunk partial) must agree. */
    for (int bsz = 16; bsz <= 23; bsz += 7) {
        w8_ppl_opts oc = {CTX, bsz, 0, bos};
        w8_ppl_stats sc;
        int rc = w8_ppl_eval(m, ids, n, &oc, &sc, NULL, NULL);
        CHECK(rc == 0 && rel_close(sc.full.nll, st.full.nll, 1e-5) &&
                  rel_close(sc.half.nll, st.half.nll, 1e-5) && sc.half.n == st.half.n,
              "batch %d gives the same scores (%.6f vs %.6f)", bsz, sc.full.nll, st.full.nll);
    }

    w8_ppl_opts o1 = {CTX, 0, 2, bos};
    CHECK(w8_ppl_eval(m, ids, n, &o1, &st, NULL, NULL) == 0 && st.n_windows == 2 &&
              st.full.n == 2 * (CTX - 1),
          "--chunks 2 stops after two windows");

    /* Bad input is an error, never a crash. */
    w8_ppl_opts bad = {2, 0, 0, bos};
    CHECK(w8_ppl_eval(m, ids, n, &bad, &st, NULL, NULL) == -1 && strstr(w8_lasterr(), "ctx"),
          "ctx 2 refused: %s", w8_lasterr());
    w8_ppl_opts big = {100000, 0, 0, bos};
    CHECK(w8_ppl_eval(m, ids, n, &big, &st, NULL, NULL) == -1,
          "ctx beyond the model's positions refused: %s", w8_lasterr());
    CHECK(w8_ppl_eval(m, ids, CTX - 1, &o, &st, NULL, NULL) == -1 &&
              strstr(w8_lasterr(), "fewer than one window"),
          "text shorter than a window refused: %s", w8_lasterr());
    int save = ids[5];
    ids[5] = m->cfg.vocab + 7;
    CHECK(w8_ppl_eval(m, ids, n, &o, &st, NULL, NULL) == -1 && strstr(w8_lasterr(), "vocabulary"),
          "token id outside the vocabulary refused: %s", w8_lasterr());
    ids[5] = save;
    free(ids);
}

static void test_tokenize_file(const w8_tok *tok, const char *corpus) {
    int *ids = NULL, bos = -2;
    int n = w8_ppl_tokenize_file(tok, corpus, &ids, &bos);
    CHECK(n > 1000 && bos == 1 && ids[0] == 1, "corpus file: %d tokens, BOS %d detected", n, bos);
    free(ids);
    CHECK(w8_ppl_tokenize_file(tok, "/nonexistent/file.txt", &ids, &bos) == -1 && !ids,
          "missing text file is an error: %s", w8_lasterr());
}

static void test_compare(const w8_model *a, const w8_model *b, const w8_tok *tok,
                         const char *text, size_t len) {
    int *ids = NULL;
    int n = w8_tok_encode(tok, text, len, 1, &ids);
    w8_ppl_opts o = {CTX, 32, 2, 1};
    w8_compare_result r;
    int rc = w8_compare_eval(a, b, ids, n, &o, &r, NULL, NULL);
    CHECK(rc == 0, "compare of the model with itself runs%s%s", rc ? ": " : "",
          rc ? w8_lasterr() : "");
    if (rc == 0) {
        int ok = r.n_layers == a->cfg.n_layers;
        for (int l = 0; l < r.n_layers; l++)
            ok &= r.layers[l].n == 2L * CTX && fabs(r.layers[l].cos_sum / r.layers[l].n - 1) < 1e-9 &&
                  r.layers[l].rel_sum == 0;
        CHECK(ok, "every layer: cosine 1, relative error 0 over %d tokens", 2 * CTX);
        CHECK(r.n_tokens == 2 * CTX && r.top1_agree == r.n_tokens && r.kl_sum == 0,
              "logits: top-1 100%%, KL 0");
        CHECK(r.ppl_a.full.nll == r.ppl_b.full.nll && r.ppl_a.full.n == 2 * (CTX - 1),
              "both perplexities equal");
    }
    w8_compare_free(&r);
    free(ids);
}

static void test_bench(const w8_model *m) {
    w8_bench_opts o = {16, 8, 2, 42};
    w8_bench_result r;
    int rc = w8_bench_run(m, &o, &r, NULL, NULL);
    CHECK(rc == 0 && r.n_tests == 2, "bench runs pp16 and tg8%s%s", rc ? ": " : "",
          rc ? w8_lasterr() : "");
    if (rc == 0) {
        CHECK(!strcmp(r.tests[0].name, "pp16") && !strcmp(r.tests[1].name, "tg8") &&
                  r.tests[0].mean_ts > 0 && r.tests[1].mean_ts > 0 && r.tests[1].reps == 2,
              "test names and positive speeds");
        CHECK(r.n_params > 200000 && r.n_params < 300000, "stories260K has %zu params",
              r.n_params);
        CHECK(r.size_bytes >= r.n_params * 4, "size %zu bytes covers f32 weights", r.size_bytes);
        char *md = w8_bench_markdown(&r), *js = w8_bench_json(&r);
        CHECK(md && strstr(md, "| pp16 |") && strstr(md, "| tg8 |") &&
                  strstr(md, "| model | size | params | backend | threads | test | t/s |"),
              "markdown table has the header and both rows");
        json_error_t je;
        json_t *j = js ? json_loads(js, 0, &je) : NULL;
        CHECK(j && json_is_array(j) && json_array_size(j) == 2 &&
                  json_is_number(json_object_get(json_array_get(j, 1), "avg_ts")),
              "JSON is an array of two tests with avg_ts");
        json_decref(j);
        free(md);
        free(js);
    }
    w8_bench_free(&r);
    w8_bench_opts z = {0, 4, 0, 1};
    CHECK(w8_bench_run(m, &z, &r, NULL, NULL) == -1, "-r 0 refused: %s", w8_lasterr());
    w8_bench_free(&r);
}

/* bench --roofline's pairing of repetitions with the probes around them */
static void test_paired(void) {
    w8_roof_paired p;
    const double r3[3] = {50, 60, 70};
    const double flat[4] = {100, 100, 100, 100};
    w8_roofline_paired(r3, flat, 3, &p);
    CHECK(p.steady == 3 && p.used == 3 && p.fraction == 0.6 && p.ceiling == 100,
          "steady probes: median of 3 (%d %d %g %g)", p.steady, p.used, p.fraction, p.ceiling);
    /* the host halves the peak after repetition 0 and restores it after 1 */
    const double dip[4] = {100, 50, 50, 100};
    w8_roofline_paired(r3, dip, 3, &p);
    CHECK(p.steady == 1 && p.used == 1 && p.fraction == 60.0 / 50 && p.ceiling == 50,
          "a changed probe leaves its repetitions out (%d %d %g %g)", p.steady, p.used,
          p.fraction, p.ceiling);
    const double none[3] = {100, 50, 100};
    w8_roofline_paired(r3, none, 2, &p);
    CHECK(p.steady == 0 && p.used == 2 && p.fraction == (50.0 / 75 + 60.0 / 75) / 2 &&
              p.ceiling == 75,
          "none steady: the median of all, against the probes' means (%d %d %g %g)", p.steady,
          p.used, p.fraction, p.ceiling);
    /* 10% of the larger is still steady, a little more is not; a zero probe never is */
    const double edge[4] = {100, 90, 80.9, 0};
    w8_roofline_paired(r3, edge, 3, &p);
    CHECK(p.steady == 1 && p.used == 1 && p.fraction == 50.0 / 95,
          "the 10%% limit, and a zero probe (%d %d %g)", p.steady, p.used, p.fraction);
    const double two[3] = {100, 100, 100};
    w8_roofline_paired(r3, two, 2, &p);
    CHECK(p.used == 2 && p.fraction == 0.55, "two repetitions: the mean of the middle pair (%g)",
          p.fraction);
}

int main(void) {
    /* One thread: the results do not depend on it, and OpenMP barriers on a
     * loaded 2-core machine make a tiny model several times slower. */
    w8_set_threads(1);
    test_helpers();
    test_paired();
    char *dir = path_in_shared("models/stories260K-hf-f32");
    char *corpus = path_in_shared("corpus/tinystories-excerpt.txt");
    w8_model *m = w8_model_load(dir);
    w8_model *m2 = w8_model_load(dir);
    w8_tok *tok = w8_tok_load(dir);
    size_t len = 0;
    char *text = w8_read_file(corpus, 1 << 20, &len);
    CHECK(m && m2 && tok && text, "stories260K-hf-f32, its tokenizer and the corpus load%s%s",
          m && m2 && tok && text ? "" : ": ", m && m2 && tok && text ? "" : w8_lasterr());
    if (m && m2 && tok && text) {
        /* a short excerpt, cut at a space so no word is split */
        size_t cut = len < EXCERPT_BYTES ? len : EXCERPT_BYTES;
        while (cut > 0 && text[cut] != ' ') cut--;
        test_ppl(m, tok, text, cut);
        test_tokenize_file(tok, corpus);
        test_compare(m, m2, tok, text, cut);
        test_bench(m);
    }
    free(text);
    w8_tok_free(tok);
    w8_model_free(m);
    w8_model_free(m2);
    free(dir);
    free(corpus);
    TEST_DONE();
}

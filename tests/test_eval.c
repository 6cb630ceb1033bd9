/*
 * test_eval.c - `w8a8 eval`'s library (src/eval.c) on stories260K.
 *
 * The central check: the summed log-likelihood of a continuation equals
 * what the ppl code path (w8_ppl_eval) computes for the same token ids, to
 * 1e-6 relative, however the requests are packed into batches.  Then
 * lm-eval's tokenization of (context, continuation), the task file parser
 * and its errors, answer extraction, the summary statistics (lm-eval's
 * mean_stderr, paired differences), and a whole run of the example file.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/eval.h"
#include "../src/model.h"
#include "../src/ppl.h"
#include "../src/tokenizer/tokenizer.h"
#include "../src/util.h"
#include "test.h"

static const char *STORY =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in "
    "the park with her mom. One day, she saw a big red ball under a tree.";

static int rel_close(double a, double b, double rel) {
    return fabs(a - b) <= rel * fmax(fabs(a), fabs(b)) + 1e-12;
}

/* -sum log p over the full window of ids[0..n) as ppl computes it. */
static double ppl_full_nll(const w8_model *m, const int *ids, int n) {
    w8_ppl_opts o = {n, n, 1, -1};
    w8_ppl_stats st;
    if (w8_ppl_eval(m, ids, n, &o, &st, NULL, NULL) != 0) return NAN;
    return st.full.nll;
}

static void test_loglik_equals_ppl(const w8_model *m, const w8_tok *t) {
    int *ids = NULL;
    int n = w8_tok_encode(t, STORY, strlen(STORY), 1, &ids);
    CHECK(n > 30, "the story encodes to %d ids", n);
    if (n <= 30) {
        free(ids);
        return;
    }
    /* ppl's full window: tokens 1..N-1 given their prefix */
    const int N = 30, K = 10;
    double full = ppl_full_nll(m, ids, N), head = ppl_full_nll(m, ids, K);
    w8_ll_req r[3] = {
        {ids, 1, ids + 1, N - 1, 0, 0}, /* context: the BOS alone */
        {ids, K, ids + K, N - K, 0, 0}, /* context: the first K tokens */
        {ids, 5, ids + 5, 1, 0, 0},     /* one continuation token */
    };
    int rows[] = {256, 7, 1};
    for (size_t b = 0; b < sizeof rows / sizeof rows[0]; b++) {
        int rc = w8_eval_loglik(m, r, 3, rows[b], NULL, NULL);
        CHECK(rc == 0, "loglik of 3 requests in batches of %d rows runs", rows[b]);
        CHECK(rel_close(r[0].logprob, -full, 1e-6),
              "batch %d: log p(ids[1..%d) | BOS) %.9f == -ppl full-window nll %.9f", rows[b], N,
              r[0].logprob, -full);
        CHECK(rel_close(r[1].logprob, -(full - head), 1e-6),
              "batch %d: log p(ids[%d..%d) | ids[0..%d)) %.9f == ppl(N) - ppl(K) %.9f", rows[b], K,
              N, K, r[1].logprob, -(full - head));
        CHECK(r[2].logprob < 0 && (r[2].greedy == 0 || r[2].greedy == 1),
              "batch %d: one-token continuation logprob %.4f < 0, greedy %d", rows[b], r[2].logprob,
              r[2].greedy);
    }
    /* the one-token request against ppl over 6 tokens minus 5 */
    double p6 = ppl_full_nll(m, ids, 6), p5 = ppl_full_nll(m, ids, 5);
    CHECK(rel_close(r[2].logprob, -(p6 - p5), 1e-6), "one token: %.9f == ppl(6) - ppl(5) %.9f",
          r[2].logprob, -(p6 - p5));

    /* greedy: a continuation made of the model's own argmax tokens is greedy */
    w8_ll_req g = {ids, 8, NULL, 0, 0, 0};
    int own[4];
    int *seq = w8_xmalloc(sizeof(int) * 12);
    memcpy(seq, ids, sizeof(int) * 8);
    for (int i = 0; i < 4; i++) {
        /* the argmax after seq[0..8+i) through a one-row-at-a-time request */
        int best = -1;
        double bl = -INFINITY;
        for (int c = 0; c < m->cfg.vocab; c += 1) {
            w8_ll_req q = {seq, 8 + i, &c, 1, 0, 0};
            if (w8_eval_loglik(m, &q, 1, 64, NULL, NULL) != 0) break;
            if (q.logprob > bl) {
                bl = q.logprob;
                best = c;
            }
        }
        own[i] = best;
        seq[8 + i] = best;
    }
    g.cont = own;
    g.n_cont = 4;
    CHECK(w8_eval_loglik(m, &g, 1, 64, NULL, NULL) == 0 && g.greedy == 1,
          "a continuation of argmax tokens is greedy (%d)", g.greedy);
    own[3] = (own[3] + 1) % m->cfg.vocab;
    CHECK(w8_eval_loglik(m, &g, 1, 64, NULL, NULL) == 0 && g.greedy == 0,
          "changing its last token makes it not greedy");
    free(seq);

    /* a request longer than the model's context loses context from the left
     * (lm-eval keeps the last max_length + 1 tokens) */
    {
        const int P = m->cfg.max_pos, LC = P + 40, LK = 6;
        int *lc = w8_xmalloc(sizeof(int) * (size_t)(LC + LK));
        for (int i = 0; i < LC + LK; i++) lc[i] = ids[i % n];
        int drop = LC + LK - 1 - P;
        w8_ll_req lr[2] = {{lc, LC, lc + LC, LK, 0, 0}, {lc + drop, LC - drop, lc + LC, LK, 0, 0}};
        int rc1 = w8_eval_loglik(m, &lr[0], 1, 128, NULL, NULL);
        int rc2 = w8_eval_loglik(m, &lr[1], 1, 128, NULL, NULL);
        CHECK(rc1 == 0 && rc2 == 0 && lr[0].logprob == lr[1].logprob && lr[0].logprob < 0,
              "a %d-token request on a %d-position model is its last %d tokens (%.6f == %.6f)",
              LC + LK, P, P + 1, lr[0].logprob, lr[1].logprob);
        w8_ll_req big = {lc, 1, lc + 1, P + 1, 0, 0};
        CHECK(w8_eval_loglik(m, &big, 1, 128, NULL, NULL) != 0 &&
                  strstr(w8_lasterr(), "does not fit"),
              "a continuation longer than the context is refused: %s", w8_lasterr());
        free(lc);
    }

    /* errors: an id outside the vocabulary, an empty continuation */
    int bad = m->cfg.vocab;
    w8_ll_req e = {ids, 3, &bad, 1, 0, 0};
    CHECK(w8_eval_loglik(m, &e, 1, 16, NULL, NULL) != 0 && strstr(w8_lasterr(), "vocabulary"),
          "an id outside the vocabulary is refused: %s", w8_lasterr());
    e.n_cont = 0;
    CHECK(w8_eval_loglik(m, &e, 1, 16, NULL, NULL) != 0, "an empty continuation is refused");
    free(ids);
}

static int ids_equal(const int *a, int na, const int *b, int nb) {
    return na == nb && (na == 0 || !memcmp(a, b, sizeof(int) * (size_t)na));
}

static void test_encode_pair(const w8_model *m, const w8_tok *t) {
    int *c1, *k1, *c2, *k2, n1, m1, n2, m2, *whole = NULL, *ctx = NULL;
    const char *C = "Once upon a time, there was a little";
    int r1 = w8_eval_encode_pair(t, m, C, " girl", 1, &c1, &n1, &k1, &m1);
    int r2 = w8_eval_encode_pair(t, m, "Once upon a time, there was a little ", "girl", 1, &c2, &n2,
                                 &k2, &m2);
    CHECK(r1 == 0 && r2 == 0, "encode_pair runs");
    CHECK(ids_equal(c1, n1, c2, n2) && ids_equal(k1, m1, k2, m2),
          "the context's trailing space moves to the continuation (\"little \" + \"girl\" == "
          "\"little\" + \" girl\")");
    int nw = w8_tok_encode(t, "Once upon a time, there was a little girl", 41, 1, &whole);
    int nc = w8_tok_encode(t, C, strlen(C), 1, &ctx);
    CHECK(ids_equal(c1, n1, ctx, nc) && ids_equal(k1, m1, whole + nc, nw - nc),
          "context = encode(context), continuation = encode(whole)[len(context):] (%d + %d ids)",
          n1, m1);
    CHECK(n1 > 0 && c1[0] == w8_tok_bos_id(t), "with special tokens the context starts with BOS");
    const char *p0 = m1 > 0 ? w8_tok_piece(t, k1[0]) : NULL;
    CHECK(p0 && !strncmp(p0, "\xe2\x96\x81", 3),
          "the continuation \" girl\" keeps its space: its first piece is '%s'", p0 ? p0 : "");
    free(c1), free(k1), free(c2), free(k2), free(whole), free(ctx);

    int r3 = w8_eval_encode_pair(t, m, "", "Once upon", 1, &c1, &n1, &k1, &m1);
    CHECK(r3 == 0 && n1 == 1 && c1[0] == w8_tok_bos_id(t) && m1 >= 2,
          "an empty context is the BOS prefix token (%d ids of continuation)", m1);
    free(c1), free(k1);
    int r4 = w8_eval_encode_pair(t, m, "Once upon a time", "", 1, &c1, &n1, &k1, &m1);
    CHECK(r4 != 0 && strstr(w8_lasterr(), "no tokens"), "an empty continuation is refused: %s",
          w8_lasterr());
}

static void test_parse(void) {
    const char *good =
        "{\"task\": \"a\", \"context\": \"x\", \"choices\": [\" y\", \" z\"], \"gold\": 1}\n"
        "\n"
        "{\"task\": \"a\", \"context\": \"x\", \"choices\": [\" y\", \" z\"], \"gold\": 0}\n"
        "{\"prompt\": \"p\", \"answer\": \"q\", \"stop\": \".\", \"regex\": \"#### (\\\\d+)\"}\n"
        "{\"context\": \"\", \"continuation\": \"c\"}\n"
        "{\"task\": \"a\", \"context\": \"x\", \"choices\": [\" y\"], \"gold\": 0}\n";
    w8_eval_set s;
    int rc = w8_eval_parse(good, strlen(good), "good.jsonl", 0, &s);
    CHECK(rc == 0 && s.n == 5 && s.n_tasks == 3, "5 lines in 3 tasks (%d, %d)", s.n, s.n_tasks);
    if (rc == 0) {
        CHECK(s.items[0].kind == W8_EVAL_MC && s.items[0].gold == 1 && s.items[0].n_choices == 2 &&
                  s.items[0].line == 1 && s.items[1].line == 3,
              "multiple choice: gold, choices, line numbers (blank lines counted)");
        CHECK(s.items[2].kind == W8_EVAL_GEN && s.items[2].n_stop == 1 &&
                  !strcmp(s.items[2].regex, "#### (\\d+)") &&
                  !strcmp(s.tasks[s.items[2].task], "generation"),
              "generation: a single stop string, the regex, default task name");
        CHECK(s.items[3].kind == W8_EVAL_LL && !strcmp(s.tasks[s.items[3].task], "loglikelihood"),
              "loglikelihood line");
        w8_eval_set_free(&s);
    }
    rc = w8_eval_parse(good, strlen(good), "good.jsonl", 1, &s);
    CHECK(rc == 0 && s.n == 3, "--limit 1 keeps one line per task (%d)", s.n);
    if (rc == 0) w8_eval_set_free(&s);

    static const struct {
        const char *text, *want;
    } bad[] = {
        {"{\"context\": \"x\", \"choices\": [\" y\"], \"gold\": 3}\n", "t.jsonl:1: \"gold\""},
        {"\n{\"context\": \"x\", \"choices\": [\" y\"]}\n", "t.jsonl:2: missing \"gold\""},
        {"{\"context\": \"x\", \"choices\": []\n", "t.jsonl:1:"},
        {"{\"context\": \"x\", \"choices\": [], \"gold\": 0}\n", "non-empty"},
        {"{\"context\": \"x\", \"choices\": [1], \"gold\": 0}\n",
         "\"choices\"[0] must be a string"},
        {"[1, 2]\n", "expected a JSON object"},
        {"{\"text\": \"x\"}\n", "needs \"choices\""},
        {"{\"prompt\": \"p\"}\n", "missing \"answer\""},
        {"{\"prompt\": \"p\", \"answer\": \"a\", \"stop\": [\"\"]}\n", "stop string 0 is empty"},
        {"{\"context\": \"c\", \"continuation\": \"\"}\n", "\"continuation\" is empty"},
        {"{\"context\": 5, \"continuation\": \"x\"}\n", "\"context\" must be a string"},
        {"\n\n", "no task lines"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = w8_eval_parse(bad[i].text, strlen(bad[i].text), "t.jsonl", 0, &s);
        CHECK(rc != 0 && strstr(w8_lasterr(), bad[i].want), "bad line %zu refused: %s", i,
              w8_lasterr());
    }
    CHECK(w8_eval_load("/nonexistent/tasks.jsonl", 0, &s) != 0 &&
              strstr(w8_lasterr(), "/nonexistent/tasks.jsonl"),
          "a missing file is named: %s", w8_lasterr());
}

static void test_extract(void) {
    char *stop[] = {".", "\n\n"};
    char *x = w8_eval_extract(" girl named Lily. She", stop, 2, NULL);
    CHECK(x && !strcmp(x, "girl named Lily"), "cut at the first stop string, stripped: '%s'", x);
    free(x);
    x = w8_eval_extract("so 3 + 4 = 7\n#### 7\n\nQuestion", stop + 1, 1, "#### (\\-?[0-9\\.\\,]+)");
    CHECK(x && !strcmp(x, "7"), "gsm8k's regex takes its group: '%s'", x);
    free(x);
    x = w8_eval_extract("no number here", NULL, 0, "#### (\\d+)");
    CHECK(x && !strcmp(x, "[invalid]"), "no match gives lm-eval's [invalid]: '%s'", x);
    free(x);
    x = w8_eval_extract("  box with a big box", NULL, 0, "\\w+");
    CHECK(x && !strcmp(x, "box"), "a regex without a group keeps the whole first match: '%s'", x);
    free(x);
    x = w8_eval_extract("abc", NULL, 0, "(unclosed");
    CHECK(!x && strstr(w8_lasterr(), "bad regex"), "a bad regex is an error: %s", w8_lasterr());
}

static void test_summary(void) {
    const char *txt =
        "{\"task\": \"a\", \"context\": \"x\", \"choices\": [\" y\", \" z\"], \"gold\": 0}\n"
        "{\"task\": \"a\", \"context\": \"x\", \"choices\": [\" y\", \" z\"], \"gold\": 0}\n"
        "{\"task\": \"a\", \"context\": \"x\", \"choices\": [\" y\", \" z\"], \"gold\": 0}\n"
        "{\"task\": \"a\", \"context\": \"x\", \"choices\": [\" y\", \" z\"], \"gold\": 0}\n"
        "{\"task\": \"b\", \"context\": \"x\", \"choices\": [\" y\", \" z\"], \"gold\": 0}\n";
    w8_eval_set s;
    if (w8_eval_parse(txt, strlen(txt), "s", 0, &s) != 0) {
        CHECK(0, "summary set parses");
        return;
    }
    w8_eval_score a[5], b[5];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    double acc_a[5] = {1, 1, 1, 0, 1}, acc_b[5] = {1, 0, 0, 0, 1};
    for (int i = 0; i < 5; i++) {
        a[i].v[0] = a[i].v[1] = acc_a[i];
        b[i].v[0] = acc_b[i];
        b[i].v[1] = acc_a[i];
    }
    w8_eval_score *sc[2] = {a, b};
    w8_eval_row *rows;
    int n = w8_eval_summarize(&s, sc, 2, &rows);
    /* a: acc, acc_norm; b: acc, acc_norm; overall: acc, acc_norm */
    CHECK(n == 6, "rows: 2 tasks x 2 metrics + 2 overall (%d)", n);
    if (n == 6) {
        double p = 0.75, se = sqrt(p * (1 - p) / 3);
        CHECK(rows[0].task == 0 && !strcmp(rows[0].metric, "acc") && rows[0].n == 4 &&
                  fabs(rows[0].value[0] - 0.75) < 1e-12 && fabs(rows[0].stderr_[0] - se) < 1e-12,
              "task a acc 0.75 +/- sqrt(p(1-p)/(n-1)) = %.6f (got %.6f)", se, rows[0].stderr_[0]);
        /* differences b - a on task a: 0, -1, -1, 0 */
        double dse = w8_eval_mean_stderr((double[]){0, -1, -1, 0}, 4);
        CHECK(fabs(rows[0].diff[1] + 0.5) < 1e-12 && fabs(rows[0].diff_se[1] - dse) < 1e-12 &&
                  rows[0].significant[1] == (0.5 > 2 * dse),
              "paired difference -0.5 +/- %.4f, significant %d", dse, rows[0].significant[1]);
        CHECK(rows[1].diff[1] == 0 && !rows[1].significant[1], "equal acc_norm: no difference");
        CHECK(rows[4].task == -1 && rows[4].n == 5 && fabs(rows[4].value[0] - 0.8) < 1e-12 &&
                  fabs(rows[4].value[1] - 0.4) < 1e-12,
              "overall acc pools the 5 items: 0.8 and 0.4");
        CHECK(isnan(rows[2].stderr_[0]), "one item: no standard error");
    }
    w8_eval_rows_free(rows, n);
    /* a constant non-zero difference is significant (standard error 0) */
    for (int i = 0; i < 5; i++) b[i].v[0] = acc_a[i] - 1;
    n = w8_eval_summarize(&s, sc, 2, &rows);
    CHECK(n == 6 && rows[0].significant[1] && rows[0].diff_se[1] == 0,
          "a constant difference of -1 is significant");
    w8_eval_rows_free(rows, n);
    w8_eval_set_free(&s);
}

static void test_example_file(const w8_model *m, const w8_tok *t) {
    w8_eval_set s;
    if (w8_eval_load("examples/tinystories_tasks.jsonl", 0, &s) != 0) {
        CHECK(0, "examples/tinystories_tasks.jsonl loads: %s", w8_lasterr());
        return;
    }
    int kinds[3] = {0};
    for (int i = 0; i < s.n; i++) kinds[s.items[i].kind]++;
    CHECK(kinds[W8_EVAL_MC] >= 20 && kinds[W8_EVAL_GEN] >= 5 && kinds[W8_EVAL_LL] >= 3,
          "the example file has %d multiple choice, %d generation, %d loglikelihood lines",
          kinds[0], kinds[1], kinds[2]);
    w8_eval_opts o;
    w8_eval_opts_default(&o);
    w8_eval_score *a = w8_xcalloc((size_t)s.n, sizeof *a), *b = w8_xcalloc((size_t)s.n, sizeof *b);
    int ra = w8_eval_run(m, t, &s, &o, a, NULL, NULL);
    o.batch = 5; /* other packing, same numbers */
    o.gen_batch = 2;
    int rb = w8_eval_run(m, t, &s, &o, b, NULL, NULL);
    CHECK(ra == 0 && rb == 0, "the example file runs (batch 256 and 5)");
    int same = 1, in01 = 1;
    for (int i = 0; i < s.n && ra == 0 && rb == 0; i++) {
        if (s.items[i].kind == W8_EVAL_LL) {
            if (!rel_close(a[i].v[0], b[i].v[0], 1e-6) || a[i].v[1] != b[i].v[1]) same = 0;
        } else {
            if (a[i].v[0] != b[i].v[0] || a[i].v[1] != b[i].v[1]) same = 0;
            if (a[i].v[0] < 0 || a[i].v[0] > 1) in01 = 0;
        }
        if (s.items[i].kind == W8_EVAL_GEN &&
            (!a[i].output || !b[i].output || strcmp(a[i].output, b[i].output)))
            same = 0;
    }
    CHECK(same, "every score and generation is the same in batches of 256 rows and of 5");
    CHECK(in01, "acc, acc_norm and exact_match are 0 or 1");
    w8_eval_score *sc[1] = {a};
    w8_eval_row *rows;
    int n = w8_eval_summarize(&s, sc, 1, &rows);
    int found = 0;
    for (int r = 0; r < n; r++)
        if (!strcmp(rows[r].metric, "acc") && rows[r].task >= 0) {
            found++;
            CHECK(rows[r].value[0] >= 0 && rows[r].value[0] <= 1, "task %s acc %.4f within [0, 1]",
                  s.tasks[rows[r].task], rows[r].value[0]);
        }
    CHECK(found >= 1, "the summary has acc rows (%d)", found);
    /* the float model knows its stories: well above chance (1/3) */
    for (int r = 0; r < n; r++)
        if (rows[r].task == -1 && !strcmp(rows[r].metric, "acc"))
            CHECK(rows[r].value[0] > 0.5, "stories260K's overall acc %.3f > 0.5", rows[r].value[0]);
    w8_eval_rows_free(rows, n);
    w8_eval_scores_free(a, s.n);
    w8_eval_scores_free(b, s.n);
    free(a);
    free(b);

    /* --chat on a tokenizer without a template is a clean error */
    o.chat = 1;
    w8_eval_score *c = w8_xcalloc((size_t)s.n, sizeof *c);
    int rc = w8_eval_run(m, t, &s, &o, c, NULL, NULL);
    CHECK(rc != 0 && strstr(w8_lasterr(), "chat_template"), "--chat without a template: %s",
          w8_lasterr());
    free(c);
    w8_eval_set_free(&s);
}

/* acc and acc_norm of one item against a computation written here: the
 * per-choice log-likelihoods through encode_pair + loglik, lengths without
 * the leading space. */
static void test_acc_norm(const w8_model *m, const w8_tok *t) {
    const char *txt = "{\"context\": \"Once upon a time, there was a\", \"choices\": "
                      "[\" little\", \" little girl named Lily\"], \"gold\": 1}\n";
    w8_eval_set s;
    if (w8_eval_parse(txt, strlen(txt), "n", 0, &s) != 0) {
        CHECK(0, "acc_norm item parses");
        return;
    }
    w8_eval_opts o;
    w8_eval_opts_default(&o);
    w8_eval_score sc;
    int rc = w8_eval_run(m, t, &s, &o, &sc, NULL, NULL);
    double ll[2] = {0, 0};
    const double len[2] = {6, 21}; /* "little", "little girl named Lily" */
    for (int c = 0; c < 2; c++) {
        int *ci, *ki, nc, nk;
        if (w8_eval_encode_pair(t, m, s.items[0].context, s.items[0].choices[c], 1, &ci, &nc,
                                &ki, &nk) != 0)
            continue;
        w8_ll_req r = {ci, nc, ki, nk, 0, 0};
        if (w8_eval_loglik(m, &r, 1, 64, NULL, NULL) == 0) ll[c] = r.logprob;
        free(ci);
        free(ki);
    }
    double acc = ll[1] > ll[0], acc_norm = ll[1] / len[1] > ll[0] / len[0];
    CHECK(rc == 0 && sc.v[0] == acc && sc.v[1] == acc_norm,
          "acc %g and acc_norm %g from log-likelihoods %.4f, %.4f (expected %g, %g)", sc.v[0],
          sc.v[1], ll[0], ll[1], acc, acc_norm);
    CHECK(acc != acc_norm, "the item tells acc from acc_norm (the longer choice wins only per "
                           "character)");
    w8_eval_scores_free(&sc, 1);
    w8_eval_set_free(&s);
}

int main(void) {
    w8_set_threads(1);
    char *dir = w8_path_join(shared_dir(), "models/stories260K-hf-f16");
    w8_model *m = w8_model_load(dir);
    w8_tok *t = w8_tok_load(dir);
    CHECK(m && t, "stories260K loads");
    test_parse();
    test_extract();
    test_summary();
    if (m && t) {
        test_encode_pair(m, t);
        test_acc_norm(m, t);
        test_loglik_equals_ppl(m, t);
        test_example_file(m, t);
    }
    w8_tok_free(t);
    w8_model_free(m);
    free(dir);
    TEST_DONE();
}

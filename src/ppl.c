/*
 * ppl.c - perplexity over non-overlapping windows (see ppl.h).
 *
 * The window runner (w8_win_runner) owns one model's context, a KV pool for
 * one window and the logits of one chunk; ppl uses one, compare uses two
 * (float and quantized) over the same windows.  Every window starts from an
 * empty sequence, so windows are independent, as in llama.cpp.
 */
#include "ppl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define PPL_BLOCK 128         /* KV block size: the default of run and serve */
#define PPL_MAX_FILE (1u << 30)

/* ------------------------------------------------------------ scoring */

double w8_logprob(const float *logits, int vocab, int target) {
    if (target < 0 || target >= vocab) return -INFINITY;
    float mx = logits[0];
    for (int i = 1; i < vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    /* Differences to the max in double: exp never overflows, and the sum of
     * up to 150k small terms keeps its precision. */
    double s = 0;
    for (int i = 0; i < vocab; i++) s += exp((double)logits[i] - (double)mx);
    return ((double)logits[target] - (double)mx) - log(s);
}

/* w8_argmax (declared in ppl.h too) is defined once, in sampler.c. */

void w8_nll_add(w8_nll_sum *s, double nll) {
    s->nll += nll;
    s->nll2 += nll * nll;
    s->n++;
}

double w8_nll_ppl(const w8_nll_sum *s) {
    return s->n > 0 ? exp(s->nll / (double)s->n) : NAN;
}

double w8_nll_ppl_err(const w8_nll_sum *s) {
    if (s->n < 2) return NAN;
    double mean = s->nll / (double)s->n, mean2 = s->nll2 / (double)s->n;
    double var = mean2 - mean * mean;
    if (var < 0) var = 0;
    return w8_nll_ppl(s) * sqrt(var / (double)(s->n - 1));
}

/* ------------------------------------------------------------ options */

int w8_ppl_check_opts(const w8_model *m, w8_ppl_opts *o) {
    if (o->ctx < 4) return w8_seterr("ppl: --ctx must be at least 4 (got %d)", o->ctx);
    if (m->cfg.max_pos > 0 && o->ctx > m->cfg.max_pos)
        return w8_seterr("ppl: --ctx %d is longer than the model's context (%d positions)",
                         o->ctx, m->cfg.max_pos);
    if (o->batch <= 0 || o->batch > o->ctx) o->batch = o->ctx;
    if (o->bos_id >= m->cfg.vocab)
        return w8_seterr("ppl: BOS id %d is outside the model's vocabulary (%d)", o->bos_id,
                         m->cfg.vocab);
    return 0;
}

int w8_ppl_windows(int n, const w8_ppl_opts *o) {
    int nw = o->ctx > 0 && n > 0 ? n / o->ctx : 0;
    return o->max_windows > 0 && nw > o->max_windows ? o->max_windows : nw;
}

int w8_ppl_plan(const w8_model *m, const int *ids, int n, w8_ppl_opts *o, const char *who) {
    if (w8_ppl_check_opts(m, o) != 0) return -1;
    int nw = w8_ppl_windows(n, o);
    if (nw < 1)
        return w8_seterr("%s: the text has %d tokens, fewer than one window of %d", who, n, o->ctx);
    const int vocab = m->cfg.vocab;
    for (long i = 0; i < (long)nw * o->ctx; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return w8_seterr("%s: token %ld has id %d, outside the model's vocabulary (%d)", who,
                             i, ids[i], vocab);
    return nw;
}

/* ------------------------------------------------------------ tokenizing */

/* The BOS the tokenizer's post-processor adds, found by encoding a short text
 * with and without special tokens: -1 when both agree on the first id. */
static int detect_bos(const w8_tok *t) {
    int *a = NULL, *b = NULL, bos = -1;
    int na = w8_tok_encode(t, "a", 1, 1, &a);
    int nb = w8_tok_encode(t, "a", 1, 0, &b);
    if (na > 0 && nb >= 0 && na > nb && (nb == 0 || a[0] != b[0])) bos = a[0];
    free(a);
    free(b);
    return bos;
}

int w8_ppl_tokenize_file(const w8_tok *t, const char *path, int **ids, int *bos_id) {
    size_t len = 0;
    *ids = NULL;
    char *text = w8_read_input(path, PPL_MAX_FILE, &len);
    if (!text) return -1;
    int n = w8_tok_encode(t, text, len, 1, ids);
    free(text);
    if (n < 0) return w8_preferr("%s", strcmp(path, "-") ? path : "<stdin>");
    *bos_id = detect_bos(t);
    return n;
}

/* ------------------------------------------------------------ window runner */

int w8_win_runner_init(w8_win_runner *r, const w8_model *m, int ctx, int batch) {
    memset(r, 0, sizeof *r);
    r->m = m;
    r->batch = batch;
    w8_seq_init(&r->seq);
    r->kv = w8_kv_new(&m->cfg, PPL_BLOCK, (ctx + PPL_BLOCK - 1) / PPL_BLOCK);
    if (!r->kv) return -1;
    r->ctx = w8_ctx_new(m, batch);
    if (!r->ctx) {
        w8_kv_free(r->kv);
        r->kv = NULL;
        return -1;
    }
    w8_batch_buf_init(&r->bb, batch);
    r->logits = w8_xmalloc((size_t)batch * (size_t)m->cfg.vocab * sizeof(float));
    return 0;
}

void w8_win_runner_free(w8_win_runner *r) {
    if (r->kv) w8_kv_seq_release(r->kv, &r->seq);
    free(r->seq.blocks);
    w8_ctx_free(r->ctx);
    w8_kv_free(r->kv);
    w8_batch_buf_free(&r->bb);
    free(r->logits);
    memset(r, 0, sizeof *r);
}

int w8_win_runner_start(w8_win_runner *r, int ctx) {
    w8_kv_seq_release(r->kv, &r->seq);
    if (w8_kv_seq_reserve(r->kv, &r->seq, ctx) != 0)
        return w8_seterr("ppl: KV cache has no room for a window of %d tokens", ctx);
    return 0;
}

int w8_win_runner_step(w8_win_runner *r, const int *tokens, int pos0, int rows) {
    w8_batch_clear(&r->bb);
    for (int i = 0; i < rows; i++)
        if (w8_batch_add(&r->bb, tokens[i], pos0 + i, &r->seq, 1) < 0) return -1;
    int got = w8_forward(r->ctx, r->m, r->kv, &r->bb.b, r->logits);
    if (got < 0) return -1;
    if (got != rows)
        return w8_seterr("ppl: forward pass returned %d logit rows for %d wanted", got, rows);
    return 0;
}

/* ------------------------------------------------------------ evaluation */

/* Log-probabilities of the next token for rows whose target is inside the
 * window; rows are independent, so they are spread over the threads, and
 * summed afterwards in order (the result does not depend on the threads). */
static void score_rows(const float *logits, int vocab, const int *win, int ctx, int pos0,
                       int rows, double *lp) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(w8_get_threads())
    for (int i = 0; i < rows; i++) {
        int p = pos0 + i;
        lp[i] = p + 1 < ctx ? w8_logprob(logits + (size_t)i * vocab, vocab, win[p + 1]) : 0;
    }
}

int w8_ppl_eval(const w8_model *m, const int *ids, int n, const w8_ppl_opts *opts,
                w8_ppl_stats *out, w8_ppl_cb cb, void *ud) {
    w8_ppl_opts o = *opts;
    memset(out, 0, sizeof *out);
    int nw = w8_ppl_plan(m, ids, n, &o, "ppl");
    if (nw < 0) return -1;
    const int vocab = m->cfg.vocab;

    w8_win_runner r;
    if (w8_win_runner_init(&r, m, o.ctx, o.batch) != 0) return -1;
    int *win = w8_xmalloc((size_t)o.ctx * sizeof *win);
    double *lp = w8_xmalloc((size_t)o.batch * sizeof *lp);
    const int first = o.ctx / 2;
    int rc = 0;
    for (int w = 0; w < nw && rc == 0; w++) {
        memcpy(win, ids + (size_t)w * o.ctx, (size_t)o.ctx * sizeof *win);
        if (o.bos_id >= 0) win[0] = o.bos_id;
        if ((rc = w8_win_runner_start(&r, o.ctx)) != 0) break;
        for (int p0 = 0; p0 < o.ctx && rc == 0; p0 += o.batch) {
            int rows = o.ctx - p0 < o.batch ? o.ctx - p0 : o.batch;
            if ((rc = w8_win_runner_step(&r, win + p0, p0, rows)) != 0) break;
            score_rows(r.logits, vocab, win, o.ctx, p0, rows, lp);
            for (int i = 0; i < rows; i++) {
                int p = p0 + i;
                if (p + 1 >= o.ctx) continue; /* the last position predicts past the window */
                w8_nll_add(&out->full, -lp[i]);
                if (p >= first) w8_nll_add(&out->half, -lp[i]);
            }
        }
        if (rc == 0) {
            out->n_windows = w + 1;
            if (cb) cb(ud, w + 1, nw, out);
        }
    }
    free(win);
    free(lp);
    w8_win_runner_free(&r);
    return rc;
}

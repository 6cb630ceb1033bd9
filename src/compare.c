/*
 * compare.c - per-layer and logit agreement of two models (see compare.h).
 *
 * Both models run the same chunk of the same window one after the other.
 * While a model runs, the observer copies every layer's output rows into
 * that model's capture buffer ([n_layers][batch][hidden]); after both ran,
 * the buffers are compared token by token.  Memory is two capture buffers
 * of one chunk (24 layers x 512 rows x 896 floats = 44 MB each for 0.5B).
 */
#include "compare.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "util.h"

/* What the observer fills: layer outputs of the current chunk. */
typedef struct {
    int n_layers, batch, hidden;
    float *buf;  /* [n_layers][batch][hidden] */
    int *rows;   /* [n_layers]: rows stored this chunk (0 = not seen) */
    int bad;     /* an observation did not fit (rows or width) */
} capture;

static void capture_obs(void *ud, int layer, w8_obs_point what, const float *x, int m, int k) {
    capture *c = ud;
    if (what != W8_OBS_LAYER_OUT) return;
    if (layer < 0 || layer >= c->n_layers || m > c->batch || k != c->hidden) {
        c->bad = 1;
        return;
    }
    memcpy(c->buf + (size_t)layer * c->batch * c->hidden, x, (size_t)m * k * sizeof(float));
    c->rows[layer] = m;
}

static void capture_init(capture *c, const w8_model *m, int batch) {
    c->n_layers = m->cfg.n_layers;
    c->batch = batch;
    c->hidden = m->cfg.hidden;
    c->buf = w8_xmalloc((size_t)c->n_layers * batch * c->hidden * sizeof(float));
    c->rows = w8_xcalloc((size_t)c->n_layers, sizeof(int));
    c->bad = 0;
}

static void capture_free(capture *c) {
    free(c->buf);
    free(c->rows);
}

/* ------------------------------------------------------------ metrics */

/* log of sum(exp(x - max)) + max, in double. */
static double logsumexp(const float *x, int n) {
    float mx = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > mx) mx = x[i];
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - (double)mx);
    return (double)mx + log(s);
}

double w8_kl_logits(const float *a, const float *b, int vocab) {
    double la = logsumexp(a, vocab), lb = logsumexp(b, vocab), kl = 0;
    for (int i = 0; i < vocab; i++) {
        double lpa = (double)a[i] - la, lpb = (double)b[i] - lb;
        kl += exp(lpa) * (lpa - lpb);
    }
    /* Rounding can leave a tiny negative value for identical distributions. */
    return kl > 0 ? kl : 0;
}

/* Cosine and relative error of one token's hidden state. */
static void vec_cmp(const float *a, const float *b, int n, double *cos, double *rel) {
    double ab = 0, aa = 0, bb = 0, dd = 0;
    for (int i = 0; i < n; i++) {
        double x = a[i], y = b[i];
        ab += x * y;
        aa += x * x;
        bb += y * y;
        dd += (x - y) * (x - y);
    }
    if (aa == 0 && bb == 0) *cos = 1;
    else if (aa == 0 || bb == 0) *cos = 0;
    else *cos = ab / (sqrt(aa) * sqrt(bb));
    if (*cos > 1) *cos = 1;
    if (*cos < -1) *cos = -1;
    *rel = aa > 0 ? sqrt(dd / aa) : (dd > 0 ? INFINITY : 0);
}

static int compare_layers(w8_compare_result *r, const capture *ca, const capture *cb, int rows) {
    if (ca->bad || cb->bad) return w8_seterr("compare: layer output of unexpected shape");
    for (int l = 0; l < r->n_layers; l++) {
        if (ca->rows[l] != rows || cb->rows[l] != rows)
            return w8_seterr("compare: the forward pass reported no output for layer %d", l);
        w8_layer_cmp *lc = &r->layers[l];
        size_t off = (size_t)l * ca->batch * ca->hidden;
        for (int i = 0; i < rows; i++) {
            double c, e;
            vec_cmp(ca->buf + off + (size_t)i * ca->hidden, cb->buf + off + (size_t)i * cb->hidden,
                    ca->hidden, &c, &e);
            lc->cos_sum += c;
            lc->rel_sum += e;
            if (lc->n == 0 || c < lc->cos_min) lc->cos_min = c;
            lc->n++;
        }
    }
    return 0;
}

/* Logit rows of both models for positions pos0..pos0+rows of the window. */
static void compare_logits(w8_compare_result *r, const float *la, const float *lb, int vocab,
                           const int *win, int ctx, int pos0, int rows, double *tmp) {
    /* per row: [0] lp_a, [1] lp_b, [2] kl, [3] agree */
#pragma omp parallel for schedule(dynamic, 1) num_threads(w8_get_threads())
    for (int i = 0; i < rows; i++) {
        const float *a = la + (size_t)i * vocab, *b = lb + (size_t)i * vocab;
        int p = pos0 + i;
        double *t = tmp + 4 * (size_t)i;
        t[0] = p + 1 < ctx ? w8_logprob(a, vocab, win[p + 1]) : 0;
        t[1] = p + 1 < ctx ? w8_logprob(b, vocab, win[p + 1]) : 0;
        t[2] = w8_kl_logits(a, b, vocab);
        t[3] = w8_argmax(a, vocab) == w8_argmax(b, vocab);
    }
    const int first = ctx / 2;
    for (int i = 0; i < rows; i++) {
        const double *t = tmp + 4 * (size_t)i;
        int p = pos0 + i;
        r->n_tokens++;
        r->kl_sum += t[2];
        if (t[2] > r->kl_max) r->kl_max = t[2];
        r->top1_agree += t[3] != 0;
        if (p + 1 >= ctx) continue;
        w8_nll_add(&r->ppl_a.full, -t[0]);
        w8_nll_add(&r->ppl_b.full, -t[1]);
        if (p >= first) {
            w8_nll_add(&r->ppl_a.half, -t[0]);
            w8_nll_add(&r->ppl_b.half, -t[1]);
        }
    }
}

/* ------------------------------------------------------------ driver */

static int same_shape(const w8_model *a, const w8_model *b) {
    const w8_config *x = &a->cfg, *y = &b->cfg;
    if (x->n_layers != y->n_layers || x->hidden != y->hidden || x->vocab != y->vocab)
        return w8_seterr("compare: the models differ in shape (layers %d/%d, hidden %d/%d, "
                         "vocab %d/%d)",
                         x->n_layers, y->n_layers, x->hidden, y->hidden, x->vocab, y->vocab);
    return 0;
}

int w8_compare_eval(const w8_model *a, const w8_model *b, const int *ids, int n,
                    const w8_ppl_opts *opts, w8_compare_result *out, w8_ppl_cb cb, void *ud) {
    memset(out, 0, sizeof *out);
    if (same_shape(a, b) != 0) return -1;
    w8_ppl_opts o = *opts;
    /* the same shape, so a's vocabulary is b's: one plan serves both */
    if (w8_ppl_check_opts(b, &o) != 0) return -1;
    int nw = w8_ppl_plan(a, ids, n, &o, "compare");
    if (nw < 0) return -1;
    const int vocab = a->cfg.vocab;
    out->n_layers = a->cfg.n_layers;
    out->layers = w8_xcalloc((size_t)out->n_layers, sizeof *out->layers);

    w8_win_runner ra, rb;
    if (w8_win_runner_init(&ra, a, o.ctx, o.batch) != 0) return -1;
    if (w8_win_runner_init(&rb, b, o.ctx, o.batch) != 0) {
        w8_win_runner_free(&ra);
        return -1;
    }
    capture ca, cbuf;
    capture_init(&ca, a, o.batch);
    capture_init(&cbuf, b, o.batch);
    w8_ctx_set_observer(ra.ctx, capture_obs, &ca);
    w8_ctx_set_observer(rb.ctx, capture_obs, &cbuf);
    int *win = w8_xmalloc((size_t)o.ctx * sizeof *win);
    double *tmp = w8_xmalloc((size_t)o.batch * 4 * sizeof *tmp);
    int rc = 0;
    for (int w = 0; w < nw && rc == 0; w++) {
        memcpy(win, ids + (size_t)w * o.ctx, (size_t)o.ctx * sizeof *win);
        if (o.bos_id >= 0) win[0] = o.bos_id;
        if ((rc = w8_win_runner_start(&ra, o.ctx)) != 0) break;
        if ((rc = w8_win_runner_start(&rb, o.ctx)) != 0) break;
        for (int p0 = 0; p0 < o.ctx && rc == 0; p0 += o.batch) {
            int rows = o.ctx - p0 < o.batch ? o.ctx - p0 : o.batch;
            memset(ca.rows, 0, (size_t)ca.n_layers * sizeof(int));
            memset(cbuf.rows, 0, (size_t)cbuf.n_layers * sizeof(int));
            if ((rc = w8_win_runner_step(&ra, win + p0, p0, rows)) != 0) break;
            if ((rc = w8_win_runner_step(&rb, win + p0, p0, rows)) != 0) break;
            if ((rc = compare_layers(out, &ca, &cbuf, rows)) != 0) break;
            compare_logits(out, ra.logits, rb.logits, vocab, win, o.ctx, p0, rows, tmp);
        }
        if (rc == 0) {
            out->ppl_a.n_windows = out->ppl_b.n_windows = w + 1;
            if (cb) cb(ud, w + 1, nw, &out->ppl_a);
        }
    }
    free(win);
    free(tmp);
    capture_free(&ca);
    capture_free(&cbuf);
    w8_win_runner_free(&ra);
    w8_win_runner_free(&rb);
    return rc;
}

void w8_compare_free(w8_compare_result *r) {
    free(r->layers);
    r->layers = NULL;
}

double w8_compare_top1(const w8_compare_result *r) {
    return r->n_tokens ? 100.0 * (double)r->top1_agree / (double)r->n_tokens : NAN;
}

double w8_compare_kl(const w8_compare_result *r) {
    return r->n_tokens ? r->kl_sum / (double)r->n_tokens : NAN;
}

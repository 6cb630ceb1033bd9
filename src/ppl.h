/*
 * ppl.h - perplexity of a model over a token stream.
 *
 * The text is tokenized once and cut into non-overlapping windows of `ctx`
 * tokens, as llama.cpp's perplexity tool does: the first token of each window
 * is replaced by BOS when the vocabulary adds one, every window starts from an
 * empty KV cache, and the window's tokens go through w8_forward in chunks of
 * `batch` rows.  Two scores come out of the same logits:
 *
 *   full window  every token after the first is predicted:
 *                logits of positions 0 .. ctx-2 predict tokens 1 .. ctx-1;
 *   second half  llama.cpp's figure: with first = ctx/2, the logits of
 *                positions first .. ctx-2 predict tokens first+1 .. ctx-1
 *                (ctx-1-first tokens per window), so every scored token sees
 *                at least ctx/2 tokens of context.
 *
 * Log-softmax is computed in double.  The same accumulator serves `compare`.
 */
#ifndef W8_PPL_H
#define W8_PPL_H

#include "batch.h"
#include "forward.h"
#include "kv_cache.h"
#include "model.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    int ctx;         /* window length in tokens (>= 4, <= max_position_embeddings) */
    int batch;       /* rows per w8_forward call; <= 0 or > ctx means the whole window */
    int max_windows; /* stop after this many windows; <= 0: all of them */
    int bos_id;      /* token that replaces each window's first token; -1: keep the text's */
} w8_ppl_opts;

/* Sums of -log p(token) over the scored tokens (and of its square, for the
 * error estimate). */
typedef struct {
    double nll, nll2;
    long n;
} w8_nll_sum;

typedef struct {
    int n_windows;    /* windows evaluated */
    w8_nll_sum full;  /* every token after the window's first */
    w8_nll_sum half;  /* llama.cpp's second half */
} w8_ppl_stats;

/* Progress: called after each window with the running totals. */
typedef void (*w8_ppl_cb)(void *ud, int window, int n_windows, const w8_ppl_stats *s);

/* ln p(target) under softmax(logits[0..vocab)), in double.  A target outside
 * the vocabulary gives -INFINITY. */
double w8_logprob(const float *logits, int vocab, int target);

/* argmax of x[0..n) (first on ties). */
int w8_argmax(const float *x, int n);

void w8_nll_add(w8_nll_sum *s, double nll);
/* exp(mean nll); NAN when nothing was scored. */
double w8_nll_ppl(const w8_nll_sum *s);
/* Standard error of the perplexity estimate (llama.cpp's "+/-"): ppl * sd/sqrt(n-1). */
double w8_nll_ppl_err(const w8_nll_sum *s);

/* Number of windows ids[0..n) gives for these options (at most max_windows
 * when that is set). */
int w8_ppl_windows(int n, const w8_ppl_opts *o);

/* What ppl and compare check before evaluating: the options against m
 * (defaults filled in, as w8_ppl_check_opts), at least one window of text,
 * and every id of the windows used inside m's vocabulary.  Errors start with
 * `who` ("ppl", "compare").  Returns the number of windows, or -1. */
int w8_ppl_plan(const w8_model *m, const int *ids, int n, w8_ppl_opts *o, const char *who);

/* Evaluate every window of ids[0..n).  Fails (-1, w8_seterr) when the options
 * are invalid, the text is shorter than one window, a token id is outside the
 * model's vocabulary, or the forward pass fails.  cb may be NULL. */
int w8_ppl_eval(const w8_model *m, const int *ids, int n, const w8_ppl_opts *o,
                w8_ppl_stats *out, w8_ppl_cb cb, void *ud);

/* Check options against the model and fill defaults (batch). 0 ok, -1 error. */
int w8_ppl_check_opts(const w8_model *m, w8_ppl_opts *o);

/* Read a text file ("-" is standard input; a pipe or FIFO works too, see
 * w8_read_input) and tokenize it once, the way llama.cpp does (special
 * tokens added, so BOS leads when the vocabulary adds one).  Sets *bos_id to
 * the BOS the tokenizer adds (-1 when it adds none).  Returns the number of
 * ids (caller frees *ids) or -1. */
int w8_ppl_tokenize_file(const w8_tok *t, const char *path, int **ids, int *bos_id);

/* One model's state for running windows (shared by ppl and compare): a
 * context for `batch` rows, a KV pool for one window, logits of a chunk. */
typedef struct {
    const w8_model *m;
    w8_ctx *ctx;
    w8_kv *kv;
    w8_seq seq;
    int batch;       /* rows per forward call */
    w8_batch_buf bb; /* [batch] rows */
    float *logits;   /* [batch, vocab]: logits of the last step's rows */
} w8_win_runner;

int w8_win_runner_init(w8_win_runner *r, const w8_model *m, int ctx, int batch);
void w8_win_runner_free(w8_win_runner *r);
/* Start a new window: empty sequence with room for ctx tokens. */
int w8_win_runner_start(w8_win_runner *r, int ctx);
/* Run rows tokens[0..rows) at positions pos0.. of the current window;
 * their logits land in r->logits.  0 ok, -1 error. */
int w8_win_runner_step(w8_win_runner *r, const int *tokens, int pos0, int rows);

#endif

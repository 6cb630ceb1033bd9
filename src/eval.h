/*
 * eval.h - accuracy tasks in lm-evaluation-harness's shapes (`w8a8 eval`).
 *
 * A task file has one JSON object per line, of three kinds:
 *
 *   multiple choice  {"context": C, "choices": [A, B, ...], "gold": i}
 *                    each choice scored by log p(choice | C); acc: the best
 *                    summed log-likelihood is gold; acc_norm: the best
 *                    log-likelihood divided by the choice's length in
 *                    characters (lm-eval's `len(choice)`, code points,
 *                    without the leading space lm-eval's target delimiter
 *                    adds and our choices carry);
 *   generation       {"prompt": P, "answer": A, "stop": [...], "regex": R,
 *                    "max_gen_toks": N}: greedy decoding, cut at the first
 *                    stop string, optionally reduced to the first match of R
 *                    (its first group when it has one, "[invalid]" when
 *                    nothing matches, as lm-eval's regex filter), then
 *                    exact_match of the stripped text against stripped A;
 *   loglikelihood    {"context": C, "continuation": T}: logprob (summed
 *                    log p(T | C)) and greedy (every token of T is the
 *                    argmax), lm-eval's loglikelihood request.
 *
 * Any line may carry "task": NAME to group results (default: the kind's
 * name).  Context and continuation are tokenized as lm-eval's _encode_pair:
 * trailing whitespace of the context moves to the continuation, the
 * continuation's ids are those of encode(context + continuation) after the
 * first len(encode(context)) ids.  An empty context is replaced by the BOS
 * (else EOS) token, as lm-eval's prefix token.
 *
 * Scoring runs many (context, continuation) sequences as rows of one batch
 * through w8_forward; each row's logits do not depend on the batch, so the
 * summed log-likelihood is what `ppl` computes for the same tokens.
 */
#ifndef W8_EVAL_H
#define W8_EVAL_H

#include "model.h"
#include "tokenizer/tokenizer.h"

typedef enum { W8_EVAL_MC = 0, W8_EVAL_GEN, W8_EVAL_LL } w8_eval_kind;

/* One line of a task file. */
typedef struct {
    w8_eval_kind kind;
    int line;       /* 1-based line in the file */
    int task;       /* index into w8_eval_set.tasks */
    char *context;  /* MC / LL context, GEN prompt */
    char **choices; /* MC: [n_choices] */
    int n_choices;
    int gold;           /* MC */
    char *continuation; /* LL */
    char *answer;       /* GEN */
    char **stop;        /* GEN: [n_stop] */
    int n_stop;
    char *regex;      /* GEN: extraction regex or NULL */
    int max_gen_toks; /* GEN: 0 = the run's default */
} w8_eval_item;

typedef struct {
    w8_eval_item *items;
    int n;
    char **tasks; /* task names in order of first appearance */
    int n_tasks;
} w8_eval_set;

/* Read a task file; keep at most `limit` items per task (<= 0: all).
 * Errors name "FILE:LINE".  0 ok, -1 error. */
int w8_eval_load(const char *path, int limit, w8_eval_set *set);
/* Same from a buffer (label names it in errors). */
int w8_eval_parse(const char *buf, size_t len, const char *label, int limit, w8_eval_set *set);
void w8_eval_set_free(w8_eval_set *set);

/* ------------------------------------------------------------ scoring */

/* One log-likelihood request: log p(cont | ctx). */
typedef struct {
    const int *ctx; /* context ids (n_ctx >= 1) */
    int n_ctx;
    const int *cont; /* continuation ids (n_cont >= 1) */
    int n_cont;
    double logprob; /* out: sum of log p over the continuation tokens */
    int greedy;     /* out: 1 when each continuation token is the argmax */
} w8_ll_req;

/* Called when request i is scored (in increasing order). */
typedef void (*w8_ll_cb)(void *ud, int i);

/* Score requests r[0..n), laid end to end as rows of batches of at most
 * max_rows rows (a request may span batches).  A request longer than the
 * model's context loses context tokens from the left (as lm-eval).  0 ok,
 * -1 error (a continuation longer than the context, ids out of range, ...). */
int w8_eval_loglik(const w8_model *m, w8_ll_req *r, int n, int max_rows, w8_ll_cb cb, void *ud);

/* lm-eval's _encode_pair (see the header comment).  add_special: encode
 * with the tokenizer's special tokens (BOS).  Returns 0 and sets the two
 * id arrays (caller frees), or -1 (a continuation with no tokens, ...). */
int w8_eval_encode_pair(const w8_tok *t, const w8_model *m, const char *ctx, const char *cont,
                        int add_special, int **ctx_ids, int *n_ctx, int **cont_ids, int *n_cont);

/* Generation answer processing: cut `text` at the first stop string, apply
 * the regex (NULL: none), strip.  Returns a new string or NULL (bad regex). */
char *w8_eval_extract(const char *text, char *const *stop, int n_stop, const char *regex);

/* ------------------------------------------------------------ running */

typedef struct {
    int chat;         /* render contexts/prompts through the chat template */
    int add_special;  /* encode with special tokens (BOS) when not chat */
    int batch;        /* rows per forward call */
    int max_gen_toks; /* default for generation items */
    int gen_batch;    /* generation prompts decoded together */
} w8_eval_opts;

void w8_eval_opts_default(w8_eval_opts *o);

/* Metric values of one item for one model.  v[0], v[1]: MC acc, acc_norm;
 * GEN exact_match (v[1] unused); LL logprob, greedy. */
typedef struct {
    double v[2];
    char *output;    /* GEN: the generated text (after stop strings), else NULL */
    char *extracted; /* GEN: what was compared to the answer */
} w8_eval_score;

/* Progress: items finished so far. */
typedef void (*w8_eval_cb)(void *ud, int done, int total);

/* Evaluate every item of set with one model; out[set->n] (zeroed first,
 * free with w8_eval_scores_free).  0 ok, -1 error. */
int w8_eval_run(const w8_model *m, const w8_tok *tok, const w8_eval_set *set, const w8_eval_opts *o,
                w8_eval_score *out, w8_eval_cb cb, void *ud);
void w8_eval_scores_free(w8_eval_score *s, int n);

/* ------------------------------------------------------------ summary */

/* One row of the results table: a metric of a task (task -1: overall, the
 * items of every task that reports the metric pooled; only for a metric
 * that more than one task reports) for every model, with the difference of each
 * model to the first over the same items: its mean and the standard error
 * of the mean of the per-item differences (paired), and whether |diff|
 * exceeds two of those standard errors. */
typedef struct {
    int task;           /* -1: overall */
    const char *metric; /* "acc", "acc_norm", "exact_match", "logprob", "greedy" */
    int n;              /* items */
    double *value;      /* [n_models] mean */
    double *stderr_;    /* [n_models] lm-eval's mean_stderr (NAN when n < 2) */
    double *diff;       /* [n_models] value - value of model 0 (0 for model 0) */
    double *diff_se;    /* [n_models] paired standard error of diff */
    int *significant;   /* [n_models] |diff| > 2 diff_se */
} w8_eval_row;

/* Rows for scores[model][item] of n_models models.  Returns the count and
 * sets *rows (free with w8_eval_rows_free). */
int w8_eval_summarize(const w8_eval_set *set, w8_eval_score *const *scores, int n_models,
                      w8_eval_row **rows);
void w8_eval_rows_free(w8_eval_row *rows, int n);

/* lm-eval's mean_stderr: sample standard deviation / sqrt(n); NAN for n < 2. */
double w8_eval_mean_stderr(const double *x, int n);

#endif

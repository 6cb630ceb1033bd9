/*
 * sched.c - the generation loop shared by run and serve (see sched.h).
 */
#include "sched.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "util.h"

struct w8_sched {
    const w8_model *m;
    w8_ctx *ctx;
    w8_kv *kv;
    w8_sched_opts o;
    int vocab, max_rows;
    w8_sched_seq **run; /* [max_seqs] admitted sequences, in admission order */
    int n_run;
    w8_batch_buf bb;    /* rows of the step being built */
    w8_sched_seq **owner; /* [max_seqs] sequence of each wanted row, in row order */
    int *ids;           /* [max_seqs] token sampled for each wanted row */
    float *logits;      /* [max_seqs, vocab] */
};

void w8_sampling_resolve(const w8_config *cfg, const w8_sampling_req *q, w8_gen_params *p) {
    int cfg_samples = cfg->do_sample > 0;
    p->temperature = q->has_temperature ? q->temperature
                     : cfg_samples      ? (cfg->temperature > 0 ? cfg->temperature : 1.0f)
                                        : 0.0f;
    p->top_k = q->has_top_k ? q->top_k : cfg_samples && cfg->top_k > 0 ? cfg->top_k : 0;
    p->top_p = q->has_top_p                                      ? q->top_p
               : cfg_samples && cfg->top_p > 0 && cfg->top_p < 1 ? cfg->top_p
                                                                 : 1.0f;
    p->repetition_penalty = q->has_repetition_penalty ? q->repetition_penalty
                            : cfg->repetition_penalty > 0 ? cfg->repetition_penalty
                                                          : 1.0f;
}

w8_sched *w8_sched_new(const w8_model *m, w8_ctx *ctx, w8_kv *kv, const w8_sched_opts *o) {
    int rows = w8_ctx_max_rows(ctx);
    if (o->max_seqs < 1 || o->prefill_chunk < 1 || o->max_seq_len < 2 || o->n_extra_eos < 0)
        return w8_seterr("sched: invalid options"), NULL;
    if (o->max_seqs > rows)
        return w8_seterr("sched: %d sequences per step, the forward context holds %d rows",
                         o->max_seqs, rows), NULL;
    w8_sched *s = w8_xcalloc(1, sizeof *s);
    s->m = m;
    s->ctx = ctx;
    s->kv = kv;
    s->o = *o;
    s->vocab = m->cfg.vocab;
    s->max_rows = rows;
    s->run = w8_xcalloc((size_t)o->max_seqs, sizeof *s->run);
    w8_batch_buf_init(&s->bb, rows);
    s->owner = w8_xcalloc((size_t)o->max_seqs, sizeof *s->owner);
    s->ids = w8_xcalloc((size_t)o->max_seqs, sizeof *s->ids);
    s->logits = w8_xmalloc((size_t)o->max_seqs * (size_t)s->vocab * sizeof(float));
    return s;
}

void w8_sched_free(w8_sched *s) {
    if (!s) return;
    while (s->n_run) w8_sched_remove(s, s->run[0]);
    free(s->run);
    w8_batch_buf_free(&s->bb);
    free(s->owner);
    free(s->ids);
    free(s->logits);
    free(s);
}

int w8_sched_max_seq_len(const w8_sched *s) { return s->o.max_seq_len; }
int w8_sched_n_running(const w8_sched *s) { return s->n_run; }
w8_sched_seq *w8_sched_running(const w8_sched *s, int i) { return s->run[i]; }

w8_sched_seq *w8_sched_seq_new(const w8_sched *s, const int *prompt, int n,
                               const w8_gen_params *p) {
    if (n < 1 || n >= s->o.max_seq_len) return NULL;
    w8_sched_seq *q = w8_xcalloc(1, sizeof *q);
    q->n_prompt = q->n_tokens = n;
    q->p = *p;
    q->p.stop = NULL;
    q->p.n_stop = 0;
    q->max_tokens = p->max_tokens;
    /* the last sampled token is never fed, so the cache needs one token less
     * than the sequence holds; reserving the whole sequence is simpler and
     * what the server's accounting has always assumed */
    long long want = p->max_tokens > 0 ? (long long)n + p->max_tokens : s->o.max_seq_len;
    q->reserve = want < s->o.max_seq_len ? (int)want : s->o.max_seq_len;
    q->cap = q->reserve + 1;
    q->tokens = w8_xmalloc((size_t)q->cap * sizeof(int));
    memcpy(q->tokens, prompt, (size_t)n * sizeof(int));
    w8_seq_init(&q->seq);
    w8_stop_text_init(&q->st, p->stop, p->n_stop);
    q->stop = W8_STOP_NONE;
    return q;
}

void w8_sched_seq_free(w8_sched_seq *q) {
    if (!q) return;
    if (q->admitted) { /* not removed: cannot happen through the API, but free what we can */
        w8_sampler_free(&q->smp);
        w8_tok_stream_free(q->ts);
    }
    w8_stop_text_free(&q->st);
    free(q->tokens);
    free(q);
}

int w8_sched_admit(w8_sched *s, w8_sched_seq *q) {
    if (s->n_run >= s->o.max_seqs) return w8_seterr("sched: %d sequences run already", s->n_run);
    if (!s->o.lazy_kv && w8_kv_seq_reserve(s->kv, &q->seq, q->reserve)) return -1;
    w8_sampler_init(&q->smp, s->vocab, q->p.temperature, q->p.top_k, q->p.top_p,
                    q->p.repetition_penalty, q->p.seed);
    q->ts = s->o.tok ? w8_tok_stream_new(s->o.tok, 1) : NULL;
    q->admitted = 1;
    s->run[s->n_run++] = q;
    return 0;
}

void w8_sched_remove(w8_sched *s, w8_sched_seq *q) {
    int k = 0;
    for (int i = 0; i < s->n_run; i++)
        if (s->run[i] != q) s->run[k++] = s->run[i];
    s->n_run = k;
    w8_kv_seq_release(s->kv, &q->seq);
    if (q->admitted) {
        w8_sampler_free(&q->smp);
        w8_tok_stream_free(q->ts);
        q->ts = NULL;
        q->admitted = 0;
    }
}

/* Add decoded text (malloc'd, may be NULL); 1 if a stop string now occurs. */
static int add_text(w8_sched_seq *q, char *text) {
    if (!text) return 0;
    int stopped = w8_stop_text_add(&q->st, text, strlen(text));
    free(text);
    return stopped;
}

void w8_sched_seq_end(w8_sched_seq *q) {
    if (q->ts) add_text(q, w8_tok_stream_flush(q->ts));
    w8_stop_text_end(&q->st);
}

static int is_eos(const w8_sched *s, int id) {
    if (s->o.ignore_eos) return 0;
    if (w8_config_is_eos(&s->m->cfg, id)) return 1;
    for (int i = 0; i < s->o.n_extra_eos; i++)
        if (s->o.extra_eos[i] == id) return 1;
    return 0;
}

/* Take sampled token id for q and decide whether q stops.  At the end of
 * the output the detokenizer's last bytes are flushed; they may still
 * complete a stop string. */
static void accept_token(const w8_sched *s, w8_sched_seq *q, int id) {
    q->tokens[q->n_tokens++] = id;
    if (is_eos(s, id)) {
        if (q->ts) add_text(q, w8_tok_stream_flush(q->ts));
        q->stop = W8_STOP_EOS;
        return;
    }
    if (q->ts && add_text(q, w8_tok_stream_push(q->ts, id))) {
        q->stop = W8_STOP_TEXT;
        return;
    }
    int n_gen = q->n_tokens - q->n_prompt;
    w8_stop_reason why = q->max_tokens > 0 && n_gen >= q->max_tokens ? W8_STOP_LENGTH
                         : q->n_tokens >= s->o.max_seq_len          ? W8_STOP_CONTEXT
                                                                     : W8_STOP_NONE;
    if (why != W8_STOP_NONE && q->ts && add_text(q, w8_tok_stream_flush(q->ts)))
        why = W8_STOP_TEXT;
    q->stop = why;
}

/* Build the step's batch: decode rows first, then prompt chunks.  Returns
 * the number of wanted rows (owner[] filled). */
static int build_batch(w8_sched *s, w8_step_info *info) {
    w8_batch_buf *bb = &s->bb;
    const w8_batch *b = &bb->b;
    int w = 0, in_prefill = 0;
    w8_batch_clear(bb);
    for (int i = 0; i < s->n_run; i++)
        in_prefill |= s->run[i]->stop == W8_STOP_NONE && s->run[i]->n_prefilled < s->run[i]->n_prompt;
    for (int i = 0; i < s->n_run && !(s->o.prefill_first && in_prefill); i++) {
        w8_sched_seq *q = s->run[i];
        if (q->stop != W8_STOP_NONE || q->n_prefilled < q->n_prompt) continue;
        w8_batch_add(bb, q->tokens[q->n_tokens - 1], q->n_tokens - 1, &q->seq, 1);
        s->owner[w++] = q;
    }
    info->decode_rows = b->n;
    int budget = s->max_rows - b->n;
    if (budget > s->o.prefill_chunk) budget = s->o.prefill_chunk;
    for (int i = 0; i < s->n_run && budget > 0; i++) {
        w8_sched_seq *q = s->run[i];
        if (q->stop != W8_STOP_NONE || q->n_prefilled >= q->n_prompt) continue;
        int c = q->n_prompt - q->n_prefilled;
        if (c > budget) c = budget;
        for (int j = 0; j < c; j++) {
            int p = q->n_prefilled + j;
            w8_batch_add(bb, q->tokens[p], p, &q->seq, p == q->n_prompt - 1);
        }
        if (q->n_prefilled + c == q->n_prompt) s->owner[w++] = q;
        q->n_prefilled += c;
        budget -= c;
    }
    info->rows = b->n;
    info->prefill_rows = b->n - info->decode_rows;
    return w;
}

int w8_sched_step(w8_sched *s, w8_step_info *info) {
    w8_step_info dummy;
    if (!info) info = &dummy;
    memset(info, 0, sizeof *info);
    int n_want = build_batch(s, info);
    if (!s->bb.b.n) return 0;
    if (s->o.lazy_kv)
        for (int r = 0; r < s->bb.b.n; r++)
            if (w8_kv_seq_reserve(s->kv, s->bb.b.seq[r], s->bb.b.pos[r] + 1)) return -1;
    int got = w8_forward(s->ctx, s->m, s->kv, &s->bb.b, s->logits);
    if (got < 0) return -1;
    if (got != n_want) return w8_seterr("forward: %d logit rows, %d wanted", got, n_want);
    /* Each row has its own sampler and history, so rows sample in parallel
     * (a 152k-vocab softmax per row adds up at batch 32). */
    int nt = w8_get_threads();
#pragma omp parallel for num_threads(nt) schedule(static) if (n_want > 1 && nt > 1)
    for (int i = 0; i < n_want; i++) {
        w8_sched_seq *q = s->owner[i];
        s->ids[i] = w8_sample(&q->smp, s->logits + (size_t)i * s->vocab, q->tokens, q->n_tokens);
    }
    for (int i = 0; i < n_want; i++) accept_token(s, s->owner[i], s->ids[i]);
    info->sampled = n_want;
    return 0;
}

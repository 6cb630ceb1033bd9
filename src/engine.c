/*
 * engine.c - continuous batching (see engine.h for the step loop).
 *
 * Locking: one engine mutex `mu` guards the queue, the request fields marked
 * "shared" below, reference counts, the KV pool's block accounting (blocks
 * are reserved and released only under mu) and the statistics.  The
 * scheduler drops mu while w8_forward, the sampling, the detokenizing and
 * the stop-string search run; then it touches only scheduler-owned state (KV
 * contents, samplers, token lists, the detokenizer and the stop_text buffer).
 * Under mu it then copies the text that became ready into the shared `gen`
 * buffer, which is all the HTTP threads read.  Each request has its own
 * condition variable on which its HTTP thread waits for text.
 *
 * Lifetime: a request is referenced by its submitter and by the engine until
 * it finishes; whoever drops the last reference frees it.
 */
#include "engine.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forward.h"
#include "kv_cache.h"
#include "sampler.h"
#include "stop_text.h"
#include "util.h"

struct w8_req {
    w8_engine *e;
    struct w8_req *next;       /* queue link (shared) */
    pthread_cond_t cv;         /* signalled when text is published or the request ends */
    int refs;                  /* shared */
    int cancelled;             /* shared: the submitter released it */
    /* request, fixed at submit */
    int n_prompt;
    long long max_tokens;
    int reserve;               /* tokens of KV reserved at admission */
    float temperature, top_p, rep_pen;
    int top_k;
    uint64_t seed;
    /* scheduler state */
    int *tokens;               /* [n_prompt + generated], capacity cap */
    int n_tokens, cap;
    int n_prefilled;           /* prompt tokens whose K/V are stored */
    int n_gen;
    w8_seq seq;
    w8_sampler sampler;
    w8_tok_stream *ts;
    w8_stop_text st;           /* the text with stop strings applied */
    const char *ending;        /* finish reason decided by the last accepted token */
    int admitted;
    /* output (shared) */
    char *gen;                 /* text published to the submitter (a prefix of st.text) */
    size_t gen_len, gen_cap;
    size_t taken;              /* bytes the submitter has taken */
    int done;
    const char *finish;
    char *error;               /* why it failed, when finish is "error" (or NULL) */
};

struct w8_engine {
    const w8_model *m;
    const w8_tok *tok;
    w8_engine_opts o;
    w8_kv *kv;
    w8_ctx *ctx;
    int vocab;
    pthread_t thread;
    int started, stopping, joined;
    pthread_mutex_t mu;
    pthread_cond_t work;       /* signalled on submit, cancel and stop */
    w8_req *q_head, *q_tail;   /* FIFO of waiting requests */
    int n_waiting;
    w8_req **running;          /* [max_batch_size] */
    int n_running;
    /* batch scratch (scheduler thread only) */
    int *b_tok, *b_pos;
    w8_seq **b_seq;
    char *b_want;
    w8_req **b_owner;          /* request of each wanted row, in row order */
    int *b_ids;                /* token sampled for each wanted row */
    float *logits;             /* [max_batch_size, vocab] */
    long long n_done, n_generated;
};

/* ---- requests */

static void req_free(w8_req *r) {
    w8_stop_text_free(&r->st);
    free(r->tokens);
    free(r->gen);
    free(r->error);
    pthread_cond_destroy(&r->cv);
    free(r);
}

/* Drop one reference; caller holds mu. */
static void req_unref(w8_req *r) {
    if (--r->refs == 0) req_free(r);
}

static void gen_append(w8_req *r, const char *s, size_t n) {
    if (r->gen_len + n + 1 > r->gen_cap) {
        r->gen_cap = (r->gen_len + n + 1) * 2;
        r->gen = w8_xrealloc(r->gen, r->gen_cap);
    }
    memcpy(r->gen + r->gen_len, s, n);
    r->gen_len += n;
    r->gen[r->gen_len] = 0;
}

/* Copy the text that became ready to the shared buffer and wake the
 * submitter.  Caller holds mu (and is the scheduler thread, which owns st). */
static void publish(w8_req *r) {
    if (r->st.ready <= r->gen_len) return;
    gen_append(r, r->st.text + r->gen_len, r->st.ready - r->gen_len);
    pthread_cond_broadcast(&r->cv);
}

/* End a request: publish all its text, free its KV blocks and sampler, and
 * drop the engine's reference.  Caller holds mu; r must be off the queue and
 * removed from `running` by the caller. */
static void req_finish(w8_engine *e, w8_req *r, const char *why) {
    w8_stop_text_end(&r->st);
    publish(r);
    w8_stop_text_free(&r->st);
    r->finish = why;
    r->done = 1;
    if (r->admitted) {
        w8_kv_seq_release(e->kv, &r->seq);
        w8_sampler_free(&r->sampler);
        w8_tok_stream_free(r->ts);
        r->ts = NULL;
        r->admitted = 0;
    }
    e->n_done++;
    pthread_cond_broadcast(&r->cv);
    req_unref(r);
}

/* ---- the step */

static int is_eos(const w8_engine *e, int id) {
    return w8_config_is_eos(&e->m->cfg, id) || id == w8_tok_eos_id(e->tok);
}

/* Add decoded text (malloc'd, may be NULL) to the scheduler's copy of the
 * output; returns 1 if a stop string ended the request. */
static int add_text(w8_req *r, char *text) {
    if (!text) return 0;
    int stopped = w8_stop_text_add(&r->st, text, strlen(text));
    free(text);
    return stopped;
}

/* Take sampled token `id` for r.  Scheduler thread without mu: touches only
 * scheduler-owned fields (tokens, detokenizer, st).  Returns the finish
 * reason or NULL. */
static const char *accept_token(w8_engine *e, w8_req *r, int id) {
    r->tokens[r->n_tokens++] = id;
    if (is_eos(e, id)) {
        add_text(r, w8_tok_stream_flush(r->ts));
        return "stop";
    }
    if (add_text(r, w8_tok_stream_push(r->ts, id))) return "stop";
    int n_gen = r->n_tokens - r->n_prompt;
    if ((r->max_tokens > 0 && n_gen >= r->max_tokens) || r->n_tokens >= e->o.max_seq_len)
        return add_text(r, w8_tok_stream_flush(r->ts)) ? "stop" : "length";
    return NULL;
}

static int admit(w8_engine *e, w8_req *r) {
    if (w8_kv_seq_reserve(e->kv, &r->seq, r->reserve)) return -1;
    w8_sampler_init(&r->sampler, e->vocab, r->temperature, r->top_k, r->top_p, r->rep_pen,
                    r->seed);
    r->ts = w8_tok_stream_new(e->tok, 1);
    r->admitted = 1;
    return 0;
}

/* Reap cancelled requests and admit queued ones.  Caller holds mu. */
static void schedule(w8_engine *e) {
    int k = 0;
    for (int i = 0; i < e->n_running; i++) {
        w8_req *r = e->running[i];
        if (r->cancelled)
            req_finish(e, r, "abort");
        else
            e->running[k++] = r;
    }
    e->n_running = k;
    w8_req **pp = &e->q_head, *prev = NULL;
    while (*pp) {
        w8_req *r = *pp;
        if (r->cancelled) {
            *pp = r->next;
            e->n_waiting--;
            req_finish(e, r, "abort");
        } else {
            prev = r;
            pp = &r->next;
        }
    }
    e->q_tail = prev;
    while (e->q_head && e->n_running < e->o.max_batch_size) {
        w8_req *r = e->q_head;
        if (admit(e, r)) break; /* FIFO: the head waits for blocks */
        e->q_head = r->next;
        if (!e->q_head) e->q_tail = NULL;
        r->next = NULL;
        e->n_waiting--;
        e->running[e->n_running++] = r;
    }
}

/* Build the batch: decode rows first, then prompt chunks.  Returns rows. */
static int build_batch(w8_engine *e, int *n_want) {
    int n = 0, w = 0, budget = e->o.prefill_chunk;
    for (int i = 0; i < e->n_running; i++) {
        w8_req *r = e->running[i];
        if (r->n_prefilled < r->n_prompt) continue;
        e->b_tok[n] = r->tokens[r->n_tokens - 1];
        e->b_pos[n] = r->n_tokens - 1;
        e->b_seq[n] = &r->seq;
        e->b_want[n++] = 1;
        e->b_owner[w++] = r;
    }
    for (int i = 0; i < e->n_running && budget > 0; i++) {
        w8_req *r = e->running[i];
        if (r->n_prefilled >= r->n_prompt) continue;
        int c = r->n_prompt - r->n_prefilled;
        if (c > budget) c = budget;
        for (int j = 0; j < c; j++) {
            int p = r->n_prefilled + j;
            e->b_tok[n] = r->tokens[p];
            e->b_pos[n] = p;
            e->b_seq[n] = &r->seq;
            e->b_want[n++] = p == r->n_prompt - 1;
        }
        if (r->n_prefilled + c == r->n_prompt) e->b_owner[w++] = r;
        r->n_prefilled += c;
        budget -= c;
    }
    *n_want = w;
    return n;
}

/* Sample every wanted row.  Runs without mu: samplers and token histories
 * belong to the scheduler thread, and each row has its own sampler, so the
 * rows can be sampled in parallel (a 152k-vocab softmax per row adds up at
 * batch 32). */
static void sample_rows(w8_engine *e, int n_want) {
    int nt = w8_get_threads();
#pragma omp parallel for num_threads(nt) schedule(static) if (n_want > 1 && nt > 1)
    for (int i = 0; i < n_want; i++) {
        w8_req *r = e->b_owner[i];
        e->b_ids[i] = w8_sample(&r->sampler, e->logits + (size_t)i * e->vocab, r->tokens,
                                r->n_tokens);
    }
}

/* Detokenize the sampled tokens and apply stop strings.  Without mu. */
static void accept_rows(w8_engine *e, int n_want) {
    for (int i = 0; i < n_want; i++) {
        w8_req *r = e->b_owner[i];
        r->ending = accept_token(e, r, e->b_ids[i]); /* non-NULL: finished */
    }
}

/* Publish the accepted tokens' text; finished requests leave `running`.
 * Holds mu. */
static void after_forward(w8_engine *e, int n_want) {
    for (int i = 0; i < n_want; i++) {
        e->b_owner[i]->n_gen++;
        e->n_generated++;
    }
    int k = 0;
    for (int i = 0; i < e->n_running; i++) {
        w8_req *r = e->running[i];
        if (r->ending) {
            req_finish(e, r, r->ending);
        } else {
            publish(r);
            e->running[k++] = r;
        }
    }
    e->n_running = k;
}

/* End r with finish reason "error" and the message the client will see. */
static void req_fail(w8_engine *e, w8_req *r, const char *why) {
    free(r->error);
    r->error = w8_xstrdup(why);
    req_finish(e, r, "error");
}

static void fail_running(w8_engine *e, const char *why) {
    for (int i = 0; i < e->n_running; i++) req_fail(e, e->running[i], why);
    e->n_running = 0;
}

static void *engine_main(void *arg) {
    w8_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->stopping && !e->n_running && !e->q_head) pthread_cond_wait(&e->work, &e->mu);
        if (e->stopping) break;
        schedule(e);
        if (!e->n_running) {
            /* nothing admitted with an empty batch: the head can never fit
             * (admit's error says how many blocks it needs) */
            if (e->q_head && !e->q_head->cancelled) {
                w8_req *r = e->q_head;
                e->q_head = r->next;
                if (!e->q_head) e->q_tail = NULL;
                e->n_waiting--;
                req_fail(e, r, w8_lasterr());
            }
            continue;
        }
        int n_want, n = build_batch(e, &n_want);
        w8_batch b = {n, e->b_tok, e->b_pos, e->b_seq, e->b_want};
        pthread_mutex_unlock(&e->mu);
        int got = w8_forward(e->ctx, e->m, e->kv, &b, e->logits);
        if (got == n_want) {
            sample_rows(e, n_want);
            accept_rows(e, n_want);
        }
        if (e->o.step_delay_us > 0) {
            struct timespec d = {e->o.step_delay_us / 1000000, e->o.step_delay_us % 1000000 * 1000L};
            nanosleep(&d, NULL);
        }
        pthread_mutex_lock(&e->mu);
        /* the error buffer is this thread's: copy the message to the requests */
        if (got != n_want)
            fail_running(e, got < 0 ? w8_lasterr() : "forward: wrong number of logit rows");
        else
            after_forward(e, n_want);
    }
    /* shutdown: running requests end with what they have, queued ones abort */
    for (int i = 0; i < e->n_running; i++) {
        w8_req *r = e->running[i];
        add_text(r, w8_tok_stream_flush(r->ts));
        req_finish(e, r, "abort");
    }
    e->n_running = 0;
    while (e->q_head) {
        w8_req *r = e->q_head;
        e->q_head = r->next;
        req_finish(e, r, "abort");
    }
    e->q_tail = NULL;
    e->n_waiting = 0;
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- public */

w8_engine *w8_engine_new(const w8_model *m, const w8_tok *tok, const w8_engine_opts *o) {
    if (o->max_batch_size < 1 || o->block_size < 1 || o->n_blocks < 1 || o->max_queue < 1 ||
        o->prefill_chunk < 1 || o->max_seq_len < 2 || o->step_delay_us < 0)
        return w8_seterr("engine: invalid options"), NULL;
    /* rows per step and pool tokens are ints everywhere downstream */
    if (o->prefill_chunk > INT_MAX - o->max_batch_size)
        return w8_seterr("engine: max_batch_size %d + prefill_chunk %d rows overflow",
                         o->max_batch_size, o->prefill_chunk), NULL;
    if ((long long)o->block_size * o->n_blocks > INT_MAX)
        return w8_seterr("engine: a KV pool of %d blocks x %d tokens is too large", o->n_blocks,
                         o->block_size), NULL;
    w8_engine *e = w8_xcalloc(1, sizeof *e);
    e->m = m;
    e->tok = tok;
    e->o = *o;
    e->vocab = m->cfg.vocab;
    size_t tokens = (size_t)o->block_size * (size_t)o->n_blocks;
    if ((size_t)e->o.max_seq_len > tokens) e->o.max_seq_len = (int)tokens;
    e->kv = w8_kv_new(&m->cfg, o->block_size, o->n_blocks);
    if (!e->kv) {
        free(e);
        return NULL;
    }
    int rows = o->max_batch_size + o->prefill_chunk;
    e->ctx = w8_ctx_new(m, rows);
    if (!e->ctx) {
        w8_kv_free(e->kv);
        free(e);
        return NULL;
    }
    e->running = w8_xcalloc((size_t)o->max_batch_size, sizeof *e->running);
    e->b_tok = w8_xcalloc((size_t)rows, sizeof *e->b_tok);
    e->b_pos = w8_xcalloc((size_t)rows, sizeof *e->b_pos);
    e->b_seq = w8_xcalloc((size_t)rows, sizeof *e->b_seq);
    e->b_want = w8_xcalloc((size_t)rows, 1);
    e->b_owner = w8_xcalloc((size_t)o->max_batch_size, sizeof *e->b_owner);
    e->b_ids = w8_xcalloc((size_t)o->max_batch_size, sizeof *e->b_ids);
    e->logits = w8_xcalloc((size_t)o->max_batch_size * (size_t)e->vocab, sizeof(float));
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->work, NULL);
    if (pthread_create(&e->thread, NULL, engine_main, e)) {
        e->joined = 1;
        w8_engine_free(e);
        return w8_seterr("engine: cannot start the scheduler thread"), NULL;
    }
    e->started = 1;
    return e;
}

void w8_engine_stop(w8_engine *e) {
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    pthread_cond_broadcast(&e->work);
    pthread_mutex_unlock(&e->mu);
    if (e->started && !e->joined) {
        pthread_join(e->thread, NULL);
        e->joined = 1;
    }
}

void w8_engine_free(w8_engine *e) {
    if (!e) return;
    w8_engine_stop(e);
    w8_ctx_free(e->ctx);
    w8_kv_free(e->kv);
    free(e->running);
    free(e->b_tok);
    free(e->b_pos);
    free(e->b_seq);
    free(e->b_want);
    free(e->b_owner);
    free(e->b_ids);
    free(e->logits);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->work);
    free(e);
}

int w8_engine_max_seq_len(const w8_engine *e) { return e->o.max_seq_len; }
int w8_engine_kv_tokens(const w8_engine *e) { return e->o.block_size * e->o.n_blocks; }

w8_req *w8_engine_submit(w8_engine *e, const int *prompt, int n_prompt, const w8_gen_params *p,
                         w8_submit_status *status) {
    if (n_prompt < 1 || n_prompt >= e->o.max_seq_len) {
        *status = W8_SUBMIT_TOO_LONG;
        return NULL;
    }
    w8_req *r = w8_xcalloc(1, sizeof *r);
    r->e = e;
    pthread_cond_init(&r->cv, NULL);
    r->refs = 2;
    r->n_prompt = n_prompt;
    r->max_tokens = p->max_tokens;
    long long want = p->max_tokens > 0 ? (long long)n_prompt + p->max_tokens : e->o.max_seq_len;
    r->reserve = want < e->o.max_seq_len ? (int)want : e->o.max_seq_len;
    r->cap = r->reserve + 1;
    r->tokens = w8_xmalloc((size_t)r->cap * sizeof(int));
    memcpy(r->tokens, prompt, (size_t)n_prompt * sizeof(int));
    r->n_tokens = n_prompt;
    w8_stop_text_init(&r->st, p->stop, p->n_stop);
    r->temperature = p->temperature;
    r->top_k = p->top_k;
    r->top_p = p->top_p;
    r->rep_pen = p->repetition_penalty;
    r->seed = p->seed;
    w8_seq_init(&r->seq);
    r->gen = w8_xcalloc(1, 1);
    r->gen_cap = 1;
    pthread_mutex_lock(&e->mu);
    *status = e->stopping ? W8_SUBMIT_STOPPED
              : e->n_waiting >= e->o.max_queue ? W8_SUBMIT_FULL
                                                : W8_SUBMIT_OK;
    if (*status != W8_SUBMIT_OK) {
        pthread_mutex_unlock(&e->mu);
        req_free(r);
        return NULL;
    }
    if (e->q_tail)
        e->q_tail->next = r;
    else
        e->q_head = r;
    e->q_tail = r;
    e->n_waiting++;
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
    return r;
}

int w8_req_wait(w8_req *r, double timeout_s, char **text, size_t *len, int *done) {
    w8_engine *e = r->e;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double frac = timeout_s - (double)(long)timeout_s;
    ts.tv_sec += (time_t)timeout_s;
    ts.tv_nsec += (long)(frac * 1e9);
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&e->mu);
    while (!r->done && r->taken == r->gen_len)
        if (pthread_cond_timedwait(&r->cv, &e->mu, &ts) == ETIMEDOUT) break;
    int news = r->done || r->taken < r->gen_len;
    *text = NULL;
    if (news) {
        size_t n = r->gen_len - r->taken;
        *text = w8_xstrndup(r->gen + r->taken, n);
        if (len) *len = n;
        r->taken = r->gen_len;
    }
    *done = r->done;
    pthread_mutex_unlock(&e->mu);
    return news;
}

const char *w8_req_finish_reason(w8_req *r) {
    pthread_mutex_lock(&r->e->mu);
    const char *f = r->done ? r->finish : NULL;
    pthread_mutex_unlock(&r->e->mu);
    return f;
}

const char *w8_req_error(w8_req *r) {
    pthread_mutex_lock(&r->e->mu);
    const char *m = r->done ? r->error : NULL;
    pthread_mutex_unlock(&r->e->mu);
    return m;
}

void w8_req_usage(w8_req *r, int *prompt_tokens, int *completion_tokens) {
    pthread_mutex_lock(&r->e->mu);
    *prompt_tokens = r->n_prompt;
    *completion_tokens = r->n_gen;
    pthread_mutex_unlock(&r->e->mu);
}

void w8_req_release(w8_req *r) {
    w8_engine *e = r->e;
    pthread_mutex_lock(&e->mu);
    if (!r->done) r->cancelled = 1;
    req_unref(r);
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->mu);
}

void w8_engine_get_stats(w8_engine *e, w8_engine_stats *s) {
    pthread_mutex_lock(&e->mu);
    s->running = e->n_running;
    s->waiting = e->n_waiting;
    s->free_blocks = w8_kv_free_blocks(e->kv);
    s->total_blocks = w8_kv_total_blocks(e->kv);
    s->block_size = e->o.block_size;
    s->requests_done = e->n_done;
    s->tokens_generated = e->n_generated;
    pthread_mutex_unlock(&e->mu);
}

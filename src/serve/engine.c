/*
 * engine.c - continuous batching (see engine.h for the step loop).
 *
 * Locking: one engine mutex `mu` guards the queue, the request fields marked
 * "shared" below, reference counts, the KV pool's block accounting (blocks
 * are reserved and released only under mu) and the statistics.  The
 * engine thread drops mu while w8_sched_step runs the forward pass, the
 * sampling, the detokenizing and the stop-string search (sched.c); that
 * touches only scheduler-owned state (KV contents, samplers, token lists, the
 * detokenizer and the stop_text buffer of each w8_sched_seq).  Under mu it
 * then copies the text that became ready into the shared `gen` buffer, which
 * is all the HTTP threads read, and admits and removes sequences (their KV
 * blocks).  Each request has its own
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

#include "../buf.h"
#include "../forward.h"
#include "../kv_cache.h"
#include "../sched.h"
#include "../util.h"

struct w8_req {
    w8_engine *e;
    struct w8_req *next;       /* queue link (shared) */
    pthread_cond_t cv;         /* signalled when text is published or the request ends */
    int refs;                  /* shared */
    int cancelled;             /* shared: the submitter released it */
    /* request, fixed at submit */
    int n_prompt;
    /* the scheduler's sequence: tokens, sampler, detokenizer, stop text
     * (engine thread only, outside mu while a step runs) */
    w8_sched_seq *q;
    int n_gen;                 /* shared: tokens generated so far */
    /* output (shared) */
    w8_buf gen;                /* text published to the submitter (a prefix of st.text) */
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
    w8_sched *sched;           /* the running sequences: admitted and removed under mu */
    int eos;                   /* the tokenizer's eos id, a stop id besides config.json's */
    pthread_t thread;
    int started, stopping, joined;
    pthread_mutex_t mu;
    pthread_cond_t work;       /* signalled on submit, cancel and stop */
    w8_req *q_head, *q_tail;   /* FIFO of waiting requests */
    int n_waiting;
    long long n_done, n_generated;
    long long n_steps;         /* steps run (for fail_step) */
};

/* ---- requests */

static void req_free(w8_req *r) {
    w8_sched_seq_free(r->q);
    w8_buf_free(&r->gen);
    free(r->error);
    pthread_cond_destroy(&r->cv);
    free(r);
}

/* Drop one reference; caller holds mu. */
static void req_unref(w8_req *r) {
    if (--r->refs == 0) req_free(r);
}

/* Copy the text that became ready to the shared buffer and wake the
 * submitter.  Caller holds mu (and is the scheduler thread, which owns st). */
static void publish(w8_req *r) {
    const w8_stop_text *st = &r->q->st;
    if (st->ready <= r->gen.len) return;
    w8_buf_put(&r->gen, st->text.s + r->gen.len, st->ready - r->gen.len);
    pthread_cond_broadcast(&r->cv);
}

/* End a request: publish all its text, take its sequence out of the
 * scheduler (its KV blocks return to the pool) and drop the engine's
 * reference.  Caller holds mu; r must be off the queue. */
static void req_finish(w8_engine *e, w8_req *r, const char *why) {
    w8_stop_text_end(&r->q->st);
    publish(r);
    r->n_gen = r->q->n_tokens - r->q->n_prompt;
    w8_stop_text_free(&r->q->st);
    r->finish = why;
    r->done = 1;
    if (r->q->admitted) w8_sched_remove(e->sched, r->q);
    e->n_done++;
    pthread_cond_broadcast(&r->cv);
    req_unref(r);
}

/* ---- the step */

/* finish reason of a sequence that stopped */
static const char *finish_reason(w8_stop_reason why) {
    return why == W8_STOP_EOS || why == W8_STOP_TEXT ? "stop" : "length";
}

/* Reap cancelled requests and admit queued ones.  Caller holds mu. */
static void schedule(w8_engine *e) {
    for (int i = 0; i < w8_sched_n_running(e->sched);) {
        w8_req *r = w8_sched_running(e->sched, i)->user;
        if (r->cancelled)
            req_finish(e, r, "abort"); /* leaves the scheduler */
        else
            i++;
    }
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
    while (e->q_head && w8_sched_n_running(e->sched) < e->o.max_batch_size) {
        w8_req *r = e->q_head;
        if (w8_sched_admit(e->sched, r->q)) break; /* FIFO: the head waits for blocks */
        e->q_head = r->next;
        if (!e->q_head) e->q_tail = NULL;
        r->next = NULL;
        e->n_waiting--;
    }
}

/* Publish the step's text; finished requests leave the scheduler.  Holds mu. */
static void after_step(w8_engine *e, int sampled) {
    e->n_generated += sampled;
    for (int i = 0; i < w8_sched_n_running(e->sched);) {
        w8_sched_seq *q = w8_sched_running(e->sched, i);
        w8_req *r = q->user;
        r->n_gen = q->n_tokens - q->n_prompt;
        if (q->stop != W8_STOP_NONE) {
            req_finish(e, r, finish_reason(q->stop)); /* leaves the scheduler */
        } else {
            publish(r);
            i++;
        }
    }
}

/* End r with finish reason "error" and the message the client will see. */
static void req_fail(w8_engine *e, w8_req *r, const char *why) {
    free(r->error);
    r->error = w8_xstrdup(why);
    req_finish(e, r, "error");
}

static void fail_running(w8_engine *e, const char *why) {
    while (w8_sched_n_running(e->sched)) req_fail(e, w8_sched_running(e->sched, 0)->user, why);
}

static void *engine_main(void *arg) {
    w8_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->stopping && !w8_sched_n_running(e->sched) && !e->q_head)
            pthread_cond_wait(&e->work, &e->mu);
        if (e->stopping) break;
        schedule(e);
        if (!w8_sched_n_running(e->sched)) {
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
        pthread_mutex_unlock(&e->mu);
        w8_step_info info;
        int rc = ++e->n_steps == e->o.fail_step
                     ? w8_seterr("engine: step %lld failed (injected by a test)", e->n_steps)
                     : w8_sched_step(e->sched, &info);
        if (e->o.step_delay_us > 0) {
            struct timespec d = {e->o.step_delay_us / 1000000, e->o.step_delay_us % 1000000 * 1000L};
            nanosleep(&d, NULL);
        }
        pthread_mutex_lock(&e->mu);
        /* the error buffer is this thread's: copy the message to the requests */
        if (rc)
            fail_running(e, w8_lasterr());
        else
            after_step(e, info.sampled);
    }
    /* shutdown: running requests end with what they have, queued ones abort */
    while (w8_sched_n_running(e->sched)) {
        w8_req *r = w8_sched_running(e->sched, 0)->user;
        w8_sched_seq_end(r->q);
        req_finish(e, r, "abort");
    }
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
        o->prefill_chunk < 1 || o->max_seq_len < 2 || o->step_delay_us < 0 ||
        o->fail_step < 0)
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
    e->eos = w8_tok_eos_id(tok);
    w8_sched_opts so = {o->max_batch_size, o->prefill_chunk, e->o.max_seq_len, 0, 0, tok,
                        &e->eos, e->eos >= 0, 0};
    e->sched = w8_sched_new(m, e->ctx, e->kv, &so);
    if (!e->sched) {
        w8_ctx_free(e->ctx);
        w8_kv_free(e->kv);
        free(e);
        return NULL;
    }
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
    w8_sched_free(e->sched);
    w8_ctx_free(e->ctx);
    w8_kv_free(e->kv);
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
    /* only immutable scheduler fields are read: safe from this thread */
    r->q = w8_sched_seq_new(e->sched, prompt, n_prompt, p);
    r->q->user = r;
    w8_buf_put(&r->gen, "", 0); /* allocated from the start: w8_req_wait reads gen.s */
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
    while (!r->done && r->taken == r->gen.len)
        if (pthread_cond_timedwait(&r->cv, &e->mu, &ts) == ETIMEDOUT) break;
    int news = r->done || r->taken < r->gen.len;
    *text = NULL;
    if (news) {
        size_t n = r->gen.len - r->taken;
        *text = w8_xstrndup(r->gen.s + r->taken, n);
        if (len) *len = n;
        r->taken = r->gen.len;
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
    s->running = w8_sched_n_running(e->sched);
    s->waiting = e->n_waiting;
    s->free_blocks = w8_kv_free_blocks(e->kv);
    s->total_blocks = w8_kv_total_blocks(e->kv);
    s->block_size = e->o.block_size;
    s->requests_done = e->n_done;
    s->tokens_generated = e->n_generated;
    pthread_mutex_unlock(&e->mu);
}

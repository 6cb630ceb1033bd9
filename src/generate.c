/*
 * generate.c - batch generation over the paged KV cache.
 *
 * Prefill: the prompts of all sequences are laid end to end as one list of
 * rows and run through w8_forward in chunks of max_rows (a prompt may span
 * chunks: its positions simply continue in the next one); the logits of each
 * prompt's last row give its first token.  Decode: every sequence still
 * active contributes one row per step.  A sequence that stops (eos,
 * max_new_tokens, context end) returns its cache blocks at once.
 *
 * Per-sequence state is the token history (prompt + generated, which the
 * repetition penalty reads) and a sampler seeded with seed + i, so a
 * sequence's output does not depend on which others share its batch.
 */
#include "generate.h"

#include <stdlib.h>
#include <string.h>

#include "sampler.h"
#include "util.h"

void w8_gen_opts_default(w8_gen_opts *o, int max_new_tokens) {
    memset(o, 0, sizeof *o);
    o->max_new_tokens = max_new_tokens;
    o->top_p = 1.0f;
    o->repetition_penalty = 1.0f;
}

void w8_gen_free(w8_gen_out *out, int n) {
    if (!out) return;
    for (int i = 0; i < n; i++) {
        free(out[i].ids);
        out[i].ids = NULL;
        out[i].n_ids = 0;
    }
}

typedef struct {
    w8_seq seq;
    w8_sampler smp;
    int *hist;    /* prompt then generated ids */
    int n_hist;
    int n_prompt;
    int active;
} gen_seq;

typedef struct {
    const w8_model *m;
    w8_ctx *ctx;
    w8_kv *kv;
    const w8_gen_opts *o;
    int n;
    gen_seq *s;
    float *logits;  /* [n, vocab] */
    /* batch arrays [max_rows] */
    int *tok, *pos;
    w8_seq **bseq;
    char *want;
    int *owner;     /* sequence of each row */
} gen_state;

static int is_eos(const gen_state *g, int id) {
    if (g->o->ignore_eos) return 0;
    if (w8_config_is_eos(&g->m->cfg, id)) return 1;
    for (int i = 0; i < g->o->n_extra_eos; i++)
        if (g->o->extra_eos[i] == id) return 1;
    return 0;
}

/* Sample sequence i's next token from its logits row and decide if it stops. */
static void take_token(gen_state *g, int i, float *logits, w8_gen_out *out) {
    gen_seq *s = &g->s[i];
    int id = w8_sample(&s->smp, logits, s->hist, s->n_hist);
    s->hist[s->n_hist++] = id;
    int n_gen = s->n_hist - s->n_prompt;
    if (is_eos(g, id)) {
        out->stop = W8_STOP_EOS;
    } else if (n_gen >= g->o->max_new_tokens) {
        out->stop = W8_STOP_LENGTH;
    } else if (s->n_hist - 1 >= g->m->cfg.max_pos) {
        /* the next step would feed this token at position n_hist - 1 */
        out->stop = W8_STOP_CONTEXT;
    } else {
        return;
    }
    s->active = 0;
    w8_kv_seq_release(g->kv, &s->seq);
}

/* Run the rows collected so far; sample for the rows that want logits. */
static int run_rows(gen_state *g, int rows, w8_gen_out *out) {
    w8_batch b = {rows, g->tok, g->pos, g->bseq, g->want};
    for (int r = 0; r < rows; r++)
        if (w8_kv_seq_reserve(g->kv, g->bseq[r], g->pos[r] + 1)) return -1;
    int nl = w8_forward(g->ctx, g->m, g->kv, &b, g->logits);
    if (nl < 0) return -1;
    int j = 0;
    for (int r = 0; r < rows; r++)
        if (g->want[r]) {
            take_token(g, g->owner[r], g->logits + (size_t)j * g->m->cfg.vocab,
                       &out[g->owner[r]]);
            j++;
        }
    return 0;
}

static int prefill(gen_state *g, int max_rows, w8_gen_out *out) {
    int rows = 0;
    for (int i = 0; i < g->n; i++) {
        gen_seq *s = &g->s[i];
        for (int p = 0; p < s->n_prompt; p++) {
            g->tok[rows] = s->hist[p];
            g->pos[rows] = p;
            g->bseq[rows] = &s->seq;
            g->want[rows] = p == s->n_prompt - 1;
            g->owner[rows] = i;
            if (++rows == max_rows) {
                if (run_rows(g, rows, out)) return -1;
                rows = 0;
            }
        }
    }
    return rows ? run_rows(g, rows, out) : 0;
}

static int decode_step(gen_state *g, w8_gen_out *out) {
    int rows = 0;
    for (int i = 0; i < g->n; i++) {
        gen_seq *s = &g->s[i];
        if (!s->active) continue;
        g->tok[rows] = s->hist[s->n_hist - 1];
        g->pos[rows] = s->n_hist - 1;
        g->bseq[rows] = &s->seq;
        g->want[rows] = 1;
        g->owner[rows] = i;
        rows++;
    }
    return rows ? run_rows(g, rows, out) : 0;
}

static int check_prompts(const w8_model *m, int n, int max_rows, const int *const *prompts,
                         const int *lens) {
    if (n <= 0 || n > max_rows)
        return w8_seterr("generate: %d sequences (1..%d per batch)", n, max_rows);
    for (int i = 0; i < n; i++) {
        if (lens[i] < 1) return w8_seterr("generate: prompt %d is empty", i);
        if (lens[i] >= m->cfg.max_pos)
            return w8_seterr("generate: prompt %d has %d tokens, the context holds %d", i,
                             lens[i], m->cfg.max_pos);
        for (int j = 0; j < lens[i]; j++)
            if (prompts[i][j] < 0 || prompts[i][j] >= m->cfg.vocab)
                return w8_seterr("generate: prompt %d: token id %d out of range (vocab %d)", i,
                                 prompts[i][j], m->cfg.vocab);
    }
    return 0;
}

int w8_generate(const w8_model *m, w8_ctx *ctx, w8_kv *kv, int n, const int *const *prompts,
                const int *lens, const w8_gen_opts *o, w8_gen_out *out, w8_gen_stats *stats) {
    int max_rows = w8_ctx_max_rows(ctx), vocab = m->cfg.vocab, rc = -1;
    if (stats) memset(stats, 0, sizeof *stats);
    if (check_prompts(m, n, max_rows, prompts, lens)) return -1;
    memset(out, 0, (size_t)n * sizeof *out);
    if (o->max_new_tokens <= 0) return 0;

    gen_state g = {m, ctx, kv, o, n, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    g.s = w8_xcalloc((size_t)n, sizeof(gen_seq));
    g.logits = w8_xmalloc((size_t)n * (size_t)vocab * sizeof(float));
    g.tok = w8_xmalloc((size_t)max_rows * sizeof(int));
    g.pos = w8_xmalloc((size_t)max_rows * sizeof(int));
    g.bseq = w8_xmalloc((size_t)max_rows * sizeof(w8_seq *));
    g.want = w8_xmalloc((size_t)max_rows);
    g.owner = w8_xmalloc((size_t)max_rows * sizeof(int));
    for (int i = 0; i < n; i++) {
        gen_seq *s = &g.s[i];
        w8_seq_init(&s->seq);
        w8_sampler_init(&s->smp, vocab, o->temperature, o->top_k, o->top_p,
                        o->repetition_penalty, o->seed + (uint64_t)i);
        s->hist = w8_xmalloc(((size_t)lens[i] + (size_t)o->max_new_tokens) * sizeof(int));
        memcpy(s->hist, prompts[i], (size_t)lens[i] * sizeof(int));
        s->n_hist = s->n_prompt = lens[i];
        s->active = 1;
    }

    double t0 = w8_now();
    if (prefill(&g, max_rows, out)) goto done;
    double t1 = w8_now();
    if (stats) {
        for (int i = 0; i < n; i++) stats->prefill_tokens += lens[i];
        stats->prefill_s = t1 - t0;
    }
    for (;;) {
        int active = 0;
        for (int i = 0; i < n; i++) active += g.s[i].active;
        if (!active) break;
        if (decode_step(&g, out)) goto done;
        if (stats) stats->decode_tokens += active;
    }
    if (stats) stats->decode_s = w8_now() - t1;
    for (int i = 0; i < n; i++) {
        int ng = g.s[i].n_hist - g.s[i].n_prompt;
        out[i].n_ids = ng;
        out[i].ids = w8_xmalloc((size_t)(ng > 0 ? ng : 1) * sizeof(int));
        memcpy(out[i].ids, g.s[i].hist + g.s[i].n_prompt, (size_t)ng * sizeof(int));
    }
    rc = 0;
done:
    for (int i = 0; i < n; i++) {
        w8_kv_seq_release(kv, &g.s[i].seq);
        w8_sampler_free(&g.s[i].smp);
        free(g.s[i].hist);
    }
    if (rc) memset(out, 0, (size_t)n * sizeof *out);
    free(g.s);
    free(g.logits);
    free(g.tok);
    free(g.pos);
    free(g.bseq);
    free(g.want);
    free(g.owner);
    return rc;
}

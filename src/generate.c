/*
 * generate.c - w8_generate over the scheduler (sched.c): the prompts are
 * admitted together and stepped until every sequence stops.  Prefill lays
 * the prompts end to end in chunks of max_rows; decode runs one row per
 * sequence still active; a sequence that stops returns its cache blocks at
 * once.  Sequence i samples with seed + i, so its output does not depend on
 * which others share its batch.
 */
#include "generate.h"

#include <stdlib.h>
#include <string.h>

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

/* Move sequence i's generated ids to out[i]. */
static void collect(w8_sched *s, w8_sched_seq *q, w8_gen_out *out) {
    int ng = q->n_tokens - q->n_prompt;
    out->n_ids = ng;
    out->ids = w8_xmalloc((size_t)(ng > 0 ? ng : 1) * sizeof(int));
    memcpy(out->ids, q->tokens + q->n_prompt, (size_t)ng * sizeof(int));
    out->stop = q->stop;
    w8_sched_remove(s, q);
}

int w8_generate(const w8_model *m, w8_ctx *ctx, w8_kv *kv, int n, const int *const *prompts,
                const int *lens, const w8_gen_opts *o, w8_gen_out *out, w8_gen_stats *stats) {
    int max_rows = w8_ctx_max_rows(ctx), rc = -1;
    if (stats) memset(stats, 0, sizeof *stats);
    if (check_prompts(m, n, max_rows, prompts, lens)) return -1;
    memset(out, 0, (size_t)n * sizeof *out);
    if (o->max_new_tokens <= 0) return 0;

    /* the context ends at max_pos: the token sampled at the last position is
     * kept (it is never fed), so a sequence holds up to max_pos + 1 ids */
    w8_sched_opts so = {n, max_rows, m->cfg.max_pos + 1, 1, 1, NULL, o->extra_eos,
                        o->n_extra_eos, o->ignore_eos};
    w8_sched *s = w8_sched_new(m, ctx, kv, &so);
    if (!s) return -1;
    w8_sched_seq **q = w8_xcalloc((size_t)n, sizeof *q);
    for (int i = 0; i < n; i++) {
        w8_gen_params p = {o->temperature, o->top_k, o->top_p, o->repetition_penalty,
                           o->seed + (uint64_t)i, o->max_new_tokens, NULL, 0};
        q[i] = w8_sched_seq_new(s, prompts[i], lens[i], &p);
        if (w8_sched_admit(s, q[i])) goto done;
    }

    double t0 = w8_now(), t1 = t0;
    int prefilling = 1;
    while (w8_sched_n_running(s)) {
        w8_step_info st;
        if (w8_sched_step(s, &st)) goto done;
        if (stats) {
            stats->prefill_tokens += st.prefill_rows;
            stats->decode_tokens += st.decode_rows;
        }
        int still = 0;
        for (int i = 0; i < n; i++) still |= q[i]->n_prefilled < q[i]->n_prompt;
        if (prefilling && !still) {
            /* prefill time includes the first samples, as it always has */
            prefilling = 0;
            t1 = w8_now();
        }
        for (int i = 0; i < n; i++)
            if (q[i]->admitted && q[i]->stop != W8_STOP_NONE) collect(s, q[i], &out[i]);
    }
    if (stats) {
        stats->prefill_s = t1 - t0;
        stats->decode_s = w8_now() - t1;
    }
    rc = 0;
done:
    if (rc) w8_gen_free(out, n);
    for (int i = 0; i < n; i++) {
        if (q[i] && q[i]->admitted) w8_sched_remove(s, q[i]);
        w8_sched_seq_free(q[i]);
    }
    if (rc) memset(out, 0, (size_t)n * sizeof *out);
    free(q);
    w8_sched_free(s);
    return rc;
}

/*
 * test_sched.c - the one generation loop (src/sched.c) and the batch type
 * (src/batch.c) on stories260K, driven directly: chunked prefill and mixed
 * decode/prefill steps give the ids one whole-prompt prefill gives, each stop
 * rule ends a sequence with its reason, eager admission waits for blocks
 * while lazy reservation reports the shortage, and w8_generate (run's
 * driver) equals a step loop written here.
 */
#include <string.h>

#include "../src/batch.h"
#include "../src/generate.h"
#include "../src/kv_cache.h"
#include "../src/sched.h"
#include "../src/tokenizer/tokenizer.h"
#include "../src/util.h"
#include "test.h"

#define NEW 24

static w8_gen_params params(long long max_tokens, float temperature, uint64_t seed) {
    w8_gen_params p = {temperature, 0, 1.0f, 1.0f, seed, max_tokens, NULL, 0};
    return p;
}

/* Step s until every sequence in q[n] stops; the sequences are removed as
 * they finish.  Returns 0, or -1 on a step error. */
static int drain(w8_sched *s, w8_sched_seq **q, int n, int *max_rows_seen) {
    while (w8_sched_n_running(s)) {
        w8_step_info st;
        if (w8_sched_step(s, &st)) return -1;
        if (max_rows_seen && st.rows > *max_rows_seen) *max_rows_seen = st.rows;
        for (int i = 0; i < n; i++)
            if (q[i]->admitted && q[i]->stop != W8_STOP_NONE) w8_sched_remove(s, q[i]);
    }
    return 0;
}

static int same_ids(const w8_sched_seq *a, const w8_sched_seq *b) {
    return a->n_tokens == b->n_tokens &&
           !memcmp(a->tokens, b->tokens, (size_t)a->n_tokens * sizeof(int));
}

static void test_batch(void) {
    w8_batch_buf bb;
    w8_batch_buf_init(&bb, 2);
    w8_seq sq;
    w8_seq_init(&sq);
    CHECK(w8_batch_add(&bb, 5, 0, &sq, 0) == 0 && w8_batch_add(&bb, 6, 1, &sq, 1) == 1,
          "batch: rows are added in order");
    CHECK(bb.b.n == 2 && bb.b.tokens[1] == 6 && bb.b.pos[1] == 1 && bb.b.seq[0] == &sq &&
              bb.b.want[0] == 0 && bb.b.want[1] == 1,
          "batch: the view holds the rows");
    CHECK(w8_batch_add(&bb, 7, 2, &sq, 1) == -1 && bb.b.n == 2 && strstr(w8_lasterr(), "rows"),
          "batch: a full buffer refuses a row with an error");
    w8_batch_clear(&bb);
    CHECK(bb.b.n == 0 && w8_batch_add(&bb, 8, 0, &sq, 1) == 0, "batch: clear empties it");
    w8_batch_buf_free(&bb);
}

int main(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/stories260K-hf-f16", shared_dir());
    w8_set_threads(1);
    test_batch();
    w8_model *m = w8_model_load(dir);
    w8_tok *tok = m ? w8_tok_load(dir) : NULL;
    CHECK(m && tok, "load stories260K (%s)", m && tok ? "ok" : w8_lasterr());
    if (!m || !tok) TEST_DONE();
    const char *texts[3] = {"Once upon a time", "Lily and Tom went to the park to play with",
                            "The cat"};
    int *ids[3], lens[3];
    for (int i = 0; i < 3; i++) lens[i] = w8_tok_encode(tok, texts[i], strlen(texts[i]), 1, &ids[i]);
    int eos = w8_tok_eos_id(tok);

    /* reference: each prompt alone, whole prompt in one step */
    w8_ctx *ctx = w8_ctx_new(m, 64);
    w8_kv *kv = w8_kv_new(&m->cfg, 16, 64);
    w8_sched_opts one = {1, 64, 512, 0, 0, tok, &eos, 1, 0};
    w8_sched *s = w8_sched_new(m, ctx, kv, &one);
    CHECK(s != NULL, "sched: starts");
    w8_sched_seq *ref[3];
    for (int i = 0; i < 3; i++) {
        w8_gen_params p = params(NEW, 0.8f, 100 + (uint64_t)i);
        ref[i] = w8_sched_seq_new(s, ids[i], lens[i], &p);
        CHECK(!w8_sched_admit(s, ref[i]) && !drain(s, &ref[i], 1, NULL) &&
                  ref[i]->n_tokens > lens[i],
              "sched: prompt %d alone generates", i);
    }
    w8_sched_free(s);

    /* three at once, prompt chunks of 3 rows: decode rows of the sequences
     * whose prompt is stored share steps with the others' prompt chunks */
    w8_sched_opts mixed = {3, 3, 512, 0, 0, tok, &eos, 1, 0};
    s = w8_sched_new(m, ctx, kv, &mixed);
    w8_sched_seq *q[3];
    for (int i = 0; i < 3; i++) {
        w8_gen_params p = params(NEW, 0.8f, 100 + (uint64_t)i);
        q[i] = w8_sched_seq_new(s, ids[i], lens[i], &p);
        w8_sched_admit(s, q[i]);
    }
    int max_rows = 0;
    CHECK(!drain(s, q, 3, &max_rows), "sched: mixed steps run");
    CHECK(max_rows <= 3 + 3, "sched: a step holds at most max_seqs + prefill_chunk rows (%d)",
          max_rows);
    for (int i = 0; i < 3; i++) {
        CHECK(same_ids(q[i], ref[i]), "sched: sequence %d sampled in a mixed batch equals alone",
              i);
        CHECK(!strcmp(q[i]->st.text.s, ref[i]->st.text.s), "sched: sequence %d text equal", i);
        w8_sched_seq_free(q[i]);
    }
    CHECK(w8_kv_free_blocks(kv) == w8_kv_total_blocks(kv), "sched: every block returned");
    w8_sched_free(s);

    /* stop reasons */
    w8_sched_opts stop_o = {1, 64, 12, 0, 0, tok, &eos, 1, 0};
    s = w8_sched_new(m, ctx, kv, &stop_o);
    w8_gen_params p = params(3, 0, 1);
    w8_sched_seq *a = w8_sched_seq_new(s, ids[0], lens[0], &p);
    w8_sched_admit(s, a);
    drain(s, &a, 1, NULL);
    CHECK(a->stop == W8_STOP_LENGTH && a->n_tokens == lens[0] + 3, "sched: max_tokens stops (%d)",
          a->stop);
    w8_sched_seq_free(a);
    p = params(0, 0, 1);
    a = w8_sched_seq_new(s, ids[0], lens[0], &p);
    w8_sched_admit(s, a);
    drain(s, &a, 1, NULL);
    CHECK(a->stop == W8_STOP_CONTEXT && a->n_tokens == 12, "sched: the context end stops (%d, %d)",
          a->stop, a->n_tokens);
    /* the greedy continuation's last word as a stop string: the text ends
     * where that word first occurs */
    char *cont = w8_xstrdup(a->st.text.s);
    w8_sched_seq_free(a);
    char *sp = strrchr(cont, ' ');
    CHECK(sp != NULL, "sched: greedy text has two words (%s)", cont);
    if (sp) {
        char *stop[1] = {sp};
        size_t cut = (size_t)(strstr(cont, sp) - cont);
        p = params(0, 0, 1);
        p.stop = stop;
        p.n_stop = 1;
        a = w8_sched_seq_new(s, ids[0], lens[0], &p);
        w8_sched_admit(s, a);
        drain(s, &a, 1, NULL);
        CHECK(a->stop == W8_STOP_TEXT && strlen(a->st.text.s) == cut &&
                  !strncmp(a->st.text.s, cont, cut),
              "sched: a stop string stops, the text ends before it (%s)", a->st.text.s);
        w8_sched_seq_free(a);
    }
    free(cont);
    w8_sched_free(s);
    /* its first greedy token as an extra eos id */
    w8_sched_opts eos_o = {1, 64, 512, 0, 0, NULL, NULL, 0, 0};
    s = w8_sched_new(m, ctx, kv, &eos_o);
    p = params(5, 0, 1);
    a = w8_sched_seq_new(s, ids[0], lens[0], &p);
    w8_sched_admit(s, a);
    drain(s, &a, 1, NULL);
    int first = a->tokens[lens[0]];
    w8_sched_seq_free(a);
    w8_sched_free(s);
    eos_o.extra_eos = &first;
    eos_o.n_extra_eos = 1;
    s = w8_sched_new(m, ctx, kv, &eos_o);
    a = w8_sched_seq_new(s, ids[0], lens[0], &p);
    w8_sched_admit(s, a);
    drain(s, &a, 1, NULL);
    CHECK(a->stop == W8_STOP_EOS && a->n_tokens == lens[0] + 1 && a->st.text.len == 0,
          "sched: an extra eos id stops at once, kept in the ids (no tokenizer: no text)");
    w8_sched_seq_free(a);
    w8_sched_free(s);
    eos_o.ignore_eos = 1;
    s = w8_sched_new(m, ctx, kv, &eos_o);
    a = w8_sched_seq_new(s, ids[0], lens[0], &p);
    w8_sched_admit(s, a);
    drain(s, &a, 1, NULL);
    CHECK(a->stop == W8_STOP_LENGTH && a->n_tokens == lens[0] + 5, "sched: ignore_eos runs on");
    w8_sched_seq_free(a);
    w8_sched_free(s);
    w8_kv_free(kv);

    /* eager admission waits for blocks; lazy reservation fails in the step */
    kv = w8_kv_new(&m->cfg, 16, 2);
    w8_sched_opts eager = {2, 64, 512, 0, 0, NULL, NULL, 0, 1};
    s = w8_sched_new(m, ctx, kv, &eager);
    p = params(20, 0, 1);
    w8_sched_seq *e2[2] = {w8_sched_seq_new(s, ids[0], lens[0], &p),
                           w8_sched_seq_new(s, ids[2], lens[2], &p)};
    CHECK(!w8_sched_admit(s, e2[0]), "sched: the first sequence gets its blocks");
    CHECK(w8_sched_admit(s, e2[1]) == -1 && w8_sched_n_running(s) == 1,
          "sched: the second waits for blocks (%s)", w8_lasterr());
    drain(s, e2, 1, NULL);
    CHECK(!w8_sched_admit(s, e2[1]) && !drain(s, &e2[1], 1, NULL) &&
              e2[1]->stop == W8_STOP_LENGTH,
          "sched: admitted once the first finished");
    w8_sched_seq_free(e2[0]);
    w8_sched_seq_free(e2[1]);
    w8_sched_free(s);
    w8_sched_opts lazy = {1, 64, 512, 0, 1, NULL, NULL, 0, 1};
    s = w8_sched_new(m, ctx, kv, &lazy);
    p = params(100, 0, 1);
    a = w8_sched_seq_new(s, ids[0], lens[0], &p);
    CHECK(!w8_sched_admit(s, a) && drain(s, &a, 1, NULL) == -1,
          "sched: lazy reservation past the pool is a step error (%s)", w8_lasterr());
    w8_sched_free(s); /* removes a, the caller frees it */
    w8_sched_seq_free(a);
    CHECK(w8_kv_free_blocks(kv) == w8_kv_total_blocks(kv), "sched: blocks back after the error");
    w8_kv_free(kv);

    /* w8_generate (run) equals the references: prefill first, seed + i */
    kv = w8_kv_new(&m->cfg, 16, 64);
    w8_gen_opts go;
    w8_gen_opts_default(&go, NEW);
    go.temperature = 0.8f;
    go.seed = 100;
    go.extra_eos = &eos;
    go.n_extra_eos = 1;
    w8_gen_out out[3];
    w8_gen_stats gs;
    int rc = w8_generate(m, ctx, kv, 3, (const int *const *)ids, lens, &go, out, &gs);
    CHECK(rc == 0 && gs.prefill_tokens == lens[0] + lens[1] + lens[2], "generate: runs (%s)",
          rc ? w8_lasterr() : "ok");
    for (int i = 0; rc == 0 && i < 3; i++)
        CHECK(out[i].n_ids == ref[i]->n_tokens - lens[i] &&
                  !memcmp(out[i].ids, ref[i]->tokens + lens[i], (size_t)out[i].n_ids * sizeof(int)),
              "generate: sequence %d equals the scheduler's", i);
    if (rc == 0) w8_gen_free(out, 3);
    w8_kv_free(kv);

    for (int i = 0; i < 3; i++) {
        w8_sched_seq_free(ref[i]);
        free(ids[i]);
    }
    w8_ctx_free(ctx);
    w8_tok_free(tok);
    w8_model_free(m);
    TEST_DONE();
}

/*
 * test_engine.c - the continuous-batching scheduler (src/engine.c) on
 * stories260K without HTTP: batched greedy output equals solo output,
 * chunked prefill, stop strings, submit refusals, cancellation freeing
 * blocks, and shutdown with requests in flight.
 */
#include <string.h>
#include <time.h>

#include "../src/serve/engine.h"
#include "../src/kv_cache.h"
#include "../src/tokenizer/tokenizer.h"
#include "../src/util.h"
#include "engine_idle.h"
#include "test.h"

static w8_gen_params greedy(long long max_tokens) {
    w8_gen_params p = {0, 0, 1.0f, 1.0f, 1, max_tokens, NULL, 0};
    return p;
}

/* Wait for the whole answer: text (malloc'd) and finish reason. */
static char *collect(w8_req *r, const char **finish, int *n_gen) {
    size_t cap = 64, len = 0;
    char *all = w8_xcalloc(1, cap);
    int done = 0;
    while (!done) {
        char *t;
        size_t n = 0;
        if (!w8_req_wait(r, 5.0, &t, &n, &done)) continue;
        if (len + n + 1 > cap) cap = (len + n + 1) * 2, all = w8_xrealloc(all, cap);
        memcpy(all + len, t, n);
        len += n;
        all[len] = 0;
        free(t);
    }
    *finish = w8_req_finish_reason(r);
    int np;
    w8_req_usage(r, &np, n_gen);
    return all;
}

static char *run_one(w8_engine *e, const w8_tok *tok, const char *prompt, w8_gen_params *p,
                     const char **finish) {
    int *ids;
    int n = w8_tok_encode(tok, prompt, strlen(prompt), 1, &ids);
    w8_submit_status st;
    w8_req *r = w8_engine_submit(e, ids, n, p, &st);
    free(ids);
    if (!r) return NULL;
    int ng;
    char *s = collect(r, finish, &ng);
    w8_req_release(r);
    return s;
}

int main(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/stories260K-hf-f16", shared_dir());
    w8_set_threads(1);
    w8_model *m = w8_model_load(dir);
    w8_tok *tok = m ? w8_tok_load(dir) : NULL;
    CHECK(m && tok, "load stories260K (%s)", m && tok ? "ok" : w8_lasterr());
    if (!m || !tok) TEST_DONE();
    /* 8 sequences, prompt chunks of 5 rows so every prompt is prefilled in pieces */
    w8_engine_opts o = {8, 512, 16, 8 * 512 / 16, 16, 5, 0, 0};
    w8_engine *e = w8_engine_new(m, tok, &o);
    CHECK(e != NULL, "engine starts");
    if (!e) TEST_DONE();

    /* the known greedy opening from BOS */
    w8_gen_params p = greedy(30);
    const char *fin;
    char *s = run_one(e, tok, "", &p, &fin);
    CHECK(s && strstr(s, "Once upon a time, there was a little girl named Lily") &&
              !strcmp(fin, "length"),
          "greedy from BOS: '%s' (%s)", s ? s : "(null)", s ? fin : "");
    free(s);

    /* each of 8 prompts alone, then all 8 at once: same text */
    const char *prompts[8] = {"Once upon a time", "The cat sat on the mat and looked at the bird",
                              "Lily and Tom", "One day", "There was a big red ball in the park",
                              "The sun", "A little dog ran", "Mom said"};
    char *alone[8];
    p = greedy(20);
    for (int i = 0; i < 8; i++) alone[i] = run_one(e, tok, prompts[i], &p, &fin);
    w8_req *rs[8];
    for (int i = 0; i < 8; i++) {
        int *ids;
        int n = w8_tok_encode(tok, prompts[i], strlen(prompts[i]), 1, &ids);
        w8_submit_status st;
        rs[i] = w8_engine_submit(e, ids, n, &p, &st);
        free(ids);
    }
    int same = 0;
    for (int i = 0; i < 8; i++) {
        int ng;
        char *t = rs[i] ? collect(rs[i], &fin, &ng) : NULL;
        same += t && alone[i] && !strcmp(t, alone[i]) && ng == 20;
        free(t);
        if (rs[i]) w8_req_release(rs[i]);
        free(alone[i]);
    }
    CHECK(same == 8, "8 concurrent greedy requests equal their solo runs (%d/8)", same);

    /* stop strings: the text before it, finish "stop"; one spanning tokens too */
    char *stops[2] = {"zzz", "a little girl"};
    p = greedy(60);
    p.stop = stops;
    p.n_stop = 2;
    s = run_one(e, tok, "", &p, &fin);
    size_t sl = s ? strlen(s) : 0;
    CHECK(s && sl >= 10 && !strcmp(s + sl - 10, "there was ") && !strcmp(fin, "stop"),
          "stop string spanning tokens: '%s' (%s)", s ? s : "(null)", s ? fin : "");
    free(s);

    /* an empty stop string is ignored (it used to make the hold-back loop
     * start at (size_t)-1: about 2^64 steps under the engine's mutex) */
    char *empty_stops[2] = {"", "a little girl"};
    p = greedy(60);
    p.stop = empty_stops;
    p.n_stop = 2;
    s = run_one(e, tok, "", &p, &fin);
    sl = s ? strlen(s) : 0;
    CHECK(s && sl >= 10 && !strcmp(s + sl - 10, "there was ") && !strcmp(fin, "stop"),
          "an empty stop string is ignored, the other one applies: '%s' (%s)", s ? s : "(null)",
          s ? fin : "");
    free(s);
    char *only_empty[1] = {""};
    p = greedy(8);
    p.stop = only_empty;
    p.n_stop = 1;
    s = run_one(e, tok, "Once upon a time", &p, &fin);
    CHECK(s && strlen(s) > 0 && !strcmp(fin, "length"),
          "only an empty stop string: the text runs to max_tokens ('%s', %s)", s ? s : "(null)",
          s ? fin : "");
    free(s);

    /* a forward failure reaches the submitter with its message (the error
     * buffer is the scheduler thread's own) */
    {
        int bad_ids[2] = {1, m->cfg.vocab + 5};
        w8_submit_status bst;
        p = greedy(4);
        w8_req *br = w8_engine_submit(e, bad_ids, 2, &p, &bst);
        int bng = 0;
        char *bt = br ? collect(br, &fin, &bng) : NULL;
        const char *why = br ? w8_req_error(br) : NULL;
        CHECK(br && !strcmp(fin, "error") && why && strstr(why, "out of range"),
              "a failed forward pass: finish 'error' with the reason '%s'", why ? why : "(none)");
        free(bt);
        if (br) w8_req_release(br);
        p = greedy(5);
        s = run_one(e, tok, "Once upon a time", &p, &fin);
        CHECK(s && !strcmp(fin, "length"), "the engine serves the next request after the failure");
        free(s);
    }

    /* refusals: a prompt that fills the context, an empty one */
    int *big = w8_xcalloc(600, sizeof(int));
    for (int i = 0; i < 600; i++) big[i] = 300 + i % 100;
    w8_submit_status st;
    p = greedy(5);
    CHECK(!w8_engine_submit(e, big, 512, &p, &st) && st == W8_SUBMIT_TOO_LONG,
          "a 512-token prompt is refused with a 512 context");
    CHECK(!w8_engine_submit(e, big, 0, &p, &st) && st == W8_SUBMIT_TOO_LONG, "empty prompt refused");

    /* max_tokens beyond the context stops at the context */
    p = greedy(1000000);
    w8_req *r = w8_engine_submit(e, big, 500, &p, &st);
    int ng = 0;
    s = r ? collect(r, &fin, &ng) : NULL;
    CHECK(r && !strcmp(fin, "length") && ng == 12, "500-token prompt: %d tokens then length", ng);
    free(s);
    if (r) w8_req_release(r);

    /* cancelling running requests frees their blocks (BOS alone: a long story
     * follows, so nothing ends on its own within these few steps) */
    int bos[1] = {1};
    p = greedy(0);
    for (int i = 0; i < 8; i++) rs[i] = w8_engine_submit(e, bos, 1, &p, &st);
    char *t;
    size_t tn;
    int done;
    w8_req_wait(rs[0], 5.0, &t, &tn, &done);
    free(t);
    for (int i = 0; i < 8; i++)
        if (rs[i]) w8_req_release(rs[i]);
    CHECK(engine_idle(e), "released (cancelled) requests return every block");

    /* shutdown with requests running and queued: they end, handles stay valid */
    for (int i = 0; i < 8; i++) rs[i] = w8_engine_submit(e, bos, 1, &p, &st);
    w8_engine_stop(e);
    int ended = 0;
    for (int i = 0; i < 8; i++) {
        if (!rs[i]) continue;
        s = collect(rs[i], &fin, &ng);
        ended += !strcmp(fin, "abort");
        free(s);
        w8_req_release(rs[i]);
    }
    CHECK(ended == 8, "shutdown ends all 8 requests with 'abort' (%d)", ended);
    CHECK(!w8_engine_submit(e, big, 3, &p, &st) && st == W8_SUBMIT_STOPPED,
          "submit after stop is refused");
    w8_engine_free(e);

    /* a full queue refuses: one running, one waiting, the third refused */
    w8_engine_opts o2 = {1, 512, 16, 32, 1, 256, 0, 0};
    e = w8_engine_new(m, tok, &o2);
    p = greedy(0);
    w8_req *a = w8_engine_submit(e, bos, 1, &p, &st);
    w8_req_wait(a, 5.0, &t, &tn, &done); /* a is running now */
    free(t);
    w8_req *b = w8_engine_submit(e, bos, 1, &p, &st);
    w8_req *c = w8_engine_submit(e, bos, 1, &p, &st);
    CHECK(a && b && !c && st == W8_SUBMIT_FULL, "max_queue 1: the third request is refused");
    if (a) w8_req_release(a);
    if (b) w8_req_release(b);
    if (c) w8_req_release(c);
    CHECK(engine_idle(e), "queue-full engine drains");
    w8_engine_free(e);

    /* option sums and products that overflow an int are refused, not wrapped */
    w8_engine_opts o3 = {2147483000, 512, 16, 32, 1, 1000, 0, 0};
    e = w8_engine_new(m, tok, &o3);
    CHECK(!e && strstr(w8_lasterr(), "overflow"), "max_batch_size + prefill_chunk past INT_MAX: %s",
          w8_lasterr());
    w8_engine_free(e);
    w8_engine_opts o4 = {1, 512, 1 << 20, 1 << 12, 1, 16, 0, 0};
    e = w8_engine_new(m, tok, &o4);
    CHECK(!e && strstr(w8_lasterr(), "too large"), "a KV pool past INT_MAX tokens: %s",
          w8_lasterr());
    w8_engine_free(e);
    free(big);
    w8_tok_free(tok);
    w8_model_free(m);
    TEST_DONE();
}

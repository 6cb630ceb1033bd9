/*
 * test_sampler.c - greedy = argmax, top-k = 1 is greedy, seeded sampling is
 * deterministic, top-p keeps exactly the nucleus, temperature sharpens,
 * repetition penalty follows HF (logit > 0 ? l / p : l * p, once per id).
 */
#include <string.h>

#include "../src/sampler.h"
#include "../src/sched.h"
#include "test.h"

#define V 1000

static void fill(float *l, int n, uint64_t seed) {
    w8_rng r;
    w8_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) l[i] = w8_rng_normal(&r) * 3;
}

static void test_greedy(void) {
    float l[V], c[V];
    fill(l, V, 1);
    int am = w8_argmax(l, V);
    for (int i = 0; i < V; i++) EXPECT(l[i] <= l[am], "argmax is a maximum");
    w8_sampler s;
    w8_sampler_init(&s, V, 0.0f, 0, 1.0f, 1.0f, 7);
    memcpy(c, l, sizeof l);
    CHECK(w8_sample(&s, c, NULL, 0) == am, "temperature 0 picks the argmax (%d)", am);
    w8_sampler_free(&s);
    w8_sampler_init(&s, V, 0.8f, 1, 0.9f, 1.0f, 7);
    int same = 1;
    for (int k = 0; k < 20; k++) {
        memcpy(c, l, sizeof l);
        same &= w8_sample(&s, c, NULL, 0) == am;
    }
    CHECK(same, "top_k = 1 with temperature > 0 is greedy");
    w8_sampler_free(&s);
    float ties[5] = {1, 3, 3, 2, 3};
    CHECK(w8_argmax(ties, 5) == 1, "argmax takes the lowest index on ties");
}

static void test_deterministic(void) {
    float l[V], c[V];
    fill(l, V, 2);
    int a[50], b[50], differ = 0;
    for (int run = 0; run < 2; run++) {
        w8_sampler s;
        w8_sampler_init(&s, V, 1.0f, 40, 0.95f, 1.0f, 1234);
        for (int i = 0; i < 50; i++) {
            memcpy(c, l, sizeof l);
            (run ? b : a)[i] = w8_sample(&s, c, NULL, 0);
        }
        w8_sampler_free(&s);
    }
    for (int i = 0; i < 50; i++) differ += a[i] != b[i];
    CHECK(differ == 0, "same seed gives the same 50 samples");
    int distinct = 0;
    for (int i = 1; i < 50; i++) distinct += a[i] != a[0];
    CHECK(distinct > 0, "sampling at temperature 1 does not always pick one token");
}

/* Only the top_k largest logits are ever drawn. */
static void test_top_k(void) {
    float l[V], c[V];
    fill(l, V, 3);
    float sorted[V];
    memcpy(sorted, l, sizeof l);
    /* the 5th largest value as the threshold */
    for (int i = 0; i < 5; i++) {
        int b = i;
        for (int j = i + 1; j < V; j++)
            if (sorted[j] > sorted[b]) b = j;
        float t = sorted[i];
        sorted[i] = sorted[b];
        sorted[b] = t;
    }
    w8_sampler s;
    w8_sampler_init(&s, V, 5.0f, 5, 1.0f, 1.0f, 9); /* hot: would spread widely without top-k */
    int outside = 0, seen[V] = {0}, nseen = 0;
    for (int k = 0; k < 300; k++) {
        memcpy(c, l, sizeof l);
        int id = w8_sample(&s, c, NULL, 0);
        outside += l[id] < sorted[4];
        if (!seen[id]++) nseen++;
    }
    w8_sampler_free(&s);
    CHECK(outside == 0, "top_k = 5 draws only from the 5 largest logits");
    CHECK(nseen >= 3, "top_k = 5 at high temperature draws several of them (%d)", nseen);
}

/* probs 0.5, 0.3, 0.15, 0.05: top_p 0.7 keeps {0, 1}; 0.85 keeps {0, 1, 2}. */
static void test_top_p(void) {
    float p[4] = {0.5f, 0.3f, 0.15f, 0.05f};
    float l[4], c[4];
    for (int i = 0; i < 4; i++) l[i] = logf(p[i]);
    float tps[2] = {0.7f, 0.85f};
    int maxid[2] = {1, 2};
    for (int t = 0; t < 2; t++) {
        w8_sampler s;
        w8_sampler_init(&s, 4, 1.0f, 0, tps[t], 1.0f, 11);
        int hits[4] = {0};
        for (int k = 0; k < 2000; k++) {
            memcpy(c, l, sizeof l);
            hits[w8_sample(&s, c, NULL, 0)]++;
        }
        w8_sampler_free(&s);
        int bad = 0;
        for (int i = maxid[t] + 1; i < 4; i++) bad += hits[i];
        CHECK(bad == 0 && hits[maxid[t]] > 0 && hits[0] > hits[1],
              "top_p %.2f keeps exactly ids 0..%d (hits %d %d %d %d)", (double)tps[t], maxid[t],
              hits[0], hits[1], hits[2], hits[3]);
    }
    /* a tiny top_p keeps at least the most likely token */
    w8_sampler s;
    w8_sampler_init(&s, 4, 1.0f, 0, 0.01f, 1.0f, 12);
    int all0 = 1;
    for (int k = 0; k < 50; k++) {
        memcpy(c, l, sizeof l);
        all0 &= w8_sample(&s, c, NULL, 0) == 0;
    }
    w8_sampler_free(&s);
    CHECK(all0, "top_p 0.01 keeps only the top token");
    /* a large vocabulary with a flat tail: the cutoff must not drop nucleus members */
    static float big[152000], cb[152000];
    for (int i = 0; i < 152000; i++) big[i] = 0;
    big[77] = 12; /* ~0.54 of the mass */
    w8_sampler_init(&s, 152000, 1.0f, 0, 0.5f, 1.0f, 13);
    int all77 = 1;
    for (int k = 0; k < 5; k++) {
        memcpy(cb, big, sizeof big);
        all77 &= w8_sample(&s, cb, NULL, 0) == 77;
    }
    w8_sampler_free(&s);
    CHECK(all77, "152k vocab: top_p 0.5 below the top token's mass keeps only it");
}

static void test_temperature(void) {
    float l[3] = {2, 1, 0}, c[3];
    int cold = 0, hot = 0;
    w8_sampler a, b;
    w8_sampler_init(&a, 3, 0.1f, 0, 1.0f, 1.0f, 5);
    w8_sampler_init(&b, 3, 10.0f, 0, 1.0f, 1.0f, 5);
    for (int k = 0; k < 500; k++) {
        memcpy(c, l, sizeof l);
        cold += w8_sample(&a, c, NULL, 0) == 0;
        memcpy(c, l, sizeof l);
        hot += w8_sample(&b, c, NULL, 0) == 0;
    }
    w8_sampler_free(&a);
    w8_sampler_free(&b);
    CHECK(cold > 480 && hot < 300, "temperature 0.1 nearly greedy (%d/500), 10 flat (%d/500)",
          cold, hot);
}

static void test_penalty(void) {
    float l[4] = {2.0f, -1.0f, 1.5f, 0.5f};
    int hist[3] = {0, 1, 0}; /* id 0 twice: penalized once */
    w8_sampler s;
    w8_sampler_init(&s, 4, 0.0f, 0, 1.0f, 2.0f, 1);
    int id = w8_sample(&s, l, hist, 3);
    w8_sampler_free(&s);
    CHECK(l[0] == 1.0f, "positive logit divided by the penalty once (%g)", (double)l[0]);
    CHECK(l[1] == -2.0f, "negative logit multiplied by the penalty (%g)", (double)l[1]);
    CHECK(l[2] == 1.5f && l[3] == 0.5f, "unseen logits untouched");
    CHECK(id == 2, "greedy after the penalty picks the unseen best (%d)", id);
    float m[2] = {1, 0.9f};
    w8_sampler_init(&s, 2, 0.0f, 0, 1.0f, 1.0f, 1);
    CHECK(w8_sample(&s, m, hist, 1) == 0 && m[0] == 1, "penalty 1 is off");
    w8_sampler_free(&s);
}

/* w8_sampling_resolve: the rule run and serve share. */
static void test_resolve(void) {
    w8_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.do_sample = 0;
    cfg.temperature = 0.7f;
    cfg.top_k = 3;
    cfg.top_p = 0.5f;
    cfg.repetition_penalty = 1.3f;
    w8_sampling_req none = {0, 0, 0, 0, 0, 0, 0, 0};
    w8_gen_params p;
    w8_sampling_resolve(&cfg, &none, &p);
    CHECK(p.temperature == 0 && p.top_k == 0 && p.top_p == 1.0f && p.repetition_penalty == 1.3f,
          "resolve: do_sample false is greedy, the config's repetition_penalty applies");
    w8_sampling_req t = {1, 0.8f, 0, 0, 0, 0, 0, 0};
    w8_sampling_resolve(&cfg, &t, &p);
    CHECK(p.temperature == 0.8f && p.top_k == 0 && p.top_p == 1.0f,
          "resolve: a request temperature samples, without the config's top_k/top_p");
    cfg.do_sample = 1;
    w8_sampling_resolve(&cfg, &none, &p);
    CHECK(p.temperature == 0.7f && p.top_k == 3 && p.top_p == 0.5f,
          "resolve: do_sample true takes the config's temperature, top_k, top_p");
    w8_sampling_req all = {1, 0.0f, 1, 7, 1, 0.9f, 1, 1.0f};
    w8_sampling_resolve(&cfg, &all, &p);
    CHECK(p.temperature == 0 && p.top_k == 7 && p.top_p == 0.9f && p.repetition_penalty == 1.0f,
          "resolve: the request's values win");
    cfg.temperature = 0;
    cfg.repetition_penalty = 0;
    w8_sampling_resolve(&cfg, &none, &p);
    CHECK(p.temperature == 1.0f && p.repetition_penalty == 1.0f,
          "resolve: temperature 0 in a sampling config means 1; no penalty means 1");
}

int main(void) {
    test_resolve();
    test_greedy();
    test_deterministic();
    test_top_k();
    test_top_p();
    test_temperature();
    test_penalty();
    TEST_DONE();
}

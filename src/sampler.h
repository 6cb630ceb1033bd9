/*
 * sampler.h - next-token selection: greedy, temperature, top-k, top-p,
 * repetition penalty (off by default), deterministic from a seed.
 */
#ifndef W8_SAMPLER_H
#define W8_SAMPLER_H

#include <stdint.h>

#include "util.h"

typedef struct {
    float temperature;        /* 0: greedy */
    int top_k;                /* 0: off */
    float top_p;              /* 1: off */
    float repetition_penalty; /* 1: off */
    w8_rng rng;
    /* scratch (owned) */
    int vocab;
    float *probs;
    int *idx;
} w8_sampler;

void w8_sampler_init(w8_sampler *s, int vocab, float temperature, int top_k, float top_p,
                     float repetition_penalty, uint64_t seed);
void w8_sampler_free(w8_sampler *s);
/* Pick the next id from logits (modified in place); history = ids so far (for the penalty). */
int w8_sample(w8_sampler *s, float *logits, const int *history, int n_history);
/* Index of the largest logit (lowest index on ties). */
int w8_argmax(const float *x, int n);

#endif

/*
 * sampler.c - next-token selection with Hugging Face's semantics and order:
 * repetition penalty (a logits processor), then temperature, top-k, top-p
 * (logits warpers), then one draw from the seeded RNG.
 *
 * Vocabularies are large (152k for Qwen), so nothing sorts the whole vocab:
 * top-k uses quickselect (O(vocab)), and top-p sorts only the tokens whose
 * probability could be part of the nucleus (llama2.c's cutoff: every token
 * below (1 - top_p) / (n - 1) together holds less than 1 - top_p of the mass,
 * so the nucleus never reaches them).
 */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void w8_sampler_init(w8_sampler *s, int vocab, float temperature, int top_k, float top_p,
                     float repetition_penalty, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->temperature = temperature;
    s->top_k = top_k;
    s->top_p = top_p;
    s->repetition_penalty = repetition_penalty;
    w8_rng_seed(&s->rng, seed);
    s->vocab = vocab;
    s->probs = w8_xmalloc((size_t)(vocab > 0 ? vocab : 1) * sizeof(float));
    s->idx = w8_xmalloc((size_t)(vocab > 0 ? vocab : 1) * sizeof(int));
}

void w8_sampler_free(w8_sampler *s) {
    if (!s) return;
    free(s->probs);
    free(s->idx);
    s->probs = NULL;
    s->idx = NULL;
}

int w8_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* HF RepetitionPenaltyLogitsProcessor: each token seen so far, once, gets
 * logit > 0 ? logit / p : logit * p.  The new values are computed from the
 * original logits first (into probs[]) so a repeated id is penalized once. */
static void apply_penalty(w8_sampler *s, float *logits, const int *hist, int n_hist) {
    float p = s->repetition_penalty;
    for (int i = 0; i < n_hist; i++) {
        int t = hist[i];
        if (t < 0 || t >= s->vocab) continue;
        float l = logits[t];
        s->probs[t] = l > 0 ? l / p : l * p;
    }
    for (int i = 0; i < n_hist; i++) {
        int t = hist[i];
        if (t >= 0 && t < s->vocab) logits[t] = s->probs[t];
    }
}

/* Move the k largest logits' ids to idx[0..k) (any order): quickselect. */
static void select_top_k(const float *logits, int *idx, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        /* median of three as the pivot keeps sorted inputs linear */
        int mid = lo + (hi - lo) / 2;
        float a = logits[idx[lo]], b = logits[idx[mid]], c = logits[idx[hi]];
        float pivot = (a > b) ? ((b > c) ? b : (a > c ? c : a)) : ((a > c) ? a : (b > c ? c : b));
        int i = lo, j = hi;
        while (i <= j) { /* descending partition */
            while (logits[idx[i]] > pivot) i++;
            while (logits[idx[j]] < pivot) j--;
            if (i <= j) {
                int t = idx[i];
                idx[i] = idx[j];
                idx[j] = t;
                i++;
                j--;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

static int cmp_prob_desc(const void *a, const void *b, void *ud) {
    const float *p = ud;
    float x = p[*(const int *)a], y = p[*(const int *)b];
    if (x > y) return -1;
    if (x < y) return 1;
    return *(const int *)a - *(const int *)b;
}

/* Draw from the candidates idx[0..nc) whose probs (by token id) sum to total. */
static int draw(w8_sampler *s, int nc, float total) {
    float r = w8_rng_f32(&s->rng) * total, cum = 0;
    for (int i = 0; i < nc; i++) {
        cum += s->probs[s->idx[i]];
        if (r < cum) return s->idx[i];
    }
    return s->idx[nc - 1]; /* rounding: r landed past the last partial sum */
}

int w8_sample(w8_sampler *s, float *logits, const int *history, int n_history) {
    int n = s->vocab;
    if (s->repetition_penalty > 0 && s->repetition_penalty != 1.0f && history)
        apply_penalty(s, logits, history, n_history);
    if (!(s->temperature > 0) || s->top_k == 1) return w8_argmax(logits, n);

    /* candidates: top-k ids or the whole vocabulary */
    int nc = n;
    for (int i = 0; i < n; i++) s->idx[i] = i;
    if (s->top_k > 0 && s->top_k < n) {
        select_top_k(logits, s->idx, n, s->top_k);
        nc = s->top_k;
    }

    /* softmax(logits / T) over the candidates, in f32 with max subtraction */
    float mx = logits[s->idx[0]];
    for (int i = 1; i < nc; i++)
        if (logits[s->idx[i]] > mx) mx = logits[s->idx[i]];
    float inv_t = 1.0f / s->temperature, sum = 0;
    for (int i = 0; i < nc; i++) {
        int t = s->idx[i];
        s->probs[t] = expf((logits[t] - mx) * inv_t);
        sum += s->probs[t];
    }
    for (int i = 0; i < nc; i++) s->probs[s->idx[i]] /= sum;

    if (!(s->top_p > 0 && s->top_p < 1) || nc == 1) return draw(s, nc, 1.0f);

    /* top-p: keep only tokens that can be in the nucleus, sort those */
    float cutoff = (1.0f - s->top_p) / (float)(nc - 1);
    int m = 0;
    for (int i = 0; i < nc; i++)
        if (s->probs[s->idx[i]] >= cutoff) s->idx[m++] = s->idx[i];
    if (m == 0) { /* cannot happen for a normalized distribution; be safe */
        s->idx[0] = w8_argmax(logits, n);
        s->probs[s->idx[0]] = 1;
        return s->idx[0];
    }
    qsort_r(s->idx, (size_t)m, sizeof(int), cmp_prob_desc, s->probs);
    float cum = 0;
    int keep = m;
    for (int i = 0; i < m; i++) {
        cum += s->probs[s->idx[i]];
        if (cum >= s->top_p) {
            keep = i + 1; /* the token that crosses top_p stays (at least one kept) */
            break;
        }
    }
    if (keep < m) {
        cum = 0;
        for (int i = 0; i < keep; i++) cum += s->probs[s->idx[i]];
    }
    return draw(s, keep, cum);
}

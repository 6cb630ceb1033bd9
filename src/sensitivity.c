/*
 * sensitivity.c - per-layer quantization sensitivity (see sensitivity.h).
 *
 * The float model is loaded once.  Each measured layer's int8 twin is built
 * up front with the quantizer's own arithmetic (w8_quant_linear) and packed
 * for the int8 kernels (an int8 copy of the measured layers stays in memory,
 * about half the size of an fp16 model).  Then, per sample: the float
 * logits once, and for every layer the logits with only that layer swapped
 * for its twin (the w8_linear structs are exchanged in place: a float
 * directory's groups are never fused, so every part is its own layer).
 */
#include "sensitivity.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forward.h"
#include "json.h"
#include "kv_cache.h"
#include "model.h"
#include "quantize.h"
#include "tokenizer.h"
#include "util.h"

#define SENS_BLOCK 16

/* The model's w8_linear for a layer of the list. */
static w8_linear *slot(w8_model *m, const w8_sens_layer *l) {
    w8_layer *L = &m->layers[l->layer];
    switch (l->kind) {
    case W8_SENS_Q:
    case W8_SENS_K:
    case W8_SENS_V: return &L->qkv.parts[l->kind - W8_SENS_Q];
    case W8_SENS_O: return &L->o;
    case W8_SENS_GATE:
    case W8_SENS_UP: return &L->gate_up.parts[l->kind - W8_SENS_GATE];
    default: return &L->down;
    }
}

/* The int8 layer the quantizer would write for l (bias folded into quant_bias). */
static int build_twin(const w8_model *m, const w8_sens_layer *l, const w8_linear *f,
                      w8_linear *q) {
    char name[192];
    snprintf(name, sizeof name, "%s.weight", l->name);
    const w8_tensor *wt = w8_st_find(m->st, name);
    if (!wt || wt->numel != (size_t)f->n * (size_t)f->k)
        return w8_seterr("sensitivity: %s: no float weight of %d x %d", name, f->n, f->k);
    snprintf(name, sizeof name, "%s.bias", l->name);
    const w8_tensor *bt = w8_st_find(m->st, name);
    float *w = w8_xmalloc(wt->numel * sizeof(float)), *b = NULL;
    w8_tensor_to_f32(wt, w);
    if (bt && bt->numel == (size_t)f->n) {
        b = w8_xmalloc((size_t)f->n * sizeof(float));
        w8_tensor_to_f32(bt, b);
    }
    int8_t *wq = w8_xmalloc((size_t)f->n * (size_t)f->k);
    int32_t *qb = w8_xmalloc((size_t)f->n * sizeof(int32_t));
    float *deq = w8_xmalloc((size_t)f->n * sizeof(float));
    int rc = w8_quant_linear(w, b, f->n, f->k, l->in_scale, l->in_offset, wq, qb, deq);
    if (rc == 0) {
        memset(q, 0, sizeof *q);
        q->n = f->n;
        q->k = f->k;
        q->quantized = 1;
        q->in_scale = l->in_scale;
        q->in_offset = l->in_offset;
        w8_qmat_pack(&q->q, wq, f->n, f->k, qb, deq);
    } else {
        w8_preferr("sensitivity: %s", l->name);
    }
    free(w);
    free(b);
    free(wq);
    free(qb);
    free(deq);
    return rc;
}

/* Log-softmax of each of the rows of logits, in place (as f32 of a double
 * computation). */
static void log_softmax_rows(float *x, int rows, int vocab) {
#pragma omp parallel for schedule(static) num_threads(w8_get_threads())
    for (int r = 0; r < rows; r++) {
        float *l = x + (size_t)r * vocab;
        double mx = l[0], s = 0;
        for (int i = 1; i < vocab; i++) mx = l[i] > mx ? l[i] : mx;
        for (int i = 0; i < vocab; i++) s += exp((double)l[i] - mx);
        double lse = mx + log(s);
        for (int i = 0; i < vocab; i++) l[i] = (float)((double)l[i] - lse);
    }
}

/* Sum over rows of KL(ref || q), ref as log-probabilities, q as logits. */
static double kl_rows(const float *ref_lp, const float *q, int rows, int vocab) {
    double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total) num_threads(w8_get_threads())
    for (int r = 0; r < rows; r++) {
        const float *a = ref_lp + (size_t)r * vocab, *l = q + (size_t)r * vocab;
        double mx = l[0], s = 0, kl = 0;
        for (int i = 1; i < vocab; i++) mx = l[i] > mx ? l[i] : mx;
        for (int i = 0; i < vocab; i++) s += exp((double)l[i] - mx);
        double lse = mx + log(s);
        for (int i = 0; i < vocab; i++) {
            double p = exp((double)a[i]);
            kl += p * ((double)a[i] - ((double)l[i] - lse));
        }
        total += kl > 0 ? kl : 0;
    }
    return total;
}

typedef struct {
    w8_model *m;
    w8_ctx *ctx;
    w8_kv *kv;
    int *pos;
    w8_seq **seqs;
    char *want;
} runner;

static int run_rows(runner *r, const int *ids, int n, float *logits) {
    w8_seq sq;
    w8_seq_init(&sq);
    if (w8_kv_seq_reserve(r->kv, &sq, n) != 0) return w8_seterr("sensitivity: KV cache full");
    for (int j = 0; j < n; j++) {
        r->pos[j] = j;
        r->seqs[j] = &sq;
        r->want[j] = 1;
    }
    w8_batch b = {n, ids, r->pos, r->seqs, r->want};
    int got = w8_forward(r->ctx, r->m, r->kv, &b, logits);
    w8_kv_seq_release(r->kv, &sq);
    free(sq.blocks);
    if (got != n) return got < 0 ? -1 : w8_seterr("sensitivity: forward returned %d rows", got);
    return 0;
}

void w8_sens_rank(const w8_sens_layer *l, int n, int *order) {
    for (int i = 0; i < n; i++) order[i] = i;
    /* insertion sort: stable, n is a few hundred */
    for (int i = 1; i < n; i++) {
        int v = order[i], j = i;
        while (j > 0 && l[order[j - 1]].kl < l[v].kl) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
}

int w8_sens_measure(const char *model_path, char *const *texts, int n_texts, int seq_len,
                    w8_sens_layer *l, int n, int n_disable, w8_sens_stats *st, int progress) {
    memset(st, 0, sizeof *st);
    st->n_disable = n_disable;
    if (seq_len < 2) return w8_seterr("sensitivity: samples need at least 2 tokens");
    int ns = n_texts < W8_SENS_MAX_SAMPLES ? n_texts : W8_SENS_MAX_SAMPLES;
    w8_model *m = w8_model_load(model_path);
    w8_tok *tok = m ? w8_tok_load(model_path) : NULL;
    runner r = {m, NULL, NULL, NULL, NULL, NULL};
    w8_linear *orig = w8_xcalloc((size_t)(n ? n : 1), sizeof *orig);
    w8_linear *twin = w8_xcalloc((size_t)(n ? n : 1), sizeof *twin);
    int *order = w8_xmalloc((size_t)(n ? n : 1) * sizeof(int));
    char *off = w8_xcalloc((size_t)(n ? n : 1), 1); /* 1: left float in the last pass */
    float *ref = NULL, *lg = NULL;
    int built = 0, rc = -1;
    double *sum = w8_xcalloc((size_t)(n ? n : 1), sizeof(double));
    if (!tok) goto out;
    if (m->quantized) {
        w8_seterr("sensitivity: %s is already quantized", model_path);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        if (l[i].layer < 0 || l[i].layer >= m->cfg.n_layers || l[i].kind < W8_SENS_Q ||
            l[i].kind > W8_SENS_DOWN) {
            w8_seterr("sensitivity: %s is not a decoder linear layer", l[i].name);
            goto out;
        }
        w8_linear *s = slot(m, &l[i]);
        if (s->quantized) {
            w8_seterr("sensitivity: %s is not a float layer", l[i].name);
            goto out;
        }
        if (build_twin(m, &l[i], s, &twin[i]) != 0) goto out;
        orig[i] = *s;
        built = i + 1;
    }
    const int V = m->cfg.vocab, T = seq_len < m->cfg.max_pos ? seq_len : m->cfg.max_pos;
    if (!(r.ctx = w8_ctx_new(m, T))) goto out;
    if (!(r.kv = w8_kv_new(&m->cfg, SENS_BLOCK, (T + SENS_BLOCK - 1) / SENS_BLOCK))) goto out;
    r.pos = w8_xmalloc((size_t)T * sizeof(int));
    r.seqs = w8_xmalloc((size_t)T * sizeof(w8_seq *));
    r.want = w8_xmalloc((size_t)T);
    ref = w8_xmalloc((size_t)T * (size_t)V * sizeof(float));
    lg = w8_xmalloc((size_t)T * (size_t)V * sizeof(float));
    w8_progress pb;
    w8_progress_begin(&pb, "sensitivity", (long)ns * (n + 2));
    pb.quiet |= !progress;
    double s_all = 0, s_kept = 0;
    for (int si = 0; si < ns; si++) {
        int *ids = NULL;
        int nt = w8_tok_encode(tok, texts[si], strlen(texts[si]), 1, &ids);
        if (nt < 0) {
            w8_preferr("sensitivity: sample %d", si + 1);
            goto out;
        }
        if (nt > T) nt = T;
        int bad = 0;
        for (int j = 0; j < nt; j++) bad |= ids[j] < 0 || ids[j] >= V;
        if (bad) {
            free(ids);
            w8_seterr("sensitivity: sample %d has a token outside the vocabulary", si + 1);
            goto out;
        }
        if (nt < 1) {
            free(ids);
            continue;
        }
        if (run_rows(&r, ids, nt, ref) != 0) {
            free(ids);
            goto out;
        }
        log_softmax_rows(ref, nt, V);
        for (int i = 0; i < n; i++) {
            w8_linear *s = slot(m, &l[i]);
            *s = twin[i];
            int er = run_rows(&r, ids, nt, lg);
            *s = orig[i];
            if (er != 0) {
                free(ids);
                goto out;
            }
            sum[i] += kl_rows(ref, lg, nt, V);
            w8_progress_update(&pb, (long)si * (n + 2) + i + 1, NULL);
        }
        /* every measured layer int8 at once (kl_all) */
        for (int i = 0; i < n; i++) *slot(m, &l[i]) = twin[i];
        int er = run_rows(&r, ids, nt, lg);
        for (int i = 0; i < n; i++) *slot(m, &l[i]) = orig[i];
        if (er != 0) {
            free(ids);
            goto out;
        }
        s_all += kl_rows(ref, lg, nt, V);
        free(ids);
        st->n_tokens += nt;
        st->n_samples++;
        w8_progress_update(&pb, (long)si * (n + 2) + n + 2, NULL);
    }
    if (st->n_tokens == 0) {
        w8_seterr("sensitivity: no calibration sample produced a token");
        goto out;
    }
    for (int i = 0; i < n; i++) l[i].kl = sum[i] / (double)st->n_tokens;
    st->kl_all = s_all / (double)st->n_tokens;
    /* the model with the final ranking's n_disable worst layers left float */
    w8_sens_rank(l, n, order);
    for (int i = 0; i < n_disable && i < n; i++) off[order[i]] = 1;
    for (int si = 0; si < ns; si++) {
        int *ids = NULL;
        int nt = w8_tok_encode(tok, texts[si], strlen(texts[si]), 1, &ids);
        if (nt > T) nt = T;
        if (nt < 1) {
            free(ids);
            continue;
        }
        int er = run_rows(&r, ids, nt, ref);
        if (er == 0) {
            log_softmax_rows(ref, nt, V);
            for (int i = 0; i < n; i++)
                if (!off[i]) *slot(m, &l[i]) = twin[i];
            er = run_rows(&r, ids, nt, lg);
            for (int i = 0; i < n; i++) *slot(m, &l[i]) = orig[i];
        }
        free(ids);
        if (er != 0) goto out;
        s_kept += kl_rows(ref, lg, nt, V);
    }
    st->kl_kept = s_kept / (double)st->n_tokens;
    w8_progress_end(&pb);
    rc = 0;
out:
    if (m)
        for (int i = 0; i < built; i++) {
            *slot(m, &l[i]) = orig[i];
            w8_qmat_free(&twin[i].q);
        }
    free(orig);
    free(twin);
    free(order);
    free(off);
    free(sum);
    free(ref);
    free(lg);
    free(r.pos);
    free(r.seqs);
    free(r.want);
    w8_kv_free(r.kv);
    w8_ctx_free(r.ctx);
    w8_tok_free(tok);
    w8_model_free(m);
    return rc;
}

int w8_sens_parse_level(const char *s, int *n) {
    const char *p = s && (*s == 'L' || *s == 'l') ? s + 1 : s;
    char *end = NULL;
    errno = 0;
    long v = p && *p ? strtol(p, &end, 10) : -1;
    if (!p || !*p || errno || *end || v < 0 || v > 1 << 20)
        return w8_seterr("--disable_level: expected L<N> or <N> with N >= 0 (e.g. L2), got '%s'",
                         s ? s : "");
    *n = (int)v;
    return 0;
}

int w8_sens_write_report(const char *path, const w8_sens_layer *l, int n, const int *order,
                         const w8_sens_stats *st) {
    json_t *root = json_object(), *arr = json_array();
    for (int r = 0; r < n; r++) {
        const w8_sens_layer *x = &l[order[r]];
        json_array_append_new(arr, json_pack("{s:i, s:s, s:f, s:b}", "rank", r + 1, "name",
                                             x->name, "kl", x->kl, "kept_float",
                                             r < st->n_disable));
    }
    json_object_set_new(root, "measure", json_string("kl_final_logits"));
    json_object_set_new(root, "samples", json_integer(st->n_samples));
    json_object_set_new(root, "tokens", json_integer(st->n_tokens));
    json_object_set_new(root, "disable_level", json_integer(st->n_disable));
    json_object_set_new(root, "kl_all_int8", json_real(st->kl_all));
    json_object_set_new(root, "kl_after_disable", json_real(st->kl_kept));
    json_object_set_new(root, "layers", arr);
    char *text = w8_json_dumps(root, 0);
    json_decref(root);
    if (!text) return w8_seterr("%s: could not serialize the report", path);
    char *tmp = w8_xmalloc(strlen(path) + 32);
    sprintf(tmp, "%s.tmp-%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int rc = -1;
    if (!f) {
        w8_seterr("%s: cannot write: %s", tmp, strerror(errno));
    } else {
        int ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
        ok &= fclose(f) == 0;
        if (!ok) w8_seterr("%s: write failed", tmp);
        else if (rename(tmp, path) != 0) w8_seterr("%s: cannot rename into place: %s", path,
                                                   strerror(errno));
        else rc = 0;
        if (rc) unlink(tmp);
    }
    free(tmp);
    free(text);
    return rc;
}

void w8_sens_print(FILE *f, const w8_sens_layer *l, int n, const int *order,
                   const w8_sens_stats *st) {
    if (!f) return;
    fprintf(f, "sensitivity: KL(float || one layer int8) of the final logits, %d samples / %ld "
               "tokens\n", st->n_samples, st->n_tokens);
    int show = st->n_disable > 10 ? st->n_disable : 10;
    for (int r = 0; r < n && r < show; r++)
        fprintf(f, "  %3d. %-44s %.6f%s\n", r + 1, l[order[r]].name, l[order[r]].kl,
                r < st->n_disable ? "  -> kept float (--disable_level)" : "");
    if (n > show) fprintf(f, "  ... %d more layers\n", n - show);
    fprintf(f, "sensitivity: KL with every measured layer int8 %.6f, with the %d worst float "
               "%.6f\n", st->kl_all, st->n_disable, st->kl_kept);
}

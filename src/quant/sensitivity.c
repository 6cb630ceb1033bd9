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

#include "../batch.h"
#include "../forward.h"
#include "../json.h"
#include "../kv_cache.h"
#include "../model.h"
#include "arith.h"
#include "../tokenizer/tokenizer.h"
#include "../util.h"

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
    w8_batch_buf bb; /* [T] rows */
} runner;

static int run_rows(runner *r, const int *ids, int n, float *logits) {
    w8_seq sq;
    w8_seq_init(&sq);
    if (w8_kv_seq_reserve(r->kv, &sq, n) != 0) return w8_seterr("sensitivity: KV cache full");
    w8_batch_clear(&r->bb);
    for (int j = 0; j < n; j++) w8_batch_add(&r->bb, ids[j], j, &sq, 1);
    int got = r->bb.b.n == n ? w8_forward(r->ctx, r->m, r->kv, &r->bb.b, logits)
                             : w8_seterr("sensitivity: %d rows, room for %d", n, r->bb.cap);
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

/* A unit swapped in and out of the float model: a w8_linear, or (compare)
 * a whole w8_linear_group of an existing W8A8 model. */
typedef union {
    w8_linear l;
    w8_linear_group g;
} unit_bytes;

typedef struct {
    void *slot;       /* in the float model */
    const void *twin; /* its int8 replacement */
    size_t size;      /* sizeof(w8_linear) or sizeof(w8_linear_group) */
    unit_bytes saved; /* the float model's own while swapped */
} unit;

static void unit_on(unit *u) {
    memcpy(&u->saved, u->slot, u->size);
    memcpy(u->slot, u->twin, u->size);
}
static void unit_off(unit *u) { memcpy(u->slot, &u->saved, u->size); }

/* Measure units u[0..n) of the float model m (see w8_sens_measure). */
static int measure_units(w8_model *m, const w8_tok *tok, unit *u, int n, char *const *texts,
                         int n_texts, int seq_len, w8_sens_layer *l, int n_disable,
                         w8_sens_stats *st, int progress) {
    memset(st, 0, sizeof *st);
    st->n_disable = n_disable;
    if (seq_len < 2) return w8_seterr("sensitivity: samples need at least 2 tokens");
    const int ns = n_texts < W8_SENS_MAX_SAMPLES ? n_texts : W8_SENS_MAX_SAMPLES;
    const int V = m->cfg.vocab, T = seq_len < m->cfg.max_pos ? seq_len : m->cfg.max_pos;
    runner r = {.m = m};
    int *order = w8_xmalloc((size_t)(n ? n : 1) * sizeof(int));
    double *sum = w8_xcalloc((size_t)(n ? n : 1), sizeof(double));
    float *ref = NULL, *lg = NULL;
    int rc = -1;
    if (!(r.ctx = w8_ctx_new(m, T))) goto out;
    if (!(r.kv = w8_kv_new(&m->cfg, SENS_BLOCK, (T + SENS_BLOCK - 1) / SENS_BLOCK))) goto out;
    w8_batch_buf_init(&r.bb, T);
    ref = w8_xmalloc((size_t)T * (size_t)V * sizeof(float));
    lg = w8_xmalloc((size_t)T * (size_t)V * sizeof(float));
    w8_progress pb;
    w8_progress_begin(&pb, "sensitivity", (long)ns * (n + 1 + (n_disable > 0)));
    long done = 0;
    pb.quiet |= !progress;
    /* pass 0: every unit alone, and all at once (kl_all); pass 1: all but
     * the n_disable worst of the final ranking (kl_kept) */
    double s_all = 0, s_kept = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            if (st->n_tokens == 0) {
                w8_seterr("sensitivity: no calibration sample produced a token");
                goto out;
            }
            for (int i = 0; i < n; i++) l[i].kl = sum[i] / (double)st->n_tokens;
            w8_sens_rank(l, n, order);
            if (n_disable <= 0) {
                s_kept = s_all;
                break;
            }
        }
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
            if (bad) w8_seterr("sensitivity: sample %d has a token outside the vocabulary", si + 1);
            int er = bad ? -1 : nt < 1 ? 0 : run_rows(&r, ids, nt, ref);
            if (er == 0 && nt >= 1) {
                log_softmax_rows(ref, nt, V);
                for (int i = 0; pass == 0 && i < n && er == 0; i++) {
                    unit_on(&u[i]);
                    er = run_rows(&r, ids, nt, lg);
                    unit_off(&u[i]);
                    if (er == 0) sum[i] += kl_rows(ref, lg, nt, V);
                    w8_progress_update(&pb, ++done, NULL);
                }
                /* several units at once: swapped in order, restored in reverse */
                int on = 0;
                for (int i = 0; i < n && er == 0; i++)
                    if (pass == 0 || !(i < n_disable)) {
                        unit_on(&u[pass == 0 ? i : order[i]]);
                        on = i + 1;
                    }
                if (er == 0) er = run_rows(&r, ids, nt, lg);
                for (int i = on - 1; i >= 0; i--)
                    if (pass == 0 || !(i < n_disable)) unit_off(&u[pass == 0 ? i : order[i]]);
                if (er == 0) {
                    double kl = kl_rows(ref, lg, nt, V);
                    if (pass == 0) {
                        s_all += kl;
                        st->n_tokens += nt;
                        st->n_samples++;
                    } else {
                        s_kept += kl;
                    }
                }
            }
            free(ids);
            if (er != 0) goto out;
            w8_progress_update(&pb, ++done, NULL);
        }
    }
    st->kl_all = s_all / (double)st->n_tokens;
    st->kl_kept = s_kept / (double)st->n_tokens;
    w8_progress_end(&pb);
    rc = 0;
out:
    free(order);
    free(sum);
    free(ref);
    free(lg);
    w8_batch_buf_free(&r.bb);
    w8_kv_free(r.kv);
    w8_ctx_free(r.ctx);
    return rc;
}

int w8_sens_measure(const char *model_path, char *const *texts, int n_texts, int seq_len,
                    w8_sens_layer *l, int n, int n_disable, w8_sens_stats *st, int progress) {
    memset(st, 0, sizeof *st);
    w8_model *m = w8_model_load(model_path);
    w8_tok *tok = m ? w8_tok_load(model_path) : NULL;
    w8_linear *twin = w8_xcalloc((size_t)(n ? n : 1), sizeof *twin);
    unit *u = w8_xcalloc((size_t)(n ? n : 1), sizeof *u);
    int built = 0, rc = -1;
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
        built = i + 1;
        u[i] = (unit){.slot = s, .twin = &twin[i], .size = sizeof(w8_linear)};
    }
    rc = measure_units(m, tok, u, n, texts, n_texts, seq_len, l, n_disable, st, progress);
out:
    for (int i = 0; i < built; i++) w8_qmat_free(&twin[i].q);
    free(twin);
    free(u);
    w8_tok_free(tok);
    w8_model_free(m);
    return rc;
}

/* 1 when the two models' norm weights are the same (no smoothing folded in). */
static int same_norms(const w8_model *a, const w8_model *b) {
    const int H = a->cfg.hidden;
    for (int i = 0; i < a->cfg.n_layers; i++) {
        const w8_layer *x = &a->layers[i], *y = &b->layers[i];
        if (y->attn_norm_b || y->ffn_norm_b || memcmp(x->attn_norm, y->attn_norm, H * sizeof(float)) ||
            memcmp(x->ffn_norm, y->ffn_norm, H * sizeof(float)))
            return 0;
    }
    return 1;
}

int w8_sens_measure_pair(const char *float_dir, const char *quant_dir, char *const *texts,
                         int n_texts, int seq_len, w8_sens_layer **out, int *n_out,
                         w8_sens_stats *st, int progress) {
    *out = NULL;
    *n_out = 0;
    memset(st, 0, sizeof *st);
    w8_model *f = w8_model_load(float_dir), *q = f ? w8_model_load(quant_dir) : NULL;
    w8_tok *tok = q ? w8_tok_load(float_dir) : NULL;
    int rc = -1, n = 0;
    unit *u = NULL;
    w8_sens_layer *l = NULL;
    if (!tok) goto out;
    if (f->quantized || !q->quantized) {
        w8_seterr("sensitivity: needs a float model and a W8A8 model (got %s and %s)",
                  f->quantized ? "W8A8" : "float", q->quantized ? "W8A8" : "float");
        goto out;
    }
    if (f->cfg.n_layers != q->cfg.n_layers || f->cfg.hidden != q->cfg.hidden ||
        f->cfg.vocab != q->cfg.vocab || f->cfg.intermediate != q->cfg.intermediate) {
        w8_seterr("sensitivity: %s and %s do not have the same shape", float_dir, quant_dir);
        goto out;
    }
    if (!same_norms(f, q)) {
        w8_seterr("sensitivity: %s has smoothed (anti-outlier) norms; its layers cannot be "
                  "swapped one at a time into %s (rank before smoothing with quant "
                  "--sensitivity_report)",
                  quant_dir, float_dir);
        goto out;
    }
    const int L = f->cfg.n_layers;
    u = w8_xcalloc((size_t)L * 7, sizeof *u);
    l = w8_xcalloc((size_t)L * 7, sizeof *l);
    static const char *const gname[2] = {"self_attn.q_proj+k_proj+v_proj",
                                         "mlp.gate_proj+up_proj"};
    static const char *const pname[7] = {"self_attn.q_proj", "self_attn.k_proj",
                                         "self_attn.v_proj", "self_attn.o_proj",
                                         "mlp.gate_proj",    "mlp.up_proj",
                                         "mlp.down_proj"};
    for (int i = 0; i < L; i++) {
        w8_layer *fl = &f->layers[i], *ql = &q->layers[i];
        /* int8 units in forward order: a fused group swaps as one */
        w8_linear_group *fg[2] = {&fl->qkv, &fl->gate_up}, *qg[2] = {&ql->qkv, &ql->gate_up};
        for (int gi = 0; gi < 2; gi++) {
            if (qg[gi]->fused) {
                snprintf(l[n].name, sizeof l[n].name, "model.layers.%d.%s", i, gname[gi]);
                l[n].layer = i;
                l[n].kind = gi ? W8_SENS_GATE : W8_SENS_Q;
                u[n++] = (unit){.slot = fg[gi], .twin = qg[gi], .size = sizeof(w8_linear_group)};
            } else {
                for (int p = 0; p < qg[gi]->n_parts; p++)
                    if (qg[gi]->parts[p].quantized) {
                        int kind = (gi ? W8_SENS_GATE : W8_SENS_Q) + p;
                        snprintf(l[n].name, sizeof l[n].name, "model.layers.%d.%s", i,
                                 pname[kind]);
                        l[n].layer = i;
                        l[n].kind = kind;
                        u[n++] = (unit){.slot = &fg[gi]->parts[p], .twin = &qg[gi]->parts[p],
                                        .size = sizeof(w8_linear)};
                    }
            }
            w8_linear *fs = gi ? &fl->down : &fl->o, *qs = gi ? &ql->down : &ql->o;
            if (qs->quantized) {
                int kind = gi ? W8_SENS_DOWN : W8_SENS_O;
                snprintf(l[n].name, sizeof l[n].name, "model.layers.%d.%s", i, pname[kind]);
                l[n].layer = i;
                l[n].kind = kind;
                l[n].in_scale = qs->in_scale;
                l[n].in_offset = qs->in_offset;
                u[n++] = (unit){.slot = fs, .twin = qs, .size = sizeof(w8_linear)};
            }
        }
    }
    rc = measure_units(f, tok, u, n, texts, n_texts, seq_len, l, 0, st, progress);
out:
    free(u);
    if (rc == 0) {
        *out = l;
        *n_out = n;
    } else {
        free(l);
    }
    w8_tok_free(tok);
    w8_model_free(q);
    w8_model_free(f);
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
        fprintf(f, "  %3d. %-44s %.6g%s\n", r + 1, l[order[r]].name, l[order[r]].kl,
                r < st->n_disable ? "  -> kept float (--disable_level)" : "");
    if (n > show) fprintf(f, "  ... %d more layers\n", n - show);
    if (st->n_disable > 0)
        fprintf(f, "sensitivity: KL with every measured layer int8 %.6g, with the %d worst float "
                   "%.6g\n", st->kl_all, st->n_disable, st->kl_kept);
    else
        fprintf(f, "sensitivity: KL with every measured layer int8 %.6g\n", st->kl_all);
}

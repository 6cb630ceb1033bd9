/*
 * writer.c - the quantizer's output directory (writer.h): the output tensor
 * list (a quantized layer's .weight replaced by its FORMAT.md tensors), the
 * shards streamed one quantized layer at a time, quant_model_description.json,
 * the index, config.json (a text edit of the source's) and the side files.
 */
#include "writer.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../json.h"
#include "../util.h"

/* ----------------------------------------------------------------- write */

enum { O_COPY, O_W8, O_ISCALE, O_IOFF, O_QBIAS, O_DEQ, O_NORM_SMOOTH, O_LIN_SMOOTH, O_WSCALE,
       O_WOFF, O_BIAS32 };

typedef struct {
    char *name;
    w8_dtype dt;
    int ndim;
    int64_t shape[W8_ST_MAX_DIMS];
    size_t nbytes;
    int what;              /* O_* */
    const w8_tensor *src;  /* source tensor (copies, weights, norms) */
    int lin, grp;          /* linear layer / group it belongs to, -1 */
    int quant;             /* description: 1 "W8A8", 2 "W8A8_DYNAMIC", 0 "FLOAT" */
    int shard;
} otensor;

typedef struct {
    otensor *t;
    int n, cap;
    int n_shards;
} olist;

static otensor *oadd(olist *ol, const char *base, const char *suffix, w8_dtype dt, int ndim,
                     const int64_t *shape, int what, const w8_tensor *src, int lin, int grp,
                     int quant) {
    if (ol->n == ol->cap) {
        ol->cap = ol->cap ? ol->cap * 2 : 256;
        ol->t = w8_xrealloc(ol->t, (size_t)ol->cap * sizeof(otensor));
    }
    otensor *t = &ol->t[ol->n++];
    memset(t, 0, sizeof *t);
    size_t a = strlen(base), b = strlen(suffix);
    t->name = w8_xmalloc(a + b + 1);
    memcpy(t->name, base, a);
    memcpy(t->name + a, suffix, b + 1);
    t->dt = dt;
    t->ndim = ndim;
    size_t nb = w8_dtype_size(dt);
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        nb *= (size_t)shape[i];
    }
    t->nbytes = nb;
    t->what = what;
    t->src = src;
    t->lin = lin;
    t->grp = grp;
    t->quant = quant;
    return t;
}

static void olist_free(olist *ol) {
    for (int i = 0; i < ol->n; i++) free(ol->t[i].name);
    free(ol->t);
}

/* The output list: source order, a quantized layer's .weight replaced by its
 * five tensors (kept adjacent so one layer at a time is in memory). */
static void build_outputs(qstate *s, olist *ol) {
    size_t nt = w8_st_count(s->st);
    for (size_t i = 0; i < nt; i++) {
        const w8_tensor *t = w8_st_at(s->st, i);
        int li = -1, gi = -1;
        for (int j = 0; j < s->n_lin && li < 0; j++)
            if (s->lin[j].w == t) li = j;
        for (int g = 0; g < s->n_grp && gi < 0; g++)
            if (s->grp[g].norm == t) gi = g;
        w8_dtype fdt = s->convert ? W8_BF16 : t->dtype;
        int bi = -1; /* the W8A8_DYNAMIC layer whose float bias this is */
        for (int j = 0; j < s->n_lin && bi < 0; j++)
            if (s->lin[j].b == t && s->lin[j].dyn) bi = j;
        if (li >= 0 && s->lin[li].dyn) {
            /* FORMAT.md's W8A8_DYNAMIC table: weight, weight_scale, weight_offset */
            const qlin *l = &s->lin[li];
            int64_t nk[2] = {l->n, l->k}, n1[2] = {l->n, 1};
            oadd(ol, l->name, ".weight", W8_I8, 2, nk, O_W8, t, li, l->group, 2);
            oadd(ol, l->name, ".weight_scale", W8_F32, 2, n1, O_WSCALE, t, li, l->group, 2);
            oadd(ol, l->name, ".weight_offset", W8_F32, 2, n1, O_WOFF, t, li, l->group, 2);
        } else if (bi >= 0) {
            oadd(ol, t->name, "", W8_F32, t->ndim, t->shape, O_BIAS32, t, bi, -1, 0);
        } else if (li >= 0 && s->lin[li].quant) {
            const qlin *l = &s->lin[li];
            int64_t nk[2] = {l->n, l->k}, one[1] = {1}, nn[1] = {l->n};
            oadd(ol, l->name, ".weight", W8_I8, 2, nk, O_W8, t, li, l->group, 1);
            oadd(ol, l->name, ".input_scale", s->out_dt, 1, one, O_ISCALE, t, li, l->group, 1);
            oadd(ol, l->name, ".input_offset", s->out_dt, 1, one, O_IOFF, t, li, l->group, 1);
            oadd(ol, l->name, ".quant_bias", W8_I32, 1, nn, O_QBIAS, t, li, l->group, 1);
            oadd(ol, l->name, ".deq_scale", s->out_dt == W8_F16 ? W8_I64 : W8_F32, 1, nn, O_DEQ,
                 t, li, l->group, 1);
        } else if (li >= 0 && s->lin[li].group >= 0 && s->grp[s->lin[li].group].smooth) {
            oadd(ol, t->name, "", fdt, t->ndim, t->shape, O_LIN_SMOOTH, t, li,
                 s->lin[li].group, 0);
        } else if (gi >= 0) {
            oadd(ol, t->name, "", fdt, t->ndim, t->shape, O_NORM_SMOOTH, t, -1, gi, 0);
        } else {
            oadd(ol, t->name, "", fdt, t->ndim, t->shape, O_COPY, t, -1, -1, 0);
        }
    }
    /* A tied model has no lm_head tensor, but vllm-ascend looks up
     * "lm_head.weight" in the description for every model: as msModelSlim
     * does, write the embedding's copy under that name, so that the key
     * exists and names a tensor.  Runtimes that honour tie_word_embeddings
     * use the embedding itself. */
    const w8_tensor *emb = w8_st_find(s->st, "model.embed_tokens.weight");
    if (s->cfg.tie_embeddings && emb && !w8_st_find(s->st, "lm_head.weight"))
        oadd(ol, "lm_head.weight", "", s->convert ? W8_BF16 : emb->dtype, emb->ndim, emb->shape,
             O_COPY, emb, -1, -1, 0);
}

/* Greedy shards in output order: a new shard starts when the next tensor
 * would pass the limit (a tensor larger than the limit gets its own). */
static void assign_shards(olist *ol, double gb) {
    size_t limit = gb > 0 ? (size_t)(gb * 1e9) : SIZE_MAX, cur = 0;
    int sh = 0;
    for (int i = 0; i < ol->n; i++) {
        if (cur > 0 && ol->t[i].nbytes > limit - cur) {
            sh++;
            cur = 0;
        }
        ol->t[i].shard = sh;
        cur += ol->t[i].nbytes;
        if (cur > limit) cur = limit;
    }
    ol->n_shards = sh + 1;
}

/* The int8 weights of the quantized layer being written.  quant_bias and
 * deq_scale (n values each) are kept for every layer in qstate, because the
 * alignment order writes them long before the int8 weights; the weights are
 * then recomputed (deterministically) when their turn comes. */
typedef struct {
    int lin;
    int8_t *wq;
} lcache;

static void lcache_clear(lcache *c) {
    free(c->wq);
    c->wq = NULL;
    c->lin = -1;
}

/* Source tensor as f32, with smoothing applied: a linear weight's columns
 * times s, a norm divided by s. */
static float *load_f32(const qstate *s, const w8_tensor *t, const qgroup *smooth_lin,
                       const qgroup *smooth_norm) {
    float *f = w8_xmalloc(t->numel * sizeof(float));
    w8_tensor_to_f32(t, f);
    if (smooth_lin && smooth_lin->smooth) {
        size_t k = (size_t)smooth_lin->k;
        for (size_t i = 0; i < t->numel; i++) f[i] *= smooth_lin->smooth[i % k];
    }
    if (smooth_norm && smooth_norm->smooth)
        for (size_t i = 0; i < t->numel; i++) f[i] /= smooth_norm->smooth[i];
    (void)s;
    return f;
}

static int compute_layer(qstate *s, int li, lcache *c) {
    lcache_clear(c);
    s->n_computed++;
    const qlin *l = &s->lin[li];
    const qgroup *g = &s->grp[l->group];
    float *w = load_f32(s, l->w, g, NULL);
    float *b = NULL;
    if (l->b && !l->dyn) {
        b = w8_xmalloc((size_t)l->n * sizeof(float));
        w8_tensor_to_f32(l->b, b);
    }
    int8_t *wq = w8_xmalloc((size_t)l->n * l->k);
    int32_t *qb = w8_xmalloc((size_t)l->n * sizeof(int32_t));
    float *deq = w8_xmalloc((size_t)l->n * sizeof(float));
    /* W8A8_DYNAMIC: the same per-channel weights with input scale 1 and no
     * bias, so deq comes out as weight_scale = max|W| / 127 and qb as 0 (the
     * float bias is written on its own) */
    int rc = l->dyn ? w8_quant_linear(w, NULL, l->n, l->k, 1.0f, 0, wq, qb, deq)
                    : w8_quant_linear(w, b, l->n, l->k, g->in_scale, g->in_offset, wq, qb, deq);
    free(w);
    free(b);
    w8_qs_release_pages(l->w);
    if (rc != 0) {
        free(wq);
        free(qb);
        free(deq);
        return w8_preferr("%s: tensor '%s.weight'", l->w->file, l->name);
    }
    if (!s->qbias[li]) {
        s->qbias[li] = qb;
        s->deq[li] = deq;
    } else {
        free(qb);
        free(deq);
    }
    c->lin = li;
    c->wq = wq;
    return 0;
}


static void *f32_to_dtype(const float *f, size_t n, w8_dtype dt) {
    if (dt == W8_F32) {
        void *p = w8_xmalloc(n * 4);
        memcpy(p, f, n * 4);
        return p;
    }
    uint16_t *h = w8_xmalloc(n * 2);
    for (size_t i = 0; i < n; i++) h[i] = dt == W8_F16 ? w8_f32_to_f16(f[i]) : w8_f32_to_bf16(f[i]);
    return h;
}

/* Bytes of output tensor t: a pointer into the source or a fresh buffer (*own). */
static const void *produce(qstate *s, const otensor *t, lcache *c, void **own) {
    *own = NULL;
    if (t->what == O_COPY || t->what == O_LIN_SMOOTH || t->what == O_NORM_SMOOTH ||
        t->what == O_BIAS32) {
        long bad = w8_qs_find_nonfinite(t->src);
        if (bad >= 0) {
            w8_seterr("%s: tensor '%s' has a non-finite value (NaN or Inf) at element %ld",
                      t->src->file, t->src->name, bad);
            return NULL;
        }
        if (t->what == O_COPY && !s->convert) return t->src->data;
        if (t->what == O_BIAS32) { /* a W8A8_DYNAMIC layer's bias: fp32 (FORMAT.md) */
            float *f = w8_xmalloc(t->src->numel * sizeof(float));
            w8_tensor_to_f32(t->src, f);
            return *own = f;
        }
        const qgroup *gl = t->what == O_LIN_SMOOTH ? &s->grp[t->grp] : NULL;
        const qgroup *gn = t->what == O_NORM_SMOOTH ? &s->grp[t->grp] : NULL;
        float *f = load_f32(s, t->src, gl, gn);
        *own = f32_to_dtype(f, t->src->numel, t->dt);
        free(f);
        return *own;
    }
    const qgroup *g = &s->grp[t->grp];
    const qlin *l = &s->lin[t->lin];
    if (t->what == O_WOFF) return *own = w8_xcalloc((size_t)l->n, sizeof(float));
    if (t->what == O_ISCALE || t->what == O_IOFF) {
        uint16_t *h = w8_xmalloc(2);
        float v = t->what == O_ISCALE ? g->in_scale : (float)g->in_offset;
        *h = s->out_dt == W8_F16 ? w8_f32_to_f16(v) : w8_f32_to_bf16(v);
        return *own = h;
    }
    int need = t->what == O_W8 ? c->lin != t->lin : !s->qbias[t->lin];
    if (need && compute_layer(s, t->lin, c) != 0) return NULL;
    if (t->what == O_W8) return c->wq;
    if (t->what == O_QBIAS) return s->qbias[t->lin];
    if (t->what == O_WSCALE) return s->deq[t->lin];
    /* deq_scale: F32 for bf16 models; for fp16 models the f32 bit pattern
     * widened to int64 (upper 32 bits zero: the value is positive) */
    if (s->out_dt == W8_BF16) return s->deq[t->lin];
    int64_t *d = w8_xmalloc((size_t)l->n * sizeof(int64_t));
    for (int i = 0; i < l->n; i++) {
        uint32_t u;
        memcpy(&u, &s->deq[t->lin][i], 4);
        d[i] = (int64_t)u;
    }
    return *own = d;
}

static char *shard_name(int i, int n) {
    char buf[96];
    if (n == 1) snprintf(buf, sizeof buf, "quant_model_weight_w8a8.safetensors");
    else snprintf(buf, sizeof buf, "quant_model_weight_w8a8-%05d-of-%05d.safetensors", i + 1, n);
    return w8_xstrdup(buf);
}

/* Test hook: W8A8_TEST_QUANT_SLEEP=SECONDS pauses after the first tensor is
 * written, so a test can SIGKILL a run in the middle of writing. */
static void test_pause(void) {
    const char *e = getenv("W8A8_TEST_QUANT_SLEEP");
    if (e && atoi(e) > 0) sleep((unsigned)atoi(e));
}

/* Within a file, tensors go by decreasing element size (8, 4, 2, 1 bytes),
 * as Hugging Face's safetensors writer does: the data area starts 8-aligned
 * and has no gaps, so every tensor is then aligned to its element size and
 * zero-copy readers can use I64/F32/I32 data in place. */
/* W8A8_DYNAMIC: the int8 weights go first when each is a multiple of 8
 * bytes (every real model: k is), so the alignment still holds, and each
 * layer's weight_scale is then known when its turn comes: every source
 * weight is read and quantized once (the size order would read it twice,
 * once for the scales and once for the int8 weights). */
static int *shard_order(const olist *ol, int sh, int *n_out, int i8_first) {
    int *ord = w8_xmalloc((size_t)ol->n * sizeof(int)), n = 0;
    for (int i = 0; i < ol->n && i8_first; i++)
        if (ol->t[i].shard == sh && ol->t[i].dt == W8_I8 && ol->t[i].nbytes % 8) i8_first = 0;
    if (i8_first)
        for (int i = 0; i < ol->n; i++)
            if (ol->t[i].shard == sh && ol->t[i].dt == W8_I8) ord[n++] = i;
    for (size_t sz = 8; sz >= 1; sz /= 2)
        for (int i = 0; i < ol->n; i++)
            if (ol->t[i].shard == sh && w8_dtype_size(ol->t[i].dt) == sz &&
                !(i8_first && ol->t[i].dt == W8_I8))
                ord[n++] = i;
    *n_out = n;
    return ord;
}

static int write_shards(qstate *s, olist *ol, const char *tmp, w8_quant_report *rep) {
    lcache c = {-1, NULL};
    w8_progress pb;
    w8_progress_begin(&pb, "writing", ol->n);
    int done = 0, rc = 0, paused = 0;
    for (int sh = 0; sh < ol->n_shards && rc == 0; sh++) {
        char *fn = shard_name(sh, ol->n_shards);
        char *path = w8_path_join(tmp, fn);
        free(fn);
        w8_stw *w = w8_stw_create(path);
        free(path);
        if (!w) {
            rc = -1;
            break;
        }
        int n;
        int *ord = shard_order(ol, sh, &n, s->o->quant_type == W8_QUANT_DYNAMIC);
        for (int i = 0; i < n && rc == 0; i++) {
            const otensor *t = &ol->t[ord[i]];
            rc = w8_stw_declare(w, t->name, t->dt, t->ndim, t->shape);
        }
        if (rc == 0) rc = w8_stw_set_meta(w, "format", "pt");
        if (rc == 0) rc = w8_stw_begin(w);
        for (int i = 0; i < n && rc == 0; i++) {
            const otensor *t = &ol->t[ord[i]];
            void *own;
            const void *p = produce(s, t, &c, &own);
            if (!p) {
                rc = -1;
                break;
            }
            rc = w8_stw_write(w, t->name, p, t->nbytes);
            free(own);
            if (t->what == O_COPY) w8_qs_release_pages(t->src);
            rep->bytes += t->nbytes;
            w8_progress_update(&pb, ++done, NULL);
            if (!paused) {
                paused = 1;
                test_pause();
            }
        }
        free(ord);
        if (rc == 0) rc = w8_stw_finish(w);
        else w8_stw_abort(w);
    }
    lcache_clear(&c);
    if (rc == 0) w8_progress_end(&pb);
    rep->n_tensors = done;
    rep->n_shards = ol->n_shards;
    return rc;
}

/* Write a whole small file and make it durable; errors name the file. */
static int write_text(const char *dir, const char *name, const char *text) {
    char *path = w8_path_join(dir, name);
    int rc = 0;
    FILE *f = fopen(path, "wb");
    if (!f) {
        rc = w8_seterr("%s: cannot create: %s", path, strerror(errno));
    } else {
        size_t n = strlen(text);
        if (fwrite(text, 1, n, f) != n || fflush(f) != 0 || fsync(fileno(f)) != 0)
            rc = w8_seterr("%s: write failed: %s", path, strerror(errno));
        if (fclose(f) != 0 && rc == 0) rc = w8_seterr("%s: close failed: %s", path, strerror(errno));
    }
    free(path);
    return rc;
}

static int write_json(const char *dir, const char *name, json_t *v) {
    char *text = json_dumps(v, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    if (!text) return w8_seterr("%s: out of memory serializing", name);
    size_t n = strlen(text);
    text = realloc(text, n + 2);
    text[n] = '\n';
    text[n + 1] = 0;
    int rc = write_text(dir, name, text);
    free(text);
    return rc;
}

/* model_quant_type: W8A8_DYNAMIC only when every quantized layer is; a mixed
 * directory stays "W8A8" and each layer's value decides (vllm-ascend). */
static int write_description(const qstate *s, const olist *ol, const char *tmp) {
    static const char *const val[] = {"FLOAT", "W8A8", "W8A8_DYNAMIC"};
    json_t *d = json_object();
    json_object_set_new(d, "model_quant_type",
                        json_string(s->o->quant_type == W8_QUANT_DYNAMIC ? "W8A8_DYNAMIC" : "W8A8"));
    json_object_set_new(d, "version", json_string("1.0.0"));
    for (int i = 0; i < ol->n; i++)
        json_object_set_new(d, ol->t[i].name, json_string(val[ol->t[i].quant]));
    int rc = write_json(tmp, "quant_model_description.json", d);
    json_decref(d);
    return rc;
}

static int write_index(const olist *ol, const char *tmp) {
    size_t total = 0;
    json_t *wm = json_object();
    for (int i = 0; i < ol->n; i++) {
        total += ol->t[i].nbytes;
        char *fn = shard_name(ol->t[i].shard, ol->n_shards);
        json_object_set_new(wm, ol->t[i].name, json_string(fn));
        free(fn);
    }
    json_t *root = json_object(), *meta = json_object();
    json_object_set_new(meta, "total_size", json_integer((json_int_t)total));
    json_object_set_new(root, "metadata", meta);
    json_object_set_new(root, "weight_map", wm);
    int rc = write_json(tmp, "quant_model_weight_w8a8.safetensors.index.json", root);
    json_decref(root);
    return rc;
}

/* One text edit of the config (w8_json_text_set / _del); *t is replaced.
 * A NULL result (text not an object) leaves *t NULL. */
static void edit_text(char **t, const char *key, const char *value) {
    if (!*t) return;
    char *e = value ? w8_json_text_set(*t, strlen(*t), key, value) : w8_json_text_del(*t, strlen(*t), key);
    free(*t);
    *t = e;
}

/* config.json of the output: the source's text with only these changes made
 * to it, so every other byte (number spellings such as 1e-05, key order,
 * layout) stays as the source wrote it:
 *  - "quantize": "w8a8" added after the last key (its value replaced when
 *    the source has the key);
 *  - for an f32 source (its float tensors become bf16), the dtype key the
 *    source uses ("dtype", "torch_dtype" or both) set to "bfloat16", and
 *    "torch_dtype" added only when it has neither, so no two keys disagree;
 *  - "quantization_config" dropped: vllm-ascend would follow it instead of
 *    the description.  Every source tensor is F16/BF16/F32 (plan() refuses
 *    others), so it can only describe a quantize-on-load recipe, which our
 *    W8A8 output replaces.
 * The edited text must parse to exactly the intended object; if it ever
 * does not (a key written with escapes), the object is written instead. */
static int write_config(const qstate *s, const char *tmp) {
    char *src = w8_path_join(s->o->model_path, "config.json");
    size_t len;
    char *text = w8_read_file(src, W8_JSON_MAX_FILE, &len);
    free(src);
    if (!text) return -1;
    json_t *cfg = w8_json_load_buf(text, len, "config.json");
    if (!cfg || !json_is_object(cfg)) {
        free(text);
        json_decref(cfg);
        return cfg ? w8_seterr("config.json: not a JSON object") : -1;
    }
    json_t *want = json_deep_copy(cfg);
    char *ed = w8_xstrndup(text, len);
    const json_t *qc = json_object_get(cfg, "quantization_config");
    if (qc) {
        const json_t *qm = json_object_get(qc, "quant_method");
        note(s, "note: config.json's quantization_config (quant_method %s) is not copied: the "
             "output is W8A8, described by quant_model_description.json",
             json_is_string(qm) ? json_string_value(qm) : "unknown");
        edit_text(&ed, "quantization_config", NULL);
        json_object_del(want, "quantization_config");
    }
    /* MindIE reads "quantize" first; a mixed directory says "w8a8" */
    const char *qv = s->o->quant_type == W8_QUANT_DYNAMIC ? "w8a8_dynamic" : "w8a8";
    char qtext[32];
    snprintf(qtext, sizeof qtext, "\"%s\"", qv);
    edit_text(&ed, "quantize", qtext);
    json_object_set_new(want, "quantize", json_string(qv));
    if (s->convert) {
        static const char *const keys[] = {"dtype", "torch_dtype"};
        int any = 0;
        for (int i = 0; i < 2; i++)
            if (json_object_get(cfg, keys[i])) {
                any = 1;
                edit_text(&ed, keys[i], "\"bfloat16\"");
                json_object_set_new(want, keys[i], json_string("bfloat16"));
            }
        if (!any) {
            edit_text(&ed, "torch_dtype", "\"bfloat16\"");
            json_object_set_new(want, "torch_dtype", json_string("bfloat16"));
        }
    }
    json_error_t je;
    json_t *check = ed ? w8_json_parse(ed, strlen(ed), &je) : NULL;
    int rc = check && json_equal(check, want) ? write_text(tmp, "config.json", ed)
                                              : write_json(tmp, "config.json", want);
    json_decref(check);
    json_decref(want);
    free(ed);
    json_decref(cfg);
    free(text);
    return rc;
}

/* Weight files and files we write ourselves are not copied. */
static int skip_copy(const char *n) {
    size_t l = strlen(n);
#define ENDS(sfx) (l >= sizeof(sfx) - 1 && !strcmp(n + l - (sizeof(sfx) - 1), sfx))
    return n[0] == '.' || !strcmp(n, "config.json") || ENDS(".safetensors") ||
           ENDS(".safetensors.index.json") || ENDS(".bin") || ENDS(".pt") || ENDS(".pth") ||
           ENDS(".gguf") || ENDS(".ckpt") || ENDS(".h5") || ENDS(".msgpack") ||
           !strncmp(n, "quant_model_description", 23) || ENDS(".bin.index.json");
#undef ENDS
}

static int copy_side_files(const qstate *s, const char *tmp) {
    DIR *d = opendir(s->o->model_path);
    if (!d) return w8_seterr("%s: cannot list: %s", s->o->model_path, strerror(errno));
    struct dirent *e;
    int rc = 0;
    /* readdir order is not stable: collect and sort for a deterministic log */
    char **names = NULL;
    int n = 0, cap = 0;
    while ((e = readdir(d))) {
        if (skip_copy(e->d_name)) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = w8_xrealloc(names, (size_t)cap * sizeof(char *));
        }
        names[n++] = w8_xstrdup(e->d_name);
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        char *sp = w8_path_join(s->o->model_path, names[i]);
        struct stat st;
        if (rc == 0 && stat(sp, &st) == 0 && S_ISREG(st.st_mode)) {
            char *dp = w8_path_join(tmp, names[i]);
            rc = w8_copy_file(sp, dp);
            free(dp);
        }
        free(sp);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* The output list first (names, dtypes, shapes, shards), then the shards one
 * tensor at a time, then the JSON and side files. */
int w8_qwrite(qstate *s, const char *dir, w8_quant_report *rep) {
    olist ol = {0};
    s->qbias = w8_xcalloc((size_t)s->n_lin, sizeof(int32_t *));
    s->deq = w8_xcalloc((size_t)s->n_lin, sizeof(float *));
    build_outputs(s, &ol);
    assign_shards(&ol, s->o->part_file_size_gb);
    double tw = w8_now();
    int rc = write_shards(s, &ol, dir, rep);
    if (rc == 0) rc = write_description(s, &ol, dir);
    if (rc == 0 && ol.n_shards > 1) rc = write_index(&ol, dir);
    if (rc == 0) rc = write_config(s, dir);
    if (rc == 0) rc = copy_side_files(s, dir);
    if (rc == 0) rep->write_seconds = w8_now() - tw;
    olist_free(&ol);
    return rc;
}

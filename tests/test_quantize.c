/*
 * test_quantize.c - the quantizer against FORMAT.md, and inspect's validator.
 *
 *   - the activation and weight formulas (w8_quant_act_params, w8_quant_linear)
 *     recomputed independently in double;
 *   - the three stories260K sources (fp16 llama, bf16 llama, bf16 qwen2) quantized
 *     for real: inspect finds no violation, the tensors follow table 1 / table 2,
 *     and for several layers (with and without bias) the stored int8 weights,
 *     deq_scale and quant_bias are recomputed from the float source and the stored
 *     input_scale/offset;
 *   - one quantized layer computed with the FORMAT.md integer arithmetic against
 *     the float layer on real calibration activations;
 *   - bad sources (missing weights, an I32 tensor, a NaN weight, an existing
 *     target) fail with a clear message and leave nothing behind;
 *   - inspect rejects hand-broken directories.
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/forward.h"
#include "../src/inspect.h"
#include "../src/json.h"
#include "../src/kv_cache.h"
#include "../src/model.h"
#include "../src/quant/quantize.h"
#include "../src/safetensors.h"
#include "../src/tokenizer/tokenizer.h"
#include "../src/util.h"
#include "test.h"

static char tmp_root[256];
static char calib_path[512];

static char *model_dir(const char *name) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s/models/%s", shared_dir(), name);
    return w8_xstrdup(buf);
}

static char *tmp_path(const char *name) { return w8_path_join(tmp_root, name); }

/* A small calibration so the test stays fast (also under ASan). */
static int quantize(const char *src, const char *dst, int force, const char *model_type) {
    w8_quant_opts o;
    w8_quant_opts_init(&o);
    o.model_path = src;
    o.save_path = dst;
    o.calib_file = calib_path;
    o.calib_samples = 3;
    o.calib_seq_len = 48;
    o.force = force;
    o.model_type = model_type;
    w8_quant_report rep;
    return w8_quantize(&o, &rep);
}

/* Number of entries in dir whose name starts with prefix. */
static int count_prefix(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    closedir(d);
    return n;
}

/* ------------------------------------------------------------ arithmetic */

static void test_act_params(void) {
    float s;
    int o;
    CHECK(w8_quant_act_params(-1.0f, 3.0f, W8_F16, &s, &o) == 0, "act params fp16 ok");
    CHECK(s == w8_f16_to_f32(w8_f32_to_f16(4.0f / 255)), "input_scale is the fp16 rounding of "
          "(hi-lo)/255 (%g)", s);
    CHECK(o == (int)nearbyint(1.0 / s) - 128, "input_offset from the stored scale (%d)", o);
    CHECK(w8_quant_act_params(-1.0f, 3.0f, W8_BF16, &s, &o) == 0 &&
              s == w8_bf16_to_f32(w8_f32_to_bf16(4.0f / 255)),
          "input_scale is the bf16 rounding (%g)", s);
    CHECK(w8_quant_act_params(0.5f, 2.0f, W8_BF16, &s, &o) == 0 && o == -128,
          "positive-only range includes 0: offset -128 (%d)", o);
    CHECK(w8_quant_act_params(-2.0f, -0.5f, W8_F16, &s, &o) == 0 && o == 127,
          "negative-only range includes 0: offset 127 (%d)", o);
    CHECK(w8_quant_act_params(0, 0, W8_F16, &s, &o) == 0 && s == 6.103515625e-05f && o == -128,
          "all-zero input: scale floored at fp16's smallest normal");
    CHECK(w8_quant_act_params(NAN, 1, W8_F16, &s, &o) == -1, "NaN range refused: %s",
          w8_lasterr());
    CHECK(w8_quant_act_params(-1e8f, 1e8f, W8_F16, &s, &o) == -1,
          "range too wide for an fp16 scale refused: %s", w8_lasterr());
    /* offsets always integral in [-128, 127], whatever the rounding */
    w8_rng r;
    w8_rng_seed(&r, 7);
    int bad = 0;
    for (int i = 0; i < 2000; i++) {
        float lo = -w8_rng_f32(&r) * 20, hi = w8_rng_f32(&r) * 20;
        for (int d = 0; d < 2; d++) {
            if (w8_quant_act_params(lo, hi, d ? W8_BF16 : W8_F16, &s, &o) != 0) bad++;
            else if (o < -128 || o > 127 || !(s > 0)) bad++;
            /* lo and hi land within one step of the int8 ends */
            else if (fabs(nearbyint(lo / s) + o + 128) > 1.01 ||
                     fabs(nearbyint(hi / s) + o - 127) > 2.01)
                bad++;
        }
    }
    CHECK(bad == 0, "2000 random ranges: offset in [-128,127], ends map to -128/127 (%d bad)", bad);
}

/* Independent recomputation in double; returns mismatches that are not ties. */
static int recheck_rows(const float *w, const float *bias, int n, int k, float s, int off,
                        const int8_t *wq, const int32_t *qb, const float *deq, int *ties) {
    int bad = 0;
    for (int r = 0; r < n; r++) {
        double amax = 0;
        for (int j = 0; j < k; j++) amax = fmax(amax, fabs(w[(size_t)r * k + j]));
        float ws = (float)(amax / 127.0);
        if (ws < W8_QUANT_WSCALE_EPS) ws = W8_QUANT_WSCALE_EPS;
        float want_deq = (float)((double)s * ws);
        if (deq[r] != want_deq) {
            if (bad++ < 3) printf("# row %d deq %g want %g\n", r, deq[r], want_deq);
            continue;
        }
        long sum = 0;
        for (int j = 0; j < k; j++) {
            double x = (double)w[(size_t)r * k + j] / ws;
            double q = fmin(127, fmax(-128, nearbyint(x)));
            int got = wq[(size_t)r * k + j];
            if (got != (int)q) {
                if (fabs(fabs(x - floor(x)) - 0.5) < 1e-4 && fabs(got - q) == 1) (*ties)++;
                else if (bad++ < 3) printf("# row %d col %d wq %d want %g\n", r, j, got, q);
            }
            sum += got;
        }
        double b = bias ? bias[r] : 0;
        double want = nearbyint(b / (double)deq[r] - (double)off * (double)sum);
        if (fabs(qb[r] - want) > 0.5 + 1e-9) {
            /* within one of a tie */
            double frac = fabs(b / (double)deq[r] - (double)off * sum);
            if (fabs(frac - floor(frac) - 0.5) < 1e-6 && fabs(qb[r] - want) <= 1) (*ties)++;
            else if (bad++ < 3) printf("# row %d quant_bias %d want %g\n", r, qb[r], want);
        }
    }
    return bad;
}

static void test_quant_linear(void) {
    int n = 37, k = 173;
    float *w = w8_xmalloc((size_t)n * k * sizeof(float)), *b = w8_xmalloc(n * sizeof(float));
    w8_rng r;
    w8_rng_seed(&r, 11);
    for (int i = 0; i < n * k; i++) w[i] = w8_rng_normal(&r) * 0.05f;
    for (int i = 0; i < k; i++) w[5 * k + i] = 0; /* an all-zero row */
    for (int i = 0; i < n; i++) b[i] = w8_rng_normal(&r) * 0.1f;
    w[3 * k + 7] = 2.5f; /* an outlier */
    int8_t *wq = w8_xmalloc((size_t)n * k);
    int32_t *qb = w8_xmalloc(n * sizeof(int32_t));
    float *deq = w8_xmalloc(n * sizeof(float));
    float s;
    int off;
    w8_quant_act_params(-3.1f, 5.7f, W8_F16, &s, &off);
    for (int wb = 0; wb < 2; wb++) {
        const float *bias = wb ? b : NULL;
        if (wb) b[5] = 0; /* zero row with zero bias: the bias floor does not apply */
        int rc = w8_quant_linear(w, bias, n, k, s, off, wq, qb, deq);
        int ties = 0;
        int bad = rc == 0 ? recheck_rows(w, bias, n, k, s, off, wq, qb, deq, &ties) : -1;
        CHECK(rc == 0 && bad == 0, "w8_quant_linear %s bias matches a double recomputation "
              "(%d ties)", wb ? "with" : "without", ties);
    }
    int maxq = 0;
    for (int j = 0; j < k; j++) maxq = abs(wq[3 * k + j]) > maxq ? abs(wq[3 * k + j]) : maxq;
    CHECK(maxq == 127 && wq[3 * k + 7] == 127, "the row maximum maps to 127");
    /* a tiny row with a large bias: the scale is raised so quant_bias fits */
    for (int i = 0; i < k; i++) w[i] = 1e-12f;
    b[0] = 1000.0f;
    CHECK(w8_quant_linear(w, b, n, k, s, off, wq, qb, deq) == 0 &&
              fabs((double)qb[0] * deq[0] - 1000.0 + off * deq[0] * 0) < 1.0,
          "large bias on a near-zero row still fits quant_bias (%d * %g)", qb[0], deq[0]);
    w[9] = NAN;
    CHECK(w8_quant_linear(w, b, n, k, s, off, wq, qb, deq) == -1 &&
              strstr(w8_lasterr(), "row 0"),
          "NaN weight refused naming the row: %s", w8_lasterr());
    free(w);
    free(b);
    free(wq);
    free(qb);
    free(deq);
}

/* --------------------------------------------------------- real models */

static float *tensor_f32(const w8_tensor *t) {
    float *f = w8_xmalloc(t->numel * sizeof(float));
    w8_tensor_to_f32(t, f);
    return f;
}

/* Recompute layer `lin` of the quantized dir q from the float source. */
static void recheck_layer(const w8_st *src, const w8_st *q, const char *lin, int fp16) {
    char nm[256];
    snprintf(nm, sizeof nm, "%s.weight", lin);
    const w8_tensor *wf = w8_st_find(src, nm), *wq = w8_st_find(q, nm);
    snprintf(nm, sizeof nm, "%s.bias", lin);
    const w8_tensor *bf = w8_st_find(src, nm), *bq = w8_st_find(q, nm);
    snprintf(nm, sizeof nm, "%s.input_scale", lin);
    const w8_tensor *is = w8_st_find(q, nm);
    snprintf(nm, sizeof nm, "%s.input_offset", lin);
    const w8_tensor *io = w8_st_find(q, nm);
    snprintf(nm, sizeof nm, "%s.quant_bias", lin);
    const w8_tensor *qb = w8_st_find(q, nm);
    snprintf(nm, sizeof nm, "%s.deq_scale", lin);
    const w8_tensor *dq = w8_st_find(q, nm);
    if (!wf || !wq || !is || !io || !qb || !dq) {
        CHECK(0, "%s: all tensors present", lin);
        return;
    }
    int n = (int)wf->shape[0], k = (int)wf->shape[1];
    CHECK(wq->dtype == W8_I8 && wq->shape[0] == n && wq->shape[1] == k && qb->dtype == W8_I32 &&
              is->dtype == (fp16 ? W8_F16 : W8_BF16) && io->dtype == is->dtype &&
              dq->dtype == (fp16 ? W8_I64 : W8_F32) && dq->numel == (size_t)n,
          "%s: dtypes and shapes of table %d", lin, fp16 ? 1 : 2);
    CHECK((bf == NULL) == (bq == NULL) && (!bq || bq->dtype == bf->dtype),
          "%s: float bias %s", lin, bf ? "kept in its dtype" : "absent as in the source");
    float *w = tensor_f32(wf), *b = bf ? tensor_f32(bf) : NULL;
    float *deq = w8_xmalloc((size_t)n * sizeof(float));
    int high = 0;
    for (int i = 0; i < n; i++) {
        if (fp16) {
            int64_t v = ((const int64_t *)dq->data)[i];
            high |= (uint64_t)v >> 32 != 0;
            uint32_t u = (uint32_t)v;
            memcpy(&deq[i], &u, 4);
        } else {
            deq[i] = ((const float *)dq->data)[i];
        }
    }
    CHECK(!high, "%s: deq_scale upper 32 bits are zero", lin);
    float s = w8_tensor_get_f32(is, 0);
    int off = (int)w8_tensor_get_f32(io, 0);
    int ties = 0;
    int bad = recheck_rows(w, b, n, k, s, off, wq->data, qb->data, deq, &ties);
    CHECK(bad == 0, "%s: int8 weights, deq_scale and quant_bias recomputed from the float "
          "weights and the stored scale %g / offset %d (%d ties)", lin, s, off, ties);
    free(w);
    free(b);
    free(deq);
}

typedef struct {
    float *x;
    int m, k, layer;
} capture;

static void grab(void *ud, int layer, w8_obs_point what, const float *x, int m, int k) {
    capture *c = ud;
    if (layer != c->layer || what != W8_OBS_QKV_IN || c->x) return;
    c->x = w8_xmalloc((size_t)m * k * sizeof(float));
    memcpy(c->x, x, (size_t)m * k * sizeof(float));
    c->m = m;
    c->k = k;
}

/* y = x W^T + b in float against the FORMAT.md integer path with the stored tensors. */
static void test_linear_arith(const char *src_dir, const w8_st *src, const w8_st *q) {
    w8_model *m = w8_model_load(src_dir);
    w8_tok *tok = w8_tok_load(src_dir);
    if (!m || !tok) {
        CHECK(0, "load float model and tokenizer: %s", w8_lasterr());
        if (m) w8_model_free(m);
        if (tok) w8_tok_free(tok);
        return;
    }
    const char *text = "Once upon a time, a little dog found a big red ball in the park. He "
                       "was very happy and played with it all day.";
    int *ids = NULL;
    int n = w8_tok_encode(tok, text, strlen(text), 1, &ids);
    w8_ctx *ctx = w8_ctx_new(m, n);
    w8_kv *kv = w8_kv_new(&m->cfg, 16, (n + 15) / 16);
    capture cap = {NULL, 0, 0, 2};
    w8_ctx_set_observer(ctx, grab, &cap);
    w8_seq sq;
    w8_seq_init(&sq);
    w8_kv_seq_reserve(kv, &sq, n);
    int *pos = w8_xmalloc(n * sizeof(int));
    w8_seq **seqs = w8_xmalloc(n * sizeof(w8_seq *));
    for (int i = 0; i < n; i++) {
        pos[i] = i;
        seqs[i] = &sq;
    }
    float *logits = w8_xmalloc((size_t)m->cfg.vocab * sizeof(float));
    w8_batch b = {n, ids, pos, seqs, NULL};
    int got = w8_forward(ctx, m, kv, &b, logits);
    CHECK(got == 1 && cap.x, "float forward captured layer 2's q/k/v input (%d rows)", cap.m);
    if (cap.x) {
        const char *lin = "model.layers.2.self_attn.q_proj";
        char nm[128];
        snprintf(nm, sizeof nm, "%s.weight", lin);
        const w8_tensor *wf = w8_st_find(src, nm), *wq = w8_st_find(q, nm);
        snprintf(nm, sizeof nm, "%s.input_scale", lin);
        float s = w8_tensor_get_f32(w8_st_find(q, nm), 0);
        snprintf(nm, sizeof nm, "%s.input_offset", lin);
        int off = (int)w8_tensor_get_f32(w8_st_find(q, nm), 0);
        snprintf(nm, sizeof nm, "%s.quant_bias", lin);
        const int32_t *qb = w8_st_find(q, nm)->data;
        snprintf(nm, sizeof nm, "%s.deq_scale", lin);
        const float *deq = w8_st_find(q, nm)->data;
        int N = (int)wf->shape[0], K = (int)wf->shape[1];
        float *w = tensor_f32(wf);
        const int8_t *W8 = wq->data;
        double num = 0, den = 0;
        for (int r = 0; r < cap.m; r++) {
            const float *x = cap.x + (size_t)r * K;
            int8_t xq[512];
            for (int j = 0; j < K; j++) {
                float v = nearbyintf(x[j] / s) + off;
                xq[j] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
            }
            for (int c = 0; c < N; c++) {
                int32_t acc = 0;
                double yf = 0;
                for (int j = 0; j < K; j++) {
                    acc += xq[j] * W8[(size_t)c * K + j];
                    yf += (double)x[j] * w[(size_t)c * K + j];
                }
                double yq = ((double)acc + qb[c]) * deq[c];
                num += (yq - yf) * (yq - yf);
                den += yf * yf;
            }
        }
        double rel = sqrt(num / den);
        printf("# layer 2 q_proj: relative error of the W8A8 arithmetic %.4g over %d rows\n", rel,
               cap.m);
        CHECK(rel < 0.015, "W8A8 integer arithmetic vs float q_proj on real activations: relative "
              "error %.4f", rel);
        free(w);
        free(cap.x);
    }
    free(logits);
    free(pos);
    free(seqs);
    free(ids);
    w8_kv_seq_release(kv, &sq);
    w8_kv_free(kv);
    w8_ctx_free(ctx);
    w8_tok_free(tok);
    w8_model_free(m);
}

static void test_model(const char *name, int fp16, int qwen) {
    char *src = model_dir(name), *dst = tmp_path(name);
    int rc = quantize(src, dst, 0, NULL);
    CHECK(rc == 0, "quantize %s: %s", name, rc ? w8_lasterr() : "ok");
    if (rc) goto out;
    w8_inspect_info info;
    rc = w8_inspect_dir(dst, &info);
    CHECK(rc == 0 && info.quantized && info.n_violations == 0 && info.dtype == (fp16 ? W8_F16 : W8_BF16),
          "%s: inspect finds a valid %s W8A8 directory (%d violations%s%s)", name,
          fp16 ? "fp16" : "bf16", info.n_violations, info.n_violations ? ": " : "",
          info.n_violations ? info.violations[0] : "");
    CHECK(info.n_lin_quant == (qwen ? 30 : 35) && info.n_lin_float == (qwen ? 6 : 1),
          "%s: %d layers W8A8, %d float (%s)", name, info.n_lin_quant, info.n_lin_float,
          qwen ? "Qwen2 recipe keeps down_proj float, lm_head the embedding's copy"
               : "lm_head (the tied embedding's copy), nothing else float");
    w8_inspect_free(&info);
    w8_st *s = w8_st_open_dir(src), *q = w8_st_open_dir(dst);
    if (!s || !q) {
        CHECK(0, "reopen: %s", w8_lasterr());
    } else {
        recheck_layer(s, q, "model.layers.0.self_attn.q_proj", fp16);
        recheck_layer(s, q, "model.layers.3.self_attn.v_proj", fp16);
        recheck_layer(s, q, "model.layers.1.mlp.gate_proj", fp16);
        recheck_layer(s, q, "model.layers.4.self_attn.o_proj", fp16);
        if (!qwen) recheck_layer(s, q, "model.layers.2.mlp.down_proj", fp16);
        int misaligned = 0;
        for (size_t i = 0; i < w8_st_count(q); i++) {
            const w8_tensor *t = w8_st_at(q, i);
            misaligned += (uintptr_t)t->data % w8_dtype_size(t->dtype) != 0;
        }
        CHECK(misaligned == 0, "%s: every tensor aligned to its element size (%d not)", name,
              misaligned);
        const w8_tensor *e = w8_st_find(q, "model.embed_tokens.weight"),
                        *se = w8_st_find(s, "model.embed_tokens.weight");
        CHECK(e && se && e->dtype == se->dtype && e->nbytes == se->nbytes &&
                  !memcmp(e->data, se->data, e->nbytes),
              "%s: float tensors copied byte for byte in their dtype", name);
        if (!fp16 && !qwen) test_linear_arith(src, s, q);
    }
    if (s) w8_st_close(s);
    if (q) w8_st_close(q);
    char *cfgp = w8_path_join(dst, "config.json");
    json_t *cfg = w8_json_load_file(cfgp);
    const char *qz = NULL;
    CHECK(cfg && w8_json_get_str(cfg, "quantize", "c", &qz) == 0 && !strcmp(qz, "w8a8") &&
              !strcmp(json_object_iter_key(json_object_iter(cfg)), "architectures"),
          "%s: config.json keeps its keys in order and adds \"quantize\": \"w8a8\"", name);
    json_decref(cfg);
    free(cfgp);
    char *tk = w8_path_join(dst, "tokenizer.json");
    CHECK(w8_file_exists(tk), "%s: tokenizer.json copied", name);
    free(tk);
out:
    free(src);
    free(dst);
}

/* ------------------------------------------------------- bad sources */

typedef void (*mutate_fn)(const w8_tensor *t, w8_dtype *dt, void **data);

/* Copy model `src` to dst, rewriting model.safetensors through mut (may be NULL). */
static int make_variant(const char *src, const char *dst, mutate_fn mut, int with_weights) {
    if (w8_mkdir_p(dst) != 0) return -1;
    const char *files[] = {"config.json", "generation_config.json", "tokenizer.json",
                           "tokenizer_config.json"};
    for (int i = 0; i < 4; i++) {
        char *a = w8_path_join(src, files[i]), *b = w8_path_join(dst, files[i]);
        if (w8_file_exists(a)) w8_copy_file(a, b);
        free(a);
        free(b);
    }
    if (!with_weights) return 0;
    char *sp = w8_path_join(src, "model.safetensors"), *dp = w8_path_join(dst, "model.safetensors");
    w8_st *st = w8_st_open(sp);
    w8_stw *w = w8_stw_create(dp);
    int rc = -1;
    if (st && w) {
        size_t n = w8_st_count(st);
        void **data = w8_xcalloc(n, sizeof(void *));
        w8_dtype *dts = w8_xcalloc(n, sizeof(w8_dtype));
        rc = 0;
        for (size_t i = 0; i < n && rc == 0; i++) {
            const w8_tensor *t = w8_st_at(st, i);
            dts[i] = t->dtype;
            data[i] = w8_xmalloc(t->nbytes);
            memcpy(data[i], t->data, t->nbytes);
            if (mut) mut(t, &dts[i], &data[i]);
            rc = w8_stw_declare(w, t->name, dts[i], t->ndim, t->shape);
        }
        if (rc == 0) rc = w8_stw_begin(w);
        for (size_t i = 0; i < n && rc == 0; i++) {
            const w8_tensor *t = w8_st_at(st, i);
            rc = w8_stw_write(w, t->name, data[i], t->numel * w8_dtype_size(dts[i]));
        }
        for (size_t i = 0; i < n; i++) free(data[i]);
        free(data);
        free(dts);
        if (rc == 0) rc = w8_stw_finish(w);
        else w8_stw_abort(w);
        w = NULL;
    }
    if (w) w8_stw_abort(w);
    if (st) w8_st_close(st);
    free(sp);
    free(dp);
    return rc;
}

static void mut_i32(const w8_tensor *t, w8_dtype *dt, void **data) {
    (void)data;
    /* f16 [64] is 128 bytes; as I32 it needs 256 */
    if (!strcmp(t->name, "model.layers.1.post_attention_layernorm.weight")) {
        *dt = W8_I32;
        *data = w8_xrealloc(*data, t->numel * 4);
        memset(*data, 0, t->numel * 4);
    }
}

static void mut_nan(const w8_tensor *t, w8_dtype *dt, void **data) {
    (void)dt;
    if (!strcmp(t->name, "model.layers.2.mlp.up_proj.weight")) ((uint16_t *)*data)[5] = 0x7e00;
}

static void expect_fail(const char *what, const char *src, const char *dst, const char *needle) {
    int rc = quantize(src, dst, 0, NULL);
    const char *slash = strrchr(dst, '/');
    char base[256];
    snprintf(base, sizeof base, "%s.w8a8-tmp-", slash + 1);
    CHECK(rc == -1 && strstr(w8_lasterr(), needle) && !w8_file_exists(dst) &&
              count_prefix(tmp_root, base) == 0,
          "%s: refused with \"%s\", no output and no temp dir", what, w8_lasterr());
}

static void test_bad_sources(void) {
    char *f16 = model_dir("stories260K-hf-f16");
    char *v = tmp_path("src-noweights"), *d = tmp_path("out-bad");
    make_variant(f16, v, NULL, 0);
    expect_fail("source without weights", v, d, "safetensors");
    free(v);
    v = tmp_path("src-missing");
    expect_fail("missing source directory", v, d, "not found");
    free(v);
    v = tmp_path("src-i32");
    make_variant(f16, v, mut_i32, 1);
    expect_fail("I32 tensor in the source", v, d, "I32");
    free(v);
    v = tmp_path("src-nan");
    make_variant(f16, v, mut_nan, 1);
    expect_fail("NaN weight", v, d, "model.layers.2.mlp.up_proj.weight");
    free(v);
    /* an existing non-empty target is refused and left alone */
    w8_mkdir_p(d);
    char *keep = w8_path_join(d, "keep.txt");
    FILE *f = fopen(keep, "w");
    fputs("mine", f);
    fclose(f);
    int rc = quantize(f16, d, 0, NULL);
    CHECK(rc == -1 && strstr(w8_lasterr(), "--force") && w8_file_exists(keep),
          "existing non-empty target refused without --force: %s", w8_lasterr());
    /* a failing --force run keeps the old directory */
    v = tmp_path("src-nan");
    rc = quantize(v, d, 1, NULL);
    CHECK(rc == -1 && w8_file_exists(keep), "failed --force run leaves the old target intact");
    rc = quantize(f16, d, 1, NULL);
    char *desc = w8_path_join(d, "quant_model_description.json");
    CHECK(rc == 0 && !w8_file_exists(keep) && w8_file_exists(desc),
          "--force replaces the target after success");
    /* --disable_names must name a layer */
    w8_quant_opts o;
    w8_quant_opts_init(&o);
    const char *dn[] = {"model.layers.0.mlp.down_prj"};
    o.model_path = f16;
    o.save_path = d;
    o.force = 1;
    o.disable_names = dn;
    o.n_disable = 1;
    w8_quant_report rep;
    CHECK(w8_quantize(&o, &rep) == -1 && strstr(w8_lasterr(), "down_prj"),
          "--disable_names typo refused: %s", w8_lasterr());
    /* the save path may not overlap the source */
    o.save_path = f16;
    o.n_disable = 0;
    CHECK(w8_quantize(&o, &rep) == -1 && strstr(w8_lasterr(), "overlap"),
          "--save_path equal to the source refused even with --force");
    free(desc);
    free(keep);
    free(v);
    free(d);
    free(f16);
}

/* ---------------------------------------------------- disable + smooth */

static void test_options(void) {
    char *src = model_dir("stories260K-hf-bf16"), *dst = tmp_path("opt");
    w8_quant_opts o;
    w8_quant_opts_init(&o);
    const char *dn[] = {"model.layers.1.self_attn.k_proj", "model.layers.0.mlp.down_proj"};
    o.model_path = src;
    o.save_path = dst;
    o.calib_file = calib_path;
    o.calib_samples = 2;
    o.calib_seq_len = 32;
    o.disable_names = dn;
    o.n_disable = 2;
    o.smooth = 1;
    o.part_file_size_gb = 100e3 / 1e9; /* ~100 KB shards */
    w8_quant_report rep;
    int rc = w8_quantize(&o, &rep);
    CHECK(rc == 0 && rep.n_shards > 1, "disable_names + smoothquant + shards: %s (%d shards)",
          rc ? w8_lasterr() : "ok", rep.n_shards);
    w8_inspect_info info;
    if (rc == 0 && w8_inspect_dir(dst, &info) == 0) {
        size_t bytes = info.bytes;
        /* k_proj keeps its q/k/v group float (one type per fused group) */
        CHECK(info.n_violations == 0 && info.n_lin_quant == 31 && info.n_lin_float == 5,
              "sharded smoothed output is valid: %d W8A8, %d float, %d violations%s%s",
              info.n_lin_quant, info.n_lin_float, info.n_violations,
              info.n_violations ? ": " : "", info.n_violations ? info.violations[0] : "");
        w8_inspect_free(&info);
        char *ix = w8_path_join(dst, "quant_model_weight_w8a8.safetensors.index.json");
        json_t *j = w8_json_load_file(ix);
        long long total = 0;
        CHECK(j && w8_json_get_int(json_object_get(j, "metadata"), "total_size", "ix", &total) == 0 &&
                  (size_t)total == bytes,
              "index.json has metadata.total_size (%lld)", total);
        json_decref(j);
        free(ix);
    }
    free(src);
    free(dst);
}

/* -------------------------------------------------- inspect rejects */

static int rewrite_weights(const char *dir, const char *tensor, int how) {
    char *p = w8_path_join(dir, "quant_model_weight_w8a8.safetensors");
    char *np = w8_path_join(dir, "new.safetensors");
    w8_st *st = w8_st_open(p);
    w8_stw *w = w8_stw_create(np);
    size_t n = w8_st_count(st);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const w8_tensor *t = w8_st_at(st, i);
        w8_dtype dt = t->dtype;
        if (how == 0 && !strcmp(t->name, tensor)) dt = W8_F32; /* wrong dtype (F16 -> F32) */
        if (how == 3 && !strcmp(t->name, tensor)) dt = W8_F32; /* same bytes, F32 (I32 -> F32) */
        rc = w8_stw_declare(w, t->name, dt, t->ndim, t->shape);
    }
    rc |= w8_stw_begin(w);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const w8_tensor *t = w8_st_at(st, i);
        void *d = w8_xmalloc(t->nbytes * 2 + 8);
        memcpy(d, t->data, t->nbytes);
        size_t nb = t->nbytes;
        if (!strcmp(t->name, tensor)) {
            if (how == 0) {
                float f = w8_tensor_get_f32(t, 0);
                memcpy(d, &f, 4);
                nb = 4;
            } else if (how == 1) { /* different scale */
                ((uint16_t *)d)[0] = w8_f32_to_bf16(w8_tensor_get_f32(t, 0) * 1.5f);
            } else if (how == 2) { /* high bits in an I64 */
                ((int64_t *)d)[0] |= (int64_t)1 << 40;
            }
        }
        rc = w8_stw_write(w, t->name, d, nb);
        free(d);
    }
    rc |= w8_stw_finish(w);
    w8_st_close(st);
    rc |= rename(np, p);
    free(p);
    free(np);
    return rc;
}

static int copy_dir(const char *src, const char *dst) {
    w8_mkdir_p(dst);
    DIR *d = opendir(src);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *a = w8_path_join(src, e->d_name), *b = w8_path_join(dst, e->d_name);
        w8_copy_file(a, b);
        free(a);
        free(b);
    }
    closedir(d);
    return 0;
}

static void expect_invalid(const char *what, const char *dir, const char *needle) {
    w8_inspect_info info;
    int rc = w8_inspect_dir(dir, &info);
    int found = 0;
    for (int i = 0; rc == 0 && i < info.n_violations; i++)
        if (strstr(info.violations[i], needle)) found = 1;
    CHECK(rc == 0 && found, "inspect rejects %s (%d violations, e.g. \"%s\")", what,
          rc == 0 ? info.n_violations : -1,
          rc == 0 && info.n_violations ? info.violations[0] : w8_lasterr());
    if (rc == 0) w8_inspect_free(&info);
}

static void test_inspect_rejects(void) {
    char *f16 = tmp_path("stories260K-hf-f16"), *bf16 = tmp_path("stories260K-hf-bf16");
    char *d = tmp_path("broken");
    /* missing description entry */
    copy_dir(f16, d);
    char *dp = w8_path_join(d, "quant_model_description.json");
    json_t *j = w8_json_load_file(dp);
    json_object_del(j, "model.layers.3.mlp.up_proj.deq_scale");
    json_dump_file(j, dp, JSON_INDENT(2));
    json_decref(j);
    expect_invalid("a missing description entry", d, "no entry for tensor "
                   "'model.layers.3.mlp.up_proj.deq_scale'");
    /* an entry naming no tensor */
    j = w8_json_load_file(dp);
    json_object_set_new(j, "model.layers.9.mlp.up_proj.weight", json_string("W8A8"));
    json_dump_file(j, dp, JSON_INDENT(2));
    json_decref(j);
    expect_invalid("an entry naming no tensor", d, "names no tensor");
    /* model_quant_type */
    j = w8_json_load_file(dp);
    json_object_set_new(j, "model_quant_type", json_string("W8A16"));
    json_dump_file(j, dp, JSON_INDENT(2));
    json_decref(j);
    expect_invalid("a wrong model_quant_type", d, "model_quant_type");
    w8_rm_rf(d);
    /* wrong dtype (an F32 input_scale is a variant, msModelSlim's current saver) */
    copy_dir(f16, d);
    rewrite_weights(d, "model.layers.1.self_attn.o_proj.quant_bias", 3);
    expect_invalid("an F32 quant_bias", d, "o_proj.quant_bias: dtype F32, expected I32");
    w8_rm_rf(d);
    /* differing q/k/v scales (bf16 model) */
    copy_dir(bf16, d);
    rewrite_weights(d, "model.layers.2.self_attn.k_proj.input_scale", 1);
    expect_invalid("differing q/k/v input scales", d, "must share");
    w8_rm_rf(d);
    /* I64 with high bits */
    copy_dir(f16, d);
    rewrite_weights(d, "model.layers.4.mlp.gate_proj.deq_scale", 2);
    expect_invalid("an I64 deq_scale with upper bits set", d, "upper 32 bits");
    /* config whose quantize contradicts the description (none at all is a
     * variant: msModelSlim's current saver) */
    char *cp = w8_path_join(d, "config.json");
    j = w8_json_load_file(cp);
    json_object_set_new(j, "quantize", json_string("w8a8_dynamic"));
    json_dump_file(j, cp, JSON_INDENT(2));
    json_decref(j);
    expect_invalid("config.json with \"quantize\": \"w8a8_dynamic\"", d, "\"quantize\" is");
    w8_rm_rf(d);
    /* a float directory is summarized, not rejected */
    char *fl = model_dir("stories260K-hf-bf16");
    w8_inspect_info info;
    CHECK(w8_inspect_dir(fl, &info) == 0 && !info.quantized && info.n_violations == 0 &&
              info.n_lin_float == 35,
          "float directory: summary, no violations (%d float linear layers)", info.n_lin_float);
    w8_inspect_free(&info);
    free(fl);
    free(cp);
    free(dp);
    free(d);
    free(f16);
    free(bf16);
}

static void test_calib_file(void) {
    char *p = tmp_path("cal.txt");
    FILE *f = fopen(p, "wb");
    fputs("first line\r\n\n   \n{\"text\": \"json \\u4e2d\"}\n{\"inputs_pretokenized\": \"b\"}\n"
          "{\"text\": \"\"}\n{ not json }\nlast", f);
    fclose(f);
    w8_calib_set cs;
    int rc = w8_calib_load(p, &cs);
    CHECK(rc == 0 && cs.n == 5 && !strcmp(cs.text[0], "first line") &&
              !strcmp(cs.text[1], "json \xe4\xb8\xad") && !strcmp(cs.text[2], "b") &&
              !strcmp(cs.text[3], "{ not json }") && !strcmp(cs.text[4], "last"),
          "calibration file: plain, CRLF, JSON text/inputs_pretokenized, empty skipped (%d)",
          rc == 0 ? cs.n : -1);
    if (rc == 0) w8_calib_free(&cs);
    f = fopen(p, "wb");
    fputs("ok\n{\"text\": 5}\n", f);
    fclose(f);
    CHECK(w8_calib_load(p, &cs) == -1 && strstr(w8_lasterr(), "cal.txt:2:"),
          "JSON line with a non-string text refused naming the line: %s", w8_lasterr());
    f = fopen(p, "wb");
    fputs("\n\n", f);
    fclose(f);
    CHECK(w8_calib_load(p, &cs) == -1 && strstr(w8_lasterr(), "no calibration text"),
          "empty calibration file refused: %s", w8_lasterr());
    free(p);
}

/* ---------------------------------------------------- output config.json */

/* Writes text as DIR/config.json. */
static void put_config(const char *dir, const char *text) {
    char *p = w8_path_join(dir, "config.json");
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    free(p);
}

/* Quantizes a copy of model `name` whose config.json is `in`; the output's
 * config.json must be exactly `want`. */
static void config_case(const char *what, const char *name, const char *in, const char *want) {
    char *src = model_dir(name), *v = tmp_path("cfgtext-src"), *d = tmp_path("cfgtext-out");
    w8_rm_rf(v);
    make_variant(src, v, NULL, 1);
    put_config(v, in);
    int rc = quantize(v, d, 1, NULL);
    char *p = w8_path_join(d, "config.json");
    char *got = rc == 0 ? w8_read_file(p, 1 << 20, NULL) : NULL;
    CHECK(got && !strcmp(got, want), "output config.json: %s%s%s", what,
          got ? "" : " -- ", got ? "" : w8_lasterr());
    if (got && strcmp(got, want)) printf("# got:\n%s\n# want:\n%s\n", got, want);
    free(got);
    free(p);
    w8_rm_rf(v);
    w8_rm_rf(d);
    free(v);
    free(d);
    free(src);
}

#define STORIES_KEYS                                                                        \
    "  \"architectures\": [\n    \"LlamaForCausalLM\"\n  ],\n  \"hidden_size\": 64,\n"          \
    "  \"intermediate_size\": 172,\n  \"num_hidden_layers\": 5,\n  \"num_attention_heads\": 8,\n" \
    "  \"num_key_value_heads\": 4,\n  \"vocab_size\": 512,\n  \"max_position_embeddings\": 512,\n"

static void test_config_text(void) {
    /* transformers 5: dtype, rope_parameters, a quantization_config in the
     * middle; f32 becomes bf16 under the same key, nothing re-spelled */
    config_case("f32 5.x source: dtype changed in place, quantization_config dropped, 1e-05 kept",
                "stories260K-hf-f32",
                "{\n" STORIES_KEYS
                "  \"dtype\": \"float32\",\n"
                "  \"quantization_config\": {\"quant_method\": \"bitsandbytes\", \"load_in_8bit\": true},\n"
                "  \"rms_norm_eps\": 1e-05,\n"
                "  \"rope_parameters\": {\"rope_theta\": 10000, \"rope_type\": \"default\"},\n"
                "  \"tie_word_embeddings\": true\n}\n",
                "{\n" STORIES_KEYS
                "  \"dtype\": \"bfloat16\",\n"
                "  \"rms_norm_eps\": 1e-05,\n"
                "  \"rope_parameters\": {\"rope_theta\": 10000, \"rope_type\": \"default\"},\n"
                "  \"tie_word_embeddings\": true,\n  \"quantize\": \"w8a8\"\n}\n");
    /* transformers 4: torch_dtype; an existing quantize replaced; a compact,
     * tab-free layout copied as it is */
    config_case("f32 4.x source: torch_dtype changed, existing quantize replaced",
                "stories260K-hf-f32",
                "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":172,"
                "\"num_hidden_layers\":5,\"num_attention_heads\":8,\"num_key_value_heads\":4,"
                "\"vocab_size\":512,\"quantize\":\"none\",\"rms_norm_eps\":1e-05,\"torch_dtype\":\"float32\","
                "\"tie_word_embeddings\":true}",
                "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":172,"
                "\"num_hidden_layers\":5,\"num_attention_heads\":8,\"num_key_value_heads\":4,"
                "\"vocab_size\":512,\"quantize\":\"w8a8\",\"rms_norm_eps\":1e-05,\"torch_dtype\":\"bfloat16\","
                "\"tie_word_embeddings\":true}");
    config_case("f32 source with no dtype key: torch_dtype added once", "stories260K-hf-f32",
                "{\n" STORIES_KEYS "  \"tie_word_embeddings\": true\n}",
                "{\n" STORIES_KEYS
                "  \"tie_word_embeddings\": true,\n  \"quantize\": \"w8a8\",\n"
                "  \"torch_dtype\": \"bfloat16\"\n}");
    config_case("f16 source: only quantize added, a big integer kept as written", "stories260K-hf-f16",
                "{\n" STORIES_KEYS
                "  \"torch_dtype\": \"float16\",\n  \"x_max\": 1000000000000000019884624838656,\n"
                "  \"rms_norm_eps\": 1e-05,\n  \"tie_word_embeddings\": true\n}\n",
                "{\n" STORIES_KEYS
                "  \"torch_dtype\": \"float16\",\n  \"x_max\": 1000000000000000019884624838656,\n"
                "  \"rms_norm_eps\": 1e-05,\n  \"tie_word_embeddings\": true,\n"
                "  \"quantize\": \"w8a8\"\n}\n");
}

int main(void) {
    snprintf(tmp_root, sizeof tmp_root, "/tmp/w8a8-test-quantize-%ld", (long)getpid());
    w8_rm_rf(tmp_root);
    w8_mkdir_p(tmp_root);
    snprintf(calib_path, sizeof calib_path, "%s/corpus/tinystories-excerpt.txt", shared_dir());
    test_act_params();
    test_quant_linear();
    test_calib_file();
    w8_calib_set cs;
    w8_calib_builtin(&cs);
    CHECK(cs.n >= 45 && cs.n <= 60, "built-in calibration set has %d samples", cs.n);
    int zh = 0;
    for (int i = 0; i < cs.n; i++) zh += (unsigned char)cs.text[i][0] >= 0xe0;
    CHECK(zh >= 5, "built-in set includes Chinese samples (%d)", zh);
    w8_calib_free(&cs);
    test_model("stories260K-hf-f16", 1, 0);
    test_model("stories260K-hf-bf16", 0, 0);
    test_model("stories260K-as-qwen2-bf16-zero-bias", 0, 1);
    test_model("stories260K-as-qwen2-bf16-random-bias", 0, 1);
    test_bad_sources();
    test_options();
    test_inspect_rejects();
    test_config_text();
    w8_rm_rf(tmp_root);
    TEST_DONE();
}

/*
 * test_synth.c - the random-model writer: normal statistics, determinism
 * across thread counts and block boundaries, and that a tiny model (single
 * file and sharded) loads back through w8_config and the safetensors reader
 * with the shapes its config implies.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/config.h"
#include "../src/model.h"
#include "../src/safetensors.h"
#include "../src/synth.h"
#include "../src/util.h"
#include "test.h"

static void test_normal(void) {
    size_t n = 1 << 20;
    float *a = malloc(n * 4), *b = malloc(n * 4);
    w8_set_threads(1);
    w8_synth_normal(7, 3, 0, 1.0f, a, n);
    w8_set_threads(2);
    w8_synth_normal(7, 3, 0, 1.0f, b, n);
    w8_set_threads(0);
    CHECK(!memcmp(a, b, n * 4), "normals independent of the thread count");
    w8_synth_normal(7, 3, 100001, 1.0f, b, 70000);
    CHECK(!memcmp(a + 100001, b, 70000 * 4), "normals independent of block boundaries");
    w8_synth_normal(8, 3, 0, 1.0f, b, 1000);
    CHECK(memcmp(a, b, 1000 * 4) != 0, "another seed gives other numbers");
    w8_synth_normal(7, 4, 0, 1.0f, b, 1000);
    CHECK(memcmp(a, b, 1000 * 4) != 0, "another tensor gives other numbers");
    double m = 0, v = 0, k = 0;
    size_t t3 = 0, t4 = 0;
    for (size_t i = 0; i < n; i++) {
        m += a[i];
        t3 += fabsf(a[i]) > 3.0f;
        t4 += fabsf(a[i]) > 4.0f;
    }
    /* P(|z| > 3) = 0.0027 (2831 of 2^20, sd 53); P(|z| > 4) = 6.3e-5 (66, sd 8) */
    CHECK(t3 > 2600 && t3 < 3060 && t4 > 35 && t4 < 100, "normal tails: %zu beyond 3 sd, %zu beyond 4 sd",
          t3, t4);
    m /= (double)n;
    for (size_t i = 0; i < n; i++) {
        double d = a[i] - m;
        v += d * d;
        k += d * d * d * d;
    }
    v /= (double)n;
    k = k / (double)n / (v * v);
    CHECK(fabs(m) < 0.005 && fabs(sqrt(v) - 1) < 0.005 && fabs(k - 3) < 0.05,
          "standard normal: mean %.4f std %.4f kurtosis %.3f", m, sqrt(v), k);
    free(a);
    free(b);
}

static int count_entries(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    if (d) closedir(d);
    return n;
}

/* Every tensor the config implies, with its shape; norms all 1, biases 0. */
static void check_model(const char *dir, const char *what) {
    w8_config c;
    int rc = w8_config_load(dir, &c);
    CHECK(rc == 0, "%s: config loads (%s)", what, rc ? w8_lasterr() : "");
    if (rc) return;
    CHECK(c.arch == W8_ARCH_QWEN2 && c.hidden == 32 && c.n_layers == 2 && c.n_heads == 4 &&
              c.n_kv_heads == 2 && c.head_dim == 8 && c.intermediate == 96 && c.vocab == 151936 &&
              c.tie_embeddings && c.torch_dtype == W8_F16 && c.rope_theta == 1e6f &&
              c.rms_eps == 1e-6f && c.max_pos == 32768,
          "%s: config values", what);
    CHECK(c.bos_id == 151643 && c.n_eos == 2 && c.eos_ids[0] == 151645 && c.eos_ids[1] == 151643,
          "%s: generation_config eos ids", what);
    w8_st *st = w8_st_open_dir(dir);
    CHECK(st != NULL, "%s: weights open (%s)", what, st ? "" : w8_lasterr());
    if (!st) return;
    int ok = 1;
    int64_t emb[2] = {c.vocab, c.hidden}, q[2] = {32, 32}, kv[2] = {16, 32}, up[2] = {96, 32},
            down[2] = {32, 96}, h[1] = {32}, kvb[1] = {16};
    ok &= w8_st_need(st, "model.embed_tokens.weight", W8_F16, 2, emb) != NULL;
    ok &= w8_st_need(st, "model.norm.weight", W8_F16, 1, h) != NULL;
    char name[96];
    for (int l = 0; l < c.n_layers; l++) {
#define NEED(fmt, nd, shape) \
    (snprintf(name, sizeof name, fmt, l), w8_st_need(st, name, W8_F16, nd, shape) != NULL)
        ok &= NEED("model.layers.%d.self_attn.q_proj.weight", 2, q);
        ok &= NEED("model.layers.%d.self_attn.k_proj.weight", 2, kv);
        ok &= NEED("model.layers.%d.self_attn.v_proj.weight", 2, kv);
        ok &= NEED("model.layers.%d.self_attn.o_proj.weight", 2, q);
        ok &= NEED("model.layers.%d.self_attn.q_proj.bias", 1, h);
        ok &= NEED("model.layers.%d.self_attn.k_proj.bias", 1, kvb);
        ok &= NEED("model.layers.%d.self_attn.v_proj.bias", 1, kvb);
        ok &= NEED("model.layers.%d.mlp.gate_proj.weight", 2, up);
        ok &= NEED("model.layers.%d.mlp.up_proj.weight", 2, up);
        ok &= NEED("model.layers.%d.mlp.down_proj.weight", 2, down);
        ok &= NEED("model.layers.%d.input_layernorm.weight", 1, h);
        ok &= NEED("model.layers.%d.post_attention_layernorm.weight", 1, h);
#undef NEED
    }
    CHECK(ok, "%s: every tensor with its shape (%s)", what, ok ? "" : w8_lasterr());
    CHECK(w8_st_count(st) == 2 + 12 * 2 && !w8_st_find(st, "lm_head.weight"),
          "%s: %zu tensors, tied (no lm_head)", what, w8_st_count(st));
    const w8_tensor *n1 = w8_st_find(st, "model.layers.1.post_attention_layernorm.weight");
    const w8_tensor *b0 = w8_st_find(st, "model.layers.0.self_attn.v_proj.bias");
    CHECK(n1 && b0 && w8_tensor_get_f32(n1, 31) == 1.0f && w8_tensor_get_f32(b0, 15) == 0.0f,
          "%s: norms 1, biases 0", what);
    const w8_tensor *e = w8_st_find(st, "model.embed_tokens.weight");
    double s2 = 0;
    for (size_t i = 0; i < e->numel; i += 7) s2 += pow(w8_tensor_get_f32(e, i), 2);
    double sd = sqrt(s2 / (double)((e->numel + 6) / 7));
    CHECK(fabs(sd - 0.02) < 0.0005, "%s: embedding std %.5f ~ 0.02", what, sd);
    w8_st_close(st);
}

static void test_write(void) {
    char root[] = "/tmp/w8synth-XXXXXX";
    if (!mkdtemp(root)) return;
    char *one = w8_path_join(root, "one"), *sh = w8_path_join(root, "sharded");
    w8_synth_opts o = {0};
    o.shape = w8_synth_find_shape("tiny");
    o.dtype = W8_F16;
    o.seed = 5;
    o.quiet = 1;
    int rc = o.shape ? w8_synth_write(&o, one) : -1;
    CHECK(rc == 0, "tiny model written %s", rc ? w8_lasterr() : "");
    check_model(one, "single file");
    o.shard_gb = 0.004; /* the 9.7 MB embedding alone, then the rest */
    rc = w8_synth_write(&o, sh);
    CHECK(rc == 0, "tiny model written sharded %s", rc ? w8_lasterr() : "");
    char *ix = w8_path_join(sh, "model.safetensors.index.json");
    char *s1 = w8_path_join(sh, "model-00001-of-00002.safetensors");
    CHECK(w8_file_exists(ix) && w8_file_exists(s1), "sharded: index and model-00001-of-00002");
    check_model(sh, "sharded");
    w8_st *a = w8_st_open_dir(one), *b = w8_st_open_dir(sh);
    int same = a && b && w8_st_count(a) == w8_st_count(b);
    for (size_t i = 0; same && i < w8_st_count(a); i++) {
        const w8_tensor *x = w8_st_at(a, i), *y = w8_st_find(b, x->name);
        same = y && y->nbytes == x->nbytes && !memcmp(x->data, y->data, x->nbytes);
    }
    CHECK(same, "sharded and single-file tensors are identical");
    w8_st_close(a);
    w8_st_close(b);

    CHECK(w8_synth_write(&o, one) != 0 && strstr(w8_lasterr(), "already exists"),
          "refuses a non-empty output dir: %s", w8_lasterr());
    char *bad = w8_path_join(root, "bad");
    o.tokenizer_json = "/nonexistent/tokenizer.json";
    CHECK(w8_synth_write(&o, bad) != 0 && strstr(w8_lasterr(), "/nonexistent/tokenizer.json") &&
              !w8_file_exists(bad) && count_entries(root, "bad.w8a8-tmp-") == 0,
          "a failure leaves neither the dir nor its temporary: %s", w8_lasterr());
    /* the untied path (qwen2-7b writes lm_head.weight) on a custom small shape */
    static const w8_synth_shape untied = {"untied", 16, 1, 2, 1, 32, 1000, 0, 4096, 1, 4096, 10000.0, 0, 0};
    char *ud = w8_path_join(root, "untied");
    w8_synth_opts u = {.shape = &untied, .dtype = W8_BF16, .seed = 1, .quiet = 1};
    rc = w8_synth_write(&u, ud);
    CHECK(rc == 0, "untied model written %s", rc ? w8_lasterr() : "");
    w8_config c;
    w8_st *st = w8_st_open_dir(ud);
    int64_t lm[2] = {1000, 16}, kv[2] = {8, 16};
    CHECK(w8_config_load(ud, &c) == 0 && !c.tie_embeddings && c.vocab == 1000 && c.n_kv_heads == 1 &&
              c.torch_dtype == W8_BF16 && c.rope_theta == 10000.0f,
          "untied: config");
    CHECK(st && w8_st_need(st, "lm_head.weight", W8_BF16, 2, lm) &&
              w8_st_need(st, "model.layers.0.self_attn.v_proj.weight", W8_BF16, 2, kv) &&
              w8_st_count(st) == 2 + 12 + 1 &&
              memcmp(w8_st_find(st, "lm_head.weight")->data,
                     w8_st_find(st, "model.embed_tokens.weight")->data, 32) != 0,
          "untied: lm_head.weight [1000, 16], its own numbers");
    w8_st_close(st);
    free(ud);
    /* an untied Qwen3 shape: head_dim 16 with hidden 16 and 2 heads (q is 32 wide) */
    static const w8_synth_shape q3 = {"q3", 16, 1, 2, 1, 32, 1000, 0, 4096, 1, 0, 10000.0, 1, 16};
    ud = w8_path_join(root, "q3");
    u.shape = &q3;
    rc = w8_synth_write(&u, ud);
    CHECK(rc == 0, "untied Qwen3 written %s", rc ? w8_lasterr() : "");
    st = w8_st_open_dir(ud);
    int64_t q3q[2] = {32, 16}, q3o[2] = {16, 32}, q3n[1] = {16};
    CHECK(st && w8_st_need(st, "model.layers.0.self_attn.q_proj.weight", W8_BF16, 2, q3q) &&
              w8_st_need(st, "model.layers.0.self_attn.o_proj.weight", W8_BF16, 2, q3o) &&
              w8_st_need(st, "model.layers.0.self_attn.q_norm.weight", W8_BF16, 1, q3n) &&
              w8_st_need(st, "model.layers.0.self_attn.k_norm.weight", W8_BF16, 1, q3n) &&
              !w8_st_find(st, "model.layers.0.self_attn.q_proj.bias") && w8_st_find(st, "lm_head.weight") &&
              w8_st_count(st) == 2 + 11 + 1,
          "Qwen3: q_proj [32, 16], o_proj [16, 32], q_norm / k_norm [16], no bias, lm_head");
    w8_st_close(st);
    w8_model *qm = w8_model_load(ud);
    CHECK(qm && qm->cfg.arch == W8_ARCH_QWEN3 && qm->cfg.head_dim == 16 && !qm->cfg.tie_embeddings &&
              qm->layers[0].q_norm && qm->layers[0].q_norm[0] == 1.0f,
          "the Qwen3 directory loads (%s)", qm ? "Qwen3ForCausalLM" : w8_lasterr());
    w8_model_free(qm);
    free(ud);
    CHECK(w8_synth_find_shape("qwen9") == NULL && strstr(w8_lasterr(), "qwen2.5-0.5b"),
          "unknown shape lists the known ones: %s", w8_lasterr());
    free(one);
    free(sh);
    free(ix);
    free(s1);
    free(bad);
    w8_rm_rf(root);
}

/* Parameter counts of the real models (from their model cards / safetensors). */
static void test_shapes(void) {
    static const struct {
        const char *name;
        size_t params;
    } real[] = {{"qwen2.5-0.5b", 494032768}, {"qwen2.5-1.5b", 1543714304}, {"qwen2-7b", 7615616512},
                {"qwen3-0.6b", 596049920},   {"qwen3-8b", 8190735360}};
    for (int i = 0; i < 5; i++) {
        const w8_synth_shape *s = w8_synth_find_shape(real[i].name);
        CHECK(s && w8_synth_numel(s) == real[i].params, "%s has %zu parameters like the real model",
              real[i].name, s ? w8_synth_numel(s) : 0);
    }
    const w8_synth_shape *s = w8_synth_find_shape("qwen2-7b");
    CHECK(s && !s->tied && s->vocab == 152064 && s->hidden == 3584 && s->n_kv_heads == 4,
          "qwen2-7b: untied, vocab 152064");
    s = w8_synth_find_shape("qwen3-0.6b");
    CHECK(s && s->qwen3 && s->tied && s->head_dim == 128 && s->n_heads * s->head_dim != s->hidden &&
              s->n_layers == 28 && s->n_kv_heads == 8 && s->intermediate == 3072 && s->max_pos == 40960,
          "qwen3-0.6b: tied, head_dim 128 with hidden 1024 and 16 heads");
    s = w8_synth_find_shape("qwen3-8b");
    CHECK(s && s->qwen3 && !s->tied && s->hidden == 4096 && s->n_layers == 36 && s->intermediate == 12288,
          "qwen3-8b: untied, 36 layers");
}

/* synth --outliers: channel c of every RMSNorm times the factor, column c of
 * the layers reading it divided by it, everything else byte for byte. */
static void test_outliers(void) {
    char src[4096], tmpl[] = "/tmp/w8a8_test_outl_XXXXXX", out[4200];
    snprintf(src, sizeof src, "%s/models/stories260K-hf-f32", shared_dir());
    char *tmp = mkdtemp(tmpl);
    snprintf(out, sizeof out, "%s/m", tmp ? tmp : "/nonexistent");
    int rc = w8_synth_outliers(src, out, 4, 30.0f, 1);
    CHECK(rc == 0, "outlier copy written (%s)", rc ? w8_lasterr() : "");
    w8_st *a = w8_st_open_dir(src), *b = rc ? NULL : w8_st_open_dir(out);
    if (a && b) {
        int H = (int)w8_st_find(a, "model.layers.0.input_layernorm.weight")->shape[0];
        int step = H / 4, same = 0, scaled = 0, bad = 0, nt = 0;
        for (size_t i = 0; i < w8_st_count(a); i++) {
            const w8_tensor *ta = w8_st_at(a, i), *tb = w8_st_find(b, ta->name);
            if (!tb || tb->nbytes != ta->nbytes || tb->dtype != ta->dtype) {
                bad++;
                continue;
            }
            nt++;
            int norm = strstr(ta->name, "layernorm.weight") != NULL;
            int lin = strstr(ta->name, "q_proj.weight") || strstr(ta->name, "k_proj.weight") ||
                      strstr(ta->name, "v_proj.weight") || strstr(ta->name, "gate_proj.weight") ||
                      strstr(ta->name, "up_proj.weight");
            if (!norm && !lin) {
                same += !memcmp(ta->data, tb->data, ta->nbytes);
                bad += !!memcmp(ta->data, tb->data, ta->nbytes);
                continue;
            }
            for (size_t e = 0; e < ta->numel; e++) {
                int c = (int)(e % (size_t)H), out_ch = c % step == 1 % step;
                float x = w8_tensor_get_f32(ta, e), y = w8_tensor_get_f32(tb, e);
                float want = !out_ch ? x : norm ? x * 30.0f : x / 30.0f;
                bad += y != want;
            }
            scaled++;
        }
        CHECK(bad == 0 && nt == (int)w8_st_count(a) && scaled == 5 * 7 && same > 0,
              "outliers: %d norms/linears scaled on channels 1 + %dj, %d tensors unchanged (%d bad)",
              scaled, step, same, bad);
    }
    if (a) w8_st_close(a);
    if (b) w8_st_close(b);
    CHECK(w8_synth_outliers(src, out, 4, 30.0f, 1) != 0, "an existing output is refused");
    CHECK(w8_synth_outliers(src, "/tmp/w8a8-x-unused", 0, 30.0f, 1) != 0 &&
              w8_synth_outliers(src, "/tmp/w8a8-x-unused", 4, -1.0f, 1) != 0,
          "0 channels / a negative factor refused");
    if (tmp) w8_rm_rf(tmp);
}

/* w8_synth_outliers_at: only the named norm and the layers that read it
 * change; a name that is no norm weight of the model is refused. */
static void test_outliers_at(void) {
    static const struct {
        const char *norm;
        const char *changed[4];
    } cases[] = {
        {"model.layers.2.post_attention_layernorm.weight",
         {"model.layers.2.post_attention_layernorm.weight", "model.layers.2.mlp.gate_proj.weight",
          "model.layers.2.mlp.up_proj.weight", NULL}},
        {"model.layers.0.input_layernorm.weight",
         {"model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_proj.weight",
          "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.v_proj.weight"}},
    };
    char src[4096], tmpl[] = "/tmp/w8a8_test_outl_at_XXXXXX", out[4200];
    snprintf(src, sizeof src, "%s/models/stories260K-hf-f32", shared_dir());
    char *tmp = mkdtemp(tmpl);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(out, sizeof out, "%s/m%zu", tmp ? tmp : "/nonexistent", k);
        int rc = w8_synth_outliers_at(src, out, cases[k].norm, 2, 100.0f, 5);
        w8_st *a = w8_st_open_dir(src), *b = rc ? NULL : w8_st_open_dir(out);
        int changed = 0, wrong = 0, want = 0;
        while (want < 4 && cases[k].changed[want]) want++;
        for (size_t i = 0; a && b && i < w8_st_count(a); i++) {
            const w8_tensor *ta = w8_st_at(a, i), *tb = w8_st_find(b, ta->name);
            int is_changed = !tb || tb->nbytes != ta->nbytes || memcmp(ta->data, tb->data, ta->nbytes);
            int should = 0;
            for (int j = 0; j < want; j++) should |= !strcmp(ta->name, cases[k].changed[j]);
            changed += is_changed;
            wrong += is_changed != should;
        }
        CHECK(rc == 0 && a && b && changed == want && wrong == 0,
              "outliers at %s: exactly it and its %d readers changed (%d changed, %d wrong)",
              cases[k].norm, want - 1, changed, wrong);
        if (a) w8_st_close(a);
        if (b) w8_st_close(b);
    }
    snprintf(out, sizeof out, "%s/bad", tmp ? tmp : "/nonexistent");
    int rc = w8_synth_outliers_at(src, out, "model.embed_tokens.weight", 2, 100.0f, 5);
    CHECK(rc != 0 && strstr(w8_lasterr(), "no norm weight 'model.embed_tokens.weight'") &&
              access(out, F_OK) != 0,
          "a tensor that is no norm is refused, nothing written (%s)", w8_lasterr());
    if (tmp) w8_rm_rf(tmp);
}

int main(void) {
    test_shapes();
    test_outliers();
    test_outliers_at();
    test_normal();
    test_write();
    TEST_DONE();
}

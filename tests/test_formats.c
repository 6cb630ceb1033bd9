/*
 * test_formats.c - what the consumers load, and what other tools write.
 *
 *   - our output (stories260K fp16, bf16, f32 -> bf16, Qwen2 with bias,
 *     Qwen2 with SmoothQuant): the
 *     description has "lm_head.weight" and, for these tied models, an
 *     lm_head.weight tensor equal to the embedding; fused groups of one
 *     type; no quantization_config; inspect says all three consumers load;
 *   - each consumer rule broken in a copy of that output (one change each):
 *     inspect names the rule for exactly the consumers it concerns, and the
 *     command's exit status is 1 only when FORMAT.md itself is broken;
 *   - each variant of FORMAT.md's "Variants a reader must accept" built from
 *     our output (weights file names, an index, files without an index, F32
 *     input_scale/offset, weight_scale/offset, description keys and file
 *     names, no "quantize"): inspect reports a variant and no violation, and
 *     `w8a8 run` gives the same greedy tokens as on the unmodified output;
 *   - the one layer reader (w8_qlayer_read): a W8A8_DYNAMIC layer is read,
 *     and an I64 deq_scale with upper bits set is refused by the runtime too.
 *
 * The command-line checks run the w8a8 binary of the same build (found
 * next to this test's directory: build/w8a8 or build/asan/w8a8).
 */
#include <dirent.h>
#include <libgen.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/inspect.h"
#include "../src/json.h"
#include "../src/model.h"
#include "../src/qlayer.h"
#include "../src/quant/quantize.h"
#include "../src/safetensors.h"
#include "../src/util.h"
#include "test.h"

static char tmp_root[256];
static char calib_path[512];
static char bin[1024];

static char *tmp_path(const char *name) { return w8_path_join(tmp_root, name); }

static char *model_dir(const char *name) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s/models/%s", shared_dir(), name);
    return w8_xstrdup(buf);
}

static int quantize(const char *src, const char *dst, int smooth) {
    w8_quant_opts o;
    w8_quant_opts_init(&o);
    o.smooth = smooth;
    o.model_path = src;
    o.save_path = dst;
    o.calib_file = calib_path;
    o.calib_samples = 3;
    o.calib_seq_len = 48;
    w8_quant_report rep;
    return w8_quantize(&o, &rep);
}

static void copy_dir(const char *src, const char *dst) {
    w8_rm_rf(dst);
    w8_mkdir_p(dst);
    DIR *d = opendir(src);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *a = w8_path_join(src, e->d_name), *b = w8_path_join(dst, e->d_name);
        w8_copy_file(a, b);
        free(a);
        free(b);
    }
    if (d) closedir(d);
}

static json_t *jload(const char *dir, const char *name) {
    char *p = w8_path_join(dir, name);
    json_t *j = w8_json_load_file(p);
    free(p);
    return j;
}

static void jsave(const char *dir, const char *name, json_t *j) {
    char *p = w8_path_join(dir, name);
    json_dump_file(j, p, JSON_INDENT(2));
    free(p);
    json_decref(j);
}

/* ------------------------------------------------ editable tensor sets */

typedef struct {
    char *name;
    w8_dtype dt;
    int ndim;
    int64_t shape[2];
    void *data;
    size_t nbytes;
} ntensor;

typedef struct {
    ntensor *t;
    int n;
} tset;

static void tset_add(tset *s, const char *name, w8_dtype dt, int ndim, const int64_t *shape,
                     const void *data) {
    s->t = w8_xrealloc(s->t, (size_t)(s->n + 1) * sizeof *s->t);
    ntensor *t = &s->t[s->n++];
    t->name = w8_xstrdup(name);
    t->dt = dt;
    t->ndim = ndim;
    size_t nb = w8_dtype_size(dt);
    for (int i = 0; i < ndim; i++) nb *= (size_t)(t->shape[i] = shape[i]);
    t->nbytes = nb;
    t->data = w8_xmalloc(nb ? nb : 1);
    if (data) memcpy(t->data, data, nb);
    else memset(t->data, 0, nb);
}

static int tset_load(tset *s, const char *dir) {
    memset(s, 0, sizeof *s);
    w8_st *st = w8_st_open_dir(dir);
    if (!st) return -1;
    for (size_t i = 0; i < w8_st_count(st); i++) {
        const w8_tensor *t = w8_st_at(st, i);
        tset_add(s, t->name, t->dtype, t->ndim, t->shape, t->data);
    }
    w8_st_close(st);
    return 0;
}

static ntensor *tset_find(tset *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->t[i].name, name)) return &s->t[i];
    return NULL;
}

static void tset_del(tset *s, const char *name) {
    ntensor *t = tset_find(s, name);
    if (!t) return;
    free(t->name);
    free(t->data);
    *t = s->t[--s->n];
}

static void tset_free(tset *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->t[i].name);
        free(s->t[i].data);
    }
    free(s->t);
    memset(s, 0, sizeof *s);
}

/* Remove the directory's weights (every *.safetensors and index). */
static void drop_weights(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if ((n > 12 && !strcmp(e->d_name + n - 12, ".safetensors")) ||
            (n > 23 && !strcmp(e->d_name + n - 23, ".safetensors.index.json"))) {
            char *p = w8_path_join(dir, e->d_name);
            unlink(p);
            free(p);
        }
    }
    if (d) closedir(d);
}

/* Write tensors [from, to) of s as DIR/FILE (largest elements first, so each
 * is aligned); adds each name -> file to weight_map when given. */
static int write_part(const tset *s, int from, int to, const char *dir, const char *file,
                      json_t *weight_map) {
    char *p = w8_path_join(dir, file);
    w8_stw *w = w8_stw_create(p);
    free(p);
    if (!w) return -1;
    int rc = 0;
    for (size_t sz = 8; sz >= 1; sz /= 2)
        for (int i = from; i < to && rc == 0; i++)
            if (w8_dtype_size(s->t[i].dt) == sz)
                rc = w8_stw_declare(w, s->t[i].name, s->t[i].dt, s->t[i].ndim, s->t[i].shape);
    if (rc == 0) rc = w8_stw_begin(w);
    for (size_t sz = 8; sz >= 1; sz /= 2)
        for (int i = from; i < to && rc == 0; i++)
            if (w8_dtype_size(s->t[i].dt) == sz) {
                rc = w8_stw_write(w, s->t[i].name, s->t[i].data, s->t[i].nbytes);
                if (weight_map) json_object_set_new(weight_map, s->t[i].name, json_string(file));
            }
    if (rc == 0) return w8_stw_finish(w);
    w8_stw_abort(w);
    return -1;
}

/* Replace the directory's weights by s: one file, or two halves with an
 * index named index (NULL: two files and no index). */
static int tset_save(const tset *s, const char *dir, const char *file) {
    drop_weights(dir);
    return write_part(s, 0, s->n, dir, file, NULL);
}

static int tset_save_split(const tset *s, const char *dir, const char *a, const char *b,
                           const char *index) {
    drop_weights(dir);
    json_t *wm = json_object();
    int rc = write_part(s, 0, s->n / 2, dir, a, wm) | write_part(s, s->n / 2, s->n, dir, b, wm);
    if (index) {
        json_t *root = json_object();
        json_object_set_new(root, "metadata", json_object());
        json_object_set(root, "weight_map", wm);
        jsave(dir, index, root);
    }
    json_decref(wm);
    return rc;
}

/* ------------------------------------------------ command line */

/* The greedy ids `w8a8 run` prints for DIR (malloc'd), or NULL. */
static char *run_ids(const char *dir) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "'%s' run --model_path '%s' --input_texts 'Once upon a time' --max_output_length 24 "
             "--temperature 0 --print_ids -t 1 2>&1",
             bin, dir);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    char line[4096], *ids = NULL;
    while (fgets(line, sizeof line, p))
        if (!strncmp(line, "[0] ids:", 8) && !ids) ids = w8_xstrdup(line);
    int st = pclose(p);
    if (st != 0) {
        free(ids);
        return NULL;
    }
    return ids;
}

/* Exit status of `w8a8 inspect DIR` (output to OUT when given). */
static int inspect_status(const char *dir, const char *out) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' >'%s' 2>&1", bin, dir, out ? out : "/dev/null");
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int file_has(const char *path, const char *needle) {
    size_t len;
    char *t = w8_read_file(path, 1 << 20, &len);
    int f = t && strstr(t, needle);
    free(t);
    return f;
}

/* ------------------------------------------------ our output */

static void test_output(const char *name, const char *dst, int smooth) {
    char *src = model_dir(name);
    int rc = quantize(src, dst, smooth);
    CHECK(rc == 0, "quantize %s: %s", name, rc ? w8_lasterr() : "ok");
    free(src);
    if (rc) return;
    json_t *d = jload(dst, "quant_model_description.json");
    const json_t *lh = json_object_get(d, "lm_head.weight");
    CHECK(json_is_string(lh) && !strcmp(json_string_value(lh), "FLOAT"),
          "%s: description has \"lm_head.weight\": \"FLOAT\" (tied model)", name);
    w8_st *st = w8_st_open_dir(dst);
    const w8_tensor *e = st ? w8_st_find(st, "model.embed_tokens.weight") : NULL;
    const w8_tensor *l = st ? w8_st_find(st, "lm_head.weight") : NULL;
    CHECK(e && l && e->dtype == l->dtype && e->nbytes == l->nbytes &&
              !memcmp(e->data, l->data, e->nbytes),
          "%s: lm_head.weight is the embedding's copy", name);
    /* fused groups: one value per group */
    int bad = 0;
    char k[200];
    for (int i = 0; i < 8; i++) {
        const char *g[5] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                            "mlp.gate_proj", "mlp.up_proj"};
        const char *v[5];
        for (int j = 0; j < 5; j++) {
            snprintf(k, sizeof k, "model.layers.%d.%s.weight", i, g[j]);
            v[j] = json_string_value(json_object_get(d, k));
        }
        if (!v[0]) break;
        bad += !v[1] || !v[2] || !v[4] || strcmp(v[0], v[1]) || strcmp(v[0], v[2]) ||
               !v[3] || strcmp(v[3], v[4]);
    }
    CHECK(!bad, "%s: q/k/v and gate/up have one description value each", name);
    json_decref(d);
    json_t *cfg = jload(dst, "config.json");
    CHECK(cfg && !json_object_get(cfg, "quantization_config"), "%s: no quantization_config",
          name);
    json_decref(cfg);
    w8_st_close(st);
    w8_inspect_info info;
    rc = w8_inspect_dir(dst, &info);
    int loads = rc == 0 && info.n_violations == 0;
    for (int c = 0; loads && c < W8_N_CONSUMERS; c++) loads = info.n_cons_fail[c] == 0;
    CHECK(loads, "%s: inspect: valid, and all three consumers load it (%s)", name,
          rc ? w8_lasterr()
             : info.n_violations ? info.violations[0]
             : info.n_cons_fail[0] ? info.cons_fail[0][0]
             : info.n_cons_fail[1] ? info.cons_fail[1][0]
             : info.n_cons_fail[2] ? info.cons_fail[2][0] : "ok");
    if (rc == 0) w8_inspect_free(&info);
    char *out = tmp_path("inspect.txt");
    CHECK(inspect_status(dst, out) == 0 && file_has(out, "consumer vllm-ascend A2/A3: loads") &&
              file_has(out, "consumer vllm-ascend 310P: loads") &&
              file_has(out, "consumer MindIE: loads"),
          "%s: `w8a8 inspect` exits 0 and prints one 'loads' line per consumer", name);
    free(out);
}

/* ------------------------------------------------ consumer rules */

/* inspect DIR: exactly the consumers in mask name rule (strict: and the
 * others load); violations (and the command's exit status 1) only when viol. */
static void expect_rule_x(const char *what, const char *dir, int mask, const char *rule, int viol,
                          int strict) {
    w8_inspect_info info;
    int rc = w8_inspect_dir(dir, &info);
    int ok = rc == 0 && (viol ? info.n_violations > 0 : info.n_violations == 0);
    for (int c = 0; ok && c < W8_N_CONSUMERS; c++) {
        int named = 0;
        for (int i = 0; i < info.n_cons_fail[c]; i++)
            named |= strstr(info.cons_fail[c][i], rule) != NULL;
        ok = (mask >> c & 1) ? named : strict ? info.n_cons_fail[c] == 0 : !named;
    }
    CHECK(ok, "%s: inspect names '%s' for %s%s%s%s (%d violations)", what, rule,
          mask & 1 ? "vllm-ascend A2/A3 " : "", mask & 2 ? "vllm-ascend 310P " : "",
          mask & 4 ? "MindIE " : "", mask == 7 ? "(all)" : "only", rc ? -1 : info.n_violations);
    if (rc == 0) w8_inspect_free(&info);
    char *out = tmp_path("inspect.txt");
    int st = inspect_status(dir, out);
    char line[256];
    int c0 = mask & 4 ? W8_CONS_MINDIE : mask & 1 ? W8_CONS_VLLM : W8_CONS_VLLM_310P;
    snprintf(line, sizeof line, "consumer %s: will NOT load: %s", w8_consumer_names[c0], rule);
    CHECK(st == (viol ? 1 : 0) && file_has(out, line), "%s: `w8a8 inspect` exits %d and prints "
          "\"%s...\"", what, viol, line);
    free(out);
}

static void expect_rule(const char *what, const char *dir, int mask, const char *rule, int viol) {
    expect_rule_x(what, dir, mask, rule, viol, 1);
}

/* Copy of our output with one tensor set edit and a description edit. */
static void fresh(const char *from, const char *dir, tset *s, json_t **desc) {
    copy_dir(from, dir);
    tset_load(s, dir);
    *desc = jload(dir, "quant_model_description.json");
}

static void commit(const char *dir, tset *s, json_t *desc) {
    tset_save(s, dir, "quant_model_weight_w8a8.safetensors");
    tset_free(s);
    jsave(dir, "quant_model_description.json", desc);
}

/* Turn layer prefix (W8A8) into a W8A8_DYNAMIC layer with the same weights:
 * weight_scale = deq_scale / input_scale, weight_offset zeros. */
static void make_dynamic(tset *s, json_t *desc, const char *prefix, int fp16) {
    char n[256];
    snprintf(n, sizeof n, "%s.weight", prefix);
    ntensor *w = tset_find(s, n);
    int64_t rows = w->shape[0], shape[2] = {rows, 1};
    json_object_set_new(desc, n, json_string("W8A8_DYNAMIC"));
    snprintf(n, sizeof n, "%s.input_scale", prefix);
    ntensor *is = tset_find(s, n);
    float sc = fp16 ? w8_f16_to_f32(*(uint16_t *)is->data) : w8_bf16_to_f32(*(uint16_t *)is->data);
    snprintf(n, sizeof n, "%s.deq_scale", prefix);
    ntensor *dq = tset_find(s, n);
    float *ws = w8_xmalloc((size_t)rows * sizeof(float));
    for (int64_t i = 0; i < rows; i++) {
        float d;
        memcpy(&d, (char *)dq->data + (fp16 ? 8 : 4) * i, 4);
        ws[i] = d / sc;
    }
    static const char *const drop[] = {"input_scale", "input_offset", "quant_bias", "deq_scale"};
    for (int i = 0; i < 4; i++) {
        snprintf(n, sizeof n, "%s.%s", prefix, drop[i]);
        tset_del(s, n);
        json_object_del(desc, n);
    }
    snprintf(n, sizeof n, "%s.weight_scale", prefix);
    tset_add(s, n, W8_F32, 2, shape, ws);
    json_object_set_new(desc, n, json_string("W8A8_DYNAMIC"));
    snprintf(n, sizeof n, "%s.weight_offset", prefix);
    tset_add(s, n, W8_F32, 2, shape, NULL);
    json_object_set_new(desc, n, json_string("W8A8_DYNAMIC"));
    free(ws);
}

static void test_rules(const char *q16, const char *qbf) {
    char *d = tmp_path("rule");
    tset s;
    json_t *desc;
    /* lm_head.weight: what the seed wrote for a tied model (no key, no tensor) */
    fresh(q16, d, &s, &desc);
    tset_del(&s, "lm_head.weight");
    json_object_del(desc, "lm_head.weight");
    commit(d, &s, desc);
    expect_rule("no lm_head.weight key", d, 3, "lm_head.weight key", 0);

    /* fused group of one type: k_proj of layer 1 float, q/v W8A8 */
    fresh(q16, d, &s, &desc);
    static const char *const parts[] = {"weight", "input_scale", "input_offset", "quant_bias",
                                        "deq_scale"};
    char n[200];
    for (int i = 0; i < 5; i++) {
        snprintf(n, sizeof n, "model.layers.1.self_attn.k_proj.%s", parts[i]);
        tset_del(&s, n);
        json_object_del(desc, n);
    }
    char *src = model_dir("stories260K-hf-f16");
    w8_st *fs = w8_st_open_dir(src);
    const w8_tensor *kf = fs ? w8_st_find(fs, "model.layers.1.self_attn.k_proj.weight") : NULL;
    if (kf) tset_add(&s, kf->name, kf->dtype, kf->ndim, kf->shape, kf->data);
    json_object_set_new(desc, "model.layers.1.self_attn.k_proj.weight", json_string("FLOAT"));
    w8_st_close(fs);
    free(src);
    commit(d, &s, desc);
    expect_rule("k_proj float, q/v W8A8 (FORMAT.md: fused groups share one type)", d, 3, "fused group of one type", 1);

    /* equal scales in a fused group (bf16 model) */
    fresh(qbf, d, &s, &desc);
    ntensor *t = tset_find(&s, "model.layers.2.self_attn.k_proj.input_scale");
    *(uint16_t *)t->data = w8_f32_to_bf16(w8_bf16_to_f32(*(uint16_t *)t->data) * 1.5f);
    commit(d, &s, desc);
    expect_rule("k_proj's input_scale differs", d, 4, "equal scales in fused groups", 1);

    /* quantization_config in config.json */
    copy_dir(q16, d);
    json_t *cfg = jload(d, "config.json");
    json_t *qc = json_object();
    json_object_set_new(qc, "quant_method", json_string("ascend"));
    json_object_set_new(cfg, "quantization_config", qc);
    jsave(d, "config.json", cfg);
    expect_rule("config.json with quantization_config", d, 3, "no quantization_config", 0);

    /* neither quantize nor model_quant_type */
    copy_dir(q16, d);
    cfg = jload(d, "config.json");
    json_object_del(cfg, "quantize");
    jsave(d, "config.json", cfg);
    desc = jload(d, "quant_model_description.json");
    json_object_del(desc, "model_quant_type");
    jsave(d, "quant_model_description.json", desc);
    expect_rule("no quantize, no model_quant_type", d, 4, "quantize or model_quant_type", 1);

    /* a tensor the architecture does not define */
    fresh(q16, d, &s, &desc);
    int64_t four[1] = {4};
    tset_add(&s, "model.layers.0.self_attn.extra.weight", W8_F16, 1, four, NULL);
    json_object_set_new(desc, "model.layers.0.self_attn.extra.weight", json_string("FLOAT"));
    commit(d, &s, desc);
    expect_rule("an unknown tensor name", d, 3, "no unknown tensor names", 0);

    /* a missing tensor */
    fresh(q16, d, &s, &desc);
    tset_del(&s, "model.layers.2.post_attention_layernorm.weight");
    json_object_del(desc, "model.layers.2.post_attention_layernorm.weight");
    commit(d, &s, desc);
    expect_rule("a missing norm", d, 7, "no missing tensors", 1);

    /* W8A8 and W8A8_DYNAMIC layers in one directory */
    fresh(qbf, d, &s, &desc);
    make_dynamic(&s, desc, "model.layers.0.mlp.gate_proj", 0);
    make_dynamic(&s, desc, "model.layers.0.mlp.up_proj", 0);
    commit(d, &s, desc);
    expect_rule_x("W8A8 mixed with W8A8_DYNAMIC", d, 4, "one quantization type", 0, 0);
    expect_rule_x("W8A8_DYNAMIC linear layers", d, 2, "no W8A8_DYNAMIC linear layers", 0, 0);
    w8_inspect_info info;
    CHECK(w8_inspect_dir(d, &info) == 0 && info.n_cons_fail[W8_CONS_VLLM] == 0 &&
              info.n_lin_dynamic == 2,
          "W8A8 mixed with W8A8_DYNAMIC: vllm-ascend A2/A3 loads it (per-layer types)");
    w8_inspect_free(&info);

    /* the one reader: the dynamic layer as the runtime will read it */
    w8_st *st = w8_st_open_dir(d);
    desc = jload(d, "quant_model_description.json");
    w8_qlayer l;
    int rc = w8_qlayer_read(st, desc, "model.layers.0.mlp.up_proj", -1, -1, W8_BF16, &l);
    CHECK(rc == 0 && l.type == W8_QT_W8A8_DYNAMIC && l.weight_scale && l.weight_offset &&
              l.weight_scale->ndim == 2 && !l.input_scale && !l.deq_scale && l.variants == 0,
          "qlayer: a W8A8_DYNAMIC layer is read (%s)", rc ? w8_lasterr() : "ok");
    w8_qlayer_free(&l);
    json_decref(desc);
    w8_st_close(st);
    free(d);
}

/* The runtime refuses what inspect calls a violation (one reader). */
static void test_runtime_refuses(const char *q16) {
    char *d = tmp_path("refuse");
    tset s;
    json_t *desc;
    fresh(q16, d, &s, &desc);
    ntensor *t = tset_find(&s, "model.layers.4.mlp.gate_proj.deq_scale");
    ((int64_t *)t->data)[3] |= (int64_t)1 << 40;
    commit(d, &s, desc);
    w8_model *m = w8_model_load(d);
    CHECK(!m && strstr(w8_lasterr(), "gate_proj.deq_scale[3]: int64 has upper 32 bits set"),
          "runtime refuses an I64 deq_scale with upper bits set: %s", m ? "loaded" : w8_lasterr());
    w8_model_free(m);
    /* a W8A8_DYNAMIC value next to int8 tensors is never read as float */
    fresh(q16, d, &s, &desc);
    make_dynamic(&s, desc, "model.layers.0.self_attn.o_proj", 1);
    commit(d, &s, desc);
    m = w8_model_load(d);
    w8_st *st = w8_st_open_dir(d);
    desc = jload(d, "quant_model_description.json");
    w8_qlayer l;
    int rc = w8_qlayer_read(st, desc, "model.layers.0.self_attn.o_proj", -1, -1, W8_F16, &l);
    CHECK(rc == 0 && (m || strstr(w8_lasterr(), "W8A8_DYNAMIC")),
          "a W8A8_DYNAMIC o_proj (fp16 model) passes the reader, and the runtime loads it or says "
          "W8A8_DYNAMIC (%s)", m ? "loaded" : w8_lasterr());
    w8_qlayer_free(&l);
    json_decref(desc);
    w8_st_close(st);
    w8_model_free(m);
    free(d);
}

/* ------------------------------------------------ variants */

static void expect_variant(const char *what, const char *dir, const char *needle,
                           const char *want_ids) {
    w8_inspect_info info;
    int rc = w8_inspect_dir(dir, &info);
    int found = 0, cons_fail = 0;
    for (int i = 0; rc == 0 && i < info.n_variants; i++)
        found |= strstr(info.variants[i], needle) != NULL;
    for (int c = 0; rc == 0 && c < W8_N_CONSUMERS; c++) cons_fail += info.n_cons_fail[c];
    CHECK(rc == 0 && found && info.n_violations == 0 && cons_fail == 0,
          "%s: inspect reports the variant '%s', no violation, consumers load (%s)", what, needle,
          rc ? w8_lasterr() : info.n_violations ? info.violations[0] : "ok");
    if (rc == 0) w8_inspect_free(&info);
    CHECK(inspect_status(dir, NULL) == 0, "%s: `w8a8 inspect` exits 0", what);
    char *ids = run_ids(dir);
    CHECK(ids && want_ids && !strcmp(ids, want_ids), "%s: run gives the same greedy ids", what);
    free(ids);
}

static void test_variants(const char *label, const char *q, int fp16) {
    char *d = tmp_path("variant"), what[160];
    char *ref = run_ids(q);
    CHECK(ref != NULL, "%s: run on our output (%s)", label, ref ? "ok" : "failed");
    tset s;
    json_t *desc;

    snprintf(what, sizeof what, "%s, weights renamed", label);
    fresh(q, d, &s, &desc);
    json_decref(desc);
    tset_save(&s, d, "quant_model_weights.safetensors");
    tset_free(&s);
    expect_variant(what, d, "weights in quant_model_weights.safetensors", ref);

    snprintf(what, sizeof what, "%s, two shards and an index", label);
    fresh(q, d, &s, &desc);
    json_decref(desc);
    tset_save_split(&s, d, "quant_model_weights-00001-of-00002.safetensors",
                    "quant_model_weights-00002-of-00002.safetensors",
                    "quant_model_weights.safetensors.index.json");
    tset_free(&s);
    expect_variant(what, d, "weights in quant_model_weights.safetensors.index.json", ref);

    snprintf(what, sizeof what, "%s, two files and no index", label);
    fresh(q, d, &s, &desc);
    json_decref(desc);
    tset_save_split(&s, d, "part-a.safetensors", "part-b.safetensors", NULL);
    tset_free(&s);
    expect_variant(what, d, "2 *.safetensors files without an index", ref);

    /* msModelSlim's current saver: F32 scales */
    snprintf(what, sizeof what, "%s, F32 input_scale/offset", label);
    fresh(q, d, &s, &desc);
    for (int i = 0; i < s.n; i++) {
        ntensor *t = &s.t[i];
        size_t ln = strlen(t->name);
        if (!(ln > 12 && !strcmp(t->name + ln - 12, ".input_scale")) &&
            !(ln > 13 && !strcmp(t->name + ln - 13, ".input_offset")))
            continue;
        uint16_t h = *(uint16_t *)t->data;
        float f = fp16 ? w8_f16_to_f32(h) : w8_bf16_to_f32(h);
        free(t->data);
        t->data = w8_xmalloc(4);
        memcpy(t->data, &f, 4);
        t->dt = W8_F32;
        t->nbytes = 4;
    }
    commit(d, &s, desc);
    expect_variant(what, d, "stored as F32", ref);

    /* the older saver: weight_scale / weight_offset next to deq_scale */
    snprintf(what, sizeof what, "%s, weight_scale/weight_offset in W8A8 layers", label);
    fresh(q, d, &s, &desc);
    int n0 = s.n;
    for (int i = 0; i < n0; i++) {
        size_t ln = strlen(s.t[i].name);
        if (!(ln > 10 && !strcmp(s.t[i].name + ln - 10, ".deq_scale"))) continue;
        char prefix[200], n[220];
        snprintf(prefix, sizeof prefix, "%.*s", (int)(ln - 10), s.t[i].name);
        snprintf(n, sizeof n, "%s.input_scale", prefix);
        uint16_t h = *(uint16_t *)tset_find(&s, n)->data;
        float sc = fp16 ? w8_f16_to_f32(h) : w8_bf16_to_f32(h);
        int64_t rows = s.t[i].shape[0], shape[2] = {rows, 1};
        float *ws = w8_xmalloc((size_t)rows * sizeof(float));
        for (int64_t r = 0; r < rows; r++) {
            float dv;
            memcpy(&dv, (char *)s.t[i].data + (fp16 ? 8 : 4) * r, 4);
            ws[r] = dv / sc;
        }
        snprintf(n, sizeof n, "%s.weight_scale", prefix);
        tset_add(&s, n, W8_F32, 2, shape, ws);
        json_object_set_new(desc, n, json_string("W8A8"));
        snprintf(n, sizeof n, "%s.weight_offset", prefix);
        tset_add(&s, n, W8_F32, 2, shape, NULL);
        json_object_set_new(desc, n, json_string("W8A8"));
        free(ws);
    }
    commit(d, &s, desc);
    expect_variant(what, d, "weight_scale/weight_offset in", ref);

    snprintf(what, sizeof what, "%s, description keys metadata/group_size/optional", label);
    copy_dir(q, d);
    desc = jload(d, "quant_model_description.json");
    json_t *meta = json_object();
    json_object_set_new(meta, "version", json_string("8.0.0"));
    json_object_set_new(desc, "metadata", meta);
    json_object_set_new(desc, "group_size", json_integer(0));
    json_object_set_new(desc, "optional", json_object());
    jsave(d, "quant_model_description.json", desc);
    expect_variant(what, d, "description key 'group_size'", ref);

    snprintf(what, sizeof what, "%s, no quantize in config.json", label);
    copy_dir(q, d);
    json_t *cfg = jload(d, "config.json");
    json_object_del(cfg, "quantize");
    jsave(d, "config.json", cfg);
    expect_variant(what, d, "config.json has no \"quantize\"", ref);

    static const char *const dnames[] = {"quant_model_description_w8a8.json",
                                         "quant_model_description_w8a8_dynamic.json"};
    for (int i = 0; i < 2; i++) {
        snprintf(what, sizeof what, "%s, description named %s", label, dnames[i]);
        copy_dir(q, d);
        char *a = w8_path_join(d, "quant_model_description.json"), *b = w8_path_join(d, dnames[i]);
        rename(a, b);
        free(a);
        free(b);
        expect_variant(what, d, dnames[i], ref);
    }
    free(ref);
    free(d);
}

/* Weights the directory cannot name unambiguously are refused, not guessed. */
static void test_ambiguous(const char *q) {
    char *d = tmp_path("ambiguous");
    tset s;
    json_t *desc;
    fresh(q, d, &s, &desc);
    json_decref(desc);
    tset_save_split(&s, d, "a-1.safetensors", "a-2.safetensors", "a.safetensors.index.json");
    tset_free(&s);
    char *a = w8_path_join(d, "a.safetensors.index.json");
    char *b = w8_path_join(d, "b.safetensors.index.json");
    w8_copy_file(a, b);
    w8_st *st = w8_st_open_dir(d);
    CHECK(!st && strstr(w8_lasterr(), "2 weight indexes") &&
              strstr(w8_lasterr(), "b.safetensors.index.json"),
          "two indexes in one directory: refused (%s)", st ? "opened" : w8_lasterr());
    w8_st_close(st);
    unlink(a);
    unlink(b);
    drop_weights(d);
    st = w8_st_open_dir(d);
    CHECK(!st && strstr(w8_lasterr(), "other *.safetensors"), "no weights at all: %s",
          st ? "opened" : w8_lasterr());
    w8_st_close(st);
    free(a);
    free(b);
    free(d);
}

int main(int argc, char **argv) {
    (void)argc;
    /* the w8a8 binary of this build: build/tests/test_x -> build/w8a8 */
    char *self = w8_xstrdup(argv[0]);
    snprintf(bin, sizeof bin, "%s/../w8a8", dirname(self));
    free(self);
    snprintf(tmp_root, sizeof tmp_root, "/tmp/w8a8-test-formats-%ld", (long)getpid());
    w8_rm_rf(tmp_root);
    w8_mkdir_p(tmp_root);
    snprintf(calib_path, sizeof calib_path, "%s/corpus/tinystories-excerpt.txt", shared_dir());
    CHECK(access(bin, X_OK) == 0, "the w8a8 binary of this build is at %s", bin);
    char *q16 = tmp_path("q16"), *qbf = tmp_path("qbf16"), *q32 = tmp_path("qf32"),
         *qqw = tmp_path("qqwen");
    char *qsq = tmp_path("qsmooth");
    test_output("stories260K-hf-f16", q16, 0);
    test_output("stories260K-hf-bf16", qbf, 0);
    test_output("stories260K-hf-f32", q32, 0);
    test_output("stories260K-as-qwen2-bf16-random-bias", qqw, 0);
    test_output("stories260K-as-qwen2-bf16-zero-bias", qsq, 1); /* SmoothQuant */
    free(qsq);
    test_rules(q16, qbf);
    test_runtime_refuses(q16);
    test_variants("fp16", q16, 1);
    test_variants("bf16", qbf, 0);
    test_ambiguous(q16);
    free(q16);
    free(qbf);
    free(q32);
    free(qqw);
    w8_rm_rf(tmp_root);
    TEST_DONE();
}

/*
 * test_sensitivity.c - `quant --disable_level` / `--sensitivity_report`
 * (src/quant/sensitivity.c) on stories260K with injected activation outliers.
 *
 * The outliers (w8_synth_outliers_at): layer 2's post_attention_layernorm
 * weight is multiplied by 100 on two channels (5 and 37) and the matching
 * input columns of gate_proj and up_proj divided by 100, so the float model
 * computes the same function but the input of those two layers has two
 * channels 100 times larger than the rest: a static per-tensor activation
 * scale then quantizes every other channel coarsely.  The ranking must put those two layers first, and
 * keeping them float (L2) must bring the W8A8 perplexity much closer to
 * float than plain W8A8.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/config.h"
#include "../src/model.h"
#include "../src/ppl.h"
#include "../src/quant/quantize.h"
#include "../src/quant/sensitivity.h"
#include "../src/synth.h"
#include "../src/tokenizer/tokenizer.h"
#include "../src/util.h"
#include "test.h"

static double ppl_of(const char *dir, const int *ids, int n) {
    w8_model *m = w8_model_load(dir);
    if (!m) return NAN;
    w8_ppl_opts o = {128, 128, 4, 1};
    w8_ppl_stats st;
    double p = w8_ppl_eval(m, ids, n, &o, &st, NULL, NULL) == 0 ? w8_nll_ppl(&st.full) : NAN;
    w8_model_free(m);
    return p;
}

static int quant(const char *src, const char *dst, int level, const char *report) {
    w8_quant_opts o;
    w8_quant_opts_init(&o);
    o.model_path = src;
    o.save_path = dst;
    o.calib_samples = 4;
    o.calib_seq_len = 48;
    o.disable_level = level;
    o.sensitivity_report = report;
    w8_quant_report rep;
    return w8_quantize(&o, &rep);
}

static void test_parse_level(void) {
    int n = -1;
    CHECK(w8_sens_parse_level("L2", &n) == 0 && n == 2, "L2 -> 2");
    CHECK(w8_sens_parse_level("0", &n) == 0 && n == 0, "0 -> 0");
    CHECK(w8_sens_parse_level("l13", &n) == 0 && n == 13, "l13 -> 13");
    static const char *bad[] = {"", "L", "L-1", "Lx", "2.5", "L2 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(w8_sens_parse_level(bad[i], &n) != 0 && strstr(w8_lasterr(), "--disable_level"),
              "'%s' refused", bad[i]);
}

int main(void) {
    w8_set_threads(2);
    test_parse_level();
    char tmpl[] = "/tmp/w8a8-test-sens-XXXXXX";
    char *T = mkdtemp(tmpl);
    if (!T) {
        CHECK(0, "temporary directory");
        TEST_DONE();
    }
    char *flt = w8_path_join(shared_dir(), "models/stories260K-hf-f16");
    char *src = w8_path_join(T, "outlier"), *plain = w8_path_join(T, "plain"),
         *l2 = w8_path_join(T, "l2"), *rep = w8_path_join(T, "report.json");
    int rc = w8_synth_outliers_at(flt, src, "model.layers.2.post_attention_layernorm.weight", 2,
                                  100.0f, 5);
    CHECK(rc == 0, "outlier model written (%s)", rc ? w8_lasterr() : "ok");
    rc = quant(src, plain, 0, NULL);
    CHECK(rc == 0, "plain W8A8 quantization (%s)", rc ? w8_lasterr() : "ok");
    rc = quant(src, l2, 2, rep);
    CHECK(rc == 0, "W8A8 with --disable_level L2 (%s)", rc ? w8_lasterr() : "ok");

    /* the report: the two damaged layers first, kept float */
    json_error_t je;
    json_t *r = json_load_file(rep, 0, &je);
    CHECK(r != NULL, "the report is JSON (%s)", r ? "ok" : je.text);
    const json_t *layers = json_object_get(r, "layers");
    CHECK(json_array_size(layers) == 35, "35 layers measured (%zu)", json_array_size(layers));
    if (json_array_size(layers) >= 3) {
        const char *a = json_string_value(json_object_get(json_array_get(layers, 0), "name"));
        const char *b = json_string_value(json_object_get(json_array_get(layers, 1), "name"));
        int hit = a && b &&
                  ((!strcmp(a, "model.layers.2.mlp.gate_proj") &&
                    !strcmp(b, "model.layers.2.mlp.up_proj")) ||
                   (!strcmp(a, "model.layers.2.mlp.up_proj") &&
                    !strcmp(b, "model.layers.2.mlp.gate_proj")));
        CHECK(hit, "the damaged layers rank first: %s, %s", a ? a : "?", b ? b : "?");
        double k0 = json_real_value(json_object_get(json_array_get(layers, 1), "kl"));
        double k2 = json_real_value(json_object_get(json_array_get(layers, 2), "kl"));
        CHECK(k0 > 3 * k2, "their KL (%.5f) stands out from the third (%.5f)", k0, k2);
        int desc = 1;
        for (size_t i = 1; i < json_array_size(layers); i++)
            desc &= json_real_value(json_object_get(json_array_get(layers, i - 1), "kl")) >=
                    json_real_value(json_object_get(json_array_get(layers, i), "kl"));
        CHECK(desc, "the ranking is by decreasing KL");
        CHECK(json_is_true(json_object_get(json_array_get(layers, 1), "kept_float")) &&
                  json_is_false(json_object_get(json_array_get(layers, 2), "kept_float")),
              "exactly the first two are kept float");
        double all = json_real_value(json_object_get(r, "kl_all_int8"));
        double kept = json_real_value(json_object_get(r, "kl_after_disable"));
        CHECK(kept < all / 2, "KL with every layer int8 %.5f, with the two float %.5f", all, kept);
    }

    /* compare --sensitivity on the plain W8A8 directory measures the same
     * numbers: its int8 layers are bitwise the twins the quantizer built
     * (same samples: the built-in set's first 4, 48 tokens) */
    w8_calib_set cs = {0};
    w8_calib_builtin(&cs);
    w8_sens_layer *units = NULL;
    w8_sens_stats pst;
    int pn = 0;
    rc = w8_sens_measure_pair(src, plain, cs.text, 4, 48, &units, &pn, &pst, 0);
    CHECK(rc == 0, "the pair measure runs (%s)", rc ? w8_lasterr() : "ok");
    /* every o_proj and down_proj is a unit of its own; q/k/v and gate/up are fused groups */
    CHECK(pn == 5 * 4, "20 units: per layer q+k+v, o, gate+up, down (%d)", pn);
    int matched = 0, same = 1;
    for (int i = 0; i < pn; i++)
        for (size_t j = 0; j < json_array_size(layers); j++) {
            const json_t *e = json_array_get(layers, j);
            if (strcmp(json_string_value(json_object_get(e, "name")), units[i].name)) continue;
            matched++;
            double kq = json_real_value(json_object_get(e, "kl"));
            if (fabs(kq - units[i].kl) > 1e-9 * fmax(kq, 1e-12) + 1e-15) same = 0;
        }
    CHECK(matched == 10 && same, "the 10 o_proj/down_proj KLs equal quant's report (%d matched)",
          matched);
    double qall = json_real_value(json_object_get(r, "kl_all_int8"));
    CHECK(rc == 0 && fabs(pst.kl_all - qall) <= 1e-9 * qall,
          "KL with every layer int8: %.9f (compare) == %.9f (quant)", pst.kl_all, qall);
    int top = -1;
    for (int i = 0; i < pn; i++)
        if (top < 0 || units[i].kl > units[top].kl) top = i;
    CHECK(top >= 0 && !strcmp(units[top].name, "model.layers.2.mlp.gate_proj+up_proj"),
          "the damaged gate+up group ranks first (%s)", top >= 0 ? units[top].name : "?");
    free(units);
    rc = w8_sens_measure_pair(plain, src, cs.text, 4, 48, &units, &pn, &pst, 0);
    CHECK(rc != 0 && strstr(w8_lasterr(), "float model and a W8A8"),
          "the pair in the wrong order is refused: %s", w8_lasterr());
    w8_calib_free(&cs);
    json_decref(r);

    /* the written description keeps them float */
    w8_qdesc *qd = NULL;
    CHECK(w8_qdesc_load(l2, &qd) == 0 && qd &&
              w8_qdesc_get(qd, "model.layers.2.mlp.gate_proj.weight") == 0 &&
              w8_qdesc_get(qd, "model.layers.2.mlp.up_proj.weight") == 0 &&
              w8_qdesc_get(qd, "model.layers.2.mlp.down_proj.weight") == 1,
          "quant_model_description.json: the two layers FLOAT, their neighbour W8A8");
    w8_qdesc_free(qd);

    /* perplexity: float, plain W8A8, W8A8 with L2 */
    w8_tok *tok = w8_tok_load(flt);
    char *txt = w8_path_join(shared_dir(), "corpus/tinystories-excerpt.txt");
    int *ids = NULL, bos = -1;
    int n = tok ? w8_ppl_tokenize_file(tok, txt, &ids, &bos) : -1;
    CHECK(n >= 512, "the excerpt has %d tokens", n);
    double pf = ppl_of(src, ids, n), pp = ppl_of(plain, ids, n), pl = ppl_of(l2, ids, n),
           p0 = ppl_of(flt, ids, n);
    printf("# ppl: float %.4f (before injection %.4f), W8A8 %.4f, W8A8 --disable_level L2 %.4f\n",
           pf, p0, pp, pl);
    CHECK(fabs(pf - p0) < 0.01 * p0, "the injection keeps the float model's ppl (%.4f vs %.4f)",
          pf, p0);
    CHECK(pp > pf * 1.02, "the outliers damage plain W8A8 (%.4f vs float %.4f)", pp, pf);
    CHECK(fabs(pl - pf) < 0.3 * fabs(pp - pf),
          "L2 brings W8A8 much closer to float (gap %.4f vs %.4f)", pl - pf, pp - pf);
    free(ids);
    free(txt);
    w8_tok_free(tok);

    /* errors reach the caller */
    char *bad = w8_path_join(T, "nodir/report.json"), *x = w8_path_join(T, "x");
    CHECK(quant(src, x, 1, bad) != 0 && strstr(w8_lasterr(), "nodir/report.json") &&
              !w8_is_dir(x),
          "an unwritable report fails the run, naming it, and writes no model: %s",
          w8_lasterr());
    free(bad);
    free(x);

    w8_rm_rf(T);
    free(flt);
    free(src);
    free(plain);
    free(l2);
    free(rep);
    TEST_DONE();
}

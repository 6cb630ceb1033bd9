/*
 * cmd_compare.c - `w8a8 compare`: run a float model and its W8A8 copy over
 * the same text and show, layer by layer, how far the quantized hidden
 * states drift, then how the next-token distributions differ.  The work is
 * in src/compare.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/compare.h"
#include "../src/model.h"
#include "../src/ppl.h"
#include "../src/quant/quantize.h"
#include "../src/quant/sensitivity.h"
#include "../src/tokenizer/tokenizer.h"
#include "../src/util.h"
#include "args.h"
#include "commands.h"

static void on_window(void *ud, int w, int nw, const w8_ppl_stats *s) {
    (void)nw;
    char extra[64];
    snprintf(extra, sizeof extra, "float ppl %.4f", w8_nll_ppl(&s->full));
    w8_progress_update(ud, w, extra);
}

static void print_table(const w8_compare_result *r) {
    int worst = 0;
    double worst_cos = 2;
    printf("| layer | cosine (mean) | cosine (min) | rel. error (mean) |\n");
    printf("| ----: | ------------: | -----------: | ----------------: |\n");
    for (int l = 0; l < r->n_layers; l++) {
        const w8_layer_cmp *c = &r->layers[l];
        double cm = c->n ? c->cos_sum / c->n : NAN, re = c->n ? c->rel_sum / c->n : NAN;
        printf("| %5d | %13.6f | %12.6f | %17.6f |\n", l, cm, c->cos_min, re);
        if (cm < worst_cos) worst_cos = cm, worst = l;
    }
    double pa = w8_nll_ppl(&r->ppl_a.full), pb = w8_nll_ppl(&r->ppl_b.full);
    double ha = w8_nll_ppl(&r->ppl_a.half), hb = w8_nll_ppl(&r->ppl_b.half);
    printf("\nlogits over %ld tokens:\n", r->n_tokens);
    printf("  top-1 agreement          %.2f %%\n", w8_compare_top1(r));
    printf("  KL(float || quant)       %.6f nats (mean), %.6f (max)\n", w8_compare_kl(r),
           r->kl_max);
    printf("  perplexity, full window  float %.4f  quant %.4f  (%+.2f %%)\n", pa, pb,
           100.0 * (pb / pa - 1));
    printf("  perplexity, second half  float %.4f  quant %.4f  (%+.2f %%)\n", ha, hb,
           100.0 * (hb / ha - 1));
    const w8_layer_cmp *last = &r->layers[r->n_layers - 1];
    printf("\nsummary: last layer cosine %.6f, lowest mean cosine %.6f (layer %d); top-1 %.2f %%; "
           "KL %.6f; ppl %.4f -> %.4f (%+.2f %%)\n",
           last->n ? last->cos_sum / last->n : NAN, worst_cos, worst, w8_compare_top1(r),
           w8_compare_kl(r), pa, pb, 100.0 * (pb / pa - 1));
}

/* --sensitivity: the ranking quant --disable_level uses, for this pair, on
 * the built-in calibration samples (src/quant/sensitivity.c). */
static int print_sensitivity(const char *fpath, const char *qpath, const char *report) {
    w8_calib_set cs = {0};
    w8_calib_builtin(&cs);
    w8_sens_layer *l = NULL;
    w8_sens_stats st;
    int n = 0;
    int rc = w8_sens_measure_pair(fpath, qpath, cs.text, cs.n, 256, &l, &n, &st, 1);
    if (rc == 0) {
        int *order = w8_xmalloc((size_t)(n ? n : 1) * sizeof(int));
        w8_sens_rank(l, n, order);
        printf("\n");
        w8_sens_print(stdout, l, n, order, &st);
        if (report) rc = w8_sens_write_report(report, l, n, order, &st);
        free(order);
    }
    free(l);
    w8_calib_free(&cs);
    return rc;
}

int w8_cmd_compare(int argc, char **argv) {
    const char *fpath = NULL, *qpath = NULL, *file = NULL, *sens_report = NULL;
    const char *float_layers = NULL;
    int ctx = 512, batch = 0, chunks = 0, threads = 0, sens = 0;
    const w8_opt opts[] = {
        {"float", 0, W8_ARG_STR, &fpath, "float model directory (required)"},
        {"quant", 0, W8_ARG_STR, &qpath, "W8A8 model directory (required)"},
        {"file", 'f', W8_ARG_STR, &file, "text file to run, '-' for stdin (required)"},
        {"ctx", 'c', W8_ARG_INT, &ctx, "window length in tokens (default 512)"},
        {"batch", 'b', W8_ARG_INT, &batch, "rows per forward call (default: the whole window)"},
        {"chunks", 0, W8_ARG_INT, &chunks, "use only the first N windows (default: all)"},
        {"threads", 't', W8_ARG_INT, &threads, "threads (default: all cores)"},
        {"sensitivity", 0, W8_ARG_FLAG, &sens,
         "also rank the int8 layers by the KL each alone causes (quant --disable_level's measure)"},
        {"sensitivity_report", 0, W8_ARG_STR, &sens_report,
         "write that ranking as JSON to this file (implies --sensitivity)"},
        {"float_layers", 0, W8_ARG_STR, &float_layers,
         "for the --quant model: " W8_ARGS_FLOAT_LAYERS_HELP},
    };
    int pr = w8_args_parse(argc, argv,
                           "w8a8 compare --float DIR --quant DIR --file TEXT [options]",
                           "Per-layer cosine similarity and relative error of the hidden "
                           "states, top-1 agreement,\nKL(float || quant) and perplexity of both "
                           "models over the same windows.",
                           opts, (int)(sizeof opts / sizeof opts[0]));
    if (pr) return pr < 0;
    if (!fpath || !qpath || !file) {
        fprintf(stderr, "w8a8: compare needs --float, --quant and --file (see --help)\n");
        return 1;
    }
    if (batch < 0 || chunks < 0) {
        fprintf(stderr, "w8a8: --batch and --chunks must not be negative\n");
        return 1;
    }
    w8_load_opts lo;
    if (w8_args_float_layers(float_layers, &lo)) return 1;
    if (lo.float_layers != W8_FLOAT_LAYERS_FILE && (sens || sens_report)) {
        /* the ranking swaps the file's int8 layers into the float model */
        fprintf(stderr, "w8a8: compare: --sensitivity ranks the layers as stored; give it "
                        "without --float_layers\n");
        return 1;
    }
    w8_args_apply_threads(threads);

    int rc = 1, *ids = NULL, n = 0, bos = -1;
    w8_tok *tok = NULL;
    w8_model *a = NULL, *b = NULL;
    w8_compare_result res = {0};
    if (!(a = w8_model_load(fpath)) || !(b = w8_model_load_opts(qpath, &lo))) goto out;
    if (!(tok = w8_tok_load(fpath))) goto out;
    if ((n = w8_ppl_tokenize_file(tok, file, &ids, &bos)) < 0) goto out;
    w8_ppl_opts o = {ctx, batch, chunks, bos};
    if (w8_ppl_check_opts(a, &o) != 0) goto out;
    int nw = w8_ppl_windows(n, &o);
    printf("float: %s (%s)\nquant: %s (%s, %d int8 / %d float linear layers)\n", fpath,
           w8_model_kind(a), qpath, w8_model_kind(b), b->n_int8,
           b->n_float);
    printf("text:  %s: %d tokens, %d window%s of %d\n\n", strcmp(file, "-") ? file : "<stdin>", n,
           nw, nw == 1 ? "" : "s", o.ctx);
    fflush(stdout);

    w8_progress prog;
    w8_progress_begin(&prog, "compare", nw);
    int er = w8_compare_eval(a, b, ids, n, &o, &res, on_window, &prog);
    w8_progress_end(&prog);
    if (er != 0) goto out;
    print_table(&res);
    if (sens || sens_report) {
        /* the measure loads both models itself: free these first */
        w8_model_free(a);
        w8_model_free(b);
        a = b = NULL;
        if (print_sensitivity(fpath, qpath, sens_report) != 0) goto out;
    }
    rc = 0;
out:
    if (rc) fprintf(stderr, "w8a8: %s\n", w8_lasterr());
    w8_compare_free(&res);
    free(ids);
    w8_tok_free(tok);
    w8_model_free(a);
    w8_model_free(b);
    return rc;
}

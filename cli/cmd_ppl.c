/*
 * cmd_ppl.c - `w8a8 ppl`: perplexity of a float or W8A8 model over a text
 * file, scored both as llama.cpp does (second half of each window) and over
 * the full window.  The work is in src/ppl.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/model.h"
#include "../src/ppl.h"
#include "../src/tokenizer/tokenizer.h"
#include "../src/util.h"
#include "args.h"
#include "commands.h"

static void on_window(void *ud, int w, int nw, const w8_ppl_stats *s) {
    (void)nw;
    char extra[96];
    snprintf(extra, sizeof extra, "ppl %.4f (2nd half %.4f)", w8_nll_ppl(&s->full),
             w8_nll_ppl(&s->half));
    w8_progress_update(ud, w, extra);
}

static void print_ppl(const char *what, const w8_nll_sum *s) {
    printf("%-44s %10.4f +/- %.4f  (%ld tokens scored)\n", what, w8_nll_ppl(s),
           w8_nll_ppl_err(s), s->n);
}

int w8_cmd_ppl(int argc, char **argv) {
    const char *model_path = NULL, *file = NULL, *float_layers = NULL;
    int ctx = 512, batch = 0, chunks = 0, threads = 0;
    const w8_opt opts[] = {
        {"model_path", 0, W8_ARG_STR, &model_path, "model directory, float or W8A8 (required)"},
        {"file", 'f', W8_ARG_STR, &file, "text file to score, '-' for stdin (required)"},
        {"ctx", 'c', W8_ARG_INT, &ctx, "window length in tokens (default 512)"},
        {"batch", 'b', W8_ARG_INT, &batch, "rows per forward call (default: the whole window)"},
        {"chunks", 0, W8_ARG_INT, &chunks, "score only the first N windows (default: all)"},
        {"threads", 't', W8_ARG_INT, &threads, "threads (default: all cores)"},
        {"float_layers", 0, W8_ARG_STR, &float_layers, W8_ARGS_FLOAT_LAYERS_HELP},
    };
    int pr = w8_args_parse(argc, argv, "w8a8 ppl --model_path DIR --file TEXT [options]",
                           "Perplexity over non-overlapping windows, as llama.cpp's perplexity "
                           "tool computes it\n(BOS starts each window; the second half of each "
                           "window is scored), and over the\nfull window.",
                           opts, (int)(sizeof opts / sizeof opts[0]));
    if (pr) return pr < 0;
    if (!model_path || !file) {
        fprintf(stderr, "w8a8: ppl needs --model_path and --file (see --help)\n");
        return 1;
    }
    if (batch < 0 || chunks < 0) {
        fprintf(stderr, "w8a8: --batch and --chunks must not be negative\n");
        return 1;
    }
    w8_load_opts lo;
    if (w8_args_float_layers(float_layers, &lo)) return 1;
    w8_args_apply_threads(threads);

    int rc = 1, *ids = NULL, n = 0, bos = -1;
    w8_tok *tok = NULL;
    w8_model *m = w8_model_load_opts(model_path, &lo);
    if (!m) goto out;
    if (!(tok = w8_tok_load(model_path))) goto out;
    if ((n = w8_ppl_tokenize_file(tok, file, &ids, &bos)) < 0) goto out;
    w8_ppl_opts o = {ctx, batch, chunks, bos};
    if (w8_ppl_check_opts(m, &o) != 0) goto out;
    int nw = w8_ppl_windows(n, &o);
    printf("model: %s (%s, %s)\n", model_path, m->cfg.model_type,
           w8_model_kind(m));
    printf("text:  %s: %d tokens, %d window%s of %d, batch %d",
           strcmp(file, "-") ? file : "<stdin>", n, nw, nw == 1 ? "" : "s", o.ctx, o.batch);
    if (bos >= 0) printf(", BOS %d starts each window", bos);
    printf("\n");
    fflush(stdout);

    w8_ppl_stats st;
    w8_progress prog;
    w8_progress_begin(&prog, "ppl", nw);
    double t0 = w8_now();
    int er = w8_ppl_eval(m, ids, n, &o, &st, on_window, &prog);
    w8_progress_end(&prog);
    if (er != 0) goto out;
    double dt = w8_now() - t0;
    print_ppl("perplexity, llama.cpp-style (second half):", &st.half);
    print_ppl("perplexity, full window:", &st.full);
    printf("%d windows in %.2f s (%.1f tokens/s)\n", st.n_windows, dt,
           dt > 0 ? (double)st.n_windows * o.ctx / dt : 0.0);
    rc = 0;
out:
    if (rc) fprintf(stderr, "w8a8: %s\n", w8_lasterr());
    free(ids);
    w8_tok_free(tok);
    w8_model_free(m);
    return rc;
}

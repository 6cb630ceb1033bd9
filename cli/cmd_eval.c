/*
 * cmd_eval.c - `w8a8 eval`: lm-evaluation-harness style tasks (multiple
 * choice, generation, loglikelihood; src/eval.h) on one or more models, one
 * after the other, then one table with a column per model and each model's
 * difference to the first (or the same as JSON with --json).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/eval.h"
#include "../src/json.h"
#include "../src/model.h"
#include "../src/tokenizer/tokenizer.h"
#include "../src/util.h"
#include "args.h"
#include "commands.h"

typedef struct {
    const char *path;
    char kind[96]; /* "float" or "W8A8: N int8 + M float linear layers" (or W8A8_DYNAMIC...) */
    char arch[64];
} model_info;

static void on_progress(void *ud, int done, int total) {
    (void)total;
    w8_progress_update(ud, done, NULL);
}

/* "0.8500 +/- 0.0819" (the error left out when there is none). */
static void fmt_value(char *buf, size_t n, double v, double se) {
    if (isnan(se))
        snprintf(buf, n, "%.4f", v);
    else
        snprintf(buf, n, "%.4f +/- %.4f", v, se);
}

static void print_table(const w8_eval_set *set, const model_info *mi, int nm,
                        const w8_eval_row *rows, int nr) {
    printf("models:\n");
    for (int k = 0; k < nm; k++)
        printf("  [%d] %s  (%s, %s)\n", k + 1, mi[k].path, mi[k].arch, mi[k].kind);
    printf("\n%-20s %-12s %5s", "task", "metric", "n");
    char h[32];
    for (int k = 0; k < nm; k++) {
        snprintf(h, sizeof h, "[%d]", k + 1);
        printf("  %-19s", h);
    }
    for (int k = 1; k < nm; k++) {
        snprintf(h, sizeof h, "[%d]-[1]", k + 1);
        printf("  %-20s", h);
    }
    printf("\n");
    int any_sig = 0;
    for (int r = 0; r < nr; r++) {
        const w8_eval_row *w = &rows[r];
        const char *task = w->task < 0 ? "overall" : set->tasks[w->task];
        int same = r > 0 && rows[r - 1].task == w->task;
        printf("%-20.20s %-12s %5d", same ? "" : task, w->metric, w->n);
        char buf[64];
        for (int k = 0; k < nm; k++) {
            fmt_value(buf, sizeof buf, w->value[k], w->stderr_[k]);
            printf("  %-19s", buf);
        }
        for (int k = 1; k < nm; k++) {
            if (isnan(w->diff_se[k]))
                snprintf(buf, sizeof buf, "%+.4f", w->diff[k]);
            else
                snprintf(buf, sizeof buf, "%+.4f +/- %.4f", w->diff[k], w->diff_se[k]);
            if (w->significant[k]) {
                strcat(buf, " *");
                any_sig = 1;
            }
            printf("  %-20s", buf);
        }
        printf("\n");
    }
    if (nm > 1)
        printf("\n[k]-[1]: mean of the per-item differences +/- its standard error%s\n",
               any_sig ? "; *: more than two standard errors from 0" : "");
}

static json_t *num_or_null(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static int print_json(const w8_eval_set *set, const model_info *mi, int nm, const w8_eval_row *rows,
                      int nr, w8_eval_score *const *scores) {
    json_t *root = json_object(), *models = json_array(), *res = json_array(),
           *samples = json_array();
    for (int k = 0; k < nm; k++)
        json_array_append_new(models, json_pack("{s:s, s:s, s:s}", "path", mi[k].path, "arch",
                                                mi[k].arch, "type", mi[k].kind));
    for (int r = 0; r < nr; r++) {
        const w8_eval_row *w = &rows[r];
        json_t *per = json_array();
        for (int k = 0; k < nm; k++) {
            json_t *o = json_object();
            json_object_set_new(o, "value", num_or_null(w->value[k]));
            json_object_set_new(o, "stderr", num_or_null(w->stderr_[k]));
            if (k > 0) {
                json_object_set_new(o, "diff", num_or_null(w->diff[k]));
                json_object_set_new(o, "diff_stderr", num_or_null(w->diff_se[k]));
                json_object_set_new(o, "significant", json_boolean(w->significant[k]));
            }
            json_array_append_new(per, o);
        }
        json_array_append_new(res, json_pack("{s:s, s:s, s:i, s:o}", "task",
                                             w->task < 0 ? "overall" : set->tasks[w->task],
                                             "metric", w->metric, "n", w->n, "models", per));
    }
    /* generation outputs, for reading what each model said */
    for (int i = 0; i < set->n; i++) {
        const w8_eval_item *it = &set->items[i];
        if (it->kind != W8_EVAL_GEN) continue;
        json_t *outs = json_array();
        for (int k = 0; k < nm; k++)
            json_array_append_new(
                outs, json_pack("{s:s?, s:s?, s:b}", "output", scores[k][i].output, "extracted",
                                scores[k][i].extracted, "exact_match", scores[k][i].v[0] > 0));
        json_array_append_new(samples, json_pack("{s:i, s:s, s:s, s:o}", "line", it->line, "task",
                                                 set->tasks[it->task], "answer", it->answer,
                                                 "models", outs));
    }
    json_object_set_new(root, "models", models);
    json_object_set_new(root, "results", res);
    json_object_set_new(root, "generations", samples);
    char *s = w8_json_dumps(root, 0);
    json_decref(root);
    if (!s) return w8_seterr("eval: could not serialize the results (invalid UTF-8 in a task?)");
    printf("%s\n", s);
    free(s);
    return 0;
}

int w8_cmd_eval(int argc, char **argv) {
    w8_strlist paths = {0}, fl = {0};
    const char *tasks = NULL;
    int limit = 0, json = 0, threads = 0, no_bos = 0;
    w8_eval_opts eo;
    w8_eval_opts_default(&eo);
    const w8_opt opts[] = {
        {"model_path", 0, W8_ARG_LIST, &paths,
         "model directories, float or W8A8; repeat or list several to compare (required)"},
        {"tasks", 0, W8_ARG_STR, &tasks, "task file, one JSON object per line (required)"},
        {"limit", 0, W8_ARG_INT, &limit, "at most N lines per task (default: all)"},
        {"json", 0, W8_ARG_FLAG, &json, "print the results as JSON instead of a table"},
        {"chat", 0, W8_ARG_FLAG, &eo.chat, "render contexts and prompts with the chat template"},
        {"no_bos", 0, W8_ARG_FLAG, &no_bos,
         "encode without the tokenizer's special tokens (lm-eval's default for most models)"},
        {"batch", 'b', W8_ARG_INT, &eo.batch, "rows per forward call (default 256)"},
        {"max_gen_toks", 0, W8_ARG_INT, &eo.max_gen_toks,
         "new tokens per generation line unless it sets its own (default 64)"},
        {"threads", 't', W8_ARG_INT, &threads, "threads (default: all cores)"},
        {"float_layers", 0, W8_ARG_LIST, &fl,
         "file or int8 (as run's), one for every model or one per --model_path in order "
         "(default file)"},
    };
    int pr = w8_args_parse(argc, argv,
                           "w8a8 eval --model_path DIR [--model_path DIR2 ...] --tasks FILE.jsonl",
                           "Accuracy on lm-evaluation-harness style tasks: multiple choice "
                           "(acc, acc_norm),\ngeneration (exact_match, greedy) and "
                           "loglikelihood (logprob, greedy), several\nmodels side by side "
                           "with their difference to the first.  See README.md.",
                           opts, (int)(sizeof opts / sizeof opts[0]));
    w8_load_opts *lo = NULL;
    if (pr == 0 && fl.n && fl.n != 1 && fl.n != paths.n) {
        fprintf(stderr, "w8a8: eval: --float_layers takes one value, or one per --model_path "
                        "(%d given for %d models)\n", fl.n, paths.n);
        pr = -1;
    }
    if (pr == 0) {
        lo = w8_xcalloc((size_t)(paths.n ? paths.n : 1), sizeof *lo);
        for (int k = 0; k < paths.n && pr == 0; k++)
            if (w8_args_float_layers(fl.n ? fl.v[fl.n == 1 ? 0 : k] : NULL, &lo[k])) pr = -1;
    }
    free(fl.v);
    if (pr) {
        free(lo);
        free(paths.v);
        return pr < 0;
    }
    if (paths.n == 0 || !tasks) {
        fprintf(stderr, "w8a8: eval needs --model_path and --tasks (see --help)\n");
        free(lo);
        free(paths.v);
        return 1;
    }
    if (limit < 0 || eo.batch < 1 || eo.max_gen_toks < 1 || threads < 0) {
        fprintf(stderr, "w8a8: eval: --limit, --batch, --max_gen_toks or -t out of range\n");
        free(lo);
        free(paths.v);
        return 1;
    }
    eo.add_special = !no_bos;
    w8_args_apply_threads(threads);

    int rc = 1, nm = paths.n, nr = 0;
    w8_eval_set set;
    w8_eval_row *rows = NULL;
    model_info *mi = w8_xcalloc((size_t)nm, sizeof *mi);
    w8_eval_score **scores = w8_xcalloc((size_t)nm, sizeof *scores);
    if (w8_eval_load(tasks, limit, &set) != 0) {
        fprintf(stderr, "w8a8: %s\n", w8_lasterr());
        free(mi);
        free(scores);
        free(lo);
        free(paths.v);
        return 1;
    }
    /* one model in memory at a time */
    for (int k = 0; k < nm; k++) {
        w8_model *m = w8_model_load_opts(paths.v[k], &lo[k]);
        w8_tok *tok = m ? w8_tok_load(paths.v[k]) : NULL;
        if (!tok) {
            w8_model_free(m);
            goto out;
        }
        mi[k].path = paths.v[k];
        snprintf(mi[k].arch, sizeof mi[k].arch, "%s", m->cfg.model_type);
        if (m->quantized || m->n_converted)
            snprintf(mi[k].kind, sizeof mi[k].kind, "%s: %d int8 + %d float linear layers",
                     w8_model_kind(m), m->n_int8, m->n_float);
        else
            snprintf(mi[k].kind, sizeof mi[k].kind, "float");
        scores[k] = w8_xcalloc((size_t)set.n, sizeof **scores);
        char label[32];
        snprintf(label, sizeof label, "eval [%d/%d]", k + 1, nm);
        w8_progress prog;
        w8_progress_begin(&prog, label, set.n);
        int er = w8_eval_run(m, tok, &set, &eo, scores[k], on_progress, &prog);
        w8_progress_end(&prog);
        w8_tok_free(tok);
        w8_model_free(m);
        if (er != 0) {
            w8_preferr("%s", paths.v[k]);
            goto out;
        }
    }
    nr = w8_eval_summarize(&set, scores, nm, &rows);
    if (json) {
        if (print_json(&set, mi, nm, rows, nr, scores) != 0) goto out;
    } else {
        print_table(&set, mi, nm, rows, nr);
    }
    rc = 0;
out:
    if (rc) fprintf(stderr, "w8a8: %s\n", w8_lasterr());
    w8_eval_rows_free(rows, nr);
    for (int k = 0; k < nm; k++) {
        if (scores[k]) w8_eval_scores_free(scores[k], set.n);
        free(scores[k]);
    }
    free(scores);
    free(mi);
    w8_eval_set_free(&set);
    free(lo);
    free(paths.v);
    return rc;
}

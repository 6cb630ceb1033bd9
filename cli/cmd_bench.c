/*
 * cmd_bench.c - `w8a8 bench`: llama-bench style prompt processing (pp) and
 * text generation (tg) speed, as a markdown table or JSON.  The work is in
 * src/bench.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../src/bench.h"
#include "../src/model.h"
#include "../src/util.h"
#include "args.h"
#include "commands.h"

/* Tell a watching user what runs (stderr, terminals only: logs stay clean). */
static void on_run(void *ud, const char *test, int rep, int reps) {
    (void)ud;
    if (!isatty(2) || getenv("W8A8_QUIET")) return;
    if (rep < 0) fprintf(stderr, "\r%s: warm-up\033[K", test);
    else fprintf(stderr, "\r%s: run %d/%d\033[K", test, rep + 1, reps);
    if (rep == reps - 1) fprintf(stderr, "\r\033[K");
}

int w8_cmd_bench(int argc, char **argv) {
    const char *model_path = NULL;
    int n_prompt = 512, n_gen = 128, reps = 3, threads = 0, json = 0, seed = 1234;
    const w8_opt opts[] = {
        {"model_path", 'm', W8_ARG_STR, &model_path, "model directory, float or W8A8 (required)"},
        {"n-prompt", 'p', W8_ARG_INT, &n_prompt, "prompt tokens for the pp test, 0 skips (default 512)"},
        {"n-gen", 'n', W8_ARG_INT, &n_gen, "tokens for the tg test, 0 skips (default 128)"},
        {"repetitions", 'r', W8_ARG_INT, &reps, "timed repetitions of each test (default 3)"},
        {"threads", 't', W8_ARG_INT, &threads, "threads (default: all cores)"},
        {"seed", 0, W8_ARG_INT, &seed, "seed of the random token ids (default 1234)"},
        {"json", 0, W8_ARG_FLAG, &json, "print JSON instead of the markdown table"},
    };
    int pr = w8_args_parse(argc, argv, "w8a8 bench --model_path DIR [-p 512] [-n 128] [options]",
                           "Prompt processing (one batch of -p random tokens) and generation (-n "
                           "tokens one at a\ntime) speed in tokens/s, mean +/- standard deviation "
                           "over -r runs after a warm-up.",
                           opts, (int)(sizeof opts / sizeof opts[0]));
    if (pr) return pr < 0;
    if (!model_path) {
        fprintf(stderr, "w8a8: bench needs --model_path (see --help)\n");
        return 1;
    }
    if (n_prompt < 0 || n_gen < 0 || (n_prompt == 0 && n_gen == 0)) {
        fprintf(stderr, "w8a8: -p and -n must be >= 0 and not both 0\n");
        return 1;
    }
    if (reps < 1 || reps > W8_BENCH_MAX_REPS) {
        fprintf(stderr, "w8a8: -r must be 1..%d\n", W8_BENCH_MAX_REPS);
        return 1;
    }
    w8_args_apply_threads(threads);

    int rc = 1;
    w8_bench_result res = {0};
    char *text = NULL;
    w8_model *m = w8_model_load(model_path);
    if (!m) goto out;
    w8_bench_opts o = {n_prompt, n_gen, reps, (uint64_t)seed};
    if (w8_bench_run(m, &o, &res, on_run, NULL) != 0) goto out;
    if (json) {
        if (!(text = w8_bench_json(&res))) goto out;
        printf("%s\n", text);
    } else {
        if (!(text = w8_bench_markdown(&res))) goto out;
        char rss[32];
        w8_bench_fmt_size(rss, sizeof rss, res.peak_rss);
        printf("%s\npeak RSS: %s (%zu bytes)\n", text, rss, res.peak_rss);
    }
    rc = 0;
out:
    if (rc) fprintf(stderr, "w8a8: %s\n", w8_lasterr());
    free(text);
    w8_bench_free(&res);
    w8_model_free(m);
    return rc;
}

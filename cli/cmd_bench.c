/*
 * cmd_bench.c - `w8a8 bench`: llama-bench style prompt processing (pp) and
 * text generation (tg) speed, as a markdown table or JSON.  The work is in
 * src/bench.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#include "../src/bench.h"
#include "../src/model.h"
#include "../src/roofline.h"
#include "../src/util.h"
#include "args.h"
#include "commands.h"

/* With --roofline a probe runs right before each timed repetition and once
 * after the last (see roofline.h): the int8 loop around a pp run, a read of
 * the model's weights around a tg run.  probe[test][rep] is its rate, rep
 * 0..reps. */
typedef struct {
    const w8_model *m;
    int roof;
    double *probe[2];
} bench_ud;

/* Tell a watching user what runs (stderr, terminals only: logs stay clean). */
static void on_run(void *ud, const char *test, int rep, int reps) {
    bench_ud *u = ud;
    if (isatty(2) && !getenv("W8A8_QUIET")) {
        if (rep < 0) fprintf(stderr, "\r%s: warm-up\033[K", test);
        else if (rep < reps) fprintf(stderr, "\r%s: run %d/%d\033[K", test, rep + 1, reps);
        else fprintf(stderr, "\r\033[K");
    }
    if (u->roof && rep >= 0) {
        int tg = test[0] == 't';
        u->probe[tg][rep] = tg ? w8_roofline_weights_probe(u->m) : w8_roofline_dot_probe();
    }
}

/* The repetitions' rates (int8 ops/s for pp, weight bytes/s for tg) against
 * the probes around them; fraction -1 where there is no int8 work. */
static w8_roof_paired paired(const w8_bench_test *t, const double *probe, double macs,
                             double bytes) {
    int n = t->reps;
    double *rate = w8_xmalloc((size_t)n * sizeof *rate), per = t->n_gen ? bytes : 2.0 * macs;
    for (int r = 0; r < n; r++) rate[r] = t->ts[r] * per;
    w8_roof_paired p;
    w8_roofline_paired(rate, probe, n, &p);
    free(rate);
    if (per <= 0) p.fraction = -1;
    return p;
}

/* A test's place under its ceiling: prefill (pp) is compute-bound, so its
 * int8 ops/s over the int8 peak; decode (tg) reads every weight once per
 * token, so its weight bytes/s over the read bandwidth.  Returns the
 * fraction, or -1 when the model has no int8 layer (a pp test only). */
static double roof_fraction(const w8_bench_test *t, const w8_roofline *rf, double macs,
                            double bytes, double *achieved) {
    if (t->n_gen == 0) {
        *achieved = t->mean_ts * 2.0 * macs;
        return macs > 0 && rf->int8_ops > 0 ? *achieved / rf->int8_ops : -1;
    }
    *achieved = t->mean_ts * bytes;
    return rf->read_bytes > 0 ? *achieved / rf->read_bytes : -1;
}

static void roof_print(const w8_bench_result *res, const w8_roofline *rf, const bench_ud *u,
                       double macs, double bytes) {
    printf("roofline: int8 peak %.1f GOPS (%s %s, %d thread%s), read bandwidth %.1f GB/s "
           "(%zu MiB buffer)\n", rf->int8_ops / 1e9, rf->isa, rf->insn, rf->threads,
           rf->threads == 1 ? "" : "s", rf->read_bytes / 1e9, rf->buffer_bytes >> 20);
    if (rf->int8_ops_1t > 0)
        printf("roofline: the int8 loop on one thread: %.1f GOPS; on %d threads %.2fx that "
               "(about %d when each thread has a core of its own)\n", rf->int8_ops_1t / 1e9,
               rf->threads, rf->int8_ops / rf->int8_ops_1t, rf->threads);
    for (int i = 0; i < res->n_tests; i++) {
        const w8_bench_test *t = &res->tests[i];
        double got, f = roof_fraction(t, rf, macs, bytes, &got);
        if (t->n_gen == 0 && f < 0)
            printf("roofline: %s: no int8 layer (float model); no int8 fraction\n", t->name);
        else if (t->n_gen == 0)
            printf("roofline: %s: %.3g of int8 peak (%.1f GOPS; 2 x %.3g int8 MACs/token)\n",
                   t->name, f, got / 1e9, macs);
        else
            printf("roofline: %s: %.3g of read bandwidth (%.2f GB/s; %.3g MB of weights/token%s)\n",
                   t->name, f, got / 1e9, bytes / 1e6,
                   bytes <= (double)rf->llc_bytes ? "; they fit in the cache, so above 1 is possible"
                                                  : "");
        w8_roof_paired p = paired(t, u->probe[t->n_gen > 0], macs, bytes);
        if (p.fraction < 0) continue;
        char used[80];
        if (p.steady)
            snprintf(used, sizeof used, "%d of %d repetitions steady, their median", p.steady,
                     t->reps);
        else
            snprintf(used, sizeof used, "none of %d repetitions steady: the median of all",
                     t->reps);
        if (t->n_gen == 0)
            printf("roofline: %s: %.3g of the int8 loop run around each repetition (%s; "
                   "it ran at %.1f GOPS)\n", t->name, p.fraction, used, p.ceiling / 1e9);
        else
            printf("roofline: %s: %.3g of a plain read of the same weights around each "
                   "repetition (%s; it ran at %.2f GB/s)\n", t->name, p.fraction, used,
                   p.ceiling / 1e9);
    }
    printf("roofline: a repetition is steady when the probes before and after it differ "
           "by at most %.0f%%\n", W8_ROOF_STEADY * 100);
}

/* The --json text with the roofline fields added to each test's object. */
static char *roof_json(const char *text, const w8_bench_result *res, const w8_roofline *rf,
                       const bench_ud *u, double macs, double bytes) {
    json_t *arr = json_loads(text, 0, NULL);
    if (!json_is_array(arr)) {
        json_decref(arr);
        w8_seterr("bench: internal JSON error");
        return NULL;
    }
    for (int i = 0; i < res->n_tests && i < (int)json_array_size(arr); i++) {
        const w8_bench_test *t = &res->tests[i];
        json_t *o = json_array_get(arr, (size_t)i);
        double got, f = roof_fraction(t, rf, macs, bytes, &got);
        json_object_set_new(o, "roofline_int8_peak_ops", json_real(rf->int8_ops));
        json_object_set_new(o, "roofline_int8_peak_ops_1thread",
                            rf->int8_ops_1t > 0 ? json_real(rf->int8_ops_1t) : json_null());
        json_object_set_new(o, "roofline_read_bytes_per_s", json_real(rf->read_bytes));
        json_object_set_new(o, "roofline_bound", json_string(t->n_gen == 0 ? "int8" : "bandwidth"));
        /* per token as loaded (--float_layers int8 reads 1 byte per weight there) */
        json_object_set_new(o, "roofline_weight_bytes_per_token", json_real(bytes));
        json_object_set_new(o, "roofline_int8_macs_per_token", json_real(macs));
        json_object_set_new(o, "roofline_achieved", json_real(got));
        json_object_set_new(o, "roofline_fraction", f < 0 ? json_null() : json_real(f));
        w8_roof_paired p = paired(t, u->probe[t->n_gen > 0], macs, bytes);
        json_object_set_new(o, "roofline_paired_ceiling", json_real(p.ceiling));
        json_object_set_new(o, "roofline_paired_fraction",
                            p.fraction < 0 ? json_null() : json_real(p.fraction));
        json_object_set_new(o, "roofline_paired_steady", json_integer(p.steady));
    }
    char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(arr);
    return s;
}

int w8_cmd_bench(int argc, char **argv) {
    const char *model_path = NULL, *float_layers = NULL;
    int n_prompt = 512, n_gen = 128, reps = 3, threads = 0, json = 0, seed = 1234, roof = 0;
    const w8_opt opts[] = {
        {"model_path", 'm', W8_ARG_STR, &model_path, "model directory, float or W8A8 (required)"},
        {"n-prompt", 'p', W8_ARG_INT, &n_prompt, "prompt tokens for the pp test, 0 skips (default 512)"},
        {"n-gen", 'n', W8_ARG_INT, &n_gen, "tokens for the tg test, 0 skips (default 128)"},
        {"repetitions", 'r', W8_ARG_INT, &reps, "timed repetitions of each test (default 3)"},
        {"threads", 't', W8_ARG_INT, &threads, "threads (default: all cores)"},
        {"seed", 0, W8_ARG_INT, &seed, "seed of the random token ids (default 1234)"},
        {"json", 0, W8_ARG_FLAG, &json, "print JSON instead of the markdown table"},
        {"roofline", 0, W8_ARG_FLAG, &roof,
         "measure int8 peak and read bandwidth (~1 s); print each test's fraction of it"},
        {"float_layers", 0, W8_ARG_STR, &float_layers, W8_ARGS_FLOAT_LAYERS_HELP},
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
    w8_load_opts lo;
    if (w8_args_float_layers(float_layers, &lo)) return 1;
    w8_args_apply_threads(threads);

    int rc = 1;
    w8_bench_result res = {0};
    char *text = NULL;
    bench_ud u = {NULL, roof, {NULL, NULL}};
    w8_model *m = w8_model_load_opts(model_path, &lo);
    if (!m) goto out;
    w8_bench_opts o = {n_prompt, n_gen, reps, (uint64_t)seed};
    u.m = m;
    u.probe[0] = w8_xcalloc((size_t)reps + 1, sizeof(double));
    u.probe[1] = w8_xcalloc((size_t)reps + 1, sizeof(double));
    if (w8_bench_run(m, &o, &res, on_run, &u) != 0) goto out;
    /* measured after the tests, so the read buffer does not disturb them */
    w8_roofline rf;
    double macs = 0, bytes = 0;
    if (roof) {
        if (w8_roofline_measure(&rf) != 0) goto out;
        w8_roofline_model(m, n_prompt, &macs, &bytes);
    }
    if (json) {
        if (!(text = w8_bench_json(&res))) goto out;
        if (roof) {
            char *t2 = roof_json(text, &res, &rf, &u, macs, bytes);
            free(text);
            if (!(text = t2)) goto out;
        }
        printf("%s\n", text);
    } else {
        if (!(text = w8_bench_markdown(&res))) goto out;
        char rss[32];
        w8_bench_fmt_size(rss, sizeof rss, res.peak_rss);
        printf("%s\npeak RSS: %s (%zu bytes)\n", text, rss, res.peak_rss);
        if (roof) roof_print(&res, &rf, &u, macs, bytes);
    }
    rc = 0;
out:
    if (rc) fprintf(stderr, "w8a8: %s\n", w8_lasterr());
    free(text);
    w8_bench_free(&res);
    free(u.probe[0]);
    free(u.probe[1]);
    w8_model_free(m);
    return rc;
}

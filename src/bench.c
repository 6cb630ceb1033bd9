/*
 * bench.c - llama-bench style speed tests (see bench.h).
 *
 * Timing covers exactly the w8_forward calls of a test; KV reservation,
 * sequence setup and the untimed prompt stay outside.  Token ids come from a
 * seeded RNG so runs are comparable.  tg feeds fixed ids rather than the
 * argmax of the logits, as llama-bench does: picking a token (a scan of
 * 150k logits, ~3% of a 0.5B decode step) is the sampler's cost, not the
 * engine's.
 */
#include "bench.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "forward.h"
#include "json.h"
#include "kv_cache.h"
#include "util.h"

#define BENCH_BLOCK W8_BENCH_BLOCK

/* ------------------------------------------------------------ describing */

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Side tensors of a W8A8 layer carry no parameters of the original model;
 * leaving them out gives the float and the quantized copy the same count. */
static int is_quant_side_tensor(const char *name) {
    static const char *const sfx[] = {".input_scale", ".input_offset", ".quant_bias",
                                      ".deq_scale", ".weight_scale", ".weight_offset"};
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++)
        if (ends_with(name, sfx[i])) return 1;
    return 0;
}

/* Sum of the sizes of the distinct files the tensors live in (falls back to
 * tensor bytes when a file cannot be stat'ed). */
static size_t weights_size(const w8_st *st) {
    size_t n = w8_st_count(st), total = 0, tensor_bytes = 0, nfiles = 0;
    const char **files = w8_xcalloc(n ? n : 1, sizeof *files);
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        const w8_tensor *t = w8_st_at(st, i);
        tensor_bytes += t->nbytes;
        if (!t->file) {
            ok = 0;
            continue;
        }
        size_t j = 0;
        while (j < nfiles && strcmp(files[j], t->file)) j++;
        if (j < nfiles) continue;
        files[nfiles++] = t->file;
        struct stat sb;
        if (stat(t->file, &sb) == 0) total += (size_t)sb.st_size;
        else ok = 0;
    }
    free(files);
    return ok && total ? total : tensor_bytes;
}

int w8_bench_describe(const w8_model *m, w8_bench_result *r) {
    memset(r, 0, sizeof *r);
    const char *kind = m->quantized ? w8_model_kind(m) : m->embed ? w8_dtype_name(m->embed->dtype) : "?";
    /* a float directory is named by its dtype; layers made int8 at load
     * (--float_layers int8) are named too: they change what a token reads */
    snprintf(r->model, sizeof r->model, "%s %s%s",
             m->cfg.model_type[0] ? m->cfg.model_type : "model", kind,
             !m->quantized && m->n_converted ? " +int8 linears" : "");
    size_t n = w8_st_count(m->st);
    for (size_t i = 0; i < n; i++) {
        const w8_tensor *t = w8_st_at(m->st, i);
        if (!is_quant_side_tensor(t->name)) r->n_params += t->numel;
    }
    r->size_bytes = weights_size(m->st);
    snprintf(r->backend, sizeof r->backend, "CPU (%s)", w8_isa_name(w8_isa_active()));
    r->threads = w8_get_threads();
    double la[1];
    r->load_avg = getloadavg(la, 1) == 1 ? la[0] : -1;
    r->n_cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    return 0;
}

/* ------------------------------------------------------------ running */

/* CPU seconds of the whole process (all threads). */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Times one repetition: wall and CPU seconds of what lies between begin and end. */
typedef struct {
    double wall, cpu;
} bench_time;
static void tbegin(bench_time *t) {
    t->wall = w8_now();
    t->cpu = cpu_now();
}
static void tend(bench_time *t) {
    t->wall = w8_now() - t->wall;
    t->cpu = cpu_now() - t->cpu;
}

typedef struct {
    const w8_model *m;
    w8_ctx *ctx;
    w8_kv *kv;
    int *tokens;       /* [rows]: prompt ids */
    int *gen;          /* [n_gen]: ids fed to the decode steps */
    w8_batch_buf bb;   /* [rows] */
    float *logits;     /* one row */
} bench_state;

static void seq_drop(w8_kv *kv, w8_seq *s) {
    w8_kv_seq_release(kv, s);
    free(s->blocks);
    w8_seq_init(s);
}

/* One pp run: n tokens in one batch into a fresh sequence. */
static int run_pp(bench_state *b, int n, bench_time *tm) {
    w8_seq s;
    w8_seq_init(&s);
    if (w8_kv_seq_reserve(b->kv, &s, n) != 0)
        return w8_seterr("bench: KV cache has no room for %d tokens", n);
    w8_batch_clear(&b->bb);
    for (int i = 0; i < n; i++) w8_batch_add(&b->bb, b->tokens[i], i, &s, i == n - 1);
    tbegin(tm);
    int rc = w8_forward(b->ctx, b->m, b->kv, &b->bb.b, b->logits);
    tend(tm);
    seq_drop(b->kv, &s);
    return rc < 0 ? -1 : 0;
}

/* One tg run: an untimed prompt, then n decode steps of one token each. */
static int run_tg(bench_state *b, int n, bench_time *tm) {
    const int np = W8_BENCH_TG_PROMPT;
    w8_seq s;
    w8_seq_init(&s);
    if (w8_kv_seq_reserve(b->kv, &s, np + n) != 0)
        return w8_seterr("bench: KV cache has no room for %d tokens", np + n);
    w8_batch_clear(&b->bb);
    for (int i = 0; i < np; i++) w8_batch_add(&b->bb, b->tokens[i], i, &s, i == np - 1);
    int rc = w8_forward(b->ctx, b->m, b->kv, &b->bb.b, b->logits);
    tbegin(tm);
    for (int i = 0; i < n && rc >= 0; i++) {
        w8_batch_clear(&b->bb);
        w8_batch_add(&b->bb, b->gen[i], np + i, &s, 1);
        rc = w8_forward(b->ctx, b->m, b->kv, &b->bb.b, b->logits);
    }
    tend(tm);
    seq_drop(b->kv, &s);
    return rc < 0 ? -1 : 0;
}

static void stats(w8_bench_test *t, const bench_time *tm, int threads) {
    int ntok = t->n_prompt ? t->n_prompt : t->n_gen;
    double sum = 0, sum_s = 0, sum_cpu = 0;
    for (int i = 0; i < t->reps; i++) {
        t->ts[i] = tm[i].wall > 0 ? ntok / tm[i].wall : 0;
        sum += t->ts[i];
        sum_s += tm[i].wall;
        sum_cpu += tm[i].cpu;
    }
    t->mean_ts = sum / t->reps;
    t->mean_s = sum_s / t->reps;
    t->cpu_s = sum_cpu / t->reps;
    t->cpu_ts = t->cpu_s > 0 ? ntok / (t->cpu_s / (threads > 0 ? threads : 1)) : 0;
    double var = 0;
    for (int i = 0; i < t->reps; i++) var += (t->ts[i] - t->mean_ts) * (t->ts[i] - t->mean_ts);
    t->sd_ts = t->reps > 1 ? sqrt(var / (t->reps - 1)) : 0;
}

/* Warm-up, then reps timed runs of one test. */
static int run_test(bench_state *b, w8_bench_test *t, const w8_bench_opts *o, w8_bench_cb cb,
                    void *ud) {
    bench_time *tm = w8_xcalloc((size_t)o->reps, sizeof *tm), warm;
    int rc = 0;
    t->reps = o->reps;
    t->ts = w8_xcalloc((size_t)o->reps, sizeof *t->ts);
    for (int r = -1; r < o->reps && rc == 0; r++) {
        if (cb) cb(ud, t->name, r, o->reps);
        bench_time *dst = r < 0 ? &warm : &tm[r];
        rc = t->n_prompt ? run_pp(b, t->n_prompt, dst) : run_tg(b, t->n_gen, dst);
    }
    if (rc == 0 && cb) cb(ud, t->name, o->reps, o->reps);
    if (rc == 0) stats(t, tm, w8_get_threads());
    free(tm);
    return rc;
}

int w8_bench_run(const w8_model *m, const w8_bench_opts *o, w8_bench_result *r, w8_bench_cb cb,
                 void *ud) {
    w8_bench_describe(m, r);
    if (o->n_prompt < 0 || o->n_gen < 0)
        return w8_seterr("bench: -p and -n must not be negative");
    if (o->reps < 1 || o->reps > W8_BENCH_MAX_REPS)
        return w8_seterr("bench: -r must be 1..%d (got %d)", W8_BENCH_MAX_REPS, o->reps);
    int rows = o->n_prompt > W8_BENCH_TG_PROMPT ? o->n_prompt : W8_BENCH_TG_PROMPT;
    int need = o->n_prompt > W8_BENCH_TG_PROMPT + o->n_gen ? o->n_prompt
                                                           : W8_BENCH_TG_PROMPT + o->n_gen;
    bench_state b = {.m = m};
    b.kv = w8_kv_new(&m->cfg, BENCH_BLOCK, (need + BENCH_BLOCK - 1) / BENCH_BLOCK);
    if (!b.kv) return -1;
    b.ctx = w8_ctx_new(m, rows);
    if (!b.ctx) {
        w8_kv_free(b.kv);
        return -1;
    }
    b.tokens = w8_xmalloc((size_t)rows * sizeof *b.tokens);
    w8_batch_buf_init(&b.bb, rows);
    b.logits = w8_xmalloc((size_t)m->cfg.vocab * sizeof *b.logits);
    w8_rng rng;
    w8_rng_seed(&rng, o->seed);
    for (int i = 0; i < rows; i++) b.tokens[i] = (int)(w8_rng_u64(&rng) % (uint64_t)m->cfg.vocab);
    b.gen = w8_xmalloc((size_t)(o->n_gen > 0 ? o->n_gen : 1) * sizeof *b.gen);
    for (int i = 0; i < o->n_gen; i++) b.gen[i] = (int)(w8_rng_u64(&rng) % (uint64_t)m->cfg.vocab);

    int rc = 0;
    if (o->n_prompt > 0) {
        w8_bench_test *t = &r->tests[r->n_tests++];
        snprintf(t->name, sizeof t->name, "pp%d", o->n_prompt);
        t->n_prompt = o->n_prompt;
        rc = run_test(&b, t, o, cb, ud);
    }
    if (rc == 0 && o->n_gen > 0) {
        w8_bench_test *t = &r->tests[r->n_tests++];
        snprintf(t->name, sizeof t->name, "tg%d", o->n_gen);
        t->n_gen = o->n_gen;
        rc = run_test(&b, t, o, cb, ud);
    }
    r->peak_rss = w8_peak_rss_bytes();
    free(b.tokens);
    free(b.gen);
    w8_batch_buf_free(&b.bb);
    free(b.logits);
    w8_ctx_free(b.ctx);
    w8_kv_free(b.kv);
    return rc;
}

void w8_bench_free(w8_bench_result *r) {
    for (int i = 0; i < r->n_tests; i++) {
        free(r->tests[i].ts);
        r->tests[i].ts = NULL;
    }
}

/* ------------------------------------------------------------ formatting */

void w8_bench_fmt_size(char *buf, size_t n, size_t bytes) {
    double b = (double)bytes;
    if (b >= 1024.0 * 1024 * 1024) snprintf(buf, n, "%.2f GiB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024.0 * 1024) snprintf(buf, n, "%.2f MiB", b / (1024.0 * 1024));
    else snprintf(buf, n, "%.2f KiB", b / 1024.0);
}

static void fmt_params(char *buf, size_t n, size_t p) {
    double x = (double)p;
    if (x >= 1e9) snprintf(buf, n, "%.2f B", x / 1e9);
    else if (x >= 1e6) snprintf(buf, n, "%.2f M", x / 1e6);
    else snprintf(buf, n, "%.2f K", x / 1e3);
}

char *w8_bench_markdown(const w8_bench_result *r) {
    char *out = NULL, size[32], params[32];
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f) return NULL;
    w8_bench_fmt_size(size, sizeof size, r->size_bytes);
    fmt_params(params, sizeof params, r->n_params);
    fprintf(f, "| model | size | params | backend | threads | test | t/s |\n");
    fprintf(f, "| ----- | ---: | -----: | ------- | ------: | ---: | --: |\n");
    for (int i = 0; i < r->n_tests; i++) {
        const w8_bench_test *t = &r->tests[i];
        fprintf(f, "| %s | %s | %s | %s | %d | %s | %.2f ± %.2f |\n", r->model, size, params,
                r->backend, r->threads, t->name, t->mean_ts, t->sd_ts);
    }
    /* On a shared machine wall-clock speed says as much about the neighbours
     * as about the code: show the load and the CPU-time speed next to it. */
    fprintf(f, "\nload average %.2f on %d CPUs; CPU-time speed (tokens per CPU-second x %d "
               "threads):",
            r->load_avg, r->n_cpus, r->threads);
    for (int i = 0; i < r->n_tests; i++)
        fprintf(f, " %s %.2f t/s%s", r->tests[i].name, r->tests[i].cpu_ts,
                i + 1 < r->n_tests ? "," : "");
    fprintf(f, "\n");
    fclose(f);
    return out;
}

char *w8_bench_json(const w8_bench_result *r) {
    json_t *arr = json_array();
    for (int i = 0; i < r->n_tests; i++) {
        const w8_bench_test *t = &r->tests[i];
        json_t *samples = json_array();
        for (int k = 0; k < t->reps; k++) json_array_append_new(samples, json_real(t->ts[k]));
        json_t *o = json_object();
        json_object_set_new(o, "model_type", json_string(r->model));
        json_object_set_new(o, "model_size", json_integer((json_int_t)r->size_bytes));
        json_object_set_new(o, "model_n_params", json_integer((json_int_t)r->n_params));
        json_object_set_new(o, "backend", json_string(r->backend));
        json_object_set_new(o, "n_threads", json_integer(r->threads));
        json_object_set_new(o, "test", json_string(t->name));
        json_object_set_new(o, "n_prompt", json_integer(t->n_prompt));
        json_object_set_new(o, "n_gen", json_integer(t->n_gen));
        json_object_set_new(o, "repetitions", json_integer(t->reps));
        json_object_set_new(o, "avg_ns", json_integer((json_int_t)(t->mean_s * 1e9)));
        json_object_set_new(o, "avg_ts", json_real(t->mean_ts));
        json_object_set_new(o, "stddev_ts", json_real(t->sd_ts));
        json_object_set_new(o, "samples_ts", samples);
        json_object_set_new(o, "cpu_s", json_real(t->cpu_s));
        json_object_set_new(o, "cpu_ts", json_real(t->cpu_ts));
        json_object_set_new(o, "load_avg", json_real(r->load_avg));
        json_object_set_new(o, "peak_rss_bytes", json_integer((json_int_t)r->peak_rss));
        json_array_append_new(arr, o);
    }
    char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(arr);
    return s;
}

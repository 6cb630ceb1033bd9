/*
 * bench.h - prompt processing and generation speed, modelled on llama-bench.
 *
 *   ppN  one batch of N random (seeded) token ids through w8_forward into a
 *        fresh sequence; only the last row's logits, as llama-bench asks.
 *   tgN  N tokens decoded one at a time (fixed random ids, as llama-bench
 *        feeds) after a short untimed prompt; logits of every step.
 *
 * Each test runs once untimed (warm-up: page faults, caches, thread pool),
 * then `reps` timed repetitions; the result is tokens/s, mean and standard
 * deviation over the repetitions.  The library only measures and formats;
 * the command prints.
 */
#ifndef W8_BENCH_H
#define W8_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define W8_BENCH_MAX_REPS 1000
#define W8_BENCH_TG_PROMPT 8 /* untimed prompt before the timed decode steps */
#define W8_BENCH_BLOCK 128   /* KV block size, the default of run and serve */

typedef struct {
    int n_prompt;   /* pp test size; 0 skips it */
    int n_gen;      /* tg test size; 0 skips it */
    int reps;       /* timed repetitions, 1..W8_BENCH_MAX_REPS */
    uint64_t seed;  /* token ids */
} w8_bench_opts;

typedef struct {
    char name[24];    /* "pp512", "tg128" */
    int n_prompt, n_gen;
    int reps;
    double *ts;       /* [reps] tokens/s of each repetition (owned) */
    double mean_ts, sd_ts;
    double mean_s;    /* mean seconds per repetition */
    double cpu_s;     /* mean process CPU seconds per repetition (all threads) */
    double cpu_ts;    /* tokens / (cpu_s / threads): the speed the test would have with
                       * its threads on otherwise idle cores; on a shared machine the
                       * honest companion of mean_ts (OpenMP spin-waiting counts as CPU) */
} w8_bench_test;

typedef struct {
    char model[64];       /* "qwen2 W8A8", "llama BF16" */
    size_t size_bytes;    /* weight file sizes */
    size_t n_params;      /* logical parameters (quantization side tensors not counted) */
    char backend[32];     /* "CPU (avx512)" */
    int threads;
    int n_tests;
    w8_bench_test tests[2];
    size_t peak_rss;      /* bytes, after the runs */
    double load_avg;      /* 1-minute load average before the runs (-1 if unknown) */
    int n_cpus;           /* online CPUs */
} w8_bench_result;

/* Describe the model (name, size, params, backend, threads) without running. */
int w8_bench_describe(const w8_model *m, w8_bench_result *r);
/* Run the tests.  r is described first; free with w8_bench_free (also on failure).
 * cb (may be NULL) is told before each test's warm-up (rep -1) and each
 * repetition starts (rep 0 .. reps - 1), and once after its last one (rep
 * == reps). */
typedef void (*w8_bench_cb)(void *ud, const char *test, int rep, int reps);
int w8_bench_run(const w8_model *m, const w8_bench_opts *o, w8_bench_result *r, w8_bench_cb cb,
                 void *ud);
void w8_bench_free(w8_bench_result *r);

/* Formatting (caller frees): the llama-bench markdown table (followed by a
 * line with the machine load and the CPU-time speeds), and JSON (an array of
 * one object per test, llama-bench's field names where they exist). */
char *w8_bench_markdown(const w8_bench_result *r);
char *w8_bench_json(const w8_bench_result *r);

/* "630.12 MiB", "1.23 GiB" */
void w8_bench_fmt_size(char *buf, size_t n, size_t bytes);

#endif

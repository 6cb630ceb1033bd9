/*
 * util.h - small shared helpers for the w8a8 library.
 *
 * Error convention (used by every module): library functions never print and
 * never exit.  On failure they record one line with w8_seterr() and return a
 * failure value (-1 or NULL).  The command-line front end prints w8_lasterr()
 * prefixed with "w8a8: " and exits 1.  Messages name the file (and tensor,
 * key, line...) that is wrong, e.g.
 *     "model.safetensors: tensor 'lm_head.weight': data range [10, 99) past end of file (64 bytes)"
 * The error buffer is thread-local, so server worker threads do not race.
 */
#ifndef W8_UTIL_H
#define W8_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define W8_ERRMAX 512

#if defined(__GNUC__)
#define W8_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define W8_PRINTF(a, b)
#endif

/* Record the current error (replaces any previous one). Always returns -1. */
int w8_seterr(const char *fmt, ...) W8_PRINTF(1, 2);
/* Append one formatted line (at most W8_ERRMAX bytes) to a growable list of
 * strings: the violations, variants and consumer verdicts of a checker. */
void w8_lines_addf(char ***list, int *n, const char *fmt, ...) W8_PRINTF(3, 4);
void w8_lines_add(char ***list, int *n, const char *s);
void w8_lines_free(char **list, int n);
/* Prefix the current error with "prefix: " (e.g. the file name). Returns -1. */
int w8_preferr(const char *fmt, ...) W8_PRINTF(1, 2);
const char *w8_lasterr(void);
void w8_clearerr(void);

/* Allocation that aborts on out-of-memory.  Sizes that come from files are
 * validated (w8_mul_ok) before they reach these, so OOM here is a real OOM. */
void *w8_xmalloc(size_t n);
void *w8_xcalloc(size_t n, size_t size);
void *w8_xrealloc(void *p, size_t n);
char *w8_xstrdup(const char *s);
char *w8_xstrndup(const char *s, size_t n);
/* 64-byte aligned allocation, free with free(). */
void *w8_xalloc_aligned(size_t n);

/* Overflow-checked size arithmetic: return 1 and store when it fits, 0 on overflow. */
int w8_mul_ok(size_t a, size_t b, size_t *out);
int w8_add_ok(size_t a, size_t b, size_t *out);

/* Half-precision conversions.  f32 -> f16/bf16 round to nearest even and keep NaN/Inf. */
float w8_f16_to_f32(uint16_t h);
uint16_t w8_f32_to_f16(float f);
static inline float w8_bf16_to_f32(uint16_t b) {
    union { uint32_t u; float f; } v = { (uint32_t)b << 16 };
    return v.f;
}
uint16_t w8_f32_to_bf16(float f);
/* Round half to even, as FORMAT.md requires (uses the FPU's default mode). */
float w8_round_even(float x);

/* Whole-file read with a size cap; NUL-terminates.  NULL + error on failure.
 * Regular files only (model files: a FIFO there is a mistake). */
char *w8_read_file(const char *path, size_t max_bytes, size_t *len_out);
/* All of a stream up to EOF, with the same cap and NUL; `label` names it in errors. */
char *w8_read_stream(FILE *f, const char *label, size_t max_bytes, size_t *len_out);
/* A user's input file (--file): "-" is standard input; a regular file is read
 * as w8_read_file; a FIFO, /dev/fd/N (bash's <(...)) or other non-directory is
 * read to its end. */
char *w8_read_input(const char *path, size_t max_bytes, size_t *len_out);
/* Path join into a fresh string: "dir/name". */
char *w8_path_join(const char *dir, const char *name);
/* p without its trailing slashes ("/" stays "/"); malloc'd. */
char *w8_path_strip(const char *p);
/* The directory that holds p (given without trailing slashes): "." for a
 * bare name, "/" for a name at the root; malloc'd. */
char *w8_path_parent(const char *p);
int w8_file_exists(const char *path);
int w8_is_dir(const char *path);
/* Create directories like mkdir -p. */
int w8_mkdir_p(const char *path);
/* Remove a directory tree (used for temporary output directories). */
int w8_rm_rf(const char *path);
/* Copy a file byte for byte (dst created with 0644, written to dst then closed). */
int w8_copy_file(const char *src, const char *dst);

/* Wall clock in seconds (monotonic). */
double w8_now(void);
/* Resident set size of this process in bytes (from /proc/self/statm), peak in VmHWM. */
size_t w8_rss_bytes(void);
size_t w8_peak_rss_bytes(void);

/* Progress reporting on stderr: a redrawn bar on a terminal, plain lines
 * (at most every few seconds, and at the end) when stderr is not a terminal. */
typedef struct {
    const char *label;
    long total;
    long done;
    double t0, last_print;
    int tty;
    int quiet;
} w8_progress;
void w8_progress_begin(w8_progress *p, const char *label, long total);
void w8_progress_update(w8_progress *p, long done, const char *extra);
void w8_progress_end(w8_progress *p);

/* Deterministic RNG (xorshift64*), used by sampler, synth and tests. */
typedef struct { uint64_t s; } w8_rng;
void w8_rng_seed(w8_rng *r, uint64_t seed);
uint64_t w8_rng_u64(w8_rng *r);
float w8_rng_f32(w8_rng *r);    /* uniform [0, 1) */
float w8_rng_normal(w8_rng *r); /* standard normal (Box-Muller) */

/* Threads: set once by the front end (-t N); 0 means all cores (OpenMP's
 * default, OMP_NUM_THREADS when set).  w8_get_threads() is the one source of
 * the count: every OpenMP parallel region names it (num_threads), directly
 * or through a count derived from it, so that a region run on another
 * pthread (the server's scheduler) obeys -t too; omp_set_num_threads only
 * reaches the thread that called it.  tests/cli_deps.sh checks the regions. */
void w8_set_threads(int n);
int w8_get_threads(void);

#endif

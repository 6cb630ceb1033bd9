/*
 * util.c - errors, checked allocation and arithmetic, half-precision
 * conversion, small file helpers, timing, progress bars, RNG.
 */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---------------------------------------------------------------- errors */

static _Thread_local char errbuf[W8_ERRMAX];

int w8_seterr(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return -1;
}

int w8_preferr(const char *fmt, ...) {
    char pre[W8_ERRMAX], old[W8_ERRMAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, errbuf, sizeof old);
    /* truncation is fine: the message is one line for a human */
    size_t n = strlen(pre);
    if (n > sizeof errbuf - 3) n = sizeof errbuf - 3;
    memcpy(errbuf, pre, n);
    memcpy(errbuf + n, ": ", 2);
    size_t room = sizeof errbuf - n - 3;
    size_t m = strnlen(old, room);
    memcpy(errbuf + n + 2, old, m);
    errbuf[n + 2 + m] = 0;
    return -1;
}

const char *w8_lasterr(void) { return errbuf[0] ? errbuf : "unknown error"; }
void w8_clearerr(void) { errbuf[0] = 0; }

/* ------------------------------------------------------------ allocation */

static void oom(size_t n) {
    fprintf(stderr, "w8a8: out of memory allocating %zu bytes\n", n);
    abort();
}

void *w8_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *w8_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *w8_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *w8_xstrdup(const char *s) { return w8_xstrndup(s, strlen(s)); }

char *w8_xstrndup(const char *s, size_t n) {
    char *p = w8_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* Weight-sized buffers (packed matrices, the KV pool) are aligned to 2 MB
 * and offered to transparent huge pages: the first touch of a 4 KB page
 * costs a fault (dear under a hypervisor: loading a 0.5B model took ~3 s of
 * faults), and streaming hundreds of MB per token through 4 KB pages
 * misses the TLB.  Freed with free() like any other block. */
#define W8_HUGE_MIN ((size_t)4 << 20)
#define W8_HUGE_ALIGN ((size_t)2 << 20)

void *w8_xalloc_aligned(size_t n) {
    void *p = NULL;
    if (n > SIZE_MAX - W8_HUGE_ALIGN) oom(n); /* rounding up would wrap */
    size_t rounded = (n + 63) & ~(size_t)63;
    size_t align = rounded >= W8_HUGE_MIN ? W8_HUGE_ALIGN : 64;
    if (posix_memalign(&p, align, rounded ? rounded : 64) != 0) oom(n);
#ifdef MADV_HUGEPAGE
    if (align == W8_HUGE_ALIGN) madvise(p, rounded & ~(W8_HUGE_ALIGN - 1), MADV_HUGEPAGE);
#endif
    return p;
}

int w8_mul_ok(size_t a, size_t b, size_t *out) {
    size_t r;
    if (__builtin_mul_overflow(a, b, &r)) return 0;
    *out = r;
    return 1;
}

int w8_add_ok(size_t a, size_t b, size_t *out) {
    size_t r;
    if (__builtin_add_overflow(a, b, &r)) return 0;
    *out = r;
    return 1;
}

/* ------------------------------------------------------- half precision */

float w8_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    union { uint32_t u; float f; } v;
    if (exp == 0) {
        /* zero or subnormal: value = man * 2^-24 */
        float f = (float)man * (1.0f / 16777216.0f);
        return sign ? -f : f;
    } else if (exp == 31) {
        v.u = sign | 0x7f800000u | (man << 13);
    } else {
        v.u = sign | ((exp + 112) << 23) | (man << 13);
    }
    return v.f;
}

uint16_t w8_f32_to_f16(float f) {
    union { float f; uint32_t u; } v = { f };
    uint32_t sign = (v.u >> 16) & 0x8000;
    uint32_t x = v.u & 0x7fffffff;
    if (x >= 0x7f800000u) /* Inf or NaN (keep a quiet NaN payload bit) */
        return (uint16_t)(sign | 0x7c00 | (x > 0x7f800000u ? 0x200 : 0));
    if (x >= 0x477ff000u) /* rounds to >= 65520: overflow to Inf */
        return (uint16_t)(sign | 0x7c00);
    if (x < 0x38800000u) {
        /* result is subnormal (or zero): scale so the f16 ulp 2^-24 is 1.0
         * and let the FPU round half to even */
        float a = fabsf(f) * 16777216.0f;
        uint32_t m = (uint32_t)w8_round_even(a);
        return (uint16_t)(sign | m);
    }
    /* normal: drop 13 mantissa bits with round-half-even */
    uint32_t r = x + 0xfff + ((x >> 13) & 1);
    r -= 0x38000000u; /* rebias exponent 127 -> 15 */
    return (uint16_t)(sign | (r >> 13));
}

uint16_t w8_f32_to_bf16(float f) {
    union { float f; uint32_t u; } v = { f };
    if ((v.u & 0x7fffffff) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);
    uint32_t r = v.u + 0x7fff + ((v.u >> 16) & 1);
    return (uint16_t)(r >> 16);
}

float w8_round_even(float x) { return nearbyintf(x); }

/* ------------------------------------------------------------------ files */

char *w8_read_file(const char *path, size_t max_bytes, size_t *len_out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        w8_seterr("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        w8_seterr("%s: not a regular file", path);
        return NULL;
    }
    if ((size_t)st.st_size > max_bytes) {
        fclose(f);
        w8_seterr("%s: file is %lld bytes, over the limit of %zu", path,
                  (long long)st.st_size, max_bytes);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *buf = w8_xmalloc(n + 1);
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    if (got != n) {
        free(buf);
        w8_seterr("%s: short read (%zu of %zu bytes)", path, got, n);
        return NULL;
    }
    buf[n] = 0;
    if (len_out) *len_out = n;
    return buf;
}

char *w8_read_stream(FILE *f, const char *label, size_t max_bytes, size_t *len_out) {
    size_t n = 0, cap = 1 << 16;
    char *buf = w8_xmalloc(cap);
    for (;;) {
        if (n == cap - 1) {
            if (cap - 1 > max_bytes) break; /* already read one byte past the cap */
            buf = w8_xrealloc(buf, cap *= 2);
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    if (n > max_bytes) {
        free(buf);
        w8_seterr("%s: more than %zu bytes", label, max_bytes);
        return NULL;
    }
    if (ferror(f)) {
        free(buf);
        w8_seterr("%s: read error: %s", label, strerror(errno));
        return NULL;
    }
    buf[n] = 0;
    if (len_out) *len_out = n;
    return buf;
}

char *w8_read_input(const char *path, size_t max_bytes, size_t *len_out) {
    if (!strcmp(path, "-")) return w8_read_stream(stdin, "<stdin>", max_bytes, len_out);
    struct stat st;
    if (stat(path, &st) != 0) {
        w8_seterr("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (S_ISREG(st.st_mode)) return w8_read_file(path, max_bytes, len_out);
    if (S_ISDIR(st.st_mode)) {
        w8_seterr("%s: is a directory, not a file", path);
        return NULL;
    }
    /* a FIFO, /dev/fd/N of a pipe, /dev/stdin, a terminal: read to the end */
    FILE *f = fopen(path, "rb");
    if (!f) {
        w8_seterr("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = w8_read_stream(f, path, max_bytes, len_out);
    fclose(f);
    return buf;
}

char *w8_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = w8_xmalloc(a + slash + b + 1);
    memcpy(p, dir, a);
    if (slash) p[a] = '/';
    memcpy(p + a + slash, name, b + 1);
    return p;
}

char *w8_path_strip(const char *p) {
    char *s = w8_xstrdup(p);
    size_t n = strlen(s);
    while (n > 1 && s[n - 1] == '/') s[--n] = 0;
    return s;
}

char *w8_path_parent(const char *p) {
    const char *slash = strrchr(p, '/');
    return slash ? (slash == p ? w8_xstrdup("/") : w8_xstrndup(p, (size_t)(slash - p)))
                 : w8_xstrdup(".");
}

int w8_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int w8_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int w8_mkdir_p(const char *path) {
    char *p = w8_xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            w8_seterr("%s: cannot create directory: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = 0;
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        rc = w8_seterr("%s: cannot create directory: %s", p, strerror(errno));
    free(p);
    return rc;
}

int w8_rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *sub = w8_path_join(path, e->d_name);
        if (w8_rm_rf(sub) != 0) rc = -1;
        free(sub);
    }
    closedir(d);
    if (rmdir(path) != 0) rc = -1;
    return rc;
}

int w8_copy_file(const char *src, const char *dst) {
    int in = open(src, O_RDONLY);
    if (in < 0) return w8_seterr("%s: cannot open: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) {
        close(in);
        return w8_seterr("%s: cannot create: %s", dst, strerror(errno));
    }
    char buf[1 << 16];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w <= 0) {
                rc = w8_seterr("%s: write failed: %s", dst, strerror(errno));
                goto done;
            }
            off += w;
        }
    }
    if (n < 0) rc = w8_seterr("%s: read failed: %s", src, strerror(errno));
done:
    close(in);
    if (close(out) != 0 && rc == 0) rc = w8_seterr("%s: close failed: %s", dst, strerror(errno));
    return rc;
}

/* ----------------------------------------------------------- time, memory */

double w8_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0, klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen)) {
            kb = (size_t)strtoull(line + klen, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

size_t w8_rss_bytes(void) { return status_kb("VmRSS:") * 1024; }
size_t w8_peak_rss_bytes(void) { return status_kb("VmHWM:") * 1024; }

/* --------------------------------------------------------------- progress */

void w8_progress_begin(w8_progress *p, const char *label, long total) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->t0 = w8_now();
    p->tty = isatty(2);
    p->quiet = getenv("W8A8_QUIET") != NULL;
}

static void fmt_secs(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7) s = 0;
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%02d:%02d", t / 60, t % 60);
}

static void progress_print(w8_progress *p, const char *extra, int final) {
    double now = w8_now(), el = now - p->t0;
    double frac = p->total > 0 ? (double)p->done / (double)p->total : 0;
    char e[16], eta[16];
    fmt_secs(e, sizeof e, el);
    fmt_secs(eta, sizeof eta, frac > 0 ? el / frac - el : 0);
    if (p->tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r%s [%s] %ld/%ld elapsed %s eta %s %s\033[K%s", p->label, bar,
                p->done, p->total, e, eta, extra ? extra : "", final ? "\n" : "");
    } else {
        fprintf(stderr, "%s: %ld/%ld elapsed %s eta %s %s\n", p->label, p->done, p->total, e,
                eta, extra ? extra : "");
    }
    p->last_print = now;
}

void w8_progress_update(w8_progress *p, long done, const char *extra) {
    p->done = done;
    if (p->quiet) return;
    double now = w8_now();
    if (now - p->last_print < (p->tty ? 0.1 : 5.0)) return;
    progress_print(p, extra, 0);
}

void w8_progress_end(w8_progress *p) {
    if (p->quiet) return;
    progress_print(p, NULL, 1);
}

/* -------------------------------------------------------------------- rng */

void w8_rng_seed(w8_rng *r, uint64_t seed) {
    /* splitmix64 so that small seeds give well-mixed states */
    uint64_t z = seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    r->s = (z ^ (z >> 31)) | 1;
}

uint64_t w8_rng_u64(w8_rng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dull;
}

float w8_rng_f32(w8_rng *r) { return (float)(w8_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float w8_rng_normal(w8_rng *r) {
    float u1 = w8_rng_f32(r), u2 = w8_rng_f32(r);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.283185307f * u2);
}

/* ---------------------------------------------------------------- threads */

static int g_threads = 0;

void w8_set_threads(int n) {
    g_threads = n;
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads(n);
#endif
}

int w8_get_threads(void) {
#ifdef _OPENMP
    return g_threads > 0 ? g_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

/* ----------------------------------------------------------- line lists */

void w8_lines_add(char ***list, int *n, const char *s) {
    *list = w8_xrealloc(*list, (size_t)(*n + 1) * sizeof(char *));
    (*list)[(*n)++] = w8_xstrdup(s);
}

void w8_lines_addf(char ***list, int *n, const char *fmt, ...) {
    char buf[W8_ERRMAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    w8_lines_add(list, n, buf);
}

void w8_lines_free(char **list, int n) {
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}

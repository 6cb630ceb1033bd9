/*
 * loadtest.c - a small load client for `w8a8 serve` (not part of the test
 * suite; scripts/loadtest.sh builds and runs it).
 *
 *   loadtest URL CLIENTS REQUESTS MAX_TOKENS [PROMPT]
 *
 * CLIENTS threads each send REQUESTS streamed /v1/completions requests one
 * after another (stream_options.include_usage, so the server reports the
 * generated token count) and time the first text chunk of each.  Prints one
 * line: requests ok/failed, wall time, aggregate generated tokens/s and the
 * p50/p99 time to first token.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *url, *body;
    int requests;
    double *ttft;   /* [requests] seconds, -1 when none */
    long tokens;    /* completion tokens reported by the server */
    int ok, failed;
} client;

typedef struct {
    double t0, first;
    long tokens;
} xfer;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Each SSE chunk: note the first one carrying text, and the usage numbers. */
static size_t on_data(char *p, size_t size, size_t n, void *ud) {
    xfer *x = ud;
    size_t len = size * n;
    if (x->first < 0 && memmem(p, len, "\"text\":\"", 8) && !memmem(p, len, "\"text\":\"\"", 9))
        x->first = now();
    const char *u = memmem(p, len, "\"completion_tokens\":", 20);
    if (u) x->tokens = strtol(u + 20, NULL, 10);
    return len;
}

static void *run_client(void *arg) {
    client *c = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    for (int i = 0; i < c->requests; i++) {
        xfer x = {now(), -1, 0};
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, c->url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 600L);
        long code = 0;
        CURLcode rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (rc == CURLE_OK && code == 200) {
            c->ok++;
            c->tokens += x.tokens;
            c->ttft[i] = x.first >= 0 ? x.first - x.t0 : -1;
        } else {
            c->failed++;
            c->ttft[i] = -1;
        }
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return NULL;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: loadtest URL CLIENTS REQUESTS MAX_TOKENS [PROMPT]\n");
        return 1;
    }
    int nc = atoi(argv[2]), nr = atoi(argv[3]), mt = atoi(argv[4]);
    const char *prompt = argc > 5 ? argv[5] : "Once upon a time";
    if (nc < 1 || nr < 1 || mt < 1) return fprintf(stderr, "loadtest: bad numbers\n"), 1;
    char url[512], body[4096];
    snprintf(url, sizeof url, "%s/v1/completions", argv[1]);
    /* the prompt is used as given: keep it free of quotes and backslashes */
    snprintf(body, sizeof body,
             "{\"prompt\":\"%s\",\"max_tokens\":%d,\"stream\":true,"
             "\"stream_options\":{\"include_usage\":true},\"temperature\":0.8}",
             prompt, mt);
    curl_global_init(CURL_GLOBAL_ALL);
    client *cs = calloc((size_t)nc, sizeof *cs);
    pthread_t *th = calloc((size_t)nc, sizeof *th);
    double t0 = now();
    for (int i = 0; i < nc; i++) {
        cs[i] = (client){url, body, nr, calloc((size_t)nr, sizeof(double)), 0, 0, 0};
        pthread_create(&th[i], NULL, run_client, &cs[i]);
    }
    long tokens = 0;
    int ok = 0, failed = 0, nt = 0;
    double *all = calloc((size_t)nc * nr, sizeof(double));
    for (int i = 0; i < nc; i++) {
        pthread_join(th[i], NULL);
        tokens += cs[i].tokens;
        ok += cs[i].ok;
        failed += cs[i].failed;
        for (int j = 0; j < nr; j++)
            if (cs[i].ttft[j] >= 0) all[nt++] = cs[i].ttft[j];
        free(cs[i].ttft);
    }
    double wall = now() - t0;
    qsort(all, (size_t)nt, sizeof(double), cmp_d);
    double p50 = nt ? all[(nt - 1) / 2] : 0, p99 = nt ? all[(int)((nt - 1) * 0.99)] : 0;
    printf("requests %d ok %d failed, %.1f s, %ld tokens generated, %.1f tokens/s, "
           "TTFT p50 %.3f s p99 %.3f s\n",
           ok, failed, wall, tokens, tokens / wall, p50, p99);
    free(all);
    free(cs);
    free(th);
    curl_global_cleanup();
    return failed ? 1 : 0;
}

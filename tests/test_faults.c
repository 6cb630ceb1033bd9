/*
 * test_faults.c - failures that need help to happen, and what the code does
 * with them:
 *   - the attention scratch of w8_forward cannot grow (out of memory): an
 *     error, not an abort, and the context stays usable;
 *   - a step of the serve engine fails while a client streams: the client
 *     gets the text so far, an SSE error event with the reason and [DONE],
 *     not a silently cut stream, and the server goes on;
 *   - libmicrohttpd cannot make a response (out of memory): the connection
 *     is closed, the body and the request are freed (ASan's leak check at
 *     exit fails this program otherwise), and the server goes on.
 * The engine's failure comes from its test-only fail_step option; the
 * response failures from the two MHD functions below, which stand in for
 * the library's (the executable's definitions take precedence over the
 * shared library's, and call the real ones through dlsym when not failing).
 */
#include <curl/curl.h>
#include <dlfcn.h>
#include <limits.h>
#include <microhttpd.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "../src/buf.h"
#include "../src/forward.h"
#include "../src/kv_cache.h"
#include "../src/model.h"
#include "../src/serve/engine.h"
#include "../src/serve/server.h"
#include "../src/tokenizer/tokenizer.h"
#include "../src/util.h"
#include "engine_idle.h"
#include "test.h"

#ifdef __SANITIZE_ADDRESS__
/* A huge allocation returns NULL instead of stopping the program (ASan's
 * default), and anything past 64 GiB counts as huge whatever the machine's
 * memory and overcommit policy: the out-of-memory test needs malloc's NULL. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
    return "allocator_may_return_null=1:max_allocation_size_mb=65536";
}
#endif

/* ------------------------------------------------------------------ MHD */

static int g_fail_buffer, g_fail_callback;     /* calls still to fail */
static int g_failed_buffer, g_failed_callback; /* calls failed */

static int take_failure(int *left) {
    int n = __atomic_load_n(left, __ATOMIC_SEQ_CST);
    while (n > 0)
        if (__atomic_compare_exchange_n(left, &n, n - 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return 1;
    return 0;
}

struct MHD_Response *MHD_create_response_from_buffer(size_t size, void *buffer,
                                                     enum MHD_ResponseMemoryMode mode) {
    static struct MHD_Response *(*real)(size_t, void *, enum MHD_ResponseMemoryMode);
    if (take_failure(&g_fail_buffer)) {
        __atomic_add_fetch(&g_failed_buffer, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "MHD_create_response_from_buffer");
    return real(size, buffer, mode);
}

struct MHD_Response *MHD_create_response_from_callback(uint64_t size, size_t block_size,
                                                       MHD_ContentReaderCallback crc,
                                                       void *crc_cls,
                                                       MHD_ContentReaderFreeCallback crfc) {
    static struct MHD_Response *(*real)(uint64_t, size_t, MHD_ContentReaderCallback, void *,
                                        MHD_ContentReaderFreeCallback);
    if (take_failure(&g_fail_callback)) {
        __atomic_add_fetch(&g_failed_callback, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "MHD_create_response_from_callback");
    return real(size, block_size, crc, crc_cls, crfc);
}

/* ------------------------------------------------------------------ HTTP */

typedef struct {
    CURLcode rc;
    long status;
    w8_buf body, head;
} http_res;

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
    w8_buf_put(ud, p, size * n);
    return size * n;
}

/* GET path, or POST json when json is not NULL; http_free(r) after. */
static void http(int port, const char *path, const char *json, http_res *r) {
    memset(r, 0, sizeof *r);
    w8_buf_put(&r->body, "", 0);
    w8_buf_put(&r->head, "", 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->head);
    if (json) {
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    }
    r->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static void http_free(http_res *r) {
    w8_buf_free(&r->body);
    w8_buf_free(&r->head);
}

/* The values of every "key":"..." in s, as written (JSON-escaped), end to
 * end: the text of a stream's chunks.  malloc'd. */
static char *jcat(const char *s, const char *key) {
    w8_buf out = {0};
    w8_buf_put(&out, "", 0);
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    for (const char *p = s; (p = strstr(p, pat));) {
        p += strlen(pat);
        const char *e = p;
        while (*e && *e != '"') e += e[0] == '\\' && e[1] ? 2 : 1;
        w8_buf_put(&out, p, (size_t)(e - p));
        p = e;
    }
    return out.s;
}

/* ------------------------------------------------------------------ serve */

static void test_serve(const char *dir) {
    w8_set_threads(1);
    w8_model *m = w8_model_load(dir);
    w8_tok *tok = m ? w8_tok_load(dir) : NULL;
    CHECK(m && tok, "load %s", dir);
    if (!m || !tok) {
        w8_model_free(m);
        return;
    }
    /* prompt "Once upon a time" in one prefill step, then one token a step:
     * step 6 fails after five tokens of text */
    w8_engine_opts eo = {4, 256, 16, 64, 8, 64, 0, 6};
    w8_engine *e = w8_engine_new(m, tok, &eo);
    w8_server_opts so = {"127.0.0.1", 0, "stories", 65536, 10, 16};
    w8_server *s = e ? w8_server_start(e, m, tok, &so) : NULL;
    CHECK(s != NULL, "server starts on a free port");
    if (!s) goto out;
    int port = w8_server_port(s);
    http_res r;

    /* a step fails mid-stream */
    http(port, "/v1/completions",
         "{\"prompt\":\"Once upon a time\",\"max_tokens\":50,\"temperature\":0,\"stream\":true}", &r);
    const char *b = r.body.s;
    const char *err = strstr(b, "data: {\"error\":");
    const char *done = strstr(b, "data: [DONE]");
    CHECK(r.rc == CURLE_OK && r.status == 200, "failing stream: 200 and a complete HTTP answer");
    char *streamed = jcat(b, "text");
    CHECK(err && *streamed && !strstr(err, "\"text\":\""),
          "failing stream: text chunks first ('%s'), then the error event", streamed);
    CHECK(err && strstr(err, "generation failed: engine: step 6 failed (injected by a test)") &&
              strstr(err, "\"type\":\"server_error\""),
          "failing stream: the error event gives the reason");
    CHECK(err && done && err < done && !strcmp(done, "data: [DONE]\n\n"),
          "failing stream: [DONE] after the error event ends it");
    CHECK(!strstr(b, "\"finish_reason\":\""),
          "failing stream: no finish_reason chunk pretends it ended normally");
    http_free(&r);
    CHECK(engine_idle(e), "failing stream: its KV blocks are free again");
    /* the five tokens before the failure, asked for again */
    http(port, "/v1/completions",
         "{\"prompt\":\"Once upon a time\",\"max_tokens\":5,\"temperature\":0}", &r);
    char *whole = jcat(r.body.s, "text");
    CHECK(r.status == 200 && strstr(r.body.s, "\"finish_reason\":\"length\""),
          "the server answers the next request after the failure");
    CHECK(!strcmp(streamed, whole), "failing stream: the client had all the text made before "
          "the failure ('%s' = '%s', the same request's 5 tokens)", streamed, whole);
    free(streamed);
    free(whole);
    http_free(&r);

    /* MHD cannot make a response from a buffer */
    __atomic_store_n(&g_fail_buffer, 1, __ATOMIC_SEQ_CST);
    http(port, "/v1/models", NULL, &r);
    CHECK(r.rc != CURLE_OK && r.status == 0 &&
              __atomic_load_n(&g_failed_buffer, __ATOMIC_SEQ_CST) == 1,
          "no response object: the connection closes without an answer (curl: %s)",
          curl_easy_strerror(r.rc));
    http_free(&r);
    http(port, "/v1/models", NULL, &r);
    CHECK(r.status == 200 && strstr(r.body.s, "\"stories\""), "and the next request is answered");
    http_free(&r);
    __atomic_store_n(&g_fail_buffer, 1, __ATOMIC_SEQ_CST);
    http(port, "/v1/completions", NULL, &r);
    CHECK(r.rc != CURLE_OK && __atomic_load_n(&g_failed_buffer, __ATOMIC_SEQ_CST) == 2,
          "no response object for a 405: the connection closes");
    http_free(&r);
    http(port, "/v1/completions", NULL, &r);
    CHECK(r.status == 405 && strstr(r.body.s, "method not allowed") &&
              strstr(r.head.s, "Allow: POST"),
          "and a 405 works again, with its Allow header");
    http_free(&r);

    /* MHD cannot make a stream's response: the request is cancelled */
    __atomic_store_n(&g_fail_callback, 1, __ATOMIC_SEQ_CST);
    http(port, "/v1/completions",
         "{\"prompt\":\"Once\",\"max_tokens\":200,\"temperature\":0,\"stream\":true}", &r);
    CHECK(r.rc != CURLE_OK && __atomic_load_n(&g_failed_callback, __ATOMIC_SEQ_CST) == 1,
          "no stream response object: the connection closes (curl: %s)",
          curl_easy_strerror(r.rc));
    http_free(&r);
    CHECK(engine_idle(e), "and its request is dropped: every KV block free");
    http(port, "/v1/completions",
         "{\"prompt\":\"Once\",\"max_tokens\":4,\"temperature\":0,\"stream\":true}", &r);
    CHECK(r.status == 200 && strstr(r.body.s, "\"finish_reason\":\"length\"") &&
              strstr(r.body.s, "data: [DONE]"),
          "and the next stream is whole");
    http_free(&r);

    w8_server_quiesce(s);
out:
    if (e) w8_engine_stop(e);
    if (s) w8_server_stop(s);
    w8_engine_free(e);
    w8_tok_free(tok);
    w8_model_free(m);
}

/* ------------------------------------------------------------------ forward */

/* Last-row logits of tokens 0..n-1 at positions 0..n-1 on ctx c. */
static int prompt_logits(w8_ctx *c, const w8_model *m, const int *tok, int n, float *out) {
    w8_kv *kv = w8_kv_new(&m->cfg, 16, 4);
    w8_seq q;
    w8_seq_init(&q);
    int pos[8];
    w8_seq *sq[8];
    for (int i = 0; i < n; i++) pos[i] = i, sq[i] = &q;
    w8_batch b = {n, tok, pos, sq, NULL};
    int rc = kv && !w8_kv_seq_reserve(kv, &q, n) && w8_forward(c, m, kv, &b, out) == 1 ? 0 : -1;
    if (kv) w8_kv_seq_release(kv, &q);
    w8_kv_free(kv);
    return rc;
}

/* A model whose config allows 2^24 positions (the most config.c takes): one
 * row at the last of them needs attention scratch of n_threads x 8 rows x 2
 * heads per KV head x 2^24 floats, 128 GiB with 128 threads, which malloc
 * refuses here whatever the machine (ASan by its size, the normal build under
 * a 64 GiB address-space limit).  The sequence only claims enough KV blocks:
 * the forward pass checks that, and stops at the scratch before it reads any
 * block. */
static void test_att_oom(const char *src) {
    char tmpl[] = "/tmp/w8a8_test_faults_XXXXXX";
    char *tmp = mkdtemp(tmpl);
    CHECK(tmp != NULL, "temporary directory");
    if (!tmp) return;
    char *cfg_src = w8_path_join(src, "config.json"), *cfg_dst = w8_path_join(tmp, "config.json");
    char *st_src = w8_path_join(src, "model.safetensors");
    char *st_dst = w8_path_join(tmp, "model.safetensors");
    char *text = w8_read_file(cfg_src, 1 << 20, NULL);
    char *at = text ? strstr(text, "\"max_position_embeddings\": 512") : NULL;
    FILE *f = at ? fopen(cfg_dst, "w") : NULL;
    if (f) {
        fprintf(f, "%.*s\"max_position_embeddings\": 16777216%s", (int)(at - text), text,
                at + strlen("\"max_position_embeddings\": 512"));
        fclose(f);
    }
    w8_model *m = f && w8_copy_file(st_src, st_dst) == 0 ? w8_model_load(tmp) : NULL;
    if (!m) printf("# %s\n", w8_lasterr());
    CHECK(m && m->cfg.max_pos == 1 << 24, "a stories260K copy with a context of 2^24");
    if (m) {
        static const int tok[5] = {1, 403, 407, 261, 378};
        float *want = w8_xmalloc((size_t)m->cfg.vocab * sizeof(float));
        float *got = w8_xmalloc((size_t)m->cfg.vocab * sizeof(float));
        w8_set_threads(2);
        w8_ctx *fresh = w8_ctx_new(m, 8);
        int wrc = prompt_logits(fresh, m, tok, 5, want);
        w8_ctx_free(fresh);

        w8_set_threads(128);
        w8_ctx *c = w8_ctx_new(m, 8);
        w8_set_threads(2);
        w8_seq far;
        w8_seq_init(&far);
        far.n_blocks = INT_MAX; /* claims every position; no block is read */
        w8_seq *fs = &far;
        int ftok = 1, fpos = (1 << 24) - 1;
        w8_batch b = {1, &ftok, &fpos, &fs, NULL};
#ifndef __SANITIZE_ADDRESS__
        struct rlimit old, lim;
        int lim_set = getrlimit(RLIMIT_AS, &old) == 0;
        lim = old;
        if (lim_set && (old.rlim_cur == RLIM_INFINITY || old.rlim_cur > (rlim_t)1 << 36))
            lim.rlim_cur = (rlim_t)1 << 36;
        if (lim_set) lim_set = setrlimit(RLIMIT_AS, &lim) == 0;
#endif
        w8_kv *kv = w8_kv_new(&m->cfg, 16, 1);
        int rc = kv ? w8_forward(c, m, kv, &b, got) : -2;
        w8_kv_free(kv);
#ifndef __SANITIZE_ADDRESS__
        if (lim_set) setrlimit(RLIMIT_AS, &old);
#endif
        CHECK(rc == -1 && strstr(w8_lasterr(), "out of memory for attention scores"),
              "a row at position 2^24 - 1: no scratch for it, an error and no abort (%s)",
              w8_lasterr());
        int grc = prompt_logits(c, m, tok, 5, got);
        CHECK(wrc == 0 && grc == 0 &&
                  !memcmp(want, got, (size_t)m->cfg.vocab * sizeof(float)),
              "the same context then runs a prompt, bitwise as a fresh one");
        w8_ctx_free(c);
        free(want);
        free(got);
    }
    w8_model_free(m);
    free(text);
    free(cfg_src);
    free(cfg_dst);
    free(st_src);
    free(st_dst);
    w8_rm_rf(tmp);
}

int main(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/stories260K-hf-f16", shared_dir());
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_att_oom(dir);
    test_serve(dir);
    curl_global_cleanup();
    TEST_DONE();
}

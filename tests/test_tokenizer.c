/*
 * test_tokenizer.c - the tokenizer against the Hugging Face reference data.
 *
 * Every case of ../shared/testdata/tokenizer/ (every .jsonl) must encode id for id
 * (Qwen3, Qwen2.5 byte-level BPE; stories260K sentencepiece-style BPE with
 * BOS), decode back to its text, and stream-decode to the same text.  Then
 * malformed tokenizer.json files must be refused with clear errors, and the
 * tokenizer_config.json accessors must report the right tokens.  Under
 * AddressSanitizer only the first cases of the big files run (speed).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/json.h"
#include "../src/tokenizer/tokenizer.h"
#include "../src/util.h"
#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#define MAX_CASES 25
#else
#define MAX_CASES 100000
#endif

static w8_tok *load(const char *rel) {
    char *d = w8_path_join(shared_dir(), rel);
    double t0 = w8_now();
    w8_tok *t = w8_tok_load(d);
    double dt = w8_now() - t0;
    CHECK(t != NULL, "load %s (%.3f s)%s%s", rel, dt, t ? "" : ": ", t ? "" : w8_lasterr());
    free(d);
    return t;
}

static void print_ids(const char *what, const int *v, size_t n) {
    printf("    %s:", what);
    for (size_t i = 0; i < n && i < 40; i++) printf(" %d", v[i]);
    printf("%s\n", n > 40 ? " ..." : "");
}

/* Stream the ids one by one and return the concatenation (caller frees). */
static char *stream_all(const w8_tok *t, const int *ids, size_t n, int skip) {
    w8_tok_stream *s = w8_tok_stream_new(t, skip);
    size_t cap = 64, len = 0;
    char *acc = malloc(cap);
    acc[0] = 0;
    for (size_t i = 0; i <= n; i++) {
        char *piece = i < n ? w8_tok_stream_push(s, ids[i]) : w8_tok_stream_flush(s);
        if (!piece) break;
        size_t l = strlen(piece);
        while (len + l + 1 > cap) acc = realloc(acc, cap *= 2);
        memcpy(acc + len, piece, l + 1);
        len += l;
        free(piece);
    }
    w8_tok_stream_free(s);
    return acc;
}

/* Run every case of one jsonl file.  add_special/skip as the file was made. */
static void run_file(const w8_tok *t, const char *name, int add_special, int skip) {
    char *path = w8_path_join(shared_dir(), name);
    size_t len;
    char *buf = w8_read_file(path, 64 << 20, &len);
    CHECK(buf != NULL, "read %s", name);
    if (!buf) {
        free(path);
        return;
    }
    int ncase = 0, enc_bad = 0, dec_bad = 0, str_bad = 0;
    size_t bytes = 0;
    double tenc = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line && ncase < MAX_CASES;
         line = strtok_r(NULL, "\n", &save)) {
        json_t *j = w8_json_load_buf(line, strlen(line), name);
        const json_t *jt = json_object_get(j, "text"), *ji = json_object_get(j, "ids");
        EXPECT(json_is_string(jt) && json_is_array(ji), "%s: case %d malformed", name, ncase + 1);
        if (!json_is_string(jt) || !json_is_array(ji)) {
            json_decref(j);
            continue;
        }
        ncase++;
        const char *text = json_string_value(jt);
        size_t tl = json_string_length(jt), ne = json_array_size(ji);
        int *exp = malloc((ne + 1) * sizeof(int));
        for (size_t i = 0; i < ne; i++) exp[i] = (int)json_integer_value(json_array_get(ji, i));
        int *got = NULL;
        double t0 = w8_now();
        int ng = w8_tok_encode(t, text, tl, add_special, &got);
        tenc += w8_now() - t0;
        bytes += tl;
        if (ng != (int)ne || memcmp(got, exp, ne * sizeof(int))) {
            if (++enc_bad <= 3) {
                printf("FAIL - %s case %d: encode mismatch for %.80s\n", name, ncase, text);
                print_ids("expected", exp, ne);
                if (ng >= 0) print_ids("got     ", got, (size_t)ng);
                else printf("    error: %s\n", w8_lasterr());
            }
        }
        /* decode of the reference ids gives the text back */
        char *dec = w8_tok_decode(t, exp, ne, skip);
        if (!dec || strcmp(dec, text)) {
            if (++dec_bad <= 3)
                printf("FAIL - %s case %d: decode gives '%.80s' for '%.80s'\n", name, ncase,
                       dec ? dec : w8_lasterr(), text);
        }
        char *st = stream_all(t, exp, ne, skip);
        if (!dec || strcmp(st, dec)) {
            if (++str_bad <= 3)
                printf("FAIL - %s case %d: stream gives '%.80s' for '%.80s'\n", name, ncase, st,
                       dec ? dec : "");
        }
        free(st);
        free(dec);
        free(got);
        free(exp);
        json_decref(j);
    }
    t_fail += enc_bad + dec_bad + str_bad;
    if (!enc_bad) t_pass++, printf("ok - %s: %d cases encode id for id (%.2f MB/s)\n", name, ncase,
                                   tenc > 0 ? bytes / tenc / 1e6 : 0.0);
    if (!dec_bad) t_pass++, printf("ok - %s: decode gives every text back\n", name);
    if (!str_bad) t_pass++, printf("ok - %s: streaming decode equals full decode\n", name);
    CHECK(ncase > 0, "%s: has cases (%d)", name, ncase);
    free(buf);
    free(path);
}

/* Encode the whole wikitext test split and report the speed. */
static void bench_corpus(const w8_tok *t, const char *label) {
#if !defined(__SANITIZE_ADDRESS__)
    char *path = w8_path_join(shared_dir(), "corpus/wikitext-2-raw-test.txt");
    size_t len;
    char *buf = w8_read_file(path, 64 << 20, &len);
    free(path);
    if (!buf) return;
    int *ids = NULL;
    /* CPU time as well as wall time: the shared machine is often oversubscribed */
    struct timespec c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    double t0 = w8_now();
    int n = w8_tok_encode(t, buf, len, 0, &ids);
    double dt = w8_now() - t0;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    double dc = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) * 1e-9;
    CHECK(n > 0, "%s: wikitext-2 test split, %zu bytes -> %d tokens in %.3f s = %.2f MB/s "
          "(CPU time %.3f s = %.2f MB/s)", label, len, n, dt, len / dt / 1e6, dc, len / dc / 1e6);
    free(ids);
    free(buf);
#else
    (void)t, (void)label;
#endif
}

/* Several threads encoding with one tokenizer (the server does) agree with
 * one thread: the shared word cache is the only mutable state. */
typedef struct {
    const w8_tok *t;
    const char **texts;
    int ntexts, ok;
    int **want, *nwant;
} enc_job;

static void *enc_thread(void *arg) {
    enc_job *j = arg;
    j->ok = 1;
    for (int rep = 0; rep < 20; rep++)
        for (int i = 0; i < j->ntexts; i++) {
            int *ids = NULL;
            int n = w8_tok_encode(j->t, j->texts[i], strlen(j->texts[i]), 0, &ids);
            if (n != j->nwant[i] || memcmp(ids, j->want[i], (size_t)n * sizeof(int))) j->ok = 0;
            free(ids);
        }
    return NULL;
}

static void test_threads(const w8_tok *t) {
    const char *texts[] = {"Hello world, how are you today?", "The quick brown fox jumps over the lazy dog.",
                           "\xE4\xB8\xAD\xE6\x96\x87 and more text", "<|im_start|>user\nhi<|im_end|>",
                           "numbers 12345 and symbols !@#$%"};
    int nt = (int)(sizeof texts / sizeof texts[0]), *want[5], nwant[5];
    for (int i = 0; i < nt; i++) nwant[i] = w8_tok_encode(t, texts[i], strlen(texts[i]), 0, &want[i]);
    enc_job jobs[3];
    pthread_t th[3];
    for (int k = 0; k < 3; k++) {
        jobs[k] = (enc_job){t, texts, nt, 0, want, nwant};
        pthread_create(&th[k], NULL, enc_thread, &jobs[k]);
    }
    for (int k = 0; k < 3; k++) pthread_join(th[k], NULL);
    CHECK(jobs[0].ok && jobs[1].ok && jobs[2].ok, "three threads encoding at once agree with one");
    for (int i = 0; i < nt; i++) free(want[i]);
}

/* ---- malformed inputs */

static const char *stories_json(size_t *len) {
    static char *buf;
    static size_t blen;
    if (!buf) {
        char *p = w8_path_join(shared_dir(), "models/stories260K-hf-f16/tokenizer.json");
        buf = w8_read_file(p, 1 << 20, &blen);
        free(p);
    }
    *len = blen;
    return buf;
}

static void expect_refused(const char *json, const char *want, const char *what) {
    w8_tok *t = w8_tok_from_json(json, strlen(json), NULL, 0, "bad.json");
    CHECK(!t && strstr(w8_lasterr(), want) && strstr(w8_lasterr(), "bad.json"),
          "refused: %s -> %s", what, t ? "(accepted)" : w8_lasterr());
    w8_tok_free(t);
}

static const char *mini_head =
    "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}";

static void test_malformed(void) {
    size_t len;
    const char *s = stories_json(&len);
    w8_tok *t = w8_tok_from_json(s, len / 2, NULL, 0, "bad.json");
    CHECK(!t && strstr(w8_lasterr(), "bad.json:"), "truncated JSON refused: %s", w8_lasterr());
    w8_tok_free(t);
    char j[1024];
    expect_refused("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "WordPiece", "WordPiece model");
    expect_refused("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "Unigram", "Unigram model");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a zz\"]}}",
                   "zz", "merge with unknown token");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a a\"]}}",
                   "merged token", "merge result not in vocab");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"aa\"]}}",
                   "merges[0]", "merge without a space");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": [\"a\"], \"merges\": []}}", "vocab",
                   "vocab not an object");
    expect_refused("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}, \"merges\": []}}", "vocab",
                   "negative vocab id");
    expect_refused("[1, 2]", "object", "not an object");
    snprintf(j, sizeof j, "%s, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(ab\"}, "
             "\"behavior\": \"Isolated\", \"invert\": false}}", mini_head);
    expect_refused(j, "regex", "bad regex");
    snprintf(j, sizeof j, "%s, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}", mini_head);
    expect_refused(j, "Whitespace", "unknown pre-tokenizer");
    snprintf(j, sizeof j, "%s, \"normalizer\": {\"type\": \"BertNormalizer\"}}", mini_head);
    expect_refused(j, "BertNormalizer", "unknown normalizer");
    snprintf(j, sizeof j, "%s, \"decoder\": {\"type\": \"WordPiece\"}}", mini_head);
    expect_refused(j, "WordPiece", "unknown decoder");
    snprintf(j, sizeof j, "%s, \"post_processor\": {\"type\": \"RobertaProcessing\"}}", mini_head);
    expect_refused(j, "RobertaProcessing", "RobertaProcessing");
    snprintf(j, sizeof j, "%s, \"added_tokens\": [{\"id\": \"x\", \"content\": \"<s>\"}]}", mini_head);
    expect_refused(j, "added_tokens[0]", "added token with a string id");
    snprintf(j, sizeof j, "%s, \"added_tokens\": [{\"id\": 5, \"content\": \"\"}]}", mini_head);
    expect_refused(j, "added_tokens[0]", "added token with empty content");
    snprintf(j, sizeof j, "%s, \"added_tokens\": [7]}", mini_head);
    expect_refused(j, "added_tokens[0]", "added token not an object");

    /* a minimal valid file works, and decode refuses ids out of range */
    snprintf(j, sizeof j, "%s, \"added_tokens\": [{\"id\": 3, \"content\": \"<x>\", \"special\": true}]}",
             mini_head);
    t = w8_tok_from_json(j, strlen(j), NULL, 0, "mini.json");
    CHECK(t != NULL, "minimal tokenizer.json loads%s%s", t ? "" : ": ", t ? "" : w8_lasterr());
    if (!t) return;
    int *ids = NULL;
    int n = w8_tok_encode(t, "ab<x>ba", 7, 0, &ids);
    CHECK(n == 4 && ids[0] == 2 && ids[1] == 3 && ids[2] == 1 && ids[3] == 0,
          "minimal: 'ab<x>ba' -> 2 3 1 0 (got %d ids)", n);
    free(ids);
    int bad[3] = {0, 4, 1};
    char *d = w8_tok_decode(t, bad, 3, 0);
    CHECK(!d && strstr(w8_lasterr(), "out of range"), "decode refuses id 4: %s", w8_lasterr());
    free(d);
    bad[1] = -1;
    d = w8_tok_decode(t, bad, 3, 0);
    CHECK(!d, "decode refuses id -1");
    free(d);
    w8_tok_stream *st = w8_tok_stream_new(t, 0);
    char *p = w8_tok_stream_push(st, 99);
    CHECK(!p, "stream refuses id 99");
    free(p);
    w8_tok_stream_free(st);
    w8_tok_free(t);
}

/* The fast loader (vocab and merges read from the text) and the jansson
 * one must build the same tokenizer: spelling the "model" key with an
 * escape makes the fast path step aside. */
static void test_fast_and_slow_load(void) {
    size_t len;
    const char *s = stories_json(&len);
    const char *k = s ? strstr(s, "\"model\"") : NULL;
    CHECK(k != NULL, "stories tokenizer.json has a model key");
    if (!k) return;
    char *alt = malloc(len + 8);
    size_t pre = (size_t)(k - s);
    memcpy(alt, s, pre);
    memcpy(alt + pre, "\"mod\\u0065l\"", 12);
    memcpy(alt + pre + 12, k + 7, len - pre - 7);
    w8_tok *fast = w8_tok_from_json(s, len, NULL, 0, "fast");
    w8_tok *slow = w8_tok_from_json(alt, len + 5, NULL, 0, "slow");
    CHECK(fast && slow, "both loaders accept the stories tokenizer%s%s", fast && slow ? "" : ": ",
          fast && slow ? "" : w8_lasterr());
    if (fast && slow) {
        const char *txt = "Once upon a time, a little dog named Spot found a 12-inch \xE4\xB8\xAD ball!";
        int *a = NULL, *b = NULL;
        int na = w8_tok_encode(fast, txt, strlen(txt), 1, &a), nb = w8_tok_encode(slow, txt, strlen(txt), 1, &b);
        int same = na > 0 && na == nb && !memcmp(a, b, (size_t)na * sizeof(int));
        for (int id = 0; same && id < w8_tok_vocab_size(fast); id++)
            same = !strcmp(w8_tok_piece(fast, id), w8_tok_piece(slow, id));
        CHECK(same, "fast and jansson loaders agree (%d ids, every piece)", na);
        free(a);
        free(b);
    }
    w8_tok_free(fast);
    w8_tok_free(slow);
    free(alt);
}

/* ---- behaviours beyond the reference files */

static int ids_are(const w8_tok *t, const char *text, const int *want, int nwant) {
    int *ids = NULL;
    int n = w8_tok_encode(t, text, strlen(text), 0, &ids);
    int ok = n == nwant && !memcmp(ids, want, (size_t)n * sizeof(int));
    if (!ok) {
        printf("    '%s':", text);
        for (int i = 0; i < n; i++) printf(" %d", ids[i]);
        printf("\n");
    }
    free(ids);
    return ok;
}

/* Added-token options, as HF's AddedVocabulary::find_matches applies them. */
static void test_added_options(void) {
    const char *j =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \" \": 2, \"x\": 3}, \"merges\": []},"
        " \"added_tokens\": [{\"id\": 4, \"content\": \"<m>\", \"lstrip\": true, \"rstrip\": true, \"special\": true},"
        " {\"id\": 5, \"content\": \"ab\", \"single_word\": true, \"normalized\": false},"
        " {\"id\": 6, \"content\": \"<n>\", \"special\": true}]}";
    w8_tok *t = w8_tok_from_json(j, strlen(j), NULL, 0, "added.json");
    CHECK(t != NULL, "tokenizer with added-token options loads%s%s", t ? "" : ": ", t ? "" : w8_lasterr());
    if (!t) return;
    CHECK(ids_are(t, "a <m> b", (int[]){0, 4, 1}, 3), "lstrip/rstrip take the spaces around <m>");
    CHECK(ids_are(t, "a <n> b", (int[]){0, 2, 6, 2, 1}, 5), "without lstrip/rstrip the spaces stay");
    CHECK(ids_are(t, "ab xab", (int[]){5, 2, 3, 0, 1}, 5), "single_word matches only a whole word");
    CHECK(ids_are(t, "<m><n><m", (int[]){4, 6}, 2), "adjacent added tokens, unknown rest dropped");
    w8_tok_free(t);
}

/* GPT-2 style: ByteLevel pre-tokenizer with its own regex (use_regex) and
 * add_prefix_space.  The merge "o \u0120" may only apply inside a word, so
 * it must not fire across the regex split of "Hello world". */
static void test_gpt2_bytelevel(void) {
    char j[1024];
    const char *fmt =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"H\": 0, \"e\": 1, \"l\": 2, \"o\": 3, \"\u0120\": 4,"
        " \"w\": 5, \"r\": 6, \"d\": 7, \"o\u0120\": 8}, \"merges\": [[\"o\", \"\u0120\"]]},"
        " \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": %s, \"use_regex\": %s},"
        " \"decoder\": {\"type\": \"ByteLevel\"}}";
    snprintf(j, sizeof j, fmt, "false", "true");
    w8_tok *t = w8_tok_from_json(j, strlen(j), NULL, 0, "gpt2.json");
    CHECK(t != NULL, "GPT-2 style tokenizer loads%s%s", t ? "" : ": ", t ? "" : w8_lasterr());
    if (!t) return;
    CHECK(ids_are(t, "Hello world", (int[]){0, 1, 2, 2, 3, 4, 5, 3, 6, 2, 7}, 11),
          "ByteLevel use_regex splits before the space");
    int ids[3] = {3, 8, 5};
    char *d = w8_tok_decode(t, ids, 3, 0);
    CHECK(d && !strcmp(d, "oo w"), "ByteLevel decoder maps U+0120 back to a space");
    free(d);
    w8_tok_free(t);
    snprintf(j, sizeof j, fmt, "true", "false");
    t = w8_tok_from_json(j, strlen(j), NULL, 0, "gpt2.json");
    CHECK(t && ids_are(t, "Hello world", (int[]){4, 0, 1, 2, 2, 8, 5, 3, 6, 2, 7}, 11),
          "ByteLevel add_prefix_space, no regex: one word, merge across the space");
    w8_tok_free(t);
}

/* tokenizer_config.json: object-form tokens, the template list, and
 * add_bos_token/add_eos_token when the file has no TemplateProcessing. */
static void test_config(void) {
    const char *j =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"<s>\": 1, \"</s>\": 2}, \"merges\": []},"
        " \"added_tokens\": [{\"id\": 1, \"content\": \"<s>\", \"special\": true},"
        " {\"id\": 2, \"content\": \"</s>\", \"special\": true}]}";
    const char *c =
        "{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": \"</s>\","
        " \"add_bos_token\": true, \"add_eos_token\": true,"
        " \"chat_template\": [{\"name\": \"tool_use\", \"template\": \"U\"},"
        " {\"name\": \"default\", \"template\": \"D\"}]}";
    w8_tok *t = w8_tok_from_json(j, strlen(j), c, strlen(c), "cfg/tokenizer.json");
    CHECK(t != NULL, "tokenizer with config loads%s%s", t ? "" : ": ", t ? "" : w8_lasterr());
    if (!t) return;
    CHECK(w8_tok_bos_id(t) == 1 && w8_tok_eos_id(t) == 2 && !strcmp(w8_tok_bos_token(t), "<s>"),
          "bos {\"content\"} form and eos string form");
    CHECK(w8_tok_chat_template(t) && !strcmp(w8_tok_chat_template(t), "D"),
          "chat_template list: the 'default' one");
    int *ids = NULL;
    int n = w8_tok_encode(t, "aa", 2, 1, &ids);
    CHECK(n == 4 && ids[0] == 1 && ids[1] == 0 && ids[2] == 0 && ids[3] == 2,
          "add_bos_token/add_eos_token without a template: <s> a a </s>");
    free(ids);
    w8_tok_free(t);
    t = w8_tok_from_json(j, strlen(j), "{\"bos_token\": ", 14, "cfg/tokenizer.json");
    CHECK(!t && strstr(w8_lasterr(), "cfg/tokenizer_config.json"), "malformed config named: %s",
          w8_lasterr());
    w8_tok_free(t);
}

/* Metaspace pre-tokenizer and decoder (newer LLaMA/Mistral files):
 * prepend_scheme "first" adds the replacement only at the start of the text. */
static void test_metaspace(void) {
    const char *j =
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"\u2581\": 0, \"h\": 1, \"i\": 2, \"\u2581h\": 3,"
        " \"\u2581hi\": 4, \"<s>\": 5}, \"merges\": [\"\u2581 h\", \"\u2581h i\"]},"
        " \"added_tokens\": [{\"id\": 5, \"content\": \"<s>\", \"special\": true}],"
        " \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"\u2581\", \"prepend_scheme\": \"first\", \"split\": false},"
        " \"decoder\": {\"type\": \"Metaspace\", \"replacement\": \"\u2581\", \"prepend_scheme\": \"first\", \"split\": false}}";
    w8_tok *t = w8_tok_from_json(j, strlen(j), NULL, 0, "meta.json");
    CHECK(t != NULL, "Metaspace tokenizer loads%s%s", t ? "" : ": ", t ? "" : w8_lasterr());
    if (!t) return;
    CHECK(ids_are(t, "hi hi", (int[]){4, 4}, 2), "Metaspace: 'hi hi' -> \u2581hi \u2581hi");
    CHECK(ids_are(t, "<s>hi", (int[]){5, 1, 2}, 3), "Metaspace first: no prefix after <s>");
    int ids[2] = {4, 4};
    char *d = w8_tok_decode(t, ids, 2, 0);
    CHECK(d && !strcmp(d, "hi hi"), "Metaspace decoder: '%s'", d ? d : "");
    free(d);
    w8_tok_free(t);
}

static void test_qwen_extras(const w8_tok *t) {
    CHECK(w8_tok_eos_id(t) == 151645 && !strcmp(w8_tok_eos_token(t), "<|im_end|>"),
          "qwen3 eos <|im_end|> = 151645 (got %d)", w8_tok_eos_id(t));
    CHECK(w8_tok_bos_id(t) == -1 && !w8_tok_bos_token(t), "qwen3 has no bos");
    const char *ct = w8_tok_chat_template(t);
    CHECK(ct && strstr(ct, "<|im_start|>"), "qwen3 chat template present");
    CHECK(w8_tok_vocab_size(t) == 151669, "qwen3 vocab size 151669 (got %d)", w8_tok_vocab_size(t));
    CHECK(w8_tok_is_special(t, 151643) && !w8_tok_is_special(t, 9707), "special flags");
    CHECK(w8_tok_token_id(t, "Hello") == 9707 && w8_tok_token_id(t, "<|im_start|>") == 151644,
          "token_id lookups");
    /* non-special added tokens match too, and survive skip_special */
    CHECK(ids_are(t, "<think>\nhi</think>", (int[]){151667, 198, 6023, 151668}, 4), "<think> tokens");
    int th[3] = {151667, 6023, 151668};
    char *dt = w8_tok_decode(t, th, 3, 1);
    CHECK(dt && !strcmp(dt, "<think>hi</think>"), "non-special added tokens kept by skip_special");
    free(dt);
    /* invalid UTF-8 is replaced, not a crash; U+FFFD encodes as HF encodes it */
    int *a = NULL, *b = NULL;
    int na = w8_tok_encode(t, "ab\xff\xc3z", 5, 0, &a);
    int nb = w8_tok_encode(t, "ab\xEF\xBF\xBD\xEF\xBF\xBDz", 9, 0, &b);
    CHECK(na > 0 && na == nb && !memcmp(a, b, (size_t)na * sizeof(int)),
          "invalid UTF-8 is encoded as U+FFFD (%d ids)", na);
    free(a);
    free(b);
    /* skip_special drops added special tokens */
    int ids[3] = {151644, 9707, 151645};
    char *d = w8_tok_decode(t, ids, 3, 1);
    CHECK(d && !strcmp(d, "Hello"), "skip_special decode: '%s'", d ? d : "");
    free(d);
    /* a character split across byte-level tokens streams out whole */
    int *e = NULL;
    int ne = w8_tok_encode(t, "\xF0\x9F\xA7\xAC", 4, 0, &e); /* U+1F9EC, two tokens in Qwen */
    w8_tok_stream *s = w8_tok_stream_new(t, 0);
    int partial_ok = 1;
    for (int i = 0; i < ne; i++) {
        char *p = w8_tok_stream_push(s, e[i]);
        if (i < ne - 1 && p && *p) partial_ok = 0;
        if (i == ne - 1 && (!p || strcmp(p, "\xF0\x9F\xA7\xAC"))) partial_ok = 0;
        free(p);
    }
    w8_tok_stream_free(s);
    CHECK(ne > 1 && partial_ok, "emoji over %d tokens streams only when complete", ne);
    free(e);
}

static void test_stories_extras(const w8_tok *t) {
    CHECK(w8_tok_bos_id(t) == 1 && w8_tok_eos_id(t) == 2, "stories bos 1, eos 2");
    /* README: greedy ids from BOS decode to the known text */
    int ids[] = {403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401,
                 396, 267, 337};
    char *d = w8_tok_decode(t, ids, sizeof ids / sizeof ids[0], 1);
    CHECK(d && !strncmp(d, "Once upon a time, there was a little girl named Lily.", 52),
          "stories greedy ids decode: '%s'", d ? d : "");
    free(d);
    /* streaming strips only the first token's space; with BOS kept, none */
    int with_bos[] = {1, 403, 407};
    char *full = w8_tok_decode(t, with_bos, 3, 0), *st = stream_all(t, with_bos, 3, 0);
    CHECK(full && !strcmp(full, st), "stories stream with BOS kept: '%s' vs '%s'", st, full ? full : "");
    free(full);
    free(st);
    st = stream_all(t, with_bos, 3, 1);
    full = w8_tok_decode(t, with_bos, 3, 1);
    CHECK(full && !strcmp(full, st) && st[0] != ' ', "stories stream with BOS skipped: '%s'", st);
    free(full);
    free(st);
    /* byte fallback: a character outside the 512 vocab goes through <0xNN> */
    int *e = NULL;
    int ne = w8_tok_encode(t, "\xE4\xB8\xAD", 3, 0, &e); /* 中 */
    char *back = ne > 0 ? w8_tok_decode(t, e, (size_t)ne, 0) : NULL;
    CHECK(ne >= 3 && back && !strcmp(back, "\xE4\xB8\xAD"), "byte fallback round trip (%d ids)", ne);
    free(back);
    char *s2 = stream_all(t, e, (size_t)ne, 0);
    CHECK(!strcmp(s2, "\xE4\xB8\xAD"), "byte fallback streams whole");
    free(s2);
    free(e);
    /* an invalid byte run decodes to one U+FFFD per byte token (HF ByteFallback) */
    int bad[2] = {w8_tok_token_id(t, "<0xE4>"), w8_tok_token_id(t, "<0xB8>")};
    d = w8_tok_decode(t, bad, 2, 0);
    CHECK(d && !strcmp(d, "\xEF\xBF\xBD\xEF\xBF\xBD"), "incomplete bytes -> two U+FFFD");
    free(d);
}

int main(void) {
    w8_tok *q3 = load("tokenizers/qwen3");
    w8_tok *q25 = load("tokenizers/qwen2.5-derived");
    w8_tok *st = load("models/stories260K-hf-f16");
    if (q3) {
        run_file(q3, "testdata/tokenizer/qwen3_tricky_public.jsonl", 0, 0);
        run_file(q3, "testdata/tokenizer/qwen3_wikitext_public.jsonl", 0, 0);
        test_qwen_extras(q3);
        test_threads(q3);
        bench_corpus(q3, "qwen3");
    }
    if (q25) run_file(q25, "testdata/tokenizer/qwen25_wikitext_public.jsonl", 0, 0);
    if (st) {
        run_file(st, "testdata/tokenizer/stories_tinystories_public.jsonl", 1, 1);
        run_file(st, "testdata/tokenizer/stories_wikitext_public.jsonl", 1, 1);
        test_stories_extras(st);
        bench_corpus(st, "stories");
    }
    test_malformed();
    test_fast_and_slow_load();
    test_added_options();
    test_metaspace();
    test_config();
    test_gpt2_bytelevel();
    w8_tok_free(q3);
    w8_tok_free(q25);
    w8_tok_free(st);
    free((void *)stories_json(&(size_t){0}));
    TEST_DONE();
}

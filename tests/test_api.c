/*
 * test_api.c - request parsing and response building of the OpenAI API
 * (src/api.c), on bytes alone: no server, no model.
 */
#include <string.h>

#include "../src/serve/api.h"
#include "../src/json.h"
#include "test.h"

static int parse(w8_api_kind k, const char *body, w8_api_req *q, w8_api_err *e) {
    return w8_api_parse(k, body, strlen(body), q, e);
}

/* Parse must fail with 400 naming `param` ("" for none). */
static void expect_bad(w8_api_kind k, const char *body, const char *param) {
    w8_api_req q;
    w8_api_err e;
    int rc = parse(k, body, &q, &e);
    CHECK(rc == -1 && e.status == 400 && !strcmp(e.param, param), "rejected %s -> param '%s' (%s)",
          body, rc ? e.param : "(accepted)", rc ? e.message : "");
    if (!rc) w8_api_req_free(&q);
}

static void test_chat_ok(void) {
    w8_api_req q;
    w8_api_err e;
    const char *b = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
                    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi \"},"
                    "{\"type\":\"text\",\"text\":\"there\"}]}],\"temperature\":0,\"top_p\":0.5,"
                    "\"top_k\":40,\"max_tokens\":7,\"stop\":[\"a\",\"bc\"],\"seed\":42,\"n\":1,"
                    "\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
    CHECK(parse(W8_API_CHAT, b, &q, &e) == 0, "full chat request parses");
    CHECK(q.kind == W8_API_CHAT && q.model && !strcmp(q.model, "m"), "model");
    CHECK(json_array_size(q.messages) == 2, "two messages");
    const char *c1 = json_string_value(json_object_get(json_array_get(q.messages, 1), "content"));
    CHECK(c1 && !strcmp(c1, "hi there"), "text parts joined: '%s'", c1 ? c1 : "(null)");
    CHECK(q.has_temperature && q.temperature == 0, "temperature 0");
    CHECK(q.has_top_p && q.top_p == 0.5f && q.top_k == 40, "top_p, top_k");
    CHECK(q.max_tokens == 7, "max_tokens");
    CHECK(q.n_stop == 2 && !strcmp(q.stop[0], "a") && !strcmp(q.stop[1], "bc"), "stop list");
    CHECK(q.has_seed && q.seed == 42, "seed");
    CHECK(q.stream == 1 && q.include_usage == 1, "stream + include_usage");
    w8_api_req_free(&q);

    CHECK(parse(W8_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &q, &e) == 0,
          "minimal chat request");
    CHECK(q.max_tokens == -1 && q.top_k == -1 && !q.has_temperature && !q.stream && !q.n_stop &&
              q.repetition_penalty == 1.0f && !q.model,
          "defaults when absent");
    w8_api_req_free(&q);

    CHECK(parse(W8_API_CHAT,
                "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_completion_tokens\":3,"
                "\"stop\":\"END\",\"temperature\":null,\"frequency_penalty\":0.4}",
                &q, &e) == 0,
          "max_completion_tokens, stop string, null parameter");
    CHECK(q.max_tokens == 3 && q.n_stop == 1 && !strcmp(q.stop[0], "END") && !q.has_temperature,
          "values of the above");
    CHECK(q.repetition_penalty > 1.19f && q.repetition_penalty < 1.21f,
          "frequency_penalty 0.4 -> repetition_penalty 1.2");
    w8_api_req_free(&q);
}

static void test_completion_ok(void) {
    w8_api_req q;
    w8_api_err e;
    CHECK(parse(W8_API_COMPLETION, "{\"prompt\":\"Once upon\",\"max_tokens\":5.0,\"seed\":-3}", &q,
                &e) == 0,
          "completion request parses (5.0 is an integer)");
    CHECK(q.prompt && !strcmp(q.prompt, "Once upon") && q.prompt_len == 9 && q.max_tokens == 5,
          "prompt and max_tokens");
    w8_api_req_free(&q);
    CHECK(parse(W8_API_COMPLETION, "{\"prompt\":[\"one\"]}", &q, &e) == 0 && !strcmp(q.prompt, "one"),
          "a one-string prompt list");
    w8_api_req_free(&q);
    CHECK(parse(W8_API_COMPLETION, "{\"prompt\":\"\\u00e9t\\u00e9\"}", &q, &e) == 0 &&
              !strcmp(q.prompt, "\xC3\xA9t\xC3\xA9"),
          "escaped unicode prompt");
    w8_api_req_free(&q);
}

static void test_rejects(void) {
    const w8_api_kind C = W8_API_CHAT, P = W8_API_COMPLETION;
    expect_bad(C, "{\"messages\":[", "");
    expect_bad(C, "", "");
    expect_bad(C, "[1,2]", "");
    expect_bad(C, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]} trailing", "");
    expect_bad(C, "{}", "messages");
    expect_bad(C, "{\"messages\":[]}", "messages");
    expect_bad(C, "{\"messages\":\"hi\"}", "messages");
    expect_bad(C, "{\"messages\":[5]}", "messages[0]");
    expect_bad(C, "{\"messages\":[{\"content\":\"x\"}]}", "messages[0].role");
    expect_bad(C, "{\"messages\":[{\"role\":\"user\",\"content\":7}]}", "messages[0].content");
    expect_bad(C, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
               "messages[0].content");
    const char *M = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],";
    struct { const char *tail, *param; } cases[] = {
        {"\"temperature\":\"hot\"}", "temperature"},
        {"\"temperature\":true}", "temperature"},
        {"\"temperature\":3}", "temperature"},
        {"\"temperature\":-0.1}", "temperature"},
        {"\"top_p\":0}", "top_p"},
        {"\"top_p\":1.5}", "top_p"},
        {"\"top_k\":2.5}", "top_k"},
        {"\"max_tokens\":\"10\"}", "max_tokens"},
        {"\"max_tokens\":0}", "max_tokens"},
        {"\"max_tokens\":-5}", "max_tokens"},
        {"\"max_completion_tokens\":1.5}", "max_completion_tokens"},
        {"\"stop\":5}", "stop"},
        {"\"stop\":[\"a\",1]}", "stop"},
        {"\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop"},
        {"\"seed\":\"x\"}", "seed"},
        {"\"n\":2}", "n"},
        {"\"n\":\"1\"}", "n"},
        {"\"stream\":1}", "stream"},
        {"\"stream_options\":true}", "stream_options"},
        {"\"stream_options\":{\"include_usage\":\"yes\"}}", "include_usage"},
        {"\"model\":5}", "model"},
        {"\"repetition_penalty\":0}", "repetition_penalty"},
        {"\"frequency_penalty\":3}", "frequency_penalty"},
        {"\"presence_penalty\":\"a\"}", "presence_penalty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char b[512];
        snprintf(b, sizeof b, "%s%s", M, cases[i].tail);
        expect_bad(C, b, cases[i].param);
    }
    expect_bad(P, "{}", "prompt");
    expect_bad(P, "{\"prompt\":5}", "prompt");
    expect_bad(P, "{\"prompt\":[1,2,3]}", "prompt");
    expect_bad(P, "{\"prompt\":[\"a\",\"b\"]}", "prompt");
    /* invalid UTF-8 inside a JSON string, and an escaped NUL */
    expect_bad(P, "{\"prompt\":\"bad \xC3\x28 utf8\"}", "");
    expect_bad(P, "{\"prompt\":\"\xFF\xFE\"}", "");
    expect_bad(P, "{\"prompt\":\"a\\u0000b\"}", "");
    /* deep nesting must not crash */
    char deep[5000];
    memset(deep, '[', 4000);
    deep[4000] = 0;
    expect_bad(P, deep, "");
}

/* Error JSON has the OpenAI shape. */
static void test_error_json(void) {
    w8_api_err e;
    w8_api_set_err(&e, 400, NULL, "max_tokens", "'%s' is bad", "max_tokens");
    char *s = w8_api_error_json(&e);
    json_t *j = json_loads(s, 0, NULL);
    json_t *o = json_object_get(j, "error");
    CHECK(o && !strcmp(json_string_value(json_object_get(o, "message")), "'max_tokens' is bad") &&
              !strcmp(json_string_value(json_object_get(o, "type")), "invalid_request_error") &&
              !strcmp(json_string_value(json_object_get(o, "param")), "max_tokens") &&
              json_is_null(json_object_get(o, "code")),
          "error json: %s", s);
    json_decref(j);
    free(s);
    w8_api_set_err(&e, 404, NULL, NULL, "unknown path");
    s = w8_api_error_json(&e);
    j = json_loads(s, 0, NULL);
    CHECK(json_is_null(json_object_get(json_object_get(j, "error"), "param")), "param null: %s", s);
    json_decref(j);
    free(s);
}

static void test_responses(void) {
    w8_api_usage u = {5, 3};
    char *s = w8_api_response_json(W8_API_CHAT, "chatcmpl-1", 1700000000, "stories", "Hi \xC3\xA9", 5,
                                   "stop", &u);
    json_t *j = json_loads(s, 0, NULL);
    json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    json_t *msg = json_object_get(ch, "message");
    CHECK(j && !strcmp(json_string_value(json_object_get(j, "object")), "chat.completion") &&
              !strcmp(json_string_value(json_object_get(j, "id")), "chatcmpl-1") &&
              json_integer_value(json_object_get(j, "created")) == 1700000000 &&
              !strcmp(json_string_value(json_object_get(j, "model")), "stories"),
          "chat.completion head: %s", s);
    CHECK(!strcmp(json_string_value(json_object_get(msg, "role")), "assistant") &&
              !strcmp(json_string_value(json_object_get(msg, "content")), "Hi \xC3\xA9") &&
              !strcmp(json_string_value(json_object_get(ch, "finish_reason")), "stop") &&
              json_integer_value(json_object_get(ch, "index")) == 0,
          "chat.completion choice");
    json_t *us = json_object_get(j, "usage");
    CHECK(json_integer_value(json_object_get(us, "prompt_tokens")) == 5 &&
              json_integer_value(json_object_get(us, "completion_tokens")) == 3 &&
              json_integer_value(json_object_get(us, "total_tokens")) == 8,
          "usage");
    json_decref(j);
    free(s);

    s = w8_api_response_json(W8_API_COMPLETION, "cmpl-2", 1, "m", "abc", 3, "length", &u);
    j = json_loads(s, 0, NULL);
    ch = json_array_get(json_object_get(j, "choices"), 0);
    CHECK(!strcmp(json_string_value(json_object_get(j, "object")), "text_completion") &&
              !strcmp(json_string_value(json_object_get(ch, "text")), "abc") &&
              !strcmp(json_string_value(json_object_get(ch, "finish_reason")), "length"),
          "text_completion: %s", s);
    json_decref(j);
    free(s);

    /* invalid UTF-8 in generated text is replaced, never refused */
    s = w8_api_response_json(W8_API_COMPLETION, "x", 1, "m", "a\xFF" "b", 3, "stop", &u);
    j = json_loads(s, 0, NULL);
    ch = json_array_get(json_object_get(j, "choices"), 0);
    CHECK(j && !strcmp(json_string_value(json_object_get(ch, "text")), "a\xEF\xBF\xBD" "b"),
          "invalid UTF-8 becomes U+FFFD: %s", s);
    json_decref(j);
    free(s);
}

/* Parse the JSON of one SSE event. */
static json_t *sse_json(const char *ev, size_t n) {
    if (n < 8 || strncmp(ev, "data: ", 6) || strcmp(ev + n - 2, "\n\n")) return NULL;
    return json_loadb(ev + 6, n - 8, 0, NULL);
}

static void test_chunks(void) {
    size_t n;
    char *s = w8_api_chunk(W8_API_CHAT, "c1", 7, "m", "assistant", NULL, 0, NULL, NULL, &n);
    json_t *j = sse_json(s, n);
    json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    json_t *d = json_object_get(ch, "delta");
    CHECK(j && n == strlen(s) &&
              !strcmp(json_string_value(json_object_get(j, "object")), "chat.completion.chunk") &&
              !strcmp(json_string_value(json_object_get(d, "role")), "assistant") &&
              json_is_null(json_object_get(ch, "finish_reason")),
          "role chunk: %s", s);
    json_decref(j);
    free(s);
    s = w8_api_chunk(W8_API_CHAT, "c1", 7, "m", NULL, "tok", 3, NULL, NULL, &n);
    j = sse_json(s, n);
    d = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "delta");
    CHECK(j && !strcmp(json_string_value(json_object_get(d, "content")), "tok") &&
              !json_object_get(d, "role"),
          "content chunk: %s", s);
    json_decref(j);
    free(s);
    s = w8_api_chunk(W8_API_CHAT, "c1", 7, "m", NULL, NULL, 0, "length", NULL, &n);
    j = sse_json(s, n);
    ch = json_array_get(json_object_get(j, "choices"), 0);
    CHECK(j && !strcmp(json_string_value(json_object_get(ch, "finish_reason")), "length") &&
              json_object_size(json_object_get(ch, "delta")) == 0,
          "final chunk: %s", s);
    json_decref(j);
    free(s);
    w8_api_usage u = {2, 4};
    s = w8_api_chunk(W8_API_CHAT, "c1", 7, "m", NULL, NULL, 0, NULL, &u, &n);
    j = sse_json(s, n);
    CHECK(j && json_array_size(json_object_get(j, "choices")) == 0 &&
              json_integer_value(json_object_get(json_object_get(j, "usage"), "total_tokens")) == 6,
          "usage chunk: %s", s);
    json_decref(j);
    free(s);
    s = w8_api_chunk(W8_API_COMPLETION, "c2", 7, "m", NULL, "x\ny", 3, NULL, NULL, &n);
    j = sse_json(s, n);
    ch = json_array_get(json_object_get(j, "choices"), 0);
    CHECK(j && !strcmp(json_string_value(json_object_get(j, "object")), "text_completion") &&
              !strcmp(json_string_value(json_object_get(ch, "text")), "x\ny"),
          "completion chunk (newline escaped inside the event): %s", s);
    CHECK(memchr(s, '\n', n - 2) == NULL, "no raw newline inside the data line");
    json_decref(j);
    free(s);
    CHECK(!strcmp(W8_API_SSE_DONE, "data: [DONE]\n\n"), "done marker");
}

static void test_models(void) {
    char *id = w8_api_model_id("/a/b/stories260K-hf-f16/");
    CHECK(!strcmp(id, "stories260K-hf-f16"), "model id from dir: %s", id);
    char *s = w8_api_models_json(id, 5);
    json_t *j = json_loads(s, 0, NULL);
    json_t *m = json_array_get(json_object_get(j, "data"), 0);
    CHECK(!strcmp(json_string_value(json_object_get(j, "object")), "list") &&
              !strcmp(json_string_value(json_object_get(m, "id")), id) &&
              !strcmp(json_string_value(json_object_get(m, "object")), "model"),
          "models list: %s", s);
    json_decref(j);
    free(s);
    free(id);
    id = w8_api_model_id("plain");
    CHECK(!strcmp(id, "plain"), "model id without slash");
    free(id);
}

int main(void) {
    test_chat_ok();
    test_completion_ok();
    test_rejects();
    test_error_json();
    test_responses();
    test_chunks();
    test_models();
    TEST_DONE();
}

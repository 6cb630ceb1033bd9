/*
 * api.c - OpenAI request parsing and response building (see api.h).
 *
 * Validation follows the OpenAI API reference: a parameter of the wrong JSON
 * type, or out of its documented range, is a 400 naming the parameter.
 * Parameters we do not implement but that clients commonly send
 * (presence_penalty, logit_bias, user, ...) are ignored, except `n`, which
 * must be 1 because each request is one sequence.  frequency_penalty is
 * checked for range and mapped onto the sampler's multiplicative repetition
 * penalty when repetition_penalty itself is not given (an approximation:
 * the sampler has no additive per-count penalty).
 */
#include "api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../buf.h"
#include "../json.h"
#include "../util.h"

void w8_api_set_err(w8_api_err *err, int status, const char *type, const char *param,
                    const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->status = status;
    err->type = type ? type : "invalid_request_error";
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
}

static int bad(w8_api_err *err, const char *param, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int bad(w8_api_err *err, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->status = 400;
    err->type = "invalid_request_error";
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    return -1;
}

/* The value of key, or NULL when absent or JSON null (OpenAI treats null as unset). */
static json_t *opt(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_null(v) ? NULL : v;
}

static int wrong_type(w8_api_err *err, const char *key, const char *want, const json_t *v) {
    return bad(err, key, "'%s' must be %s, got %s", key, want, w8_json_type_name(v));
}

/* Optional number in [lo, hi]; 1 if given, 0 if absent, -1 on error. */
static int get_num(json_t *o, const char *key, double lo, double hi, double *out,
                   w8_api_err *err) {
    json_t *v = opt(o, key);
    if (!v) return 0;
    if (!json_is_number(v)) return wrong_type(err, key, "a number", v);
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi))
        return bad(err, key, "'%s' must be between %g and %g, got %g", key, lo, hi, d);
    *out = d;
    return 1;
}

/* Optional integer in [lo, hi] (a float with an integral value counts). */
static int get_int(json_t *o, const char *key, long long lo, long long hi, long long *out,
                   w8_api_err *err) {
    json_t *v = opt(o, key);
    if (!v) return 0;
    long long x;
    if (!w8_json_as_int(v, &x)) return wrong_type(err, key, "an integer", v);
    if (x < lo || x > hi)
        return bad(err, key, "'%s' must be between %lld and %lld, got %lld", key, lo, hi, x);
    *out = x;
    return 1;
}

static int get_bool(json_t *o, const char *key, int *out, w8_api_err *err) {
    json_t *v = opt(o, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) return wrong_type(err, key, "a boolean", v);
    *out = json_is_true(v);
    return 1;
}

/* content: a string, or a list of {"type": "text", "text": ...} parts joined. */
static json_t *message_content(json_t *c, size_t i, w8_api_err *err) {
    char param[64];
    snprintf(param, sizeof param, "messages[%zu].content", i);
    if (!c) return json_string("");
    if (json_is_string(c)) return json_copy(c);
    if (!json_is_array(c)) {
        bad(err, param, "'%s' must be a string or an array of text parts, got %s", param,
            w8_json_type_name(c));
        return NULL;
    }
    w8_buf buf = {0};
    size_t j;
    json_t *part;
    json_array_foreach(c, j, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        json_t *text = json_object_get(part, "text");
        if (!json_is_object(part) || !type || strcmp(type, "text") || !json_is_string(text)) {
            w8_buf_free(&buf);
            bad(err, param, "'%s[%zu]' must be {\"type\": \"text\", \"text\": string}", param, j);
            return NULL;
        }
        w8_buf_put(&buf, json_string_value(text), json_string_length(text));
    }
    json_t *s = json_stringn(buf.s ? buf.s : "", buf.len);
    w8_buf_free(&buf);
    return s;
}

static int parse_messages(json_t *root, w8_api_req *r, w8_api_err *err) {
    json_t *msgs = opt(root, "messages");
    if (!msgs) return bad(err, "messages", "'messages' is required");
    if (!json_is_array(msgs)) return wrong_type(err, "messages", "an array", msgs);
    if (json_array_size(msgs) == 0)
        return bad(err, "messages", "'messages' must have at least one message");
    r->messages = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        char param[64];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(m)) return wrong_type(err, param, "an object", m);
        json_t *role = json_object_get(m, "role");
        snprintf(param, sizeof param, "messages[%zu].role", i);
        if (!json_is_string(role)) return wrong_type(err, param, "a string", role);
        json_t *content = message_content(opt(m, "content"), i, err);
        if (!content) return -1;
        json_t *o = json_object();
        json_object_set(o, "role", role);
        json_object_set_new(o, "content", content);
        json_array_append_new(r->messages, o);
    }
    return 0;
}

static int parse_prompt(json_t *root, w8_api_req *r, w8_api_err *err) {
    json_t *p = opt(root, "prompt");
    if (!p) return bad(err, "prompt", "'prompt' is required");
    /* A one-element list of strings is what some clients send for one prompt. */
    if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
        p = json_array_get(p, 0);
    if (!json_is_string(p)) return wrong_type(err, "prompt", "a string", p);
    r->prompt_len = json_string_length(p);
    r->prompt = w8_xstrndup(json_string_value(p), r->prompt_len);
    return 0;
}

static int add_stop(w8_api_req *r, json_t *s, w8_api_err *err) {
    size_t n = json_string_length(s);
    if (n == 0) return 0; /* an empty stop string would stop at once: ignore it */
    if (n > W8_API_MAX_STOP_LEN)
        return bad(err, "stop", "stop sequences are limited to %d bytes", W8_API_MAX_STOP_LEN);
    r->stop[r->n_stop++] = w8_xstrndup(json_string_value(s), n);
    return 0;
}

static int parse_stop(json_t *root, w8_api_req *r, w8_api_err *err) {
    json_t *s = opt(root, "stop");
    if (!s) return 0;
    if (json_is_string(s)) return add_stop(r, s, err);
    if (!json_is_array(s)) return wrong_type(err, "stop", "a string or an array of strings", s);
    if (json_array_size(s) > W8_API_MAX_STOP)
        return bad(err, "stop", "'stop' may hold at most %d sequences", W8_API_MAX_STOP);
    size_t i;
    json_t *x;
    json_array_foreach(s, i, x) {
        if (!json_is_string(x)) return wrong_type(err, "stop", "an array of strings", x);
        if (add_stop(r, x, err)) return -1;
    }
    return 0;
}

/* Sampling and output options shared by both endpoints. */
static int parse_options(json_t *root, w8_api_req *r, w8_api_err *err) {
    double d;
    long long x;
    int b, rc;
    json_t *model = opt(root, "model");
    if (model && !json_is_string(model)) return wrong_type(err, "model", "a string", model);
    if (model) r->model = w8_xstrdup(json_string_value(model));
    if ((rc = get_num(root, "temperature", 0, 2, &d, err)) < 0) return -1;
    if (rc) r->has_temperature = 1, r->temperature = (float)d;
    if ((rc = get_num(root, "top_p", 0, 1, &d, err)) < 0) return -1;
    /* checked after narrowing: 1e-50 is > 0 as a double but 0 as a float */
    if (rc && !((float)d > 0)) return bad(err, "top_p", "'top_p' must be greater than 0");
    if (rc) r->has_top_p = 1, r->top_p = (float)d;
    if ((rc = get_int(root, "top_k", -1, 1 << 30, &x, err)) < 0) return -1;
    if (rc) r->top_k = x < 0 ? 0 : (int)x; /* -1 means off, as in vLLM */
    /* max_completion_tokens is the newer name; either may be given */
    const char *mt = opt(root, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if ((rc = get_int(root, mt, 1, (1LL << 40), &x, err)) < 0) return -1;
    if (rc) r->max_tokens = x;
    if (parse_stop(root, r, err)) return -1;
    if ((rc = get_int(root, "seed", -(1LL << 62), (1LL << 62), &x, err)) < 0) return -1;
    if (rc) r->has_seed = 1, r->seed = (uint64_t)x;
    if ((rc = get_int(root, "n", -(1LL << 40), 1LL << 40, &x, err)) < 0) return -1;
    if (rc && x != 1) return bad(err, "n", "only n = 1 is supported, got %lld", x);
    if (get_bool(root, "stream", &r->stream, err) < 0) return -1;
    json_t *so = opt(root, "stream_options");
    if (so && !json_is_object(so)) return wrong_type(err, "stream_options", "an object", so);
    if (so && get_bool(so, "include_usage", &b, err) < 0) return -1;
    if (so && json_is_true(json_object_get(so, "include_usage"))) r->include_usage = 1;
    int has_rep = get_num(root, "repetition_penalty", 0.01, 100, &d, err);
    if (has_rep < 0) return -1;
    if (has_rep) r->has_repetition_penalty = 1, r->repetition_penalty = (float)d;
    if (get_num(root, "presence_penalty", -2, 2, &d, err) < 0) return -1;
    if ((rc = get_num(root, "frequency_penalty", -2, 2, &d, err)) < 0) return -1;
    if (rc && !has_rep && d > 0)
        r->has_repetition_penalty = 1, r->repetition_penalty = 1.0f + (float)d / 2;
    return 0;
}

int w8_api_parse(w8_api_kind kind, const char *body, size_t len, w8_api_req *r,
                 w8_api_err *err) {
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->top_k = -1;
    r->max_tokens = -1;
    r->repetition_penalty = 1.0f;
    r->temperature = 1.0f;
    r->top_p = 1.0f;
    json_error_t je;
    /* jansson rejects invalid UTF-8 and (without JSON_ALLOW_NUL) \u0000 in strings */
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return bad(err, NULL, "malformed JSON body: %s (line %d, column %d)", je.text, je.line,
                   je.column);
    int rc = -1;
    if (!json_is_object(root)) {
        bad(err, NULL, "the request body must be a JSON object, got %s",
            w8_json_type_name(root));
    } else if (kind == W8_API_CHAT ? parse_messages(root, r, err) == 0
                                   : parse_prompt(root, r, err) == 0) {
        rc = parse_options(root, r, err);
    }
    json_decref(root);
    if (rc) w8_api_req_free(r);
    return rc;
}

void w8_api_req_free(w8_api_req *r) {
    if (!r) return;
    free(r->model);
    json_decref(r->messages);
    free(r->prompt);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    memset(r, 0, sizeof *r);
}

/* ---- builders */

/* A JSON string from bytes that should be UTF-8; invalid sequences (which
 * the streaming decoder should never produce) become U+FFFD rather than
 * making jansson refuse the whole response. */
static json_t *jstr(const char *s, size_t n) {
    json_t *j = json_stringn(s, n);
    if (j) return j;
    char *buf = w8_xmalloc(n * 3 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        json_t *t = k && i + k <= n ? json_stringn(s + i, k) : NULL;
        if (t && c) {
            memcpy(buf + o, s + i, k);
            o += k;
            i += k;
        } else {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
        json_decref(t);
    }
    j = json_stringn(buf, o);
    free(buf);
    return j ? j : json_string("");
}

static json_t *usage_obj(const w8_api_usage *u) {
    return json_pack("{s:i, s:i, s:i}", "prompt_tokens", u->prompt_tokens, "completion_tokens",
                     u->completion_tokens, "total_tokens",
                     u->prompt_tokens + u->completion_tokens);
}

static json_t *head(const char *object, const char *id, long long created, const char *model) {
    return json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", object, "created",
                     (json_int_t)created, "model", model ? model : "");
}

char *w8_api_error_json(const w8_api_err *err) {
    json_t *e = json_pack("{s:{s:s, s:s, s:o, s:n}}", "error", "message", err->message, "type",
                          err->type ? err->type : "invalid_request_error", "param",
                          err->param[0] ? json_string(err->param) : json_null(), "code");
    if (!e) /* the message was not valid UTF-8 (it may quote client input) */
        e = json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", "invalid request",
                      "type", "invalid_request_error", "param", "code");
    char *s = w8_json_dumps(e, 0);
    json_decref(e);
    return s;
}

char *w8_api_response_json(w8_api_kind kind, const char *id, long long created,
                           const char *model, const char *text, size_t text_len,
                           const char *finish_reason, const w8_api_usage *usage) {
    int chat = kind == W8_API_CHAT;
    json_t *o = head(chat ? "chat.completion" : "text_completion", id, created, model);
    json_t *choice = json_pack("{s:i}", "index", 0);
    if (chat) {
        json_object_set_new(choice, "message", json_pack("{s:s, s:o}", "role", "assistant",
                                                         "content", jstr(text, text_len)));
        json_object_set_new(choice, "logprobs", json_null());
    } else {
        json_object_set_new(choice, "text", jstr(text, text_len));
        json_object_set_new(choice, "logprobs", json_null());
    }
    json_object_set_new(choice, "finish_reason",
                        finish_reason ? json_string(finish_reason) : json_null());
    json_object_set_new(o, "choices", json_pack("[o]", choice));
    json_object_set_new(o, "usage", usage_obj(usage));
    char *s = w8_json_dumps(o, 0);
    json_decref(o);
    return s;
}

char *w8_api_chunk(w8_api_kind kind, const char *id, long long created, const char *model,
                   const char *role, const char *text, size_t text_len,
                   const char *finish_reason, const w8_api_usage *usage, size_t *out_len) {
    int chat = kind == W8_API_CHAT;
    json_t *o = head(chat ? "chat.completion.chunk" : "text_completion", id, created, model);
    if (usage) {
        json_object_set_new(o, "choices", json_array());
        json_object_set_new(o, "usage", usage_obj(usage));
    } else {
        json_t *choice = json_pack("{s:i}", "index", 0);
        if (chat) {
            json_t *delta = json_object();
            if (role) json_object_set_new(delta, "role", json_string(role));
            if (role) json_object_set_new(delta, "content", json_string(""));
            if (text) json_object_set_new(delta, "content", jstr(text, text_len));
            json_object_set_new(choice, "delta", delta);
        } else {
            json_object_set_new(choice, "text", text ? jstr(text, text_len) : json_string(""));
        }
        json_object_set_new(choice, "logprobs", json_null());
        json_object_set_new(choice, "finish_reason",
                            finish_reason ? json_string(finish_reason) : json_null());
        json_object_set_new(o, "choices", json_pack("[o]", choice));
    }
    char *js = w8_json_dumps(o, 0);
    json_decref(o);
    size_t n = strlen(js);
    char *s = w8_xmalloc(n + 9);
    memcpy(s, "data: ", 6);
    memcpy(s + 6, js, n);
    memcpy(s + 6 + n, "\n\n", 3);
    free(js);
    if (out_len) *out_len = n + 8;
    return s;
}

char *w8_api_models_json(const char *model_id, long long created) {
    json_t *o = json_pack("{s:s, s:[{s:s, s:s, s:I, s:s}]}", "object", "list", "data", "id",
                          model_id, "object", "model", "created", (json_int_t)created,
                          "owned_by", "w8a8");
    char *s = w8_json_dumps(o, 0);
    json_decref(o);
    return s;
}

char *w8_api_model_id(const char *dir) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/') b--;
    return b == n ? w8_xstrdup(dir) : w8_xstrndup(dir + b, n - b);
}

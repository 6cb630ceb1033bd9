/*
 * api.h - the OpenAI HTTP API as pure functions: request parsing and
 * validation, and building of response bodies and stream chunks.
 *
 * Nothing here touches a socket, the model or the engine, so every function
 * can be unit-tested and fuzzed on bytes alone.  The server (server.c) calls
 * w8_api_parse on the body, renders/tokenizes the prompt, submits it to the
 * engine (engine.c), and serializes what comes back with the builders below.
 *
 * Supported: POST /v1/chat/completions, POST /v1/completions (a prompt
 * string), GET /v1/models, GET /health.  Types are checked strictly; a wrong
 * type is a 400 with an OpenAI-style error object naming the parameter.
 */
#ifndef W8_API_H
#define W8_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { W8_API_CHAT = 0, W8_API_COMPLETION } w8_api_kind;

#define W8_API_MAX_STOP 4      /* OpenAI allows up to 4 stop sequences */
#define W8_API_MAX_STOP_LEN 256 /* bytes of one stop sequence */

/* A validated request.  Optional numbers hold -1 (or NAN-free defaults
 * documented per field) when the client did not give them, so the server can
 * fill in the model's generation defaults. */
typedef struct {
    w8_api_kind kind;
    char *model;              /* "model" or NULL */
    json_t *messages;         /* chat: [{role, content: string}] (text parts joined), owned */
    char *prompt;             /* completion: prompt text (may contain NUL? no: rejected) */
    size_t prompt_len;
    int has_temperature;
    float temperature;        /* >= 0 */
    int has_top_p;
    float top_p;              /* (0, 1] */
    int top_k;                /* -1: not given; 0: off */
    long long max_tokens;     /* -1: not given (until the context ends); >= 1 otherwise */
    char *stop[W8_API_MAX_STOP];
    int n_stop;
    int has_seed;
    uint64_t seed;
    int stream;
    int include_usage;        /* stream_options.include_usage */
    int has_repetition_penalty; /* given (non-standard), or mapped from frequency_penalty */
    float repetition_penalty; /* 1: off (frequency_penalty p > 0 maps to 1 + p/2, capped) */
} w8_api_req;

/* An error to send: HTTP status, message, the parameter it concerns (or NULL). */
typedef struct {
    int status;
    char message[512];
    char param[64];           /* "" when none */
    const char *type;         /* "invalid_request_error", ... */
} w8_api_err;

/* Parse and validate a request body.  0 on success (*req filled, free it with
 * w8_api_req_free), -1 with *err filled (status 400) otherwise.  The body need
 * not be NUL-terminated; invalid UTF-8 and embedded NULs are rejected. */
int w8_api_parse(w8_api_kind kind, const char *body, size_t len, w8_api_req *req,
                 w8_api_err *err);
void w8_api_req_free(w8_api_req *req);

/* Fill *err (helper used by the server as well). */
void w8_api_set_err(w8_api_err *err, int status, const char *type, const char *param,
                    const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* {"error": {"message", "type", "param", "code": null}} (malloc'd). */
char *w8_api_error_json(const w8_api_err *err);

/* Usage counts of a finished request. */
typedef struct {
    int prompt_tokens;
    int completion_tokens;
} w8_api_usage;

/* The whole (non-streamed) response: chat.completion or text_completion. */
char *w8_api_response_json(w8_api_kind kind, const char *id, long long created,
                           const char *model, const char *text, size_t text_len,
                           const char *finish_reason, const w8_api_usage *usage);

/* One SSE event "data: {...}\n\n" of a stream: chat.completion.chunk or
 * text_completion.  For chat, role != NULL makes the opening delta {role},
 * text != NULL a {content} delta, finish_reason != NULL the closing chunk
 * (empty delta).  usage != NULL makes the usage-only chunk (choices: []).
 * Returns a malloc'd string; *out_len gets its length when out_len != NULL. */
char *w8_api_chunk(w8_api_kind kind, const char *id, long long created, const char *model,
                   const char *role, const char *text, size_t text_len,
                   const char *finish_reason, const w8_api_usage *usage, size_t *out_len);

/* The stream terminator. */
#define W8_API_SSE_DONE "data: [DONE]\n\n"

/* GET /v1/models: {"object":"list","data":[{"id","object":"model","created","owned_by"}]}. */
char *w8_api_models_json(const char *model_id, long long created);

/* The model id the server shows: the basename of the model directory
 * (trailing slashes ignored), malloc'd. */
char *w8_api_model_id(const char *dir);

#endif

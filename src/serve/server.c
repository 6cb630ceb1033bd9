/*
 * server.c - HTTP routes, request bodies, streaming (see server.h).
 *
 * Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models,
 * GET /health.  Unknown path: 404; known path, wrong method: 405.
 *
 * Bodies are collected into a per-connection buffer.  Content-Length over
 * max_body is refused with 413 before any of the body is read; a body
 * without a length (chunked) stops being stored once it passes the limit and
 * gets 413 at its end (or a closed connection if it goes on and on), so an
 * oversized upload never costs more than max_body bytes of memory.
 * Stalled clients are cut off by MHD's idle timeout, and the connection
 * limit bounds the number of threads.
 */
#include "server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "../buf.h"
#include "../json.h"
#include "../prompt.h"
#include "../util.h"

struct w8_server {
    struct MHD_Daemon *d;
    w8_engine *e;
    const w8_model *m;
    const w8_tok *tok;
    /* The tokenizer's chat template, parsed once at start and rendered by
     * every request thread at once (chat_template.h says why that is safe).
     * NULL when there is none, or when it does not parse: then each chat
     * request parses the text and reports the error as before. */
    w8_chat_tmpl *tmpl;
    char *model_id;
    size_t max_body;
    int port;
    long long created;          /* start time, shown as the model's creation time */
    unsigned long long counter; /* request ids and default seeds (atomic) */
};

/* Per-connection state: the body as it arrives. */
typedef struct {
    w8_buf body;    /* never past max_body: checked before each append */
    int too_big;    /* 1: refused from Content-Length; 2: grew past the limit */
    size_t dropped; /* bytes read and dropped after the limit */
} conn_state;

/* A streamed answer: the request and the SSE chunk being sent. */
typedef struct {
    w8_server *s;
    w8_req *r;
    w8_api_kind kind;
    char id[48];
    long long created;
    int include_usage;
    int fd;
    int stage;  /* 0 role, 1 text, 2 finish, 3 usage, 4 [DONE], 5 end, 6 client gone */
    w8_buf out; /* the SSE event being sent */
    size_t off; /* bytes of out already handed to MHD */
} stream_state;

/* ---- responses */

/* Send body (malloc'd; freed here in every case) with its content type and,
 * when not NULL, an Allow header. */
static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, char *body,
                                 const char *type, const char *allow) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) { /* out of memory: nothing can be sent, close the connection */
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, char *json) {
    return send_body(c, status, json, "application/json", NULL);
}

static enum MHD_Result send_err(struct MHD_Connection *c, const w8_api_err *err) {
    return send_json(c, (unsigned)err->status, w8_api_error_json(err));
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *type,
                                  const char *param, const char *msg) {
    w8_api_err err;
    w8_api_set_err(&err, status, type, param, "%s", msg);
    return send_err(c, &err);
}

/* 1 when the client has closed its end (or the socket failed). */
static int client_gone(int fd) {
    if (fd < 0) return 0;
    struct pollfd p = {fd, POLLRDHUP, 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static int conn_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* ---- prompt */

/* Render (chat) and tokenize the prompt (w8_prompt_ids, shared with run);
 * NULL-free ids on success.  An empty prompt stays empty (the caller's 400). */
static int make_prompt(w8_server *s, const w8_api_req *q, int **ids, w8_api_err *err) {
    int chat = q->kind == W8_API_CHAT;
    w8_prompt p = {q->prompt, q->prompt_len, chat ? q->messages : NULL, chat, NULL, 0, s->tmpl};
    w8_prompt_err why;
    int n = w8_prompt_ids(s->tok, &s->m->cfg, &p, ids, &why);
    const char *param = chat ? "messages" : "prompt";
    if (why == W8_PROMPT_NO_TEMPLATE)
        w8_api_set_err(err, 400, NULL, param, "this model has no chat template: use /v1/completions");
    else if (why == W8_PROMPT_TEMPLATE)
        w8_api_set_err(err, 400, NULL, param, "chat template: %s", w8_lasterr());
    else if (why != W8_PROMPT_OK)
        w8_api_set_err(err, 400, NULL, param, "cannot tokenize: %s", w8_lasterr());
    return n;
}

/* Sampling parameters: the request's, else the model's generation_config
 * (w8_sampling_resolve, the rule run uses too). */
static void gen_params(w8_server *s, const w8_api_req *q, unsigned long long nr,
                       w8_gen_params *p) {
    memset(p, 0, sizeof *p);
    w8_sampling_req sq = {q->has_temperature, q->temperature, q->top_k >= 0, q->top_k,
                          q->has_top_p, q->top_p, q->has_repetition_penalty,
                          q->repetition_penalty};
    w8_sampling_resolve(&s->m->cfg, &sq, p);
    p->seed = q->has_seed ? q->seed
                          : (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL ^ (nr + 1) * 0xBF58476D1CE4E5B9ULL;
    p->max_tokens = q->max_tokens;
    p->stop = q->stop;
    p->n_stop = q->n_stop;
}

/* ---- streaming */

/* Append an event of w8_api_chunk (malloc'd, a C string: JSON has no raw NUL). */
static void put_chunk(stream_state *st, char *chunk) {
    w8_buf_puts(&st->out, chunk);
    free(chunk);
}

/* Fill out with the next SSE event (nothing at stages 5 and 6). */
static void stream_next(stream_state *st) {
    w8_buf_free(&st->out);
    st->off = 0;
    const char *model = st->s->model_id;
    switch (st->stage) {
    case 0:
        st->stage = 1;
        if (st->kind == W8_API_CHAT) {
            put_chunk(st, w8_api_chunk(st->kind, st->id, st->created, model, "assistant", NULL, 0,
                                       NULL, NULL, NULL));
            return;
        }
        /* fall through */
    case 1:
        for (;;) {
            char *text;
            size_t tn = 0;
            int done;
            if (!w8_req_wait(st->r, 0.5, &text, &tn, &done)) {
                if (client_gone(st->fd)) {
                    st->stage = 6;
                    return;
                }
                continue;
            }
            if (done) st->stage = 2;
            if (tn) put_chunk(st, w8_api_chunk(st->kind, st->id, st->created, model, NULL, text,
                                               tn, NULL, NULL, NULL));
            free(text);
            if (st->out.len || done) break;
        }
        if (st->out.len) return;
        /* fall through */
    case 2: {
        const char *fin = w8_req_finish_reason(st->r);
        if (fin && !strcmp(fin, "error")) {
            /* the headers (200) are gone: say why in an error event, then [DONE] */
            const char *why = w8_req_error(st->r);
            w8_api_err err;
            w8_api_set_err(&err, 500, "server_error", NULL, "generation failed: %s",
                           why ? why : "unknown error");
            char *j = w8_api_error_json(&err);
            w8_buf_puts(&st->out, "data: ");
            w8_buf_puts(&st->out, j);
            w8_buf_puts(&st->out, "\n\n");
            free(j);
            st->stage = 4;
            return;
        }
        put_chunk(st, w8_api_chunk(st->kind, st->id, st->created, model, NULL, NULL, 0,
                                   fin ? fin : "stop", NULL, NULL));
        st->stage = st->include_usage ? 3 : 4;
        return;
    }
    case 3: {
        w8_api_usage u;
        w8_req_usage(st->r, &u.prompt_tokens, &u.completion_tokens);
        put_chunk(st, w8_api_chunk(st->kind, st->id, st->created, model, NULL, NULL, 0, NULL, &u,
                                   NULL));
        st->stage = 4;
        return;
    }
    case 4:
        w8_buf_puts(&st->out, W8_API_SSE_DONE);
        st->stage = 5;
        return;
    default:
        return;
    }
}

/* MHD content reader: blocks (this is the connection's own thread) until
 * the next chunk exists. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_state *st = cls;
    while (st->off == st->out.len) {
        if (st->stage == 5) return MHD_CONTENT_READER_END_OF_STREAM;
        if (st->stage == 6) return MHD_CONTENT_READER_END_WITH_ERROR; /* client gone */
        stream_next(st);
    }
    size_t n = st->out.len - st->off;
    if (n > max) n = max;
    memcpy(buf, st->out.s + st->off, n);
    st->off += n;
    return (ssize_t)n;
}

/* Called when the response is done with, including when the client left
 * mid-stream: releasing the request cancels its sequence. */
static void stream_free(void *cls) {
    stream_state *st = cls;
    w8_req_release(st->r);
    w8_buf_free(&st->out);
    free(st);
}

/* ---- completions */

static enum MHD_Result complete(w8_server *s, struct MHD_Connection *c, w8_api_kind kind,
                                const char *body, size_t len) {
    w8_api_req q;
    w8_api_err err;
    if (w8_api_parse(kind, body, len, &q, &err)) return send_err(c, &err);
    int *ids = NULL;
    int n = make_prompt(s, &q, &ids, &err);
    if (n == 0)
        w8_api_set_err(&err, 400, NULL, kind == W8_API_CHAT ? "messages" : "prompt",
                       "the prompt is empty (0 tokens)");
    if (n <= 0) {
        free(ids);
        w8_api_req_free(&q);
        return send_err(c, &err);
    }
    unsigned long long nr = __atomic_fetch_add(&s->counter, 1, __ATOMIC_RELAXED);
    w8_gen_params p;
    gen_params(s, &q, nr, &p);
    w8_submit_status why;
    w8_req *r = w8_engine_submit(s->e, ids, n, &p, &why);
    free(ids);
    if (!r) {
        int max = w8_engine_max_seq_len(s->e);
        if (why == W8_SUBMIT_TOO_LONG)
            w8_api_set_err(&err, 400, NULL, kind == W8_API_CHAT ? "messages" : "prompt",
                           "the prompt is %d tokens; this server's context is %d tokens "
                           "(prompt and completion)",
                           n, max);
        else if (why == W8_SUBMIT_FULL)
            w8_api_set_err(&err, 429, "rate_limit_error", NULL,
                           "the server is busy (request queue full); retry later");
        else
            w8_api_set_err(&err, 503, "server_error", NULL, "the server is shutting down");
        w8_api_req_free(&q);
        return send_err(c, &err);
    }
    char id[48];
    snprintf(id, sizeof id, "%s-%llx%06llx", kind == W8_API_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)time(NULL), nr);
    long long created = (long long)time(NULL);
    int fd = conn_fd(c);

    if (q.stream) {
        stream_state *st = w8_xcalloc(1, sizeof *st);
        st->s = s;
        st->r = r;
        st->kind = kind;
        memcpy(st->id, id, sizeof id);
        st->created = created;
        st->include_usage = q.include_usage;
        st->fd = fd;
        w8_api_req_free(&q);
        struct MHD_Response *resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
        if (!resp) { /* MHD calls stream_free only for a response it made */
            stream_free(st);
            return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    w8_api_req_free(&q);

    /* Not streamed: collect everything, watching for the client leaving. */
    w8_buf all = {0};
    int done = 0;
    double next_check = w8_now() + 0.2;
    while (!done) {
        char *t;
        size_t tn = 0;
        if (w8_req_wait(r, 0.2, &t, &tn, &done)) {
            w8_buf_put(&all, t, tn);
            free(t);
        }
        /* text arrives every step, so look at the socket on a clock, not on timeouts */
        if (!done && w8_now() >= next_check) {
            if (client_gone(fd)) break;
            next_check = w8_now() + 0.2;
        }
    }
    if (!done) { /* the client left: drop the request, close the connection */
        w8_req_release(r);
        w8_buf_free(&all);
        return MHD_NO;
    }
    const char *fin = w8_req_finish_reason(r);
    w8_api_usage u;
    w8_req_usage(r, &u.prompt_tokens, &u.completion_tokens);
    if (!strcmp(fin, "error") || !strcmp(fin, "abort")) {
        w8_buf_free(&all);
        w8_api_err e;
        if (!strcmp(fin, "error")) {
            const char *why = w8_req_error(r);
            w8_api_set_err(&e, 500, "server_error", NULL, "generation failed: %s",
                           why ? why : "unknown error");
        } else {
            w8_api_set_err(&e, 503, "server_error", NULL, "the server is shutting down");
        }
        w8_req_release(r);
        return send_err(c, &e);
    }
    w8_req_release(r);
    char *resp = w8_api_response_json(kind, id, created, s->model_id, all.s ? all.s : "", all.len,
                                      fin, &u);
    w8_buf_free(&all);
    return send_json(c, MHD_HTTP_OK, resp);
}

/* ---- routing */

static enum MHD_Result health(w8_server *s, struct MHD_Connection *c) {
    w8_engine_stats st;
    w8_engine_get_stats(s->e, &st);
    json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:I, s:I}", "status", "ok", "running",
                          st.running, "waiting", st.waiting, "free_blocks", st.free_blocks,
                          "total_blocks", st.total_blocks, "block_size", st.block_size,
                          "requests_done", (json_int_t)st.requests_done, "tokens_generated",
                          (json_int_t)st.tokens_generated);
    char *body = w8_json_dumps(o, 0);
    json_decref(o);
    return send_json(c, MHD_HTTP_OK, body);
}

typedef enum { R_NONE, R_CHAT, R_COMPLETION, R_MODELS, R_HEALTH } route;

static route find_route(const char *url) {
    if (!strcmp(url, "/v1/chat/completions")) return R_CHAT;
    if (!strcmp(url, "/v1/completions")) return R_COMPLETION;
    if (!strcmp(url, "/v1/models")) return R_MODELS;
    if (!strcmp(url, "/health")) return R_HEALTH;
    return R_NONE;
}

static enum MHD_Result method_not_allowed(struct MHD_Connection *c, const char *allow) {
    w8_api_err err;
    w8_api_set_err(&err, 405, NULL, NULL, "method not allowed; use %s", allow);
    return send_body(c, MHD_HTTP_METHOD_NOT_ALLOWED, w8_api_error_json(&err),
                     "application/json", allow);
}

static enum MHD_Result too_big(w8_server *s, struct MHD_Connection *c) {
    w8_api_err err;
    w8_api_set_err(&err, 413, NULL, NULL, "request body larger than %zu bytes", s->max_body);
    return send_err(c, &err);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls) {
    (void)version;
    w8_server *s = cls;
    route rt = find_route(url);
    int post = !strcmp(method, MHD_HTTP_METHOD_POST);
    int get = !strcmp(method, MHD_HTTP_METHOD_GET);
    conn_state *cs = *con_cls;
    if (!cs) { /* first call: headers only */
        cs = w8_xcalloc(1, sizeof *cs);
        cs->body.limit = s->max_body; /* bounds its allocation too */
        *con_cls = cs;
        if (rt == R_NONE) return send_error(c, 404, NULL, NULL, "unknown path");
        if ((rt == R_CHAT || rt == R_COMPLETION) && !post) return method_not_allowed(c, "POST");
        if ((rt == R_MODELS || rt == R_HEALTH) && !get) return method_not_allowed(c, "GET");
        if (get) return rt == R_HEALTH ? health(s, c)
                                       : send_json(c, MHD_HTTP_OK, w8_api_models_json(
                                                                       s->model_id, s->created));
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->max_body) {
            cs->too_big = 1;
            return too_big(s, c);
        }
        return MHD_YES;
    }
    if (cs->too_big == 1) { /* 413 already queued from the headers: drop the rest */
        *upload_size = 0;
        return MHD_YES;
    }
    if (cs->too_big == 2 && *upload_size) {
        /* MHD cannot queue a response in the middle of a body, so the rest is
         * read and dropped (no memory kept) and 413 is sent at its end; a body
         * that goes on far past the limit just gets the connection closed. */
        cs->dropped += *upload_size;
        *upload_size = 0;
        if (cs->dropped > 4 * s->max_body + (1u << 20)) return MHD_NO;
        return MHD_YES;
    }
    if (*upload_size) {
        if (cs->body.len + *upload_size > s->max_body) {
            cs->too_big = 2;
            cs->dropped = *upload_size;
            *upload_size = 0;
            return MHD_YES;
        }
        w8_buf_put(&cs->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (cs->too_big) return too_big(s, c);
    return complete(s, c, rt == R_CHAT ? W8_API_CHAT : W8_API_COMPLETION,
                    cs->body.s ? cs->body.s : "", cs->body.len);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    conn_state *cs = *con_cls;
    if (cs) {
        w8_buf_free(&cs->body);
        free(cs);
        *con_cls = NULL;
    }
}

/* ---- lifecycle */

w8_server *w8_server_start(w8_engine *e, const w8_model *m, const w8_tok *tok,
                           const w8_server_opts *o) {
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    if (o->port < 0 || o->port > 65535) return w8_seterr("serve: bad port %d", o->port), NULL;
    int rc = getaddrinfo(o->host, port, &hints, &ai);
    if (rc) return w8_seterr("serve: cannot resolve '%s': %s", o->host, gai_strerror(rc)), NULL;
    w8_server *s = w8_xcalloc(1, sizeof *s);
    s->e = e;
    s->m = m;
    s->tok = tok;
    if (w8_tok_chat_template(tok)) s->tmpl = w8_chat_tmpl_parse(w8_tok_chat_template(tok));
    s->model_id = w8_xstrdup(o->model_id);
    s->max_body = o->max_body;
    s->created = (long long)time(NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ITC;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(o->timeout_s > 0 ? o->timeout_s : 30),
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(o->max_conns > 0 ? o->max_conns : 256),
        MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        w8_chat_tmpl_free(s->tmpl);
        free(s->model_id);
        free(s);
        return w8_seterr("serve: cannot listen on %s:%d (address in use?)", o->host, o->port),
               NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    return s;
}

int w8_server_port(const w8_server *s) { return s->port; }

void w8_server_quiesce(w8_server *s) {
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void w8_server_stop(w8_server *s) {
    if (!s) return;
    MHD_stop_daemon(s->d);
    w8_chat_tmpl_free(s->tmpl);
    free(s->model_id);
    free(s);
}

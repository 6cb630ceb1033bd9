/*
 * server.h - the HTTP layer of `w8a8 serve` on libmicrohttpd.
 *
 * One thread per connection (MHD_USE_THREAD_PER_CONNECTION): a connection
 * thread parses the request (api.c), renders and tokenizes the prompt,
 * submits it to the engine and then blocks on the request's handle, either
 * until the whole answer is there or, for a stream, inside the content
 * reader that turns each text delta into an SSE chunk.  When a client goes
 * away, the response's free callback (streams) or a socket check between
 * waits (non-streamed) releases the request, which cancels its sequence.
 */
#ifndef W8_SERVER_H
#define W8_SERVER_H

#include <stddef.h>

#include "engine.h"
#include "../model.h"
#include "../tokenizer/tokenizer.h"

typedef struct {
    const char *host;     /* address to bind (numeric or a name), e.g. "127.0.0.1" */
    int port;             /* 0: any free port (see w8_server_port) */
    const char *model_id; /* shown by /v1/models and in responses */
    size_t max_body;      /* bytes of a request body; more is 413 */
    int timeout_s;        /* idle connection timeout */
    int max_conns;        /* simultaneous connections */
} w8_server_opts;

typedef struct w8_server w8_server;

/* Bind and start serving.  The engine, model and tokenizer are borrowed.
 * NULL with an error when the address cannot be bound. */
w8_server *w8_server_start(w8_engine *e, const w8_model *m, const w8_tok *tok,
                           const w8_server_opts *o);
/* The port actually bound. */
int w8_server_port(const w8_server *s);
/* Stop accepting new connections (in-flight ones go on). */
void w8_server_quiesce(w8_server *s);
/* Close every connection, join the threads and free.  Stop the engine first
 * so that connection threads waiting on it return. */
void w8_server_stop(w8_server *s);

#endif

/*
 * cmd_serve.c - `w8a8 serve`: load a model, start the engine and the HTTP
 * server, and run until SIGINT/SIGTERM.
 *
 * The signals are blocked before any thread starts (so every thread inherits
 * the mask) and taken synchronously with sigwait in the main thread: no
 * async-signal-safety concerns, and shutdown runs as ordinary code:
 * stop accepting, end the engine's requests, join the connections, free.
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "../src/serve/api.h"
#include "../src/serve/engine.h"
#include "../src/kv_cache.h"
#include "../src/model.h"
#include "../src/serve/server.h"
#include "../src/tokenizer/tokenizer.h"
#include "../src/util.h"

int w8_cmd_serve(int argc, char **argv) {
    const char *model_path = NULL, *host = "127.0.0.1", *float_layers = NULL;
    int port = 8080, max_batch = 16, block_size = 128, max_seq_len = 0, max_queue = 64;
    int max_body = 1 << 20, prefill_chunk = 256, timeout = 30, max_conns = 256, threads = 0;
    float kv_gb = 0;
    const w8_opt opts[] = {
        {"model_path", 0, W8_ARG_STR, &model_path, "model directory (float or W8A8)"},
        {"host", 0, W8_ARG_STR, &host, "address to listen on (default 127.0.0.1)"},
        {"port", 0, W8_ARG_INT, &port, "port (default 8080; 0 = any free port)"},
        {"max_batch_size", 0, W8_ARG_INT, &max_batch, "sequences running at once (default 16)"},
        {"block_size", 0, W8_ARG_INT, &block_size, "KV cache block size in tokens (default 128)"},
        {"kv_cache_gb", 0, W8_ARG_FLOAT, &kv_gb,
         "KV cache size in GiB (default: max_seq_len x max_batch_size tokens)"},
        {"max_seq_len", 0, W8_ARG_INT, &max_seq_len,
         "tokens per sequence, prompt + completion (default min(model context, 4096))"},
        {"max_queue", 0, W8_ARG_INT, &max_queue, "requests waiting to start; more get 429 (default 64)"},
        {"max_body", 0, W8_ARG_INT, &max_body, "largest request body in bytes (default 1048576)"},
        {"prefill_chunk", 0, W8_ARG_INT, &prefill_chunk, "prompt tokens per step (default 256)"},
        {"timeout", 0, W8_ARG_INT, &timeout, "idle connection timeout in seconds (default 30)"},
        {"max_connections", 0, W8_ARG_INT, &max_conns, "simultaneous connections (default 256)"},
        {"threads", 't', W8_ARG_INT, &threads, "compute threads (default: all cores)"},
        {"float_layers", 0, W8_ARG_STR, &float_layers, W8_ARGS_FLOAT_LAYERS_HELP},
    };
    int rc = w8_args_parse(argc, argv, "w8a8 serve --model_path DIR [options]",
                           "OpenAI-compatible HTTP server (/v1/chat/completions, /v1/completions,\n"
                           "/v1/models, /health) with continuous batching.",
                           opts, (int)(sizeof opts / sizeof opts[0]));
    if (rc) return rc > 0 ? 0 : 1;
    w8_load_opts lo;
    if (w8_args_float_layers(float_layers, &lo)) return 1;
    w8_args_apply_threads(threads);
    if (!model_path) {
        fprintf(stderr, "w8a8: serve: --model_path is required\n");
        return 1;
    }
    if (max_batch < 1 || block_size < 1 || max_queue < 1 || max_body < 1 || prefill_chunk < 1 ||
        max_seq_len < 0 || kv_gb < 0 || port < 0 || port > 65535) {
        fprintf(stderr, "w8a8: serve: option values must be positive (port 0..65535)\n");
        return 1;
    }

    /* Block the stop signals before any thread exists; sigwait takes them below. */
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    w8_model *m = w8_model_load_opts(model_path, &lo);
    w8_tok *tok = m ? w8_tok_load(model_path) : NULL;
    if (!m || !tok) {
        fprintf(stderr, "w8a8: %s\n", w8_lasterr());
        w8_model_free(m);
        return 1;
    }
    int ctx = m->cfg.max_pos > 0 ? m->cfg.max_pos : 4096;
    if (!max_seq_len) max_seq_len = ctx < 4096 ? ctx : 4096;
    if (max_seq_len > ctx) max_seq_len = ctx;
    int n_blocks;
    if (kv_gb > 0) {
        /* a size past what size_t holds is no real request: cap it (blocks are capped too) */
        double bytes = (double)kv_gb * (1 << 30);
        n_blocks = w8_kv_blocks_for_bytes(&m->cfg, block_size,
                                          bytes < 0x1p62 ? (size_t)bytes : (size_t)1 << 62);
    } else {
        long long nb = ((long long)max_seq_len * max_batch + block_size - 1) / block_size;
        if (nb * block_size > INT_MAX) {
            fprintf(stderr, "w8a8: serve: max_seq_len %d x max_batch_size %d tokens is too many "
                            "for the KV cache\n", max_seq_len, max_batch);
            w8_tok_free(tok);
            w8_model_free(m);
            return 1;
        }
        n_blocks = (int)nb;
    }
    w8_engine_opts eo = {max_batch, max_seq_len, block_size, n_blocks, max_queue, prefill_chunk, 0, 0};
    /* A test-only knob (tests/cli_serve.sh): milliseconds of pause per engine
     * step, so disconnect checks do not depend on how fast the machine is. */
    const char *delay = getenv("W8A8_TEST_STEP_DELAY_MS");
    long delay_ms = delay ? strtol(delay, NULL, 10) : 0;
    if (delay_ms > 0 && delay_ms <= 1000) eo.step_delay_us = (int)delay_ms * 1000;
    w8_engine *e = n_blocks > 0 ? w8_engine_new(m, tok, &eo) : NULL;
    if (!e) {
        fprintf(stderr, "w8a8: %s\n", n_blocks > 0 ? w8_lasterr() : "serve: KV cache too small for one block");
        w8_tok_free(tok);
        w8_model_free(m);
        return 1;
    }
    char *id = w8_api_model_id(model_path);
    w8_server_opts so = {host, port, id, (size_t)max_body, timeout, max_conns};
    w8_server *s = w8_server_start(e, m, tok, &so);
    if (!s) {
        fprintf(stderr, "w8a8: %s\n", w8_lasterr());
        w8_engine_free(e);
        free(id);
        w8_tok_free(tok);
        w8_model_free(m);
        return 1;
    }
    printf("w8a8 serve: model %s (%s, %d int8 / %d float linear layers)\n", id,
           w8_model_kind(m), m->n_int8, m->n_float);
    printf("w8a8 serve: KV cache %d blocks x %d tokens = %d tokens; max_seq_len %d, "
           "max_batch_size %d, threads %d\n",
           n_blocks, block_size, w8_engine_kv_tokens(e), w8_engine_max_seq_len(e), max_batch,
           w8_get_threads());
    printf("w8a8 serve: listening on http://%s:%d\n", host, w8_server_port(s));
    fflush(stdout);

    int sig = 0;
    sigwait(&stop_sigs, &sig);
    printf("w8a8 serve: %s received, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    fflush(stdout);
    w8_server_quiesce(s);
    w8_engine_stop(e);
    w8_server_stop(s);
    w8_engine_free(e);
    free(id);
    w8_tok_free(tok);
    w8_model_free(m);
    return 0;
}

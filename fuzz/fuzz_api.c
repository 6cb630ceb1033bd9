/*
 * fuzz_api.c - the server's request handling below HTTP: the JSON body of
 * /v1/chat/completions and /v1/completions with its sampling parameters
 * (first byte picks the endpoint), then, for an accepted request, building
 * the response and stream chunks from its prompt text.  (Headers and the
 * HTTP framing are libmicrohttpd's.)
 */
#include <string.h>

#include "../src/serve/api.h"
#include "../src/util.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    w8_api_kind kind = (data[0] & 1) ? W8_API_COMPLETION : W8_API_CHAT;
    w8_api_req req;
    w8_api_err err;
    memset(&req, 0, sizeof req);
    memset(&err, 0, sizeof err);
    if (w8_api_parse(kind, (const char *)data + 1, size - 1, &req, &err) != 0) {
        if (err.status < 400 || err.status > 599) abort();
        free(w8_api_error_json(&err));
        return 0;
    }
    /* an accepted request holds values the engine can use as they are */
    if (req.has_temperature && !(req.temperature >= 0)) abort();
    if (req.has_top_p && !(req.top_p > 0 && req.top_p <= 1)) abort();
    if (req.n_stop < 0 || req.n_stop > W8_API_MAX_STOP) abort();
    const char *text = req.prompt ? req.prompt : "x";
    size_t tlen = req.prompt ? req.prompt_len : 1;
    w8_api_usage u = {3, 4};
    free(w8_api_response_json(kind, "id-1", 1, req.model ? req.model : "m", text, tlen, "stop", &u));
    size_t n;
    free(w8_api_chunk(kind, "id-1", 1, "m", "assistant", NULL, 0, NULL, NULL, &n));
    free(w8_api_chunk(kind, "id-1", 1, "m", NULL, text, tlen, NULL, NULL, &n));
    free(w8_api_chunk(kind, "id-1", 1, "m", NULL, NULL, 0, "length", &u, &n));
    w8_api_req_free(&req);
    return 0;
}

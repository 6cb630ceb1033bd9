/*
 * fuzz_tokenizer_load.c - loading tokenizer.json (and, after the first NUL
 * byte, tokenizer_config.json); an accepted tokenizer then encodes and
 * decodes a fixed string.
 */
#include <string.h>

#include "../src/tokenizer/tokenizer.h"
#include "../src/util.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *tok = (const char *)data;
    const char *nul = memchr(data, 0, size);
    size_t tlen = nul ? (size_t)(nul - tok) : size;
    const char *cfg = nul ? nul + 1 : NULL;
    size_t clen = nul ? size - tlen - 1 : 0;
    w8_tok *t = w8_tok_from_json(tok, tlen, cfg, clen, "fuzz/tokenizer.json");
    if (!t) return 0;
    static const char text[] = "Hello world, 你好! <s> 123";
    int *ids = NULL;
    int n = w8_tok_encode(t, text, sizeof text - 1, 1, &ids);
    if (n > 0) {
        char *s = w8_tok_decode(t, ids, (size_t)n, 0);
        free(s);
    }
    free(ids);
    w8_tok_free(t);
    return 0;
}

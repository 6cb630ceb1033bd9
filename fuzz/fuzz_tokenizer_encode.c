/*
 * fuzz_tokenizer_encode.c - encoding arbitrary bytes (invalid UTF-8
 * included) and decoding arbitrary id lists, with the real Qwen3 byte-level
 * tokenizer and the stories260K sentencepiece-style one from ../shared.
 *
 * First byte: bit 0 picks the tokenizer, bit 1 encode (0) or decode (1).
 * Decode reads the rest as little-endian int32 ids (out-of-range ids must be
 * refused, not read), and also streams them through w8_tok_stream.
 */
#include <stdio.h>
#include <string.h>

#include "../src/tokenizer/tokenizer.h"
#include "../src/util.h"
#include "fuzz.h"

static w8_tok *toks[2];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *names[2] = {"tokenizers/qwen3", "models/stories260K-hf-f16"};
    for (int i = 0; i < 2; i++) {
        char *d = w8_path_join(fuzz_shared(), names[i]);
        toks[i] = w8_tok_load(d);
        if (!toks[i]) {
            fprintf(stderr, "fuzz_tokenizer_encode: %s\n", w8_lasterr());
            abort();
        }
        free(d);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t mode = data[0];
    w8_tok *t = toks[mode & 1];
    data++;
    size--;
    if (((mode >> 1) & 1) == 0) {
        int *ids = NULL;
        int n = w8_tok_encode(t, (const char *)data, size, (mode >> 2) & 1, &ids);
        if (n > 0) {
            for (int i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= w8_tok_vocab_size(t)) abort();
            char *s = w8_tok_decode(t, ids, (size_t)n, 0);
            free(s);
        }
        free(ids);
    } else {
        size_t n = size / 4;
        int *ids = w8_xmalloc((n ? n : 1) * sizeof(int));
        memcpy(ids, data, n * 4);
        /* mostly in-range ids so decoding gets exercised, some wild ones */
        int vs = w8_tok_vocab_size(t);
        for (size_t i = 0; i < n; i++)
            if ((ids[i] & 0x40000000) == 0) ids[i] = (int)((unsigned)ids[i] % (unsigned)vs);
        char *s = w8_tok_decode(t, ids, n, (mode >> 2) & 1);
        free(s);
        w8_tok_stream *st = w8_tok_stream_new(t, 0);
        for (size_t i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= vs) continue;
            char *piece = w8_tok_stream_push(st, ids[i]);
            free(piece);
        }
        char *rest = w8_tok_stream_flush(st);
        free(rest);
        w8_tok_stream_free(st);
        free(ids);
    }
    return 0;
}

/*
 * fuzz_config.c - config.json, generation_config.json and
 * quant_model_description.json parsing, and the text edits the quantizer
 * makes to config.json.  First byte selects the parser.
 */
#include <stdlib.h>
#include <string.h>

#include "../src/config.h"
#include "../src/json.h"
#include "../src/util.h"
#include "fuzz.h"

/* w8_json_text_set / _del on any text; on an object whose keys are written
 * without escapes, the result must parse to the object with the change. */
static void text_edits(const char *text, size_t len) {
    json_error_t e;
    json_t *obj = w8_json_parse(text, len, &e);
    /* no NUL and no backslash: every key is written as it reads */
    int plain = json_is_object(obj) && !memchr(text, 0, len) && !memchr(text, '\\', len);
    char *set = w8_json_text_set(text, len, "quantize", "\"w8a8\"");
    char *del = w8_json_text_del(text, len, "quantization_config");
    if (plain) {
        if (!set || !del) abort();
        json_t *want = json_deep_copy(obj);
        json_object_set_new(want, "quantize", json_string("w8a8"));
        json_t *got = w8_json_parse(set, strlen(set), &e);
        if (!got || !json_equal(got, want)) abort();
        json_decref(got);
        json_decref(want);
        want = json_deep_copy(obj);
        json_object_del(want, "quantization_config");
        got = w8_json_parse(del, strlen(del), &e);
        if (!got || !json_equal(got, want)) abort();
        json_decref(got);
        json_decref(want);
    }
    free(set);
    free(del);
    json_decref(obj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    w8_config cfg;
    memset(&cfg, 0, sizeof cfg);
    switch (data[0] % 4) {
    case 0:
        if (w8_config_parse(text, len, "config.json", &cfg) == 0) {
            /* an accepted config must be self-consistent */
            if (cfg.hidden <= 0 || cfg.n_layers <= 0 || cfg.n_heads <= 0 ||
                cfg.n_kv_heads <= 0 || cfg.head_dim <= 0 || cfg.vocab <= 0 ||
                cfg.n_heads % cfg.n_kv_heads != 0)
                abort();
        }
        break;
    case 1:
        (void)w8_genconfig_parse(text, len, "generation_config.json", &cfg);
        if (cfg.n_eos < 0 || cfg.n_eos > W8_MAX_EOS) abort();
        break;
    case 3:
        text_edits(text, len);
        break;
    default: {
        w8_qdesc *q = w8_qdesc_parse(text, len, "quant_model_description.json");
        if (q) {
            (void)w8_qdesc_model_type(q);
            (void)w8_qdesc_get(q, "model.layers.0.self_attn.q_proj.weight");
            w8_qdesc_free(q);
        }
    }
    }
    return 0;
}

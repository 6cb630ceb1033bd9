/*
 * fuzz_config.c - config.json, generation_config.json and
 * quant_model_description.json parsing.  First byte selects the parser.
 */
#include <string.h>

#include "../src/config.h"
#include "../src/util.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    w8_config cfg;
    memset(&cfg, 0, sizeof cfg);
    switch (data[0] % 3) {
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

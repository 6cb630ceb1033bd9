/*
 * cmd_synth.c - `w8a8 synth`: write a random-weight Qwen2 / Qwen3 model
 * directory with real shapes (see src/synth.h).  The tokenizer files come
 * from the shared data directory ($W8A8_SHARED, default ../shared): Qwen3
 * shapes get Qwen3's own tokenizer.json, Qwen2 shapes the qwen2.5-derived one.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/config.h"
#include "../src/synth.h"
#include "../src/util.h"
#include "args.h"
#include "commands.h"

/* Ctrl-C stops between blocks so the library removes its temporary
 * directory instead of leaving gigabytes behind. */
static volatile int interrupted;
static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

int w8_cmd_synth(int argc, char **argv) {
    const char *shape = NULL, *dtype = NULL, *out = NULL, *shared = getenv("W8A8_SHARED");
    const char *config = NULL, *from = NULL;
    int seed = 0, threads = 0, layers = 0, outliers = 0;
    float shard_gb = 0, factor = 30.0f;
    if (!shared) shared = "../shared";
    const w8_opt opts[] = {
        {"shape", 0, W8_ARG_STR, &shape, "qwen2.5-0.5b | qwen2.5-1.5b | qwen2-7b | qwen3-0.6b | qwen3-8b | tiny | qwen3-tiny"},
        {"config", 0, W8_ARG_STR, &config,
         "instead of --shape: a model directory (config.json and its small files, no weights needed);\n"
         "tensors named and shaped as transformers builds that config, small files copied"},
        {"layers", 0, W8_ARG_INT, &layers, "with --config: keep only the first N layers (default: all)"},
        {"dtype", 0, W8_ARG_STR, &dtype, "f16 | bf16 | f32 (default bf16; with --config, the config's dtype)"},
        {"out", 'o', W8_ARG_STR, &out, "output directory; must not exist or be empty (required)"},
        {"seed", 0, W8_ARG_INT, &seed, "random seed (default 0)"},
        {"shard_gb", 0, W8_ARG_FLOAT, &shard_gb,
         "shard into model-0000i-of-0000N.safetensors of at most G GB (default: one file)"},
        {"shared", 0, W8_ARG_STR, &shared, "shared data dir with tokenizers/ (default $W8A8_SHARED or ../shared)"},
        {"threads", 't', W8_ARG_INT, &threads, "threads (default: all cores)"},
        {"outliers", 0, W8_ARG_INT, &outliers,
         "instead: copy the float model --from with N activation outlier channels (every "
         "RMSNorm weight times --factor there, the next layers' input columns divided by it: "
         "the same float function)"},
        {"from", 0, W8_ARG_STR, &from, "with --outliers: the float model to copy; otherwise the same as --config"},
        {"factor", 0, W8_ARG_FLOAT, &factor, "outlier factor for --outliers (default 30)"},
    };
    int r = w8_args_parse(argc, argv, "w8a8 synth (--shape NAME | --config DIR) --out DIR [options]",
                          "Write a float Hugging Face model with random weights (normal, std 0.02)\n"
                          "and the real shapes and config of the chosen model, or of a real model\n"
                          "directory's config.json (LLaMA, Qwen2, Qwen3, Mistral); or, with\n"
                          "--outliers N --from DIR, a copy of a float model with N activation outlier channels.",
                          opts, (int)(sizeof opts / sizeof opts[0]));
    if (r) return r > 0 ? 0 : 1;
    w8_args_apply_threads(threads);
    if (outliers) {
        if (outliers <= 0 || !from || !out) {
            fprintf(stderr, "w8a8: synth: --outliers N (N > 0) needs --from DIR and --out DIR\n");
            return 1;
        }
        if (w8_synth_outliers(from, out, outliers, factor, (uint64_t)(seed < 0 ? 0 : seed)) != 0) {
            fprintf(stderr, "w8a8: %s\n", w8_lasterr());
            return 1;
        }
        fprintf(stderr, "synth: wrote %s: %s with %d outlier channels (x%g)\n", out, from,
                outliers, (double)factor);
        return 0;
    }
    if (from && !config) config = from;
    if (!shape == !config || !out) {
        fprintf(stderr, "w8a8: synth: --out and one of --shape or --config are required (see --help)\n");
        return 1;
    }
    w8_synth_opts o = {0};
    if (shape && !(o.shape = w8_synth_find_shape(shape))) {
        fprintf(stderr, "w8a8: %s\n", w8_lasterr());
        return 1;
    }
    if (layers < 0 || (layers && !config)) {
        fprintf(stderr, "w8a8: synth: --layers takes a positive count and needs --config\n");
        return 1;
    }
    o.config_dir = config;
    o.layers = layers;
    o.dtype = W8_BF16;
    if (config && !dtype) {
        w8_config c;
        if (w8_config_load(config, &c) != 0) {
            fprintf(stderr, "w8a8: %s\n", w8_lasterr());
            return 1;
        }
        o.dtype = (w8_dtype)c.torch_dtype;
    } else if (dtype) {
        o.dtype_given = 1;
        if (!strcmp(dtype, "f16") || !strcmp(dtype, "float16")) o.dtype = W8_F16;
        else if (!strcmp(dtype, "bf16") || !strcmp(dtype, "bfloat16")) o.dtype = W8_BF16;
        else if (!strcmp(dtype, "f32") || !strcmp(dtype, "float32")) o.dtype = W8_F32;
        else {
            fprintf(stderr, "w8a8: synth: --dtype '%s' is not f16, bf16 or f32\n", dtype);
            return 1;
        }
    }
    if (seed < 0 || shard_gb < 0) {
        fprintf(stderr, "w8a8: synth: --seed and --shard_gb must not be negative\n");
        return 1;
    }
    o.seed = (uint64_t)seed;
    o.shard_gb = shard_gb;
    char *tj = w8_path_join(shared, o.shape && o.shape->qwen3 ? "tokenizers/qwen3/tokenizer.json"
                                                   : "tokenizers/qwen2.5-derived/tokenizer.json");
    char *tc = w8_path_join(shared, "tokenizers/qwen3/tokenizer_config.json");
    int rc = 1;
    /* a config directory brings its own tokenizer files (or none) */
    if (!config) {
        if (!w8_file_exists(tj) || !w8_file_exists(tc)) {
            fprintf(stderr, "w8a8: synth: tokenizer files not found (%s, %s); set --shared\n", tj, tc);
            goto out;
        }
        o.tokenizer_json = tj;
        o.tokenizer_config = tc;
    }
    o.cancel = &interrupted;
    double t0 = w8_now();
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int wrc = w8_synth_write(&o, out);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (wrc != 0) {
        fprintf(stderr, "w8a8: %s\n", w8_lasterr());
        goto out;
    }
    size_t params = 0;
    w8_synth_count(&o, &params);
    fprintf(stderr, "synth: wrote %s: %s %s, %zu parameters (%.1f MB) in %.1f s, peak RSS %.0f MB\n",
            out, config ? config : o.shape->name, w8_dtype_name(o.dtype), params, (double)(params * w8_dtype_size(o.dtype)) / 1e6,
            w8_now() - t0, (double)w8_peak_rss_bytes() / 1e6);
    rc = 0;
out:
    free(tj);
    free(tc);
    return rc;
}

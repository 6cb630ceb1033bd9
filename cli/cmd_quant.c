/*
 * cmd_quant.c - `w8a8 quant`: msModelSlim-style command line over w8_quantize().
 *
 * Flag names follow msModelSlim's quantization script so existing recipes
 * carry over; only what a CPU port can honour is accepted (--quant_type w8a8
 * or w8a8_dynamic, plus w8a8_mix, our mixed recipe; --device cpu).
 * --trust_remote_code is accepted and ignored: nothing here executes model
 * code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/quantize.h"
#include "../src/util.h"
#include "args.h"
#include "commands.h"

/* --disable_names takes "a,b" and/or several words: split everything on commas. */
static char **split_names(const w8_strlist *l, int *n_out, char **store) {
    size_t len = 0;
    for (int i = 0; i < l->n; i++) len += strlen(l->v[i]) + 1;
    char *buf = w8_xmalloc(len + 1);
    buf[0] = 0;
    for (int i = 0; i < l->n; i++) {
        strcat(buf, l->v[i]);
        strcat(buf, ",");
    }
    char **names = w8_xcalloc(len + 1, sizeof(char *));
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
        names[n++] = tok;
    *n_out = n;
    *store = buf;
    return names;
}

int w8_cmd_quant(int argc, char **argv) {
    w8_quant_opts o;
    w8_quant_opts_init(&o);
    const char *quant_type = NULL, *device = "cpu", *anti = NULL;
    w8_strlist disable = {0};
    float part = 0;
    int threads = 0, trust = 0;
    const w8_opt opts[] = {
        {"model_path", 0, W8_ARG_STR, &o.model_path, "float source directory (HF safetensors)"},
        {"save_path", 0, W8_ARG_STR, &o.save_path, "output directory (W8A8, FORMAT.md)"},
        {"quant_type", 0, W8_ARG_STR, &quant_type,
         "w8a8 (static activations, calibrated), w8a8_dynamic (per-token activation scales, "
         "no calibration), or w8a8_mix (w8a8, but every mlp.down_proj W8A8_DYNAMIC instead "
         "of float; vllm-ascend only)"},
        {"model_type", 0, W8_ARG_STR, &o.model_type,
         "recipe: qwen2* (e.g. Qwen2-7B) keeps mlp.down_proj float; default from config"},
        {"calib_file", 0, W8_ARG_STR, &o.calib_file,
         "calibration text: plain lines or JSON lines with \"text\"/\"inputs_pretokenized\""},
        {"calib_samples", 0, W8_ARG_INT, &o.calib_samples, "calibration samples used (50)"},
        {"calib_seq_len", 0, W8_ARG_INT, &o.calib_seq_len, "tokens per sample at most (256)"},
        {"disable_names", 0, W8_ARG_LIST, &disable,
         "linear layers kept float, comma-separated (model.layers.0.mlp.down_proj,...)"},
        {"anti_outlier", 0, W8_ARG_STR, &anti, "anti-outlier method: smoothquant (default none)"},
        {"alpha", 0, W8_ARG_FLOAT, &o.alpha, "SmoothQuant migration strength (0.5)"},
        {"part_file_size", 0, W8_ARG_FLOAT, &part, "shard the weights at about this many GB"},
        {"device", 0, W8_ARG_STR, &device, "device: cpu (the only one)"},
        {"threads", 't', W8_ARG_INT, &threads, "threads (default: all cores)"},
        {"trust_remote_code", 0, W8_ARG_FLAG, &trust, "accepted for msModelSlim compatibility; ignored"},
        {"force", 0, W8_ARG_FLAG, &o.force, "replace an existing non-empty --save_path (after success)"},
    };
    int pr = w8_args_parse(argc, argv,
                           "w8a8 quant --model_path SRC --save_path DST --quant_type w8a8 [options]",
                           "Quantize a float Qwen2/LLaMA model to msModelSlim/MindIE W8A8 "
                           "(int8 weights per channel, int8 activations per tensor from "
                           "min/max calibration) or W8A8_DYNAMIC (int8 activations with one "
                           "scale per token, computed at run time: no calibration unless "
                           "--anti_outlier).",
                           opts, (int)(sizeof opts / sizeof opts[0]));
    if (pr != 0) {
        free(disable.v);
        return pr > 0 ? 0 : 1;
    }
    int rc = 1;
    char *store = NULL;
    char **names = NULL;
    if (!o.model_path || !o.save_path) {
        fprintf(stderr, "w8a8: quant needs --model_path and --save_path (see --help)\n");
        goto out;
    }
    if (!quant_type) {
        fprintf(stderr, "w8a8: quant needs --quant_type (supported: w8a8, w8a8_dynamic, w8a8_mix)\n");
        goto out;
    }
    if (!strcasecmp(quant_type, "w8a8")) {
        o.quant_type = W8_QT_W8A8;
    } else if (!strcasecmp(quant_type, "w8a8_dynamic")) {
        o.quant_type = W8_QT_DYNAMIC;
    } else if (!strcasecmp(quant_type, "w8a8_mix")) {
        o.quant_type = W8_QT_MIX;
    } else {
        fprintf(stderr, "w8a8: --quant_type %s is not supported (supported: w8a8, w8a8_dynamic, "
                "w8a8_mix)\n", quant_type);
        goto out;
    }
    if (strcasecmp(device, "cpu")) {
        fprintf(stderr, "w8a8: --device %s is not supported (supported: cpu)\n", device);
        goto out;
    }
    if (anti && strcasecmp(anti, "smoothquant") && strcasecmp(anti, "none")) {
        fprintf(stderr, "w8a8: --anti_outlier %s is not supported (supported: smoothquant)\n", anti);
        goto out;
    }
    o.smooth = anti && !strcasecmp(anti, "smoothquant");
    if (part < 0 || part != part) {
        fprintf(stderr, "w8a8: --part_file_size must be a positive number of GB\n");
        goto out;
    }
    o.part_file_size_gb = part;
    (void)trust;
    names = split_names(&disable, &o.n_disable, &store);
    o.disable_names = (const char *const *)names;
    o.log = stderr;
    w8_args_apply_threads(threads);
    w8_quant_report rep;
    if (w8_quantize(&o, &rep) != 0) {
        fprintf(stderr, "w8a8: %s\n", w8_lasterr());
        goto out;
    }
    fprintf(stderr,
            "quant: wrote %s: %d tensors in %d file%s (%.1f MB), %d layers W8A8 (%d dynamic), %d float; "
            "calibration %d samples / %d tokens in %.1f s (CPU %.1f s), writing %.1f s, "
            "total %.1f s (CPU %.1f s), peak RSS %.0f MB\n",
            o.save_path, rep.n_tensors, rep.n_shards, rep.n_shards == 1 ? "" : "s",
            (double)rep.bytes / 1e6, rep.n_quant, rep.n_dynamic, rep.n_float, rep.n_samples, rep.n_tokens,
            rep.calib_seconds, rep.calib_cpu_seconds, rep.write_seconds, rep.seconds, rep.cpu_seconds,
            (double)rep.peak_rss / 1e6);
    rc = 0;
out:
    free(names);
    free(store);
    free(disable.v);
    return rc;
}

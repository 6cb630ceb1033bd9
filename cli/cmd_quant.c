/*
 * cmd_quant.c - `w8a8 quant`: msModelSlim-style command line over w8_quantize().
 *
 * Flag names and values follow `msmodelslim quant` so the documented command
 * line runs as pasted: --model_type takes the documentation's model names
 * (Qwen2.5-7B-Instruct, Llama-3.1-8B...) and maps their family onto one of
 * our recipes; --device npu / npu:0 quantizes on the CPU (one line says so;
 * the bytes are those of --device cpu); --trust_remote_code [BOOL], --tags,
 * --debug, --log_level, -v, -q are accepted (nothing here executes model
 * code); a YAML --config is refused, since the recipe is built in.  Quant types:
 * w8a8 (static, calibrated), w8a8_dynamic (per-token activations), and
 * w8a8_mix, our mixed recipe (static W8A8 with every mlp.down_proj dynamic).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/quant/quantize.h"
#include "../src/quant/sensitivity.h"
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

/* Documentation model names, by family (case-insensitive prefix, an optional
 * "org/" in front ignored), and the recipe each family gets.  The recipe must
 * be one of w8_quant_recipes, or the name is refused as not in this build. */
static const struct {
    const char *prefix, *recipe, *shown; /* shown: in the refusal's list */
} families[] = {
    {"qwen3", "qwen3", "Qwen3*"},
    {"qwen2", "qwen2", "Qwen2*, Qwen2.5*"},
    {"qwen1.5", "qwen2", "Qwen1.5*"},
    {"qwq", "qwen2", "QwQ*"},
    {"deepseek-r1-distill-qwen", "qwen2", "DeepSeek-R1-Distill-Qwen*"},
    {"llama", "llama", "Llama*"},
    {"meta-llama", "llama", "Meta-Llama*"},
    {"codellama", "llama", "CodeLlama*"},
    {"tinyllama", "llama", "TinyLlama*"},
    {"deepseek-r1-distill-llama", "llama", "DeepSeek-R1-Distill-Llama*"},
    {"mistral", "llama", "Mistral*"},
};
#define N_FAMILIES ((int)(sizeof families / sizeof families[0]))

static int recipe_known(const char *r) {
    for (int i = 0; w8_quant_recipes[i]; i++)
        if (!strcmp(w8_quant_recipes[i], r)) return 1;
    return 0;
}

/* The recipe of a --model_type name, or NULL (message printed).  A family
 * matches when the name starts with its prefix and the next character is not
 * a letter ("Qwen2.5-7B", "Llama3", but not "Qwen2moe"); the longest match wins. */
static const char *model_recipe(const char *name) {
    const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
    int best = -1;
    size_t best_len = 0;
    for (int i = 0; i < N_FAMILIES; i++) {
        size_t n = strlen(families[i].prefix);
        if (n > best_len && !strncasecmp(base, families[i].prefix, n) &&
            !((base[n] | 0x20) >= 'a' && (base[n] | 0x20) <= 'z')) {
            best = i;
            best_len = n;
        }
    }
    if (best >= 0 && recipe_known(families[best].recipe)) return families[best].recipe;
    if (best >= 0)
        fprintf(stderr, "w8a8: --model_type %s: the %s recipe is not in this build (recipes: ",
                name, families[best].recipe);
    else
        fprintf(stderr, "w8a8: --model_type %s: unknown model family (known: ", name);
    if (best >= 0)
        for (int i = 0; w8_quant_recipes[i]; i++)
            fprintf(stderr, "%s%s", i ? ", " : "", w8_quant_recipes[i]);
    else
        for (int i = 0, k = 0; i < N_FAMILIES; i++)
            if (recipe_known(families[i].recipe))
                fprintf(stderr, "%s%s", k++ ? ", " : "", families[i].shown);
    fprintf(stderr, ")\n");
    return NULL;
}

/* --device: "cpu", or "npu" with an optional ":0" / ":0,1" index list.
 * Returns 0 (cpu), 1 (npu), -1 (message printed). */
static int parse_device(const char *d) {
    if (!strcasecmp(d, "cpu")) return 0;
    if (!strncasecmp(d, "npu", 3) && (!d[3] || d[3] == ':')) {
        const char *p = d + 3;
        if (!*p) return 1;
        for (p++;; p++) {
            if (*p < '0' || *p > '9') break;
            while (*p >= '0' && *p <= '9') p++;
            if (!*p) return 1;
            if (*p != ',') break;
        }
    }
    fprintf(stderr, "w8a8: --device %s is not supported (supported: cpu, npu, npu:N)\n", d);
    return -1;
}

int w8_cmd_quant(int argc, char **argv) {
    w8_quant_opts o;
    w8_quant_opts_init(&o);
    const char *quant_type = NULL, *device = "cpu", *anti = NULL, *config = NULL,
               *config_path = NULL, *log_level = NULL, *model_type = NULL, *level = NULL;
    w8_strlist disable = {0}, device_id = {0}, tags = {0}, tag = {0};
    float part = 0;
    int threads = 0, trust = 0, debug = 0, verbose = 0, quiet = 0;
    const w8_opt opts[] = {
        {"model_path", 0, W8_ARG_STR, &o.model_path, "float source directory (HF safetensors)"},
        {"save_path", 0, W8_ARG_STR, &o.save_path, "output directory (W8A8, FORMAT.md)"},
        {"quant_type", 0, W8_ARG_STR, &quant_type,
         "w8a8 (static activations, calibrated; the default), w8a8_dynamic (per-token activation "
         "scales, no calibration), or w8a8_mix (w8a8, but every mlp.down_proj W8A8_DYNAMIC instead "
         "of float; vllm-ascend only)"},
        {"model_type", 0, W8_ARG_STR, &model_type,
         "model name as msModelSlim writes it (Qwen2.5-7B-Instruct, Llama-3.1-8B, Mistral-7B...), "
         "or a recipe (qwen2: mlp.down_proj float; llama: every linear int8); default (or \"default\"): "
         "from config.json"},
        {"calib_file", 0, W8_ARG_STR, &o.calib_file,
         "calibration text: plain lines or JSON lines with \"text\"/\"inputs_pretokenized\""},
        {"calib_samples", 0, W8_ARG_INT, &o.calib_samples, "calibration samples used (50)"},
        {"calib_seq_len", 0, W8_ARG_INT, &o.calib_seq_len, "tokens per sample at most (256)"},
        {"disable_names", 0, W8_ARG_LIST, &disable,
         "linear layers kept float, comma-separated (model.layers.0.mlp.down_proj,...)"},
        {"disable_level", 0, W8_ARG_STR, &level,
         "keep the N linear layers most sensitive on the calibration data float (L0, L2, ...)"},
        {"sensitivity_report", 0, W8_ARG_STR, &o.sensitivity_report,
         "write the per-layer sensitivity ranking (KL of the logits) to this JSON file"},
        {"anti_outlier", 0, W8_ARG_STR, &anti, "anti-outlier method: smoothquant (default none)"},
        {"alpha", 0, W8_ARG_FLOAT, &o.alpha, "SmoothQuant migration strength (0.5)"},
        {"part_file_size", 0, W8_ARG_FLOAT, &part, "shard the weights at about this many GB"},
        {"device", 0, W8_ARG_STR, &device,
         "cpu (default); npu, npu:0 run on the CPU too (same output; one line says so)"},
        {"device_id", 0, W8_ARG_LIST, &device_id, "NPU indices (msModelSlim); accepted, unused"},
        {"threads", 't', W8_ARG_INT, &threads, "threads (default: all cores)"},
        {"trust_remote_code", 0, W8_ARG_BOOL, &trust,
         "true/false; accepted, no model code is ever executed"},
        {"config", 0, W8_ARG_STR, &config, "msModelSlim YAML config: refused (the recipe is built in)"},
        {"config_path", 0, W8_ARG_STR, &config_path, "same as --config: refused"},
        {"tags", 0, W8_ARG_LIST, &tags, "best-practice scenario tags; accepted, one recipe here"},
        {"tag", 0, W8_ARG_LIST, &tag, "same as --tags"},
        {"debug", 0, W8_ARG_FLAG, &debug, "accepted; no debug context is saved"},
        {"log_level", 0, W8_ARG_STR, &log_level,
         "debug|info (default) show the plan; warning|error|critical hide it"},
        {"verbose", 'v', W8_ARG_FLAG, &verbose, "accepted (the plan is printed by default)"},
        {"quiet", 'q', W8_ARG_FLAG, &quiet, "do not print the plan (errors still are)"},
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
        free(device_id.v);
        free(tags.v);
        free(tag.v);
        return pr > 0 ? 0 : 1;
    }
    int rc = 1;
    char *store = NULL;
    char **names = NULL;
    if (!o.model_path || !o.save_path) {
        fprintf(stderr, "w8a8: quant needs --model_path and --save_path (see --help)\n");
        goto out;
    }
    if (config || config_path) {
        fprintf(stderr, "w8a8: --config %s: msModelSlim YAML configs are not read; the W8A8 recipe "
                "is built in (use --quant_type w8a8 with --model_type, --disable_names, "
                "--anti_outlier)\n", config ? config : config_path);
        goto out;
    }
    /* msModelSlim's default when neither --config nor --quant_type is given */
    if (!quant_type) quant_type = "w8a8";
    if (!strcasecmp(quant_type, "w8a8")) {
        o.quant_type = W8_QUANT_STATIC;
    } else if (!strcasecmp(quant_type, "w8a8_dynamic")) {
        o.quant_type = W8_QUANT_DYNAMIC;
    } else if (!strcasecmp(quant_type, "w8a8_mix")) {
        o.quant_type = W8_QUANT_MIX;
    } else {
        fprintf(stderr, "w8a8: --quant_type %s is not supported (supported: w8a8, w8a8_dynamic, "
                "w8a8_mix)\n", quant_type);
        goto out;
    }
    int npu = parse_device(device);
    if (npu < 0) goto out;
    for (int i = 0; i < device_id.n; i++) {
        char *end;
        long v = strtol(device_id.v[i], &end, 10);
        if (!*device_id.v[i] || *end || v < 0) {
            fprintf(stderr, "w8a8: --device_id: '%s' is not a device index\n", device_id.v[i]);
            goto out;
        }
    }
    if (log_level) {
        static const char *const lv[] = {"debug", "info", "warning", "warn", "error", "critical"};
        int k = -1;
        for (int i = 0; i < 6 && k < 0; i++)
            if (!strcasecmp(log_level, lv[i])) k = i;
        if (k < 0) {
            fprintf(stderr, "w8a8: --log_level %s is not a level (debug, info, warning, error, "
                    "critical)\n", log_level);
            goto out;
        }
        if (k >= 2) quiet = 1;
    }
    /* msModelSlim's "default" adapter: the recipe follows config.json here */
    if (model_type && strcasecmp(model_type, "default") &&
        !(o.model_type = model_recipe(model_type)))
        goto out;
    if (anti && strcasecmp(anti, "smoothquant") && strcasecmp(anti, "none")) {
        fprintf(stderr, "w8a8: --anti_outlier %s is not supported (supported: smoothquant)\n", anti);
        goto out;
    }
    o.smooth = anti && !strcasecmp(anti, "smoothquant");
    if (level && w8_sens_parse_level(level, &o.disable_level) != 0) {
        fprintf(stderr, "w8a8: %s\n", w8_lasterr());
        goto out;
    }
    if (part < 0 || part != part) {
        fprintf(stderr, "w8a8: --part_file_size must be a positive number of GB\n");
        goto out;
    }
    o.part_file_size_gb = part;
    (void)trust;
    (void)debug;
    (void)verbose;
    names = split_names(&disable, &o.n_disable, &store);
    o.disable_names = (const char *const *)names;
    o.log = quiet ? NULL : stderr;
    /* the quantizer is CPU code; an NPU request runs the same code, so the
     * output is byte-for-byte that of --device cpu */
    if (npu)
        fprintf(stderr, "w8a8: --device %s: this build has no NPU backend; quantizing on the CPU "
                "(same output as --device cpu)\n", device);
    w8_args_apply_threads(threads);
    w8_quant_report rep;
    if (w8_quantize(&o, &rep) != 0) {
        fprintf(stderr, "w8a8: %s\n", w8_lasterr());
        goto out;
    }
    if (!quiet)
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
    free(device_id.v);
    free(tags.v);
    free(tag.v);
    return rc;
}

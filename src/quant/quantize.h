/*
 * quantize.h - float Hugging Face model -> msModelSlim W8A8 directory.
 *
 * w8_quantize() runs the whole job (see FORMAT.md, the contract):
 *   1. plan: find the linear layers, apply the recipe (lm_head float; Qwen2
 *      and Qwen3 also keep every mlp.down_proj float; --disable_names), group layers
 *      that read one input (q/k/v, gate/up);
 *   2. calibrate: run the float engine over each sample and record, per
 *      input channel, the min and max of every group's input;
 *   3. optional SmoothQuant (per input channel s = amax_x^a / amax_w^(1-a));
 *   4. write: stream every output tensor into a temporary directory next to
 *      the target (one quantized layer in memory at a time), then the JSON
 *      files, then rename into place.
 * The arithmetic helpers below are the exact formulas of FORMAT.md and are
 * exposed so tests can recompute what the writer stored.
 */
#ifndef W8_QUANTIZE_H
#define W8_QUANTIZE_H

#include <stdint.h>
#include <stdio.h>

#include "../safetensors.h"

/* --quant_type: what the quantized layers become (FORMAT.md). */
typedef enum {
    W8_QUANT_STATIC = 0,  /* static per-tensor activations (calibrated) */
    W8_QUANT_DYNAMIC = 1, /* W8A8_DYNAMIC: per-token activation scales, no calibration */
    W8_QUANT_MIX = 2      /* static W8A8, but every mlp.down_proj W8A8_DYNAMIC (vllm-ascend) */
} w8_quant_type;

typedef struct {
    const char *model_path;   /* float source directory (opened read-only) */
    w8_quant_type quant_type; /* W8_QUANT_STATIC by default */
    const char *save_path;    /* target directory */
    const char *model_type;   /* recipe ("Qwen2-7B", "Qwen3-8B", "llama"...); NULL: from config */
    const char *calib_file;   /* NULL: the built-in set */
    int calib_samples;        /* default 50 */
    int calib_seq_len;        /* default 256 */
    const char *const *disable_names; /* linear layers kept float, exact names */
    int n_disable;
    int smooth;               /* 1: SmoothQuant anti-outlier */
    float alpha;              /* SmoothQuant alpha (0.5) */
    double part_file_size_gb; /* > 0: shard the weights at about this many GB */
    int force;                /* replace a non-empty save_path (after success) */
    FILE *log;                /* notes and the float-layer list; NULL: silent */
    int disable_level;        /* keep the N most sensitive linear layers float (sensitivity.h) */
    const char *sensitivity_report; /* write the sensitivity ranking here as JSON, or NULL */
} w8_quant_opts;

typedef struct {
    int n_quant, n_float;     /* linear layers by kind of output */
    int n_dynamic;            /* ... of n_quant, how many are W8A8_DYNAMIC */
    int n_layer_quantizations; /* times a source weight was read and quantized
                                * (= n_quant for w8a8_dynamic: one pass) */
    int n_tensors;            /* tensors written */
    int n_samples, n_tokens;  /* calibration */
    int n_shards;
    double seconds, calib_seconds, write_seconds;
    double cpu_seconds;       /* user + system CPU time of the process */
    double calib_cpu_seconds; /* ... of which calibration */
    size_t peak_rss;          /* VmHWM: includes the source's mmap'ed pages */
    size_t bytes;             /* bytes of weights written */
} w8_quant_report;

/* The recipe names w8_quant_opts.model_type selects (NULL-terminated); any
 * other non-empty model_type gets the default recipe.  Front ends map the
 * documentation's model names (Qwen2.5-7B-Instruct, Llama-3.1-8B...) onto
 * these and refuse a family whose recipe is not listed here. */
extern const char *const w8_quant_recipes[];

void w8_quant_opts_init(w8_quant_opts *o);
/* 0 on success (save_path complete), -1 with w8_lasterr() and nothing at save_path
 * (an existing directory replaced with --force is kept when the run fails). */
int w8_quantize(const w8_quant_opts *o, w8_quant_report *rep);

/* ---- the FORMAT.md arithmetic: w8_quant_act_params, w8_quant_linear (quant/arith.h) ---- */
#include "arith.h"

/* ---- calibration text: w8_calib_set, w8_calib_builtin/load/free (calib_data.h) ---- */
#include "calib_data.h"

#endif

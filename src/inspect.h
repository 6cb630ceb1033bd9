/*
 * inspect.h - describe a model directory and validate a W8A8 one against
 * every rule of FORMAT.md.  The `inspect` command and the tests share it.
 */
#ifndef W8_INSPECT_H
#define W8_INSPECT_H

#include <stddef.h>
#include <stdio.h>

/* The engines that load these directories; FORMAT.md's "What the real
 * consumers require" gives each its rules. */
enum { W8_CONS_VLLM = 0, W8_CONS_VLLM_310P, W8_CONS_MINDIE, W8_N_CONSUMERS };
extern const char *const w8_consumer_names[W8_N_CONSUMERS]; /* "vllm-ascend A2/A3", ... */

typedef struct {
    int quantized;              /* a quant_model_description*.json was found */
    int dtype;                  /* w8_dtype of the model (float tensors / torch_dtype) */
    char arch[64];              /* config architectures[0], "" if unknown */
    int n_lin_quant;            /* linear layers (.weight "W8A8" or "W8A8_DYNAMIC") */
    int n_lin_dynamic;          /* of those, "W8A8_DYNAMIC" */
    int n_lin_float;            /* linear layers kept float (*_proj / lm_head) */
    double in_scale_min, in_scale_max;
    double deq_min, deq_max;
    long n_tensors;
    size_t bytes;               /* tensor data bytes */
    char **violations;          /* one line each: FORMAT.md is broken */
    int n_violations;
    char **variants;            /* accepted deviations other tools write */
    int n_variants;
    /* per consumer, the rules it fails ("rule: detail"); none = it loads */
    char **cons_fail[W8_N_CONSUMERS];
    int n_cons_fail[W8_N_CONSUMERS];
} w8_inspect_info;

/* Inspect DIR.  Returns -1 (w8_lasterr) when it cannot be read as a model at
 * all (no config.json, no weights, unreadable safetensors); otherwise 0 with
 * every FORMAT.md violation listed in info (none for a valid directory), the
 * variants it accepted, and for a quantized directory each consumer's
 * failing rules.  Only violations make the command exit non-zero: a consumer
 * rule that fails says where the directory cannot go, not that it is
 * broken (our runtime loads it). */
int w8_inspect_dir(const char *dir, w8_inspect_info *info);
void w8_inspect_free(w8_inspect_info *info);
/* The human summary (and the violations) as the command prints it. */
void w8_inspect_print(FILE *f, const char *dir, const w8_inspect_info *info);

#endif

/*
 * inspect.h - describe a model directory and validate a W8A8 one against
 * every rule of FORMAT.md.  The `inspect` command and the tests share it.
 */
#ifndef W8_INSPECT_H
#define W8_INSPECT_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    int quantized;              /* a quant_model_description*.json was found */
    int dtype;                  /* w8_dtype of the model (float tensors / torch_dtype) */
    char arch[64];              /* config architectures[0], "" if unknown */
    int n_lin_quant;            /* linear layers (.weight "W8A8") */
    int n_lin_float;            /* linear layers kept float (*_proj / lm_head) */
    int n_lin_dynamic;          /* ... of n_lin_quant, "W8A8_DYNAMIC" (per-token) */
    int mixed;                  /* static W8A8 and W8A8_DYNAMIC layers in one directory */
    double wscale_min, wscale_max; /* W8A8_DYNAMIC weight_scale range */
    double in_scale_min, in_scale_max;
    double deq_min, deq_max;
    long n_tensors;
    size_t bytes;               /* tensor data bytes */
    char **violations;          /* one line each */
    int n_violations;
} w8_inspect_info;

/* Inspect DIR.  Returns -1 (w8_lasterr) when it cannot be read as a model at
 * all (no config.json, no weights, unreadable safetensors); otherwise 0 with
 * every FORMAT.md violation listed in info (none for a valid directory). */
int w8_inspect_dir(const char *dir, w8_inspect_info *info);
void w8_inspect_free(w8_inspect_info *info);
/* The human summary (and the violations) as the command prints it. */
void w8_inspect_print(FILE *f, const char *dir, const w8_inspect_info *info);

#endif

/*
 * qlayer.h - the one reader of a quantized linear layer's tensors.
 *
 * FORMAT.md's tables, with the variants other msModelSlim versions write,
 * are checked here and only here: the runtime (model.c) loads what this
 * accepts and `inspect` reports what it finds, so the two cannot disagree.
 *
 *   W8A8          weight I8 [n,k]; input_scale, input_offset [1] in the
 *                 model's dtype (F16 / BF16; F32 is a variant); quant_bias
 *                 I32 [n]; deq_scale I64 [n] (fp16 model: f32 bits, upper
 *                 32 bits zero) or F32 [n] (bf16 model); optional
 *                 weight_scale / weight_offset [n] or [n,1] (older saver,
 *                 a variant); optional float bias [n] ("FLOAT").
 *   W8A8_DYNAMIC  weight I8 [n,k]; weight_scale F32 [n,1]; weight_offset
 *                 F32 [n,1], all zeros; optional float bias [n] ("FLOAT");
 *                 no input_scale, input_offset, quant_bias or deq_scale.
 * Scales must be positive and finite; input_offset an integer in
 * [-128, 127]; deq_scale / input_scale a plausible weight scale (and equal
 * to weight_scale where the layer carries one).
 */
#ifndef W8_QLAYER_H
#define W8_QLAYER_H

#include <jansson.h>
#include <stdint.h>

#include "config.h"
#include "safetensors.h"

/* Variants found in a layer (bit flags; none is a violation). */
enum {
    W8_QV_F32_INPUT = 1,      /* input_scale / input_offset stored as F32 */
    W8_QV_WEIGHT_SCALE = 2,   /* W8A8 layer with weight_scale / weight_offset */
    W8_QV_SCALE_DTYPE = 4,    /* W8A8_DYNAMIC weight_scale/offset in F16/BF16, or [n] */
};

typedef struct {
    w8_qtype type;        /* "<prefix>.weight" in the description */
    int64_t n, k;         /* the weight's shape */
    const w8_tensor *weight, *bias;
    /* W8A8 */
    const w8_tensor *input_scale, *input_offset, *quant_bias, *deq_scale;
    float in_scale;       /* valid when the layer has no violation */
    int in_offset;
    /* W8A8_DYNAMIC (and W8A8's optional older-saver copies) */
    const w8_tensor *weight_scale, *weight_offset;
    double deq_min, deq_max; /* range of the valid deq_scale values (W8A8) */
    unsigned variants;    /* W8_QV_* */
    char **violations;    /* one line each, naming the tensor */
    int n_violations;
} w8_qlayer;

/* Read the layer "<prefix>" (e.g. model.layers.0.self_attn.q_proj) whose
 * .weight the description marks W8A8 or W8A8_DYNAMIC.  desc is the
 * description object (values of the layer's tensors are checked against it;
 * NULL skips that); n, k the expected shape (-1: take the weight's);
 * model_dtype the model's float dtype (W8_F16 picks table 1, W8_BF16 table
 * 2; for F32, which FORMAT.md does not define, the layer's deq_scale dtype).
 * Returns 0 when the layer has no violation; otherwise -1 with every
 * violation in l and the first as w8_lasterr ("FILE: ...").  Free with
 * w8_qlayer_free either way. */
int w8_qlayer_read(const w8_st *st, const json_t *desc, const char *prefix, int64_t n,
                   int64_t k, int model_dtype, w8_qlayer *l);
void w8_qlayer_free(w8_qlayer *l);

/* deq_scale[i] of a checked W8A8 layer as f32 (I64: the low 32 bits are the
 * f32's bits).  memcpy: mapped data need not be aligned. */
float w8_qlayer_deq(const w8_qlayer *l, size_t i);

#endif

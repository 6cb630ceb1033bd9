/*
 * quant_impl.h - the quantizer's state, shared by its parts (internal).
 *
 * quantize.c (the driver) fills a qstate in this order: plan.c plans the
 * linear layers and groups, calibrates, ranks sensitivity and derives the
 * activation parameters; writer.c then streams the output directory from
 * it.  plan.c and writer.c only share this state, never call each other.
 */
#ifndef W8_QUANT_IMPL_H
#define W8_QUANT_IMPL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "../config.h"
#include "../safetensors.h"
#include "../util.h"
#include "quantize.h"

/* the linear layers of a decoder layer, and lm_head */
enum { K_Q, K_K, K_V, K_O, K_GATE, K_UP, K_DOWN, K_LMHEAD };
#define GROUPS_PER_LAYER 4

typedef struct {
    char name[160];         /* "model.layers.0.self_attn.q_proj" */
    int layer, kind, group; /* group -1: lm_head */
    int quant;              /* 1: written as W8A8 (or W8A8_DYNAMIC when dyn) */
    int dyn;                /* 1: W8A8_DYNAMIC (per-token activations, no input_scale) */
    const char *why;        /* reason it stays float */
    const w8_tensor *w, *b; /* source weight [n, k] and bias [n] (or NULL) */
    int n, k;
} qlin;

typedef struct {
    int k;
    int n_members, members[3]; /* indices into lin[] */
    int n_quant;
    int n_static;              /* members that are static W8A8 (need input_scale) */
    float *cmin, *cmax;        /* [k] observed per-channel range */
    float *smooth;             /* [k] SmoothQuant divisor or NULL */
    const w8_tensor *norm;     /* RMSNorm before the group (smoothing), or NULL */
    float in_scale;
    int in_offset;
} qgroup;

typedef struct {
    const w8_quant_opts *o;
    w8_config cfg;
    w8_st *st;
    w8_dtype src_dt; /* dtype of the linear weights */
    w8_dtype out_dt; /* table: W8_F16 (table 1) or W8_BF16 (table 2) */
    int convert;     /* F32 source: float tensors written as bf16 */
    qlin *lin;
    int n_lin;
    qgroup *grp;
    int n_grp;
    /* calibration observer state */
    int32_t **qbias; /* [n_lin] quant_bias of each quantized layer, once computed */
    float **deq;     /* [n_lin] deq_scale (f32) */
    int obs_bad;     /* 1: non-finite activation, 2: shape mismatch */
    int n_computed;  /* compute_layer calls (the report's n_layer_quantizations) */
    int obs_layer, obs_point;
} qstate;

/* A note on the log (one line), or nothing when the run is silent. */
static inline void note(const qstate *s, const char *fmt, ...) W8_PRINTF(2, 3);
static inline void note(const qstate *s, const char *fmt, ...) {
    if (!s->o->log) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(s->o->log, fmt, ap);
    va_end(ap);
    fputc('\n', s->o->log);
}

/* First non-finite element of a float tensor (NaN or Inf, by its bits), or -1. */
long w8_qs_find_nonfinite(const w8_tensor *t);
/* Drop the resident pages of a finished source tensor (see quant_impl.c). */
void w8_qs_release_pages(const w8_tensor *t);
/* Free everything a qstate owns, the source mapping included. */
void w8_qs_free(qstate *s);

#endif

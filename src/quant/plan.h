/*
 * plan.h - the quantizer's plan, calibration and activation parameters
 * (internal; quantize.c calls these in this order).
 */
#ifndef W8_QUANT_PLAN_H
#define W8_QUANT_PLAN_H

#include "quant_impl.h"

/* Find the linear layers, apply the recipe, group the layers that read one
 * input, and refuse a source that cannot be quantized. */
int w8_qplan(qstate *s);
/* The plan's summary and the float layers by reason, on the log. */
void w8_qplan_print(const qstate *s);
/* 1 when the float model must run (static W8A8 layers or SmoothQuant). */
int w8_qplan_needs_calibration(const qstate *s);
/* Run the calibration set and record every group's per-channel range. */
int w8_qplan_calibrate(qstate *s, w8_quant_report *rep);
/* --disable_level / --sensitivity_report: rank the W8A8 layers, keep the worst float. */
int w8_qplan_sensitivity(qstate *s);
/* Per group: SmoothQuant vector (optional), then input_scale / input_offset. */
int w8_qplan_params(qstate *s);

#endif

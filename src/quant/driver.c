/*
 * driver.c - float Hugging Face model -> msModelSlim W8A8 directory: w8_quantize.
 *
 * The job in four phases (FORMAT.md is the contract for the output):
 *
 *   plan       find every linear layer (q/k/v/o, gate/up/down, lm_head), check
 *              dtypes and shapes, apply the recipe (which layers stay float and
 *              why) and group the layers that read one input:
 *                  group 4*L+0: q/k/v of layer L    group 4*L+2: gate/up
 *                  group 4*L+1: o_proj              group 4*L+3: down_proj
 *   calibrate  run the float engine (w8_forward) over every sample; the
 *              observer keeps, per group and per input channel, the running
 *              min and max.  Per channel (not per tensor) so that SmoothQuant
 *              can derive the smoothed tensor's range exactly: x/s has channel
 *              range [min_c/s_c, max_c/s_c].
 *   params     per group: (optional) smoothing vector, then input_scale and
 *              input_offset rounded to their storage dtype.  All members of a
 *              group get the same pair, as MindIE requires.
 *   write      the output tensor list is fixed first (names, dtypes, shapes,
 *              shard), then each shard is streamed: one quantized layer is
 *              computed at a time (its five tensors are adjacent), float
 *              tensors are copied straight from the source mapping.  Then
 *              quant_model_description.json, the index (sharded), config.json
 *              with "quantize": "w8a8" and the tokenizer files.
 *
 * plan, calibrate and params are plan.c's; write is writer.c's; this file
 * checks the options and the paths and calls them in order.
 *
 * Safety: everything is written into SAVE.w8a8-tmp-PID next to the target
 * and renamed at the very end (dirtx.c), so a failed or killed run never
 * leaves a partial --save_path; the next run removes temp directories whose
 * process is gone.  With --force an existing target is moved aside only
 * after success.
 * Output is deterministic: per-row work runs in parallel but every value
 * depends only on its own row; min/max do not depend on order.
 */
#include "quantize.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../config.h"
#include "../dirtx.h"
#include "../util.h"
#include "plan.h"
#include "quant_impl.h"
#include "writer.h"

/* -------------------------------------------------------------- safety */

/* Absolute, resolved form of a path that may not exist yet (its parent must). */
static char *resolve(const char *p) {
    char *r = realpath(p, NULL);
    if (r) return r;
    const char *slash = strrchr(p, '/');
    char *parent = w8_path_parent(p);
    char *rp = realpath(parent, NULL);
    char *out = rp ? w8_path_join(rp, slash ? slash + 1 : p) : NULL;
    free(rp);
    free(parent);
    return out;
}

static int path_within(const char *a, const char *b) { /* a == b or a inside b */
    size_t n = strlen(b);
    return !strncmp(a, b, n) && (a[n] == 0 || a[n] == '/' || (n == 1 && b[0] == '/'));
}

/* The quantizer's own checks before the directory transaction's: the source
 * must open, and the target must be neither the source nor inside it (nor
 * the other way round). */
static int check_target(const w8_quant_opts *o, const char *save) {
    char *rs = resolve(save), *rm = realpath(o->model_path, NULL);
    int rc = 0;
    if (!rm) rc = w8_seterr("%s: cannot open model directory: %s", o->model_path, strerror(errno));
    else if (!rs)
        rc = w8_seterr("%s: the parent directory of --save_path does not exist", save);
    else if (path_within(rs, rm) || path_within(rm, rs))
        rc = w8_seterr("--save_path %s and --model_path %s overlap; choose a separate directory",
                       save, o->model_path);
    free(rs);
    free(rm);
    return rc;
}

/* ------------------------------------------------------------------ main */

static double cpu_now(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

void w8_quant_opts_init(w8_quant_opts *o) {
    memset(o, 0, sizeof *o);
    o->calib_samples = 50;
    o->calib_seq_len = 256;
    o->alpha = 0.5f;
}

int w8_quantize(const w8_quant_opts *o, w8_quant_report *rep) {
    memset(rep, 0, sizeof *rep);
    double t0 = w8_now();
    if (!o->model_path || !o->save_path) return w8_seterr("--model_path and --save_path are required");
    if (o->calib_samples < 1) return w8_seterr("--calib_samples must be at least 1");
    if (o->calib_seq_len < 1) return w8_seterr("--calib_seq_len must be at least 1");
    if (o->smooth && !(o->alpha >= 0 && o->alpha <= 1))
        return w8_seterr("--alpha must be in [0, 1]");
    if (o->part_file_size_gb < 0) return w8_seterr("--part_file_size must be positive");
    qstate s;
    memset(&s, 0, sizeof s);
    s.o = o;
    char *save = w8_path_strip(o->save_path);
    w8_dirtx tx = {0};
    int rc = -1;
    if (!w8_is_dir(o->model_path)) {
        w8_seterr("%s: model directory not found", o->model_path);
        goto out;
    }
    if (w8_dirtx_check_len(save) != 0 || check_target(o, save) != 0) goto out;
    if (w8_dirtx_begin(&tx, save, o->force, "quant", o->log) != 0) goto out;
    if (w8_config_load(o->model_path, &s.cfg) != 0) goto out;
    {
        w8_qdesc *qd = NULL;
        if (w8_qdesc_load(o->model_path, &qd) != 0) goto out;
        if (qd || s.cfg.quantize_w8a8) {
            w8_qdesc_free(qd);
            w8_seterr("%s is already a W8A8 model; quantize its float source instead",
                      o->model_path);
            goto out;
        }
    }
    if (!(s.st = w8_st_open_dir(o->model_path))) goto out;
    if (w8_qplan(&s) != 0) goto out;
    if (s.convert)
        note(&s, "note: the source is F32; the output uses the bf16 table (float tensors "
             "converted to bf16)");
    w8_qplan_print(&s);

    double tc = w8_now(), cc = cpu_now();
    if (w8_qplan_needs_calibration(&s) && w8_qplan_calibrate(&s, rep) != 0) goto out;
    rep->calib_seconds = w8_now() - tc;
    rep->calib_cpu_seconds = cpu_now() - cc;
    if ((o->disable_level > 0 || o->sensitivity_report) && w8_qplan_sensitivity(&s) != 0) goto out;
    if (w8_qplan_params(&s) != 0) goto out;

    if (w8_qwrite(&s, tx.tmp, rep) != 0) goto out;
    if (w8_dirtx_commit(&tx) != 0) goto out;
    for (int j = 0; j < s.n_lin; j++) {
        if (s.lin[j].quant) rep->n_quant++;
        else rep->n_float++;
        rep->n_dynamic += s.lin[j].dyn;
    }
    rep->n_layer_quantizations = s.n_computed;
    rc = 0;
out:
    w8_dirtx_abort(&tx);
    w8_qs_free(&s);
    free(save);
    rep->seconds = w8_now() - t0;
    rep->peak_rss = w8_peak_rss_bytes();
    rep->cpu_seconds = cpu_now();
    return rc;
}

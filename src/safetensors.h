/*
 * safetensors.h - zero-copy reader (mmap) and streaming writer for the
 * safetensors format, single file or sharded (*.safetensors.index.json).
 *
 * File layout: u64 little-endian header length N, N bytes of JSON header
 * {"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]},
 *  "__metadata__": {str: str}}, then the data area.  Offsets are relative to
 * the data area.  The reader validates everything before any tensor is used:
 * header length against file size (and W8_ST_MAX_HEADER), JSON, dtype names,
 * shapes, bytes == prod(shape) * dtype size without overflow, every range
 * inside the data area, no two ranges overlapping.
 */
#ifndef W8_SAFETENSORS_H
#define W8_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

#define W8_ST_MAX_HEADER ((size_t)100 << 20) /* 100 MB, as HF's reader caps it */
#define W8_ST_MAX_DIMS 8

typedef struct {
    const char *name;  /* owned by the w8_st */
    w8_dtype dtype;
    int ndim;
    int64_t shape[W8_ST_MAX_DIMS];
    size_t numel;
    size_t nbytes;
    const void *data;  /* points into the read-only mapping */
    const char *file;  /* file the tensor lives in (for messages) */
} w8_tensor;

typedef struct w8_st w8_st;

/* Open one .safetensors file, or a *.safetensors.index.json (all shards). */
w8_st *w8_st_open(const char *path);
/* Open the weights of a model directory: the first that exists of
 * quant_model_weight_w8a8.safetensors.index.json, quant_model_weight_w8a8.safetensors,
 * model.safetensors.index.json, model.safetensors; else the directory's one
 * *.safetensors.index.json, else all its *.safetensors files as one set
 * (other tools' names, e.g. quant_model_weights.safetensors). */
w8_st *w8_st_open_dir(const char *dir);
/* The file or index name w8_st_open_dir opened (the first file when it
 * opened several); NULL for a set opened otherwise. */
const char *w8_st_source(const w8_st *st);
/* Parse an in-memory file image (for tests and fuzzing; buffer must outlive the w8_st). */
w8_st *w8_st_from_memory(const void *buf, size_t len, const char *label);
void w8_st_close(w8_st *st);

size_t w8_st_count(const w8_st *st);
const w8_tensor *w8_st_at(const w8_st *st, size_t i); /* in file order of data offsets */
const w8_tensor *w8_st_find(const w8_st *st, const char *name); /* NULL if absent */
/* Find and check: error "FILE: tensor 'NAME' is missing" / "... has dtype X, expected Y"
 * / "... has shape [..], expected [..]".  dtype < 0 or ndim < 0 skips that check. */
const w8_tensor *w8_st_need(const w8_st *st, const char *name, int dtype, int ndim,
                            const int64_t *shape);
/* The __metadata__ value for key, or NULL. */
const char *w8_st_meta(const w8_st *st, const char *key);
/* Path (directory or file) this set was opened from. */
const char *w8_st_path(const w8_st *st);

/* Element i of a float tensor (F32/F16/BF16) as f32. */
float w8_tensor_get_f32(const w8_tensor *t, size_t i);
/* Copy/convert a whole float tensor (F32/F16/BF16) to f32; dst has numel floats. */
void w8_tensor_to_f32(const w8_tensor *t, float *dst);

/* ---- writer ----
 * Streaming: declare every tensor first (name, dtype, shape), then
 * w8_stw_begin() writes the header (8-byte aligned, padded with spaces, keys
 * in declaration order), then w8_stw_write() each tensor's bytes in
 * declaration order, then w8_stw_finish() checks that all were written,
 * fsyncs and closes.  Memory stays at one tensor at a time.  Any failure
 * (e.g. ENOSPC) returns -1 with the file named; the caller removes the file. */
typedef struct w8_stw w8_stw;
w8_stw *w8_stw_create(const char *path);
int w8_stw_declare(w8_stw *w, const char *name, w8_dtype dtype, int ndim, const int64_t *shape);
int w8_stw_set_meta(w8_stw *w, const char *key, const char *value);
int w8_stw_begin(w8_stw *w);
int w8_stw_write(w8_stw *w, const char *name, const void *data, size_t nbytes);
/* Stream one tensor in pieces: consecutive calls with the same name append
 * until the declared size is reached (then the next tensor is due).  Lets a
 * writer keep a bounded buffer for tensors of any size. */
int w8_stw_write_part(w8_stw *w, const char *name, const void *data, size_t nbytes);
int w8_stw_finish(w8_stw *w); /* also frees w */
void w8_stw_abort(w8_stw *w); /* close and free without finishing (file left for caller) */
/* Total bytes the file will have once finished (valid after all declares). */
size_t w8_stw_file_size(const w8_stw *w);

#endif

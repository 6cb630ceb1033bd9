/*
 * dtype.c - names and sizes of the tensor element types (see dtype.h).
 */
#include <string.h>

#include "dtype.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[W8_DTYPE_COUNT] = {
    [W8_F32] = {"F32", 4}, [W8_F16] = {"F16", 2}, [W8_BF16] = {"BF16", 2}, [W8_I8] = {"I8", 1},
    [W8_U8] = {"U8", 1},   [W8_I32] = {"I32", 4}, [W8_I64] = {"I64", 8},
};

size_t w8_dtype_size(w8_dtype t) { return (unsigned)t < W8_DTYPE_COUNT ? dtypes[t].size : 0; }

const char *w8_dtype_name(w8_dtype t) { return (unsigned)t < W8_DTYPE_COUNT ? dtypes[t].name : "?"; }

int w8_dtype_parse(const char *s, w8_dtype *out) {
    for (int i = 0; i < W8_DTYPE_COUNT; i++)
        if (!strcmp(s, dtypes[i].name)) {
            *out = (w8_dtype)i;
            return 0;
        }
    return -1;
}

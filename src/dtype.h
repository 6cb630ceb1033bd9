/*
 * dtype.h - the element types of tensors, as safetensors names them.  Its
 * own header so that the kernels (which take matrices of several types) and
 * the safetensors reader/writer share it without the kernels depending on
 * the file format.
 */
#ifndef W8_DTYPE_H
#define W8_DTYPE_H

#include <stddef.h>

typedef enum {
    W8_F32 = 0,
    W8_F16,
    W8_BF16,
    W8_I8,
    W8_U8,
    W8_I32,
    W8_I64,
    W8_DTYPE_COUNT
} w8_dtype;

size_t w8_dtype_size(w8_dtype t);                /* bytes per element; 0 for an invalid t */
const char *w8_dtype_name(w8_dtype t);           /* "F32", "BF16", ...; "?" for an invalid t */
int w8_dtype_parse(const char *s, w8_dtype *out); /* 0 ok, -1 unknown */

#endif

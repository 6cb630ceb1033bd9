/*
 * ktypes.h - the kernels' data types (ISA, packed int8 and float matrices),
 * on their own so that the per-ISA files and the dispatcher share them
 * without needing each other (kernels.h is the dispatcher's public API).
 */
#ifndef W8_KTYPES_H
#define W8_KTYPES_H

#include <stddef.h>
#include <stdint.h>

#include "../dtype.h"

typedef enum { W8_ISA_SCALAR = 0, W8_ISA_AVX2 = 1, W8_ISA_AVX512 = 2 } w8_isa;

typedef struct {
    int n, k;
    w8_isa isa;       /* layout packed for */
    int8_t *packed;   /* kernel-specific layout (owned) */
    int32_t *bias;    /* [n] epilogue bias in the kernel's convention (owned) */
    float *scale;     /* [n] deq_scale (owned) */
    size_t packed_bytes;
} w8_qmat;

typedef struct {
    int n, k;
    w8_dtype dtype;
    const void *w;       /* row-major source (not owned) */
    void *packed;        /* NULL, or the packed copy (owned, w8_fmat_pack) */
    size_t packed_bytes;
} w8_fmat;

enum { W8_FP_NB = 64 }; /* channels per packed block */

#endif

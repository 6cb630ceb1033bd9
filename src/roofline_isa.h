/*
 * roofline_isa.h - the per-ISA measuring loops behind roofline.c.  A header
 * of its own so the ISA files need nothing of roofline.c (no cycle).
 */
#ifndef W8_ROOFLINE_ISA_H
#define W8_ROOFLINE_ISA_H

#include <stddef.h>
#include <stdint.h>

/* The per-ISA loops (roofline_avx2.c, roofline_avx512.c): `iters` rounds of
 * W8_ROOF_ACC independent multiply-accumulate instructions; they return a
 * value that depends on every result so nothing is optimized away. */
#define W8_ROOF_ACC 12
uint64_t w8_roof_dot_avx512(long iters); /* 64 MACs per instruction */
uint64_t w8_roof_dot_avx2(long iters);   /* 16 MACs per instruction */
/* Sum of the 64-bit words of p[0, bytes) (bytes a multiple of 256, p 64-aligned). */
uint64_t w8_roof_read_avx512(const void *p, size_t bytes);
uint64_t w8_roof_read_avx2(const void *p, size_t bytes);

#endif

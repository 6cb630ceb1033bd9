/*
 * kcore.h - the small shared state and sizes that the dispatcher
 * (kernels.c) and the per-ISA files both need (kcore.c): whether the BF16
 * dot product runs natively, and the packed float layout's block size.
 * It depends on cpu.c only, so no ISA file needs kernels.c.
 */
#ifndef W8_KCORE_H
#define W8_KCORE_H

#include <stddef.h>

#include "ktypes.h"

/* The AVX-512 kernels use the BF16 dot product when the CPU has it (on by
 * default); off runs their emulation of it (tests).  -1: the CPU lacks it. */
int w8_isa_use_bf16(int on);
/* 1 when the BF16 dot product runs as the instruction (CPU has it, not off). */
int w8_kern_bf16_native(void);
/* One block of the packed float layout: W8_FP_NB channels x all k-steps. */
size_t w8_fmat_block_bytes(const w8_fmat *m);

#endif

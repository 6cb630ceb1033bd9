/*
 * cpu.h - what this CPU can run, detected once (cpu.c).
 */
#ifndef W8_CPU_H
#define W8_CPU_H

#include "ktypes.h"

/* What this CPU supports (AVX512 means F+BW+VL+DQ+VNNI), capped by W8A8_CPU. */
w8_isa w8_isa_detect(void);
const char *w8_isa_name(w8_isa isa); /* "scalar", "avx2", "avx512" */
/* What the hardware (and OS) supports, ignoring W8A8_CPU. */
w8_isa w8_isa_hw(void);
/* The CPU has AVX512_BF16. */
int w8_isa_hw_bf16(void);

#endif

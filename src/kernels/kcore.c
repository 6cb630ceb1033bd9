/*
 * kcore.c - see kcore.h.
 */
#include "kcore.h"

#include "../util.h"
#include "cpu.h"
#include "kern_impl.h"

static int g_no_bf16; /* tests: emulate the BF16 dot product (atomic: read by every GEMM thread) */

int w8_kern_bf16_native(void) {
    return !__atomic_load_n(&g_no_bf16, __ATOMIC_RELAXED) && w8_isa_hw_bf16();
}

int w8_isa_use_bf16(int on) {
    if (on && !w8_isa_hw_bf16()) return w8_seterr("kernels: this CPU has no AVX512_BF16");
    __atomic_store_n(&g_no_bf16, !on, __ATOMIC_RELAXED);
    return 0;
}

/* One block of the packed layout (kernels.h): 64 channels x all k-steps. */
size_t w8_fmat_block_bytes(const w8_fmat *m) {
    return w8_fp_steps(m) * w8_fp_step_bytes(m->dtype);
}


/*
 * cpu.c - which kernel ISA this machine can run, detected once from CPUID.
 *
 * AVX-512 here means F+BW+VL+DQ+VNNI (what kernels_avx512.c is compiled for
 * and may execute); AVX2 means AVX2+FMA+F16C.  Both also need the OS to save
 * the wide registers (XGETBV), or the first instruction would fault.  The
 * environment variable W8A8_CPU=scalar|avx2|avx512 caps the choice, so the
 * lower paths can be run on a big machine.
 */
#include <cpuid.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static w8_isa detect_hw(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return W8_ISA_SCALAR;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return W8_ISA_SCALAR;
    uint64_t xcr0 = xgetbv0();
    int os_ymm = (xcr0 & 0x6) == 0x6;     /* XMM + YMM state */
    int os_zmm = (xcr0 & 0xe6) == 0xe6;   /* + opmask, ZMM_Hi256, Hi16_ZMM */
    if (!os_ymm) return W8_ISA_SCALAR;
    if (__get_cpuid_max(0, NULL) < 7) return W8_ISA_SCALAR;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1;
    int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    int vnni = (c >> 11) & 1;
    if (!(avx2 && fma && f16c)) return W8_ISA_SCALAR;
    if (os_zmm && f && dq && bw && vl && vnni) return W8_ISA_AVX512;
    return W8_ISA_AVX2;
}

/* AVX512_BF16: CPUID leaf 7 subleaf 1, EAX bit 5 (only with AVX-512). */
static int detect_bf16(void) {
    unsigned a, b, c, d;
    if (detect_hw() != W8_ISA_AVX512 || __get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    if (a < 1) return 0;
    __cpuid_count(7, 1, a, b, c, d);
    return (a >> 5) & 1;
}

/* The hardware answers, found once: pthread_once makes the first calls from
 * several threads (OpenMP workers, server threads) wait for one detection
 * instead of racing on plain variables. */
static int g_bf16;
static w8_isa g_hw;
static pthread_once_t g_detect_once = PTHREAD_ONCE_INIT;

static void detect_once(void) {
    g_hw = detect_hw();
    g_bf16 = detect_bf16();
}

int w8_isa_hw_bf16(void) {
    pthread_once(&g_detect_once, detect_once);
    return g_bf16;
}

w8_isa w8_isa_hw(void) {
    pthread_once(&g_detect_once, detect_once);
    return g_hw;
}

w8_isa w8_isa_detect(void) {
    w8_isa isa = w8_isa_hw();
    const char *cap = getenv("W8A8_CPU");
    if (cap) {
        w8_isa lim = isa;
        if (!strcmp(cap, "scalar")) lim = W8_ISA_SCALAR;
        else if (!strcmp(cap, "avx2")) lim = W8_ISA_AVX2;
        else if (!strcmp(cap, "avx512")) lim = W8_ISA_AVX512;
        if (lim < isa) isa = lim;
    }
    return isa;
}

const char *w8_isa_name(w8_isa isa) {
    switch (isa) {
    case W8_ISA_SCALAR: return "scalar";
    case W8_ISA_AVX2: return "avx2";
    case W8_ISA_AVX512: return "avx512";
    }
    return "unknown";
}

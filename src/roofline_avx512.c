/* roofline_avx512.c - the AVX-512 loops of roofline_isa.h (built with the
 * avx512 flags; only called when cpu.c chose avx512). */
#include <immintrin.h>

#include "roofline_isa.h"

/* The kernel's instruction, tied to its register as kernels_avx512.c does,
 * so each of the 12 accumulators is one dependency chain. */
#define DPBUSD(acc, a, b) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b))

uint64_t w8_roof_dot_avx512(long iters) {
    __m512i a = _mm512_set1_epi32((int)(iters | 1)), b = _mm512_set1_epi32(0x01020304);
    __m512i c0 = a, c1 = b, c2 = a, c3 = b, c4 = a, c5 = b, c6 = a, c7 = b, c8 = a, c9 = b,
            c10 = a, c11 = b;
    for (long i = 0; i < iters; i++) {
        DPBUSD(c0, a, b); DPBUSD(c1, a, b); DPBUSD(c2, a, b); DPBUSD(c3, a, b);
        DPBUSD(c4, a, b); DPBUSD(c5, a, b); DPBUSD(c6, a, b); DPBUSD(c7, a, b);
        DPBUSD(c8, a, b); DPBUSD(c9, a, b); DPBUSD(c10, a, b); DPBUSD(c11, a, b);
    }
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                                 _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7)));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)));
    /* summed as unsigned: the intrinsic's reduction adds signed ints, which
     * overflow here (the accumulators wrap, as intended) */
    uint32_t out[16];
    _mm512_storeu_si512((void *)out, s);
    uint64_t r = 0;
    for (int i = 0; i < 16; i++) r += out[i];
    return r;
}

uint64_t w8_roof_read_avx512(const void *p, size_t bytes) {
    const __m512i *v = p;
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < bytes / 64; i += 4) {
        s0 = _mm512_add_epi64(s0, _mm512_load_si512(v + i));
        s1 = _mm512_add_epi64(s1, _mm512_load_si512(v + i + 1));
        s2 = _mm512_add_epi64(s2, _mm512_load_si512(v + i + 2));
        s3 = _mm512_add_epi64(s3, _mm512_load_si512(v + i + 3));
    }
    s0 = _mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3));
    uint64_t out[8], r = 0;
    _mm512_storeu_si512((void *)out, s0);
    for (int i = 0; i < 8; i++) r += out[i];
    return r;
}

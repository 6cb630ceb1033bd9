/* roofline_avx2.c - the AVX2 loops of roofline_isa.h (built with the avx2
 * flags; only called when cpu.c chose avx2). */
#include <immintrin.h>

#include "roofline_isa.h"

/* kernels_avx2.c's int8 step: vpmaddwd on widened int16, then vpaddd */
#define MADD(acc, a, b) acc = _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))

uint64_t w8_roof_dot_avx2(long iters) {
    __m256i a = _mm256_set1_epi16((short)(iters | 1)), b = _mm256_set1_epi16(3);
    __m256i c0 = a, c1 = b, c2 = a, c3 = b, c4 = a, c5 = b, c6 = a, c7 = b, c8 = a, c9 = b,
            c10 = a, c11 = b;
    for (long i = 0; i < iters; i++) {
        /* keeps the compiler from hoisting the invariant products */
        __asm__("" : "+x"(a));
        MADD(c0, a, b); MADD(c1, a, b); MADD(c2, a, b); MADD(c3, a, b);
        MADD(c4, a, b); MADD(c5, a, b); MADD(c6, a, b); MADD(c7, a, b);
        MADD(c8, a, b); MADD(c9, a, b); MADD(c10, a, b); MADD(c11, a, b);
    }
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                                 _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7)));
    s = _mm256_add_epi32(s, _mm256_add_epi32(_mm256_add_epi32(c8, c9), _mm256_add_epi32(c10, c11)));
    uint32_t out[8];
    _mm256_storeu_si256((__m256i *)out, s);
    uint64_t r = 0;
    for (int i = 0; i < 8; i++) r += out[i];
    return r;
}

uint64_t w8_roof_read_avx2(const void *p, size_t bytes) {
    const __m256i *v = p;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < bytes / 32; i += 4) {
        s0 = _mm256_add_epi64(s0, _mm256_load_si256(v + i));
        s1 = _mm256_add_epi64(s1, _mm256_load_si256(v + i + 1));
        s2 = _mm256_add_epi64(s2, _mm256_load_si256(v + i + 2));
        s3 = _mm256_add_epi64(s3, _mm256_load_si256(v + i + 3));
    }
    s0 = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)out, s0);
    return out[0] + out[1] + out[2] + out[3];
}

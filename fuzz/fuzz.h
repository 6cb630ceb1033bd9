/*
 * fuzz.h - shared by the fuzz targets.
 *
 * Each fuzz_*.c defines LLVMFuzzerTestOneInput (and optionally
 * LLVMFuzzerInitialize).  Built two ways: with clang -fsanitize=fuzzer for
 * real fuzzing (make fuzz, scripts/fuzz.sh), and with gcc + ASan/UBSan linked
 * to fuzz/replay.c, which feeds every file of the seed and regression corpora
 * once (the ordinary test suite does that).
 */
#ifndef W8_FUZZ_H
#define W8_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* ../shared, or $W8A8_SHARED. */
static inline const char *fuzz_shared(void) {
    const char *s = getenv("W8A8_SHARED");
    return s ? s : "../shared";
}

#endif

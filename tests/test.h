/*
 * test.h - the tiny harness every C test uses.
 *
 * Each check prints "ok - what" or "FAIL - what (file:line) detail"; the
 * binary ends with TEST_DONE(), which prints "# N passed, N failed" and exits
 * non-zero on any failure.  tests/run.sh counts the ok/FAIL lines of every
 * test program and prints the suite's summary line.
 */
#ifndef W8_TEST_H
#define W8_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int t_pass, t_fail;

#define CHECK(cond, ...)                                                             \
    do {                                                                             \
        if (cond) {                                                                  \
            t_pass++;                                                                \
            printf("ok - ");                                                         \
            printf(__VA_ARGS__);                                                     \
            printf("\n");                                                            \
        } else {                                                                     \
            t_fail++;                                                                \
            printf("FAIL - ");                                                       \
            printf(__VA_ARGS__);                                                     \
            printf("  (%s:%d: %s)\n", __FILE__, __LINE__, #cond);                    \
        }                                                                            \
        fflush(stdout);                                                              \
    } while (0)

/* Quiet variant for checks inside big loops: counts a failure (and prints it)
 * but prints nothing on success; summarize with CHECK afterwards. */
#define EXPECT(cond, ...)                                                            \
    do {                                                                             \
        if (!(cond)) {                                                               \
            t_fail++;                                                                \
            printf("FAIL - ");                                                       \
            printf(__VA_ARGS__);                                                     \
            printf("  (%s:%d)\n", __FILE__, __LINE__);                               \
        }                                                                            \
    } while (0)

#define TEST_DONE()                                                                  \
    do {                                                                             \
        printf("# %d passed, %d failed\n", t_pass, t_fail);                          \
        return t_fail ? 1 : 0;                                                       \
    } while (0)

/* Path of the shared data directory (../shared from the project root). */
static inline const char *shared_dir(void) {
    const char *s = getenv("W8A8_SHARED");
    return s ? s : "../shared";
}

#endif

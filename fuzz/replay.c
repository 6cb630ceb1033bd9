/*
 * replay.c - a main() for fuzz targets without libFuzzer: runs the target on
 * every file named on the command line (directories are walked one level),
 * so the regression corpus is replayed by the ordinary test suite under
 * AddressSanitizer.  Prints one "ok" line per input directory or file.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../src/util.h"
#include "fuzz.h"

__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return 0;
}

static int run_file(const char *path) {
    size_t len;
    char *buf = w8_read_file(path, (size_t)64 << 20, &len);
    if (!buf) {
        printf("FAIL - cannot read %s: %s\n", path, w8_lasterr());
        return 1;
    }
    /* copy to an exact-size buffer so ASan sees reads past the input */
    uint8_t *exact = w8_xmalloc(len ? len : 1);
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

int main(int argc, char **argv) {
    LLVMFuzzerInitialize(&argc, &argv);
    int failed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) continue; /* optional seed dirs may be absent */
        if (!S_ISDIR(st.st_mode)) {
            failed |= run_file(argv[i]);
            printf("ok - replayed %s\n", argv[i]);
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) continue;
        struct dirent *e;
        int n = 0;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char *p = w8_path_join(argv[i], e->d_name);
            if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
                failed |= run_file(p);
                n++;
            }
            free(p);
        }
        closedir(d);
        printf("ok - replayed %d inputs from %s\n", n, argv[i]);
    }
    return failed;
}

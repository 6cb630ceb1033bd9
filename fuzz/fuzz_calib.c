/*
 * fuzz_calib.c - the calibration file reader of `w8a8 quant --calib_file`
 * (plain text lines or JSON lines with "text" / "inputs_pretokenized").
 */
#include <stdio.h>
#include <unistd.h>

#include "../src/quant/quantize.h"
#include "../src/util.h"
#include "fuzz.h"

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!path[0]) snprintf(path, sizeof path, "/tmp/w8a8-fuzz-calib-%d.txt", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    w8_calib_set s = {0};
    if (w8_calib_load(path, &s) == 0) {
        for (int i = 0; i < s.n; i++)
            if (!s.text[i] || !s.text[i][0]) abort(); /* empty lines are skipped */
        w8_calib_free(&s);
    }
    return 0;
}

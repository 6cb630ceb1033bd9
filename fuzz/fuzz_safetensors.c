/*
 * fuzz_safetensors.c - the safetensors header parser and validator, and the
 * sharded index (*.safetensors.index.json).
 *
 * First byte selects the path: even -> the rest is a safetensors file image
 * (w8_st_from_memory); odd -> the rest is an index.json, written into a
 * private directory beside one small valid shard "a.safetensors" that holds
 * tensor "x" (F32 [2]), then opened with w8_st_open.  Every parsed set
 * also goes through the quantized-layer reader (qlayer.c) as layer "l",
 * W8A8 and W8A8_DYNAMIC.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../src/qlayer.h"
#include "../src/safetensors.h"
#include "../src/util.h"
#include "fuzz.h"

static char dir[64];

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/tmp/w8a8-fuzz-st-%d", (int)getpid());
    w8_mkdir_p(dir);
    static const char hdr[] = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    unsigned char img[8 + sizeof hdr - 1 + 8] = {0};
    uint64_t n = sizeof hdr - 1;
    memcpy(img, &n, 8);
    memcpy(img + 8, hdr, n);
    char *p = w8_path_join(dir, "a.safetensors");
    write_file(p, img, sizeof img);
    free(p);
    return 0;
}

static void touch_all(const w8_st *st) {
    /* read every tensor's first and last element: ranges must be valid */
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < w8_st_count(st); i++) {
        const w8_tensor *t = w8_st_at(st, i);
        if (t->nbytes) {
            sink ^= ((const unsigned char *)t->data)[0];
            sink ^= ((const unsigned char *)t->data)[t->nbytes - 1];
        }
        if (w8_st_find(st, t->name) == NULL) abort();
        if (t->numel && (t->dtype == W8_F32 || t->dtype == W8_F16 || t->dtype == W8_BF16))
            (void)w8_tensor_get_f32(t, t->numel - 1);
    }
    (void)sink;
    static const char *const types[] = {"W8A8", "W8A8_DYNAMIC"};
    for (int i = 0; i < 2; i++) {
        json_t *d = json_object();
        json_object_set_new(d, "l.weight", json_string(types[i]));
        w8_qlayer q;
        (void)w8_qlayer_read(st, d, "l", -1, -1, i ? W8_BF16 : W8_F16, &q);
        w8_qlayer_free(&q);
        json_decref(d);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    w8_st *st = NULL;
    if ((data[0] & 1) == 0) {
        st = w8_st_from_memory(data + 1, size - 1, "fuzz.safetensors");
    } else {
        char *p = w8_path_join(dir, "model.safetensors.index.json");
        write_file(p, data + 1, size - 1);
        st = w8_st_open(p);
        free(p);
    }
    if (st) {
        touch_all(st);
        w8_st_close(st);
    } else if (!w8_lasterr()[0]) {
        abort(); /* a failure must say why */
    }
    return 0;
}

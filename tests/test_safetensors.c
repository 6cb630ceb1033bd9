/*
 * test_safetensors.c - writer -> reader round trips (single file and
 * sharded), every malformed-header case the reader must refuse with a
 * message naming the file and tensor, and the real stories260K files.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/safetensors.h"
#include "../src/util.h"
#include "test.h"

static char tmpdir[64];

static char *tpath(const char *name) { return w8_path_join(tmpdir, name); }

/* ---------------------------------------------------------- round trip */

static const int64_t shapes[W8_DTYPE_COUNT][2] = {{3, 5}, {2, 7}, {4, 3}, {1, 9}, {9, 1}, {2, 2}, {3, 1}};

/* Deterministic bytes for tensor i. */
static void fill(unsigned char *p, size_t n, int i) {
    for (size_t k = 0; k < n; k++) p[k] = (unsigned char)(k * 31 + (size_t)i * 7 + 1);
}

static int write_all_dtypes(const char *path, int first, int last, int with_meta) {
    w8_stw *w = w8_stw_create(path);
    if (!w) return -1;
    char name[32];
    for (int i = first; i < last; i++) {
        snprintf(name, sizeof name, "t%d.%s", i, w8_dtype_name((w8_dtype)i));
        if (w8_stw_declare(w, name, (w8_dtype)i, 2, shapes[i]) != 0) goto fail;
    }
    if (with_meta && w8_stw_set_meta(w, "format", "pt") != 0) goto fail;
    if (w8_stw_begin(w) != 0) goto fail;
    for (int i = first; i < last; i++) {
        size_t n = (size_t)(shapes[i][0] * shapes[i][1]) * w8_dtype_size((w8_dtype)i);
        unsigned char *buf = malloc(n);
        fill(buf, n, i);
        snprintf(name, sizeof name, "t%d.%s", i, w8_dtype_name((w8_dtype)i));
        int rc = w8_stw_write(w, name, buf, n);
        free(buf);
        if (rc) goto fail;
    }
    return w8_stw_finish(w);
fail:
    w8_stw_abort(w);
    return -1;
}

static int check_tensors(const w8_st *st, int first, int last) {
    int ok = 1;
    char name[32];
    for (int i = first; i < last; i++) {
        snprintf(name, sizeof name, "t%d.%s", i, w8_dtype_name((w8_dtype)i));
        const w8_tensor *t = w8_st_find(st, name);
        if (!t) return 0;
        size_t n = (size_t)(shapes[i][0] * shapes[i][1]) * w8_dtype_size((w8_dtype)i);
        unsigned char *buf = malloc(n);
        fill(buf, n, i);
        ok &= t->dtype == (w8_dtype)i && t->ndim == 2 && t->shape[0] == shapes[i][0] &&
              t->shape[1] == shapes[i][1] && t->nbytes == n && !memcmp(t->data, buf, n);
        free(buf);
    }
    return ok;
}

static int files_equal(const char *a, const char *b) {
    size_t la, lb;
    char *x = w8_read_file(a, 1 << 20, &la), *y = w8_read_file(b, 1 << 20, &lb);
    int eq = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return eq;
}

static void test_round_trip(void) {
    char *p = tpath("all.safetensors"), *p2 = tpath("all2.safetensors");
    CHECK(write_all_dtypes(p, 0, W8_DTYPE_COUNT, 1) == 0, "writer: all dtypes written (%s)",
          w8_lasterr());
    CHECK(write_all_dtypes(p2, 0, W8_DTYPE_COUNT, 1) == 0, "writer: second copy written");
    CHECK(files_equal(p, p2), "writer: output is deterministic (byte-identical)");
    size_t len;
    unsigned char *raw = (unsigned char *)w8_read_file(p, 1 << 20, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | raw[i];
    CHECK((8 + hlen) % 8 == 0 && raw[8 + hlen - 1] != 0, "writer: header padded to 8 bytes (%llu)",
          (unsigned long long)hlen);
    CHECK(!memcmp(raw + 8, "{\"__metadata__\":{\"format\":\"pt\"},\"t0.F32\":{\"dtype\":\"F32\"", 52),
          "writer: __metadata__ first, keys in declaration order");
    free(raw);

    w8_st *st = w8_st_open(p);
    CHECK(st != NULL, "reader opens the written file (%s)", st ? "" : w8_lasterr());
    if (!st) goto out;
    CHECK(w8_st_count(st) == W8_DTYPE_COUNT, "reader: %zu tensors", w8_st_count(st));
    CHECK(check_tensors(st, 0, W8_DTYPE_COUNT), "reader: names, dtypes, shapes and bytes round trip");
    CHECK(w8_st_meta(st, "format") && !strcmp(w8_st_meta(st, "format"), "pt"), "reader: metadata");
    CHECK(w8_st_meta(st, "nope") == NULL, "reader: absent metadata is NULL");
    CHECK(w8_st_find(st, "nope") == NULL, "reader: absent tensor is NULL");
    int ordered = 1;
    for (size_t i = 1; i < w8_st_count(st); i++)
        ordered &= (const char *)w8_st_at(st, i)->data >= (const char *)w8_st_at(st, i - 1)->data;
    CHECK(ordered && w8_st_at(st, w8_st_count(st)) == NULL, "reader: w8_st_at walks file order");
    w8_st_close(st);
out:
    free(p);
    free(p2);
}

static void test_f32_convert(void) {
    float v[6] = {1.0f, -2.5f, 0.15625f, 65504.0f, -0.0f, 3.0e-5f};
    uint16_t h[6], b[6];
    for (int i = 0; i < 6; i++) h[i] = w8_f32_to_f16(v[i]), b[i] = w8_f32_to_bf16(v[i]);
    char *p = tpath("conv.safetensors");
    w8_stw *w = w8_stw_create(p);
    int64_t sh[1] = {6};
    int rc = w8_stw_declare(w, "f32", W8_F32, 1, sh) | w8_stw_declare(w, "f16", W8_F16, 1, sh) |
             w8_stw_declare(w, "bf16", W8_BF16, 1, sh) | w8_stw_begin(w) |
             w8_stw_write(w, "f32", v, sizeof v) | w8_stw_write(w, "f16", h, sizeof h) |
             w8_stw_write(w, "bf16", b, sizeof b);
    rc |= w8_stw_finish(w);
    CHECK(rc == 0, "writer: f32/f16/bf16 file");
    w8_st *st = w8_st_open(p);
    CHECK(st != NULL, "reader: conversion file opens");
    if (st) {
        float a[6], c[6], d[6];
        w8_tensor_to_f32(w8_st_find(st, "f32"), a);
        w8_tensor_to_f32(w8_st_find(st, "f16"), c);
        w8_tensor_to_f32(w8_st_find(st, "bf16"), d);
        int ok = 1;
        for (int i = 0; i < 6; i++) {
            ok &= a[i] == v[i] && fabsf(c[i] - v[i]) <= fabsf(v[i]) * 1e-3f + 1e-7f &&
                  fabsf(d[i] - v[i]) <= fabsf(v[i]) * 8e-3f;
            ok &= w8_tensor_get_f32(w8_st_find(st, "f16"), (size_t)i) == c[i];
        }
        CHECK(ok, "w8_tensor_to_f32 / get_f32 convert F32, F16, BF16");
        w8_st_close(st);
    }
    free(p);
}

/* ---------------------------------------------------------- writer errors */

static void test_writer_errors(void) {
    char *p = tpath("err.safetensors");
    w8_stw *w = w8_stw_create(p);
    int64_t sh[2] = {2, 3};
    char buf[64] = {0};
    w8_stw_declare(w, "a", W8_F16, 2, sh);
    w8_stw_declare(w, "b", W8_F32, 2, sh);
    CHECK(w8_stw_declare(w, "a", W8_F16, 2, sh) != 0 && strstr(w8_lasterr(), "'a' declared twice"),
          "writer: duplicate declaration refused: %s", w8_lasterr());
    CHECK((w8_stw_file_size(w) - 36) % 8 == 0 && w8_stw_file_size(w) > 36, "writer: file size known early");
    size_t expect = w8_stw_file_size(w);
    CHECK(w8_stw_write(w, "a", buf, 12) != 0 && strstr(w8_lasterr(), "before the header"),
          "writer: write before begin refused");
    w8_stw_begin(w);
    CHECK(w8_stw_write(w, "b", buf, 24) != 0 && strstr(w8_lasterr(), "out of order") &&
              strstr(w8_lasterr(), "err.safetensors"),
          "writer: out-of-order tensor refused: %s", w8_lasterr());
    CHECK(w8_stw_write(w, "a", buf, 10) != 0 && strstr(w8_lasterr(), "10 bytes given, declared size is 12"),
          "writer: wrong byte count refused: %s", w8_lasterr());
    CHECK(w8_stw_write(w, "a", buf, 12) == 0, "writer: right tensor accepted");
    CHECK(w8_stw_finish(w) != 0 && strstr(w8_lasterr(), "'b' was declared but not written"),
          "writer: finish with a missing tensor fails: %s", w8_lasterr());

    w = w8_stw_create(p);
    w8_stw_declare(w, "a", W8_F16, 2, sh);
    w8_stw_declare(w, "b", W8_F32, 2, sh);
    w8_stw_begin(w);
    for (int i = 0; i < 12; i++) buf[i] = (char)i;
    CHECK(w8_stw_write_part(w, "a", buf, 5) == 0 && w8_stw_write_part(w, "a", buf + 5, 7) == 0,
          "writer: tensor written in two parts");
    CHECK(w8_stw_write_part(w, "b", buf, 20) == 0 && w8_stw_write_part(w, "b", buf, 5) != 0 &&
              strstr(w8_lasterr(), "'b': 5 bytes given, declared size is 24 (20 written)"),
          "writer: part past the declared size refused: %s", w8_lasterr());
    CHECK(w8_stw_write(w, "b", buf, 4) != 0, "writer: whole write after a part refused");
    CHECK(w8_stw_write_part(w, "b", buf, 4) == 0, "writer: last part accepted");
    CHECK(w8_stw_finish(w) == 0, "writer: complete file finishes");
    w8_st *st = w8_st_open(p);
    CHECK(st && !memcmp(w8_st_find(st, "a")->data, buf, 12), "reader: parts joined in order");
    w8_st_close(st);
    size_t len = 0;
    free(w8_read_file(p, 1 << 20, &len));
    CHECK(len == expect, "writer: w8_stw_file_size matches the file (%zu)", len);

    w = w8_stw_create("/dev/full");
    if (w) {
        int64_t big[1] = {1 << 16};
        void *zero = calloc(1 << 16, 1);
        w8_stw_declare(w, "z", W8_U8, 1, big);
        int rc = w8_stw_begin(w);
        if (rc == 0) rc = w8_stw_write(w, "z", zero, 1 << 16);
        if (rc == 0) rc = w8_stw_finish(w);
        else w8_stw_abort(w);
        CHECK(rc != 0 && !strcmp(w8_lasterr(), "/dev/full: write failed: No space left on device"),
              "writer: ENOSPC reported: %s", w8_lasterr());
        free(zero);
    }
    CHECK(w8_stw_create("/nonexistent/dir/x.safetensors") == NULL &&
              strstr(w8_lasterr(), "/nonexistent/dir/x.safetensors: cannot create"),
          "writer: uncreatable path: %s", w8_lasterr());
    free(p);
}

/* ---------------------------------------------------------- malformed */

/* An in-memory file: 8-byte length, header, then `data` bytes of zeros. */
static unsigned char *image(const char *header, size_t data, size_t *len) {
    size_t h = strlen(header);
    *len = 8 + h + data;
    unsigned char *b = calloc(1, *len);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    return b;
}

/* Expect the header to be refused with a message containing each of the
 * NUL-separated needles (and "x/m.safetensors"). */
static void bad(const char *what, const char *header, size_t data, const char *n1, const char *n2) {
    size_t len;
    unsigned char *b = image(header, data, &len);
    w8_clearerr();
    w8_st *st = w8_st_from_memory(b, len, "x/m.safetensors");
    const char *e = w8_lasterr();
    CHECK(!st && strstr(e, "x/m.safetensors") && strstr(e, n1) && (!n2 || strstr(e, n2)),
          "refuses %s: %s", what, e);
    w8_st_close(st);
    free(b);
}

static void test_malformed(void) {
    bad("unknown dtype", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
        "tensor 'a'", "'F8_E4M3'");
    bad("shape/bytes mismatch", "{\"a.weight\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,10]}}",
        16, "tensor 'a.weight': shape [2, 3] with dtype F16 needs 12 bytes, data_offsets give 10", NULL);
    bad("offsets out of range", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 16,
        "tensor 'a'", "past end");
    bad("overlapping ranges",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
        16, "overlaps", "'b'");
    bad("begin > end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 16,
        "tensor 'a'", "begin > end");
    bad("shape overflow",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,4]}}", 4,
        "tensor 'a'", "overflow");
    bad("negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1,4],\"data_offsets\":[0,4]}}", 4,
        "tensor 'a'", "non-negative");
    bad("too many dims",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
        "tensor 'a'", "dims");
    bad("malformed JSON", "{\"a\":{\"dtype\":\"F32\",", 4, "malformed JSON", NULL);
    bad("non-object header", "[1,2]", 0, "expected an object", NULL);
    bad("non-object entry", "{\"a\":3}", 0, "tensor 'a'", "object");
    bad("dtype not a string", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
        "tensor 'a'", "dtype");
    bad("missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor 'a'",
        "data_offsets");
    bad("non-string metadata", "{\"__metadata__\":{\"k\":1}}", 0, "__metadata__", "'k'");

    /* truncated file, header length past the file, absurd header length */
    unsigned char small[5] = {1, 0, 0, 0, 0};
    w8_st *st = w8_st_from_memory(small, sizeof small, "x/m.safetensors");
    CHECK(!st && strstr(w8_lasterr(), "x/m.safetensors: file is 5 bytes, too short"),
          "refuses truncated file: %s", w8_lasterr());
    size_t len;
    unsigned char *b = image("{}", 0, &len);
    b[0] = 200;
    st = w8_st_from_memory(b, len, "x/m.safetensors");
    CHECK(!st && strstr(w8_lasterr(), "x/m.safetensors: header length 200 past end of file"),
          "refuses header length > file size: %s", w8_lasterr());
    b[7] = 0x7f;
    st = w8_st_from_memory(b, len, "x/m.safetensors");
    CHECK(!st && strstr(w8_lasterr(), "x/m.safetensors: header length") &&
              strstr(w8_lasterr(), "over the limit"),
          "refuses absurd header length: %s", w8_lasterr());
    free(b);
    b = image("{\"a\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}", 1, &len);
    st = w8_st_from_memory(b, len, "x/m.safetensors");
    CHECK(st && w8_st_find(st, "a")->numel == 1 && w8_st_find(st, "a")->ndim == 0,
          "accepts a scalar (shape [])");
    w8_st_close(st);
    free(b);
    b = image("{\"a\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[0,0]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
              4, &len);
    st = w8_st_from_memory(b, len, "x/m.safetensors");
    CHECK(st && w8_st_count(st) == 2, "accepts an empty tensor sharing an offset");
    w8_st_close(st);
    free(b);

    /* the real file, truncated on disk */
    char src[512];
    snprintf(src, sizeof src, "%s/models/stories260K-hf-f32/model.safetensors", shared_dir());
    char *whole = w8_read_file(src, 64 << 20, &len);
    if (whole) {
        char *p = tpath("trunc.safetensors");
        FILE *f = fopen(p, "wb");
        fwrite(whole, 1, len - 100, f);
        fclose(f);
        st = w8_st_open(p);
        CHECK(!st && strstr(w8_lasterr(), "trunc.safetensors: tensor '") &&
                  strstr(w8_lasterr(), "past end"),
              "refuses a truncated real file: %s", w8_lasterr());
        free(p);
        free(whole);
    }
    st = w8_st_open("/nonexistent/m.safetensors");
    CHECK(!st && strstr(w8_lasterr(), "/nonexistent/m.safetensors: cannot open"),
          "missing file named: %s", w8_lasterr());
}

/* ---------------------------------------------------------- sharded */

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static void test_sharded(void) {
    char *s1 = tpath("model-00001-of-00002.safetensors");
    char *s2 = tpath("model-00002-of-00002.safetensors");
    char *ix = tpath("model.safetensors.index.json");
    CHECK(write_all_dtypes(s1, 0, 3, 0) == 0 && write_all_dtypes(s2, 3, W8_DTYPE_COUNT, 1) == 0,
          "sharded: two shards written");
    write_text(ix, "{\"metadata\":{\"total_size\":123},\"weight_map\":{"
                   "\"t0.F32\":\"model-00001-of-00002.safetensors\","
                   "\"t3.I8\":\"model-00002-of-00002.safetensors\","
                   "\"t1.F16\":\"model-00001-of-00002.safetensors\","
                   "\"t2.BF16\":\"model-00001-of-00002.safetensors\","
                   "\"t4.U8\":\"model-00002-of-00002.safetensors\","
                   "\"t5.I32\":\"model-00002-of-00002.safetensors\","
                   "\"t6.I64\":\"model-00002-of-00002.safetensors\"}}");
    w8_st *st = w8_st_open(ix);
    CHECK(st != NULL, "sharded: index opens (%s)", st ? "" : w8_lasterr());
    if (st) {
        CHECK(w8_st_count(st) == W8_DTYPE_COUNT && check_tensors(st, 0, W8_DTYPE_COUNT),
              "sharded: every tensor from both shards");
        CHECK(strstr(w8_st_find(st, "t5.I32")->file, "model-00002-of-00002"),
              "sharded: tensor knows its shard");
        CHECK(!strcmp(w8_st_at(st, 0)->name, "t0.F32") && !strcmp(w8_st_at(st, 6)->name, "t6.I64"),
              "sharded: file order is shard 1 then shard 2");
        CHECK(w8_st_meta(st, "total_size") && !strcmp(w8_st_meta(st, "total_size"), "123"),
              "sharded: index metadata");
        w8_st_close(st);
    }
    st = w8_st_open_dir(tmpdir);
    CHECK(st && !strcmp(w8_st_path(st), tmpdir) && w8_st_count(st) == W8_DTYPE_COUNT,
          "open_dir prefers model.safetensors.index.json");
    w8_st_close(st);

    write_text(ix, "{\"weight_map\":{\"t0.F32\":\"model-00001-of-00002.safetensors\","
                   "\"t9.X\":\"model-00003-of-00002.safetensors\"}}");
    st = w8_st_open(ix);
    CHECK(!st && strstr(w8_lasterr(), "model-00003-of-00002.safetensors: cannot open"),
          "sharded: missing shard named: %s", w8_lasterr());
    write_text(ix, "{\"weight_map\":{\"t0.F32\":\"model-00002-of-00002.safetensors\"}}");
    st = w8_st_open(ix);
    CHECK(!st && strstr(w8_lasterr(), "model-00002-of-00002.safetensors: tensor 't0.F32'") &&
              strstr(w8_lasterr(), "not in that file"),
          "sharded: tensor absent from its shard: %s", w8_lasterr());
    write_text(ix, "{\"weight_map\":{\"t0.F32\":\"../etc/passwd\"}}");
    st = w8_st_open(ix);
    CHECK(!st && strstr(w8_lasterr(), "bad shard file name"), "sharded: path in weight_map refused: %s",
          w8_lasterr());
    write_text(ix, "{\"weight_map\":[1]}");
    st = w8_st_open(ix);
    CHECK(!st && strstr(w8_lasterr(), "model.safetensors.index.json") && strstr(w8_lasterr(), "weight_map"),
          "sharded: bad index refused: %s", w8_lasterr());
    unlink(s1);
    unlink(s2);
    unlink(ix);
    free(s1);
    free(s2);
    free(ix);
}

/* ---------------------------------------------------------- real files */

static void test_stories(void) {
    char dir[512];
    const char *kinds[3] = {"f32", "bf16", "f16"};
    w8_st *st[3] = {0};
    for (int k = 0; k < 3; k++) {
        snprintf(dir, sizeof dir, "%s/models/stories260K-hf-%s", shared_dir(), kinds[k]);
        st[k] = w8_st_open_dir(dir);
        CHECK(st[k] != NULL, "stories260K-hf-%s opens (%s)", kinds[k], st[k] ? "" : w8_lasterr());
    }
    if (!st[0] || !st[1] || !st[2]) goto out;
    int64_t emb[2] = {512, 64}, q[2] = {64, 64}, k[2] = {32, 64}, up[2] = {172, 64};
    CHECK(w8_st_need(st[0], "model.embed_tokens.weight", W8_F32, 2, emb) != NULL,
          "model.embed_tokens.weight F32 [512, 64]");
    CHECK(w8_st_need(st[1], "model.layers.4.self_attn.q_proj.weight", W8_BF16, 2, q) != NULL &&
              w8_st_need(st[2], "model.layers.0.self_attn.k_proj.weight", W8_F16, 2, k) != NULL &&
              w8_st_need(st[0], "model.layers.2.mlp.up_proj.weight", -1, 2, up) != NULL,
          "q/k/up shapes and dtypes");
    CHECK(w8_st_find(st[0], "lm_head.weight") == NULL, "tied: no lm_head.weight");
    CHECK(w8_st_count(st[0]) == 1 + 5 * 9 + 1, "46 tensors (%zu)", w8_st_count(st[0]));
    /* w8_st_need errors */
    CHECK(!w8_st_need(st[0], "lm_head.weight", -1, -1, NULL) &&
              strstr(w8_lasterr(), "stories260K-hf-f32: tensor 'lm_head.weight' is missing"),
          "need: missing tensor: %s", w8_lasterr());
    CHECK(!w8_st_need(st[1], "model.norm.weight", W8_F16, -1, NULL) &&
              strstr(w8_lasterr(), "model.safetensors: tensor 'model.norm.weight' has dtype BF16, expected F16"),
          "need: wrong dtype: %s", w8_lasterr());
    CHECK(!w8_st_need(st[0], "model.embed_tokens.weight", -1, 2, q) &&
              strstr(w8_lasterr(), "has shape [512, 64], expected [64, 64]"),
          "need: wrong shape: %s", w8_lasterr());
    /* f16/bf16 copies convert close to f32 */
    double md16 = 0, mdbf = 0;
    int names_same = 1;
    for (size_t i = 0; i < w8_st_count(st[0]); i++) {
        const w8_tensor *a = w8_st_at(st[0], i);
        const w8_tensor *b = w8_st_find(st[1], a->name), *c = w8_st_find(st[2], a->name);
        if (!b || !c || b->numel != a->numel || c->numel != a->numel) {
            names_same = 0;
            continue;
        }
        float *fa = malloc(a->numel * 4), *fb = malloc(a->numel * 4), *fc = malloc(a->numel * 4);
        w8_tensor_to_f32(a, fa);
        w8_tensor_to_f32(b, fb);
        w8_tensor_to_f32(c, fc);
        for (size_t j = 0; j < a->numel; j++) {
            double s = fabs(fa[j]) + 1e-3;
            if (fabs(fb[j] - fa[j]) / s > mdbf) mdbf = fabs(fb[j] - fa[j]) / s;
            if (fabs(fc[j] - fa[j]) / s > md16) md16 = fabs(fc[j] - fa[j]) / s;
        }
        free(fa);
        free(fb);
        free(fc);
    }
    CHECK(names_same, "the three copies have the same tensors");
    CHECK(mdbf < 8e-3 && md16 < 1e-3, "bf16/f16 close to f32 (max rel diff %.2g, %.2g)", mdbf, md16);
out:
    for (int i = 0; i < 3; i++) w8_st_close(st[i]);
    st[0] = w8_st_open_dir("/nonexistent-dir");
    CHECK(!st[0] && strstr(w8_lasterr(), "/nonexistent-dir"), "open_dir on a missing dir: %s",
          w8_lasterr());
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/w8st-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_f32_convert();
    test_writer_errors();
    test_malformed();
    test_sharded();
    test_stories();
    w8_rm_rf(tmpdir);
    TEST_DONE();
}

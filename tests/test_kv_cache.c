/*
 * test_kv_cache.c - the paged pool: sizing, reserve/release, exhaustion
 * (an error that allocates nothing), row addressing through block tables.
 */
#include <string.h>

#include "../src/kv_cache.h"
#include "../src/util.h"
#include "test.h"

static w8_config tiny(void) {
    w8_config c;
    memset(&c, 0, sizeof c);
    c.n_layers = 3;
    c.n_kv_heads = 2;
    c.head_dim = 4;
    return c;
}

static void test_sizing(void) {
    w8_config c = tiny();
    size_t block = 3 * 2 * 4 * 2 * 4 * sizeof(float); /* layers * kvh * hd * (K,V) * bs */
    CHECK(w8_kv_blocks_for_bytes(&c, 4, block * 10) == 10, "10 blocks fit in 10 blocks' bytes");
    CHECK(w8_kv_blocks_for_bytes(&c, 4, block * 10 - 1) == 9, "one byte less: 9");
    CHECK(w8_kv_blocks_for_bytes(&c, 4, 0) == 0, "no bytes: no blocks");
    CHECK(w8_kv_new(&c, 4, 0) == NULL && strstr(w8_lasterr(), "kv cache"),
          "a pool of 0 blocks is an error: %s", w8_lasterr());
    CHECK(w8_kv_new(&c, 0, 4) == NULL, "block size 0 is an error");
}

static void test_reserve_release(void) {
    w8_config c = tiny();
    w8_kv *kv = w8_kv_new(&c, 4, 5);
    CHECK(kv && w8_kv_total_blocks(kv) == 5 && w8_kv_free_blocks(kv) == 5, "pool of 5 blocks");
    CHECK(w8_kv_block_size(kv) == 4 && w8_kv_row_stride(kv) == 8, "block size 4, row stride 8");
    w8_seq a, b;
    w8_seq_init(&a);
    w8_seq_init(&b);
    CHECK(w8_kv_seq_reserve(kv, &a, 9) == 0 && a.n_blocks == 3, "9 tokens take 3 blocks");
    CHECK(w8_kv_seq_reserve(kv, &a, 12) == 0 && a.n_blocks == 3, "12 tokens still 3 blocks");
    CHECK(w8_kv_seq_reserve(kv, &b, 9) == -1 && b.n_blocks == 0 && w8_kv_free_blocks(kv) == 2,
          "exhaustion: error, nothing taken (%s)", w8_lasterr());
    CHECK(strstr(w8_lasterr(), "out of blocks") != NULL, "the error says out of blocks");
    CHECK(w8_kv_seq_reserve(kv, &b, 8) == 0 && w8_kv_free_blocks(kv) == 0, "the last 2 blocks");

    /* rows: every (layer, pos, K/V) of both sequences is a distinct place */
    for (int l = 0; l < 3; l++)
        for (int p = 0; p < 8; p++) {
            float *k = w8_kv_k(kv, &a, l, p), *v = w8_kv_v(kv, &a, l, p);
            for (int i = 0; i < 8; i++) {
                k[i] = (float)(1000 * l + 10 * p + i);
                v[i] = -(float)(1000 * l + 10 * p + i);
            }
            k = w8_kv_k(kv, &b, l, p);
            for (int i = 0; i < 8; i++) k[i] = 7;
        }
    int bad = 0;
    for (int l = 0; l < 3; l++)
        for (int p = 0; p < 8; p++) {
            const float *k = w8_kv_k(kv, &a, l, p), *v = w8_kv_v(kv, &a, l, p);
            const float *bk = w8_kv_block_k(kv, l, a.blocks[p / 4]) + (p % 4) * 8;
            bad += k != bk || v != w8_kv_block_v(kv, l, a.blocks[p / 4]) + (p % 4) * 8;
            for (int i = 0; i < 8; i++)
                bad += k[i] != (float)(1000 * l + 10 * p + i) || v[i] != -k[i];
        }
    CHECK(bad == 0, "K/V rows addressed through the block table do not overlap");

    w8_kv_seq_release(kv, &a);
    CHECK(a.n_blocks == 0 && a.len == 0 && a.blocks == NULL && w8_kv_free_blocks(kv) == 3,
          "release returns the blocks and resets the sequence");
    CHECK(w8_kv_seq_reserve(kv, &a, 12) == 0 && w8_kv_free_blocks(kv) == 0,
          "released blocks are reused");
    w8_kv_seq_release(kv, &a);
    w8_kv_seq_release(kv, &b);
    CHECK(w8_kv_free_blocks(kv) == 5, "all blocks back");
    w8_kv_free(kv);
}

int main(void) {
    test_sizing();
    test_reserve_release();
    TEST_DONE();
}

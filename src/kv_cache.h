/*
 * kv_cache.h - paged KV cache.
 *
 * One pool of fixed-size blocks (block_size tokens each) holds K and V of
 * every layer; a sequence owns a block table.  Blocks are handed out on
 * demand and returned when the sequence is freed.  Attention reads K/V
 * through the block table, so sequences of any lengths share one batch.
 */
#ifndef W8_KV_CACHE_H
#define W8_KV_CACHE_H

#include <stddef.h>

#include "config.h"

typedef struct w8_kv w8_kv;

typedef struct {
    int *blocks;   /* block table: physical block of logical block i */
    int n_blocks;  /* blocks held */
    int cap;       /* capacity of blocks[] */
    int len;       /* tokens whose K/V are stored (positions 0..len-1) */
} w8_seq;

/* A pool of n_blocks blocks of block_size tokens for cfg's layers and kv heads. */
w8_kv *w8_kv_new(const w8_config *cfg, int block_size, int n_blocks);
/* Blocks that fit in `bytes` of memory. */
int w8_kv_blocks_for_bytes(const w8_config *cfg, int block_size, size_t bytes);
void w8_kv_free(w8_kv *kv);
int w8_kv_block_size(const w8_kv *kv);
int w8_kv_free_blocks(const w8_kv *kv);
int w8_kv_total_blocks(const w8_kv *kv);

void w8_seq_init(w8_seq *s);
/* Make room for positions up to new_len - 1; 0 ok, -1 when the pool is out of blocks
 * (nothing is allocated in that case). */
int w8_kv_seq_reserve(w8_kv *kv, w8_seq *s, int new_len);
/* Return all blocks of s to the pool and reset it. */
void w8_kv_seq_release(w8_kv *kv, w8_seq *s);

/* K (or V) row of token position pos of sequence s at layer l: n_kv_heads * head_dim floats. */
float *w8_kv_k(w8_kv *kv, const w8_seq *s, int layer, int pos);
float *w8_kv_v(w8_kv *kv, const w8_seq *s, int layer, int pos);
/* Start of physical block b's K (or V) at layer l: block_size rows of row_stride floats. */
float *w8_kv_block_k(w8_kv *kv, int layer, int block);
float *w8_kv_block_v(w8_kv *kv, int layer, int block);
size_t w8_kv_row_stride(const w8_kv *kv);

#endif

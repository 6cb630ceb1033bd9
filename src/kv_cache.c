/*
 * kv_cache.c - paged KV cache: one pool of fixed-size blocks, per-sequence
 * block tables (the vLLM / MindIE PagedAttention layout, on the CPU).
 *
 * Memory layout of the pool (f32):
 *
 *   block 0: layer 0: K [block_size][row_stride]  V [block_size][row_stride]
 *            layer 1: K ...                       V ...
 *            ...
 *   block 1: ...
 *
 * row_stride = n_kv_heads * head_dim, so one token's K (all kv heads) is one
 * contiguous row and the K rows of a block are contiguous: attention walks a
 * block with a fixed stride and the forward pass writes each new token's K/V
 * with one memcpy.  Keeping all layers of a block together means a sequence's
 * blocks are self-contained; the pool itself is allocated zeroed with calloc
 * (large sizes come straight from mmap, so untouched blocks cost no RAM).
 *
 * Free blocks sit on a stack; reserve pops, release pushes back.
 */
#include "kv_cache.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

struct w8_kv {
    int n_layers;
    int block_size;
    int n_blocks;
    size_t row_stride;   /* floats per token row: n_kv_heads * head_dim */
    size_t layer_floats; /* floats of one layer of one block: 2 * block_size * row_stride */
    float *pool;         /* n_blocks * n_layers * layer_floats */
    int *free_stack;     /* free block ids; top at free_stack[n_free - 1] */
    int n_free;
};

/* Bytes of one block (all layers, K and V); 0 when it does not fit a size_t. */
static size_t block_bytes(const w8_config *cfg, int block_size) {
    size_t row = 0, b = 0;
    if (cfg->n_kv_heads <= 0 || cfg->head_dim <= 0 || cfg->n_layers <= 0 || block_size <= 0)
        return 0;
    if (!w8_mul_ok((size_t)cfg->n_kv_heads, (size_t)cfg->head_dim, &row)) return 0;
    if (!w8_mul_ok(row, (size_t)block_size * 2 * sizeof(float), &b)) return 0;
    if (!w8_mul_ok(b, (size_t)cfg->n_layers, &b)) return 0;
    return b;
}

int w8_kv_blocks_for_bytes(const w8_config *cfg, int block_size, size_t bytes) {
    size_t b = block_bytes(cfg, block_size);
    if (!b) return 0;
    size_t n = bytes / b;
    return n > (size_t)1 << 30 ? 1 << 30 : (int)n;
}

w8_kv *w8_kv_new(const w8_config *cfg, int block_size, int n_blocks) {
    size_t bb = block_bytes(cfg, block_size), total = 0;
    if (!bb) {
        w8_seterr("kv cache: bad block size %d or model shape", block_size);
        return NULL;
    }
    if (n_blocks <= 0) {
        w8_seterr("kv cache: %d blocks (the cache must hold at least one block)", n_blocks);
        return NULL;
    }
    if (!w8_mul_ok(bb, (size_t)n_blocks, &total)) {
        w8_seterr("kv cache: %d blocks of %zu bytes overflow", n_blocks, bb);
        return NULL;
    }
    float *pool = calloc(1, total);
    if (!pool) {
        w8_seterr("kv cache: cannot allocate %zu bytes (%d blocks)", total, n_blocks);
        return NULL;
    }
    w8_kv *kv = w8_xcalloc(1, sizeof *kv);
    kv->n_layers = cfg->n_layers;
    kv->block_size = block_size;
    kv->n_blocks = n_blocks;
    kv->row_stride = (size_t)cfg->n_kv_heads * (size_t)cfg->head_dim;
    kv->layer_floats = 2 * (size_t)block_size * kv->row_stride;
    kv->pool = pool;
    kv->free_stack = w8_xmalloc((size_t)n_blocks * sizeof(int));
    /* Pushed in reverse so that block 0 is handed out first (easier to debug). */
    for (int i = 0; i < n_blocks; i++) kv->free_stack[i] = n_blocks - 1 - i;
    kv->n_free = n_blocks;
    return kv;
}

void w8_kv_free(w8_kv *kv) {
    if (!kv) return;
    free(kv->pool);
    free(kv->free_stack);
    free(kv);
}

int w8_kv_block_size(const w8_kv *kv) { return kv->block_size; }
int w8_kv_free_blocks(const w8_kv *kv) { return kv->n_free; }
int w8_kv_total_blocks(const w8_kv *kv) { return kv->n_blocks; }
size_t w8_kv_row_stride(const w8_kv *kv) { return kv->row_stride; }

void w8_seq_init(w8_seq *s) { memset(s, 0, sizeof *s); }

int w8_kv_seq_reserve(w8_kv *kv, w8_seq *s, int new_len) {
    if (new_len < 0) return w8_seterr("kv cache: negative length %d", new_len);
    int need = (int)(((long long)new_len + kv->block_size - 1) / kv->block_size);
    int more = need - s->n_blocks;
    if (more <= 0) return 0;
    if (more > kv->n_free)
        return w8_seterr("kv cache: out of blocks (need %d more for %d tokens, %d of %d free, "
                         "block size %d)",
                         more, new_len, kv->n_free, kv->n_blocks, kv->block_size);
    if (need > s->cap) {
        int cap = s->cap ? s->cap : 4;
        while (cap < need) cap *= 2;
        s->blocks = w8_xrealloc(s->blocks, (size_t)cap * sizeof(int));
        s->cap = cap;
    }
    while (s->n_blocks < need) s->blocks[s->n_blocks++] = kv->free_stack[--kv->n_free];
    return 0;
}

void w8_kv_seq_release(w8_kv *kv, w8_seq *s) {
    /* Push in reverse so the next reservation gets the same blocks in the same order. */
    for (int i = s->n_blocks - 1; i >= 0; i--) kv->free_stack[kv->n_free++] = s->blocks[i];
    free(s->blocks);
    w8_seq_init(s);
}

float *w8_kv_block_k(w8_kv *kv, int layer, int block) {
    return kv->pool + ((size_t)block * (size_t)kv->n_layers + (size_t)layer) * kv->layer_floats;
}

float *w8_kv_block_v(w8_kv *kv, int layer, int block) {
    return w8_kv_block_k(kv, layer, block) + (size_t)kv->block_size * kv->row_stride;
}

float *w8_kv_k(w8_kv *kv, const w8_seq *s, int layer, int pos) {
    int b = s->blocks[pos / kv->block_size];
    return w8_kv_block_k(kv, layer, b) + (size_t)(pos % kv->block_size) * kv->row_stride;
}

float *w8_kv_v(w8_kv *kv, const w8_seq *s, int layer, int pos) {
    int b = s->blocks[pos / kv->block_size];
    return w8_kv_block_v(kv, layer, b) + (size_t)(pos % kv->block_size) * kv->row_stride;
}

/*
 * tok_bpe.c - the BPE model of tokenizer.json: vocab, merges, and merging.
 *
 * Vocab: an open-addressing hash table of ids keyed by the token string (the
 * strings live in piece[id], so a slot is just an int).  Merges: an
 * open-addressing table keyed by the (left id, right id) pair holding the
 * merge's rank and the id of the merged token, so merging never touches a
 * string.  A word is merged as HF's Word::merge_all does: a doubly linked list
 * of symbols and a min-heap of candidate pairs ordered by (rank, position);
 * stale heap entries are recognized and skipped when popped.
 *
 * Text repeats its words, so merged short words are kept in a cache (as HF
 * does): direct-mapped by hash, an entry overwritten on collision, guarded
 * by a mutex because the server encodes from several threads with one
 * tokenizer.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../json.h"
#include "tok_internal.h"
#include "unicode.h"
#include "../util.h"

static uint64_t hash_bytes(const char *s, size_t n) {
    /* FNV-1a: short keys, good enough spread for a power-of-two table */
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

static uint64_t mix64(uint64_t x) { /* splitmix64 finalizer */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* A vocab slot keeps the upper hash bits, the length and the arena offset
 * next to the id, so a probe touches nothing but the slot until the hashes
 * agree, and a hit costs one more cache line (the string).  Load time is
 * dominated by these lookups (three per merge), i.e. by cache misses. */
struct w8_vslot {
    uint32_t id; /* UINT32_MAX: empty */
    uint32_t tag, off, len;
};

int w8_bpe_lookup(const w8_bpe *m, const char *s, size_t n) {
    if (!m->vcap) return -1;
    size_t mask = m->vcap - 1;
    uint64_t h = hash_bytes(s, n);
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const struct w8_vslot *v = &m->vslot[i];
        if (v->id == UINT32_MAX) return -1;
        if (v->tag == tag && v->len == n && !memcmp(m->arena + v->off, s, n)) return (int)v->id;
    }
}

static void vocab_insert(w8_bpe *m, int id) {
    size_t mask = m->vcap - 1;
    uint64_t h = hash_bytes(m->piece[id], m->piece_len[id]);
    size_t i = h & mask;
    while (m->vslot[i].id != UINT32_MAX) i = (i + 1) & mask;
    m->vslot[i].id = (uint32_t)id;
    m->vslot[i].tag = (uint32_t)(h >> 32);
    m->vslot[i].off = (uint32_t)(m->piece[id] - m->arena);
    m->vslot[i].len = m->piece_len[id];
}

static const w8_merge_slot *merge_find(const w8_bpe *m, int a, int b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t mask = m->mcap - 1;
    for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
        if (m->mslot[i].key == key) return &m->mslot[i];
        if (m->mslot[i].key == UINT64_MAX) return NULL;
    }
}

/* A later duplicate of a pair replaces the earlier one, as HF's HashMap
 * collect does. */
static void merge_insert(w8_bpe *m, int a, int b, int rank, int id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t mask = m->mcap - 1;
    size_t i = mix64(key) & mask;
    while (m->mslot[i].key != UINT64_MAX && m->mslot[i].key != key) i = (i + 1) & mask;
    m->mslot[i].key = key;
    m->mslot[i].rank = rank;
    m->mslot[i].id = id;
}

/* total_bytes: the sum of the token lengths (the arena never grows, so the
 * piece pointers into it stay valid). */
void w8_bpe_vocab_begin(w8_bpe *m, int npiece, size_t count, size_t total_bytes) {
    m->npiece = npiece;
    m->piece = w8_xcalloc((size_t)npiece + 1, sizeof(char *));
    m->piece_len = w8_xcalloc((size_t)npiece + 1, sizeof(uint32_t));
    m->arena_cap = total_bytes + count + 1;
    m->arena = w8_xmalloc(m->arena_cap);
    m->arena_len = 0;
    m->vcap = pow2_at_least(count + count / 2 + 1);
    m->vslot = w8_xmalloc(m->vcap * sizeof(struct w8_vslot));
    memset(m->vslot, 0xff, m->vcap * sizeof(struct w8_vslot));
}

int w8_bpe_vocab_add(w8_bpe *m, int id, const char *key, size_t klen) {
    if (id < 0 || id >= m->npiece || m->piece[id] || m->arena_len + klen + 1 > m->arena_cap ||
        klen > UINT32_MAX / 2 ||
        w8_bpe_lookup(m, key, klen) >= 0)
        return -1;
    char *p = m->arena + m->arena_len;
    memcpy(p, key, klen);
    p[klen] = 0;
    m->arena_len += klen + 1;
    m->piece[id] = p;
    m->piece_len[id] = (uint32_t)klen;
    vocab_insert(m, id);
    return 0;
}

static int load_vocab(w8_bpe *m, const json_t *vocab, const char *label) {
    if (!json_is_object(vocab))
        return w8_seterr("%s: model.vocab: expected an object, got %s", label,
                         w8_json_type_name(vocab));
    const char *key;
    size_t klen;
    json_t *val;
    long long maxid = -1;
    size_t total = 0;
    json_object_keylen_foreach((json_t *)vocab, key, klen, val) {
        total += klen;
        if (!json_is_integer(val) || json_integer_value(val) < 0 ||
            json_integer_value(val) >= W8_MAX_VOCAB_ID)
            return w8_seterr("%s: model.vocab: token '%.40s' has an invalid id (want an integer "
                             "in [0, %d))", label, key, W8_MAX_VOCAB_ID);
        if (json_integer_value(val) > maxid) maxid = json_integer_value(val);
    }
    w8_bpe_vocab_begin(m, (int)(maxid + 1), json_object_size(vocab), total);
    json_object_keylen_foreach((json_t *)vocab, key, klen, val) {
        int id = (int)json_integer_value(val);
        if (w8_bpe_vocab_add(m, id, key, klen) < 0)
            return w8_seterr("%s: model.vocab: id %d is given to both '%.40s' and '%.40s'", label,
                             id, m->piece[id] ? m->piece[id] : "?", key);
    }
    return 0;
}

/* One merge entry: "a b" (exactly one space, as HF requires) or ["a", "b"]. */
static int merge_parts(const json_t *e, const char **a, size_t *al, const char **b, size_t *bl) {
    if (json_is_string(e)) {
        const char *s = json_string_value(e);
        size_t n = json_string_length(e);
        const char *sp = memchr(s, ' ', n);
        if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s))) return -1;
        *a = s, *al = (size_t)(sp - s), *b = sp + 1, *bl = n - *al - 1;
        return 0;
    }
    if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
        json_is_string(json_array_get(e, 1))) {
        *a = json_string_value(json_array_get(e, 0));
        *al = json_string_length(json_array_get(e, 0));
        *b = json_string_value(json_array_get(e, 1));
        *bl = json_string_length(json_array_get(e, 1));
        return 0;
    }
    return -1;
}

void w8_bpe_merges_begin(w8_bpe *m, size_t n) {
    m->mcap = pow2_at_least(n + n / 2 + 1);
    m->mslot = w8_xmalloc(m->mcap * sizeof(w8_merge_slot));
    for (size_t i = 0; i < m->mcap; i++) m->mslot[i].key = UINT64_MAX;
}

int w8_bpe_merge_add(w8_bpe *m, size_t i, const char *a, size_t al, const char *b, size_t bl,
                     const char *label, w8_buf *joined) {
    int ia = w8_bpe_lookup(m, a, al), ib = w8_bpe_lookup(m, b, bl);
    if (ia < 0 || ib < 0)
        return w8_seterr("%s: model.merges[%zu]: token '%.*s' is not in the vocab", label, i,
                         (int)(ia < 0 ? (al > 60 ? 60 : al) : (bl > 60 ? 60 : bl)), ia < 0 ? a : b);
    /* the merged token drops the right part's continuing-subword prefix */
    size_t plen = m->cont_prefix ? strlen(m->cont_prefix) : 0;
    joined->len = 0;
    w8_buf_put(joined, a, al);
    if (plen && bl >= plen && !memcmp(b, m->cont_prefix, plen)) w8_buf_put(joined, b + plen, bl - plen);
    else w8_buf_put(joined, b, bl);
    int id = w8_bpe_lookup(m, joined->s, joined->len);
    if (id < 0)
        return w8_seterr("%s: model.merges[%zu]: merged token '%.*s' is not in the vocab", label, i,
                         (int)(joined->len > 60 ? 60 : joined->len), joined->s);
    merge_insert(m, ia, ib, (int)i, id);
    return 0;
}

static int load_merges(w8_bpe *m, const json_t *merges, const char *label) {
    if (merges && !json_is_array(merges))
        return w8_seterr("%s: model.merges: expected an array, got %s", label,
                         w8_json_type_name(merges));
    size_t n = merges ? json_array_size(merges) : 0;
    w8_bpe_merges_begin(m, n);
    w8_buf joined = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *a, *b;
        size_t al, bl;
        if (merge_parts(json_array_get(merges, i), &a, &al, &b, &bl) < 0)
            rc = w8_seterr("%s: model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", label, i);
        else rc = w8_bpe_merge_add(m, i, a, al, b, bl, label, &joined);
    }
    free(joined.s);
    return rc;
}

/* ---- vocab and merges from the raw text (the fast path of tok_fastjson.c) */

/* model.vocab read from its text range.  -1: not the simple form expected
 * (the caller falls back to jansson). */
static int fast_vocab(w8_bpe *m, const char *p, const char *e) {
    /* one pass collects the keys (into one buffer) and ids, then the table is built */
    w8_buf keys = {0}, key = {0};
    w8_ivec ent = {0}; /* (id, offset, length) triples */
    long long maxid = -1;
    int rc = -1;
    const char *q = w8_fast_ws(p + 1, e);
    if (q < e && *q == '}') q = NULL; /* empty vocab */
    while (q) {
        if (q >= e || *q != '"' || !(q = w8_fast_read_string(q, e, &key))) goto out;
        q = w8_fast_ws(q, e);
        if (q >= e || *q != ':') goto out;
        q = w8_fast_ws(q + 1, e);
        long long id = 0;
        const char *d = q;
        while (q < e && *q >= '0' && *q <= '9' && q - d < 9) id = id * 10 + (*q++ - '0');
        if (q == d || (q - d > 1 && *d == '0') ||
            (q < e && (*q == '.' || *q == 'e' || *q == 'E' || (*q >= '0' && *q <= '9'))))
            goto out; /* not a plain small non-negative integer */
        if (id > maxid) maxid = id;
        if (keys.len > (size_t)1 << 30) goto out;
        w8_ivec_push(&ent, (int)id);
        w8_ivec_push(&ent, (int)keys.len);
        w8_ivec_push(&ent, (int)key.len);
        w8_buf_put(&keys, key.s, key.len);
        q = w8_fast_ws(q, e);
        if (q < e && *q == ',') q = w8_fast_ws(q + 1, e);
        else if (q < e && *q == '}') q = NULL;
        else goto out;
    }
    if (maxid >= W8_MAX_VOCAB_ID) goto out;
    w8_bpe_vocab_begin(m, (int)(maxid + 1), ent.n / 3, keys.len);
    for (size_t i = 0; i < ent.n; i += 3)
        if (w8_bpe_vocab_add(m, ent.v[i], keys.s + ent.v[i + 1], (size_t)ent.v[i + 2]) < 0) goto out;
    rc = 0;
out:
    free(keys.s);
    free(key.s);
    free(ent.v);
    return rc;
}

/* model.merges read from its text range.  -1 with *syntax = 1: fall back;
 * -1 with *syntax = 0: a real error (set). */
static int fast_merges(w8_bpe *m, const char *p, const char *e, const char *label, int *syntax) {
    w8_buf a = {0}, b = {0}, joined = {0};
    *syntax = 1;
    int rc = -1;
    size_t n = 0;
    /* size the table first: the top-level commas + 1 entries */
    if (w8_fast_ws(p + 1, e) < e && *w8_fast_ws(p + 1, e) != ']') {
        int depth = 0;
        n = 1;
        for (const char *q = p; q < e; q++) {
            if (*q == '"') {
                if (!(q = w8_fast_skip_string(q, e))) goto out;
                q--;
            } else if (*q == '[') {
                depth++;
            } else if (*q == ']') {
                depth--;
            } else if (*q == ',' && depth == 1) {
                n++;
            }
        }
    }
    w8_bpe_merges_begin(m, n);
    const char *q = w8_fast_ws(p + 1, e);
    if (q < e && *q == ']') q = NULL;
    for (size_t i = 0; q; i++) {
        size_t al, bl;
        if (q < e && *q == '"') {
            if (!(q = w8_fast_read_string(q, e, &a))) goto out;
            const char *sp = memchr(a.s, ' ', a.len);
            if (!sp || memchr(sp + 1, ' ', a.len - (size_t)(sp + 1 - a.s))) {
                *syntax = 0; /* a real error, reported like the jansson path does */
                w8_seterr("%s: model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", label, i);
                goto out;
            }
            al = (size_t)(sp - a.s);
            b.len = 0;
            w8_buf_put(&b, sp + 1, a.len - al - 1);
            bl = b.len;
        } else if (q < e && *q == '[') {
            q = w8_fast_ws(q + 1, e);
            if (q >= e || *q != '"' || !(q = w8_fast_read_string(q, e, &a))) goto out;
            q = w8_fast_ws(q, e);
            if (q >= e || *q != ',') goto out;
            q = w8_fast_ws(q + 1, e);
            if (q >= e || *q != '"' || !(q = w8_fast_read_string(q, e, &b))) goto out;
            q = w8_fast_ws(q, e);
            if (q >= e || *q != ']') goto out;
            q++;
            al = a.len, bl = b.len;
        } else {
            goto out;
        }
        if (w8_bpe_merge_add(m, i, a.s, al, b.s, bl, label, &joined) < 0) {
            *syntax = 0;
            goto out;
        }
        q = w8_fast_ws(q, e);
        if (q < e && *q == ',') q = w8_fast_ws(q + 1, e);
        else if (q < e && *q == ']') q = NULL;
        else goto out;
    }
    rc = 0;
out:
    free(a.s);
    free(b.s);
    free(joined.s);
    return rc;
}

/* ---- the word cache */

#define WC_SLOTS 16384
#define WC_KEY 30 /* longest word cached, bytes */
#define WC_IDS 14 /* most ids of a cached word */

typedef struct {
    uint32_t hash;
    uint8_t klen, nids; /* klen 0: empty */
    char key[WC_KEY];
    int32_t ids[WC_IDS];
} wc_entry;

struct w8_wcache {
    pthread_mutex_t lock;
    wc_entry e[WC_SLOTS];
};

static struct w8_wcache *wc_new(void) {
    struct w8_wcache *c = w8_xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

static int wc_get(struct w8_wcache *c, uint32_t h, const char *s, size_t n, w8_ivec *out) {
    wc_entry *e = &c->e[h & (WC_SLOTS - 1)];
    int found = 0;
    pthread_mutex_lock(&c->lock);
    if (e->klen == n && e->hash == h && !memcmp(e->key, s, n)) {
        for (int i = 0; i < e->nids; i++) w8_ivec_push(out, e->ids[i]);
        found = 1;
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

static void wc_put(struct w8_wcache *c, uint32_t h, const char *s, size_t n, const int *ids, size_t k) {
    if (k > WC_IDS) return;
    wc_entry *e = &c->e[h & (WC_SLOTS - 1)];
    pthread_mutex_lock(&c->lock);
    e->hash = h;
    e->klen = (uint8_t)n;
    e->nids = (uint8_t)k;
    memcpy(e->key, s, n);
    for (size_t i = 0; i < k; i++) e->ids[i] = ids[i];
    pthread_mutex_unlock(&c->lock);
}

static int get_opt_str(const json_t *model, const char *key, const char *label, char **out) {
    const char *s = NULL;
    if (w8_json_get_str(model, key, label, &s) < 0) return -1;
    *out = s && *s ? w8_xstrdup(s) : NULL;
    return 0;
}

int w8_bpe_load(w8_bpe *m, const json_t *model, const char *label, const w8_fast_ranges *fr) {
    memset(m, 0, sizeof *m);
    m->unk_id = -1;
    for (int i = 0; i < 256; i++) m->byte_id[i] = -1;
    if (!json_is_object(model))
        return w8_seterr("%s: 'model': expected an object, got %s", label, w8_json_type_name(model));
    const char *type = NULL;
    if (w8_json_get_str(model, "type", label, &type) < 0) return -1;
    if (type && strcmp(type, "BPE"))
        return w8_seterr("%s: model type '%s' is not supported (only BPE)", label, type);
    if (!type && !json_object_get(model, "merges"))
        return w8_seterr("%s: model has no type and no merges: not a BPE model", label);
    double dropout = 0;
    if (w8_json_get_num(model, "dropout", label, &dropout) < 0) return -1;
    if (dropout != 0)
        return w8_seterr("%s: model.dropout %g: BPE dropout is not supported", label, dropout);
    if (w8_json_get_bool(model, "byte_fallback", label, &m->byte_fallback) < 0 ||
        w8_json_get_bool(model, "fuse_unk", label, &m->fuse_unk) < 0 ||
        w8_json_get_bool(model, "ignore_merges", label, &m->ignore_merges) < 0 ||
        get_opt_str(model, "continuing_subword_prefix", label, &m->cont_prefix) < 0 ||
        get_opt_str(model, "end_of_word_suffix", label, &m->end_suffix) < 0)
        return -1;
    if (fr) {
        if (fast_vocab(m, fr->vocab, fr->vocab_end) < 0) return -2;
    } else if (load_vocab(m, json_object_get(model, "vocab"), label) < 0) {
        return -1;
    }
    const char *unk = NULL;
    if (w8_json_get_str(model, "unk_token", label, &unk) < 0) return -1;
    if (unk) {
        m->unk_id = w8_bpe_lookup(m, unk, strlen(unk));
        if (m->unk_id < 0)
            return w8_seterr("%s: model.unk_token '%.40s' is not in the vocab", label, unk);
    }
    m->cache = wc_new();
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_id[b] = w8_bpe_lookup(m, name, 6);
    }
    if (fr) {
        int syntax;
        if (fast_merges(m, fr->merges, fr->merges_end, label, &syntax) < 0) return syntax ? -2 : -1;
        return 0;
    }
    return load_merges(m, json_object_get(model, "merges"), label);
}

void w8_bpe_free(w8_bpe *m) {
    if (m->cache) {
        pthread_mutex_destroy(&m->cache->lock);
        free(m->cache);
    }
    free(m->piece);
    free(m->arena);
    free(m->piece_len);
    free(m->vslot);
    free(m->mslot);
    free(m->cont_prefix);
    free(m->end_suffix);
    memset(m, 0, sizeof *m);
}

/* ---- merging one word */

typedef struct {
    int id;
    int prev, next; /* -1 at the ends */
    int len;        /* 0 once merged into its left neighbour */
} sym;

typedef struct {
    int rank, pos, id;
} cand;

static int cand_less(const cand *a, const cand *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(cand *h, int *n, cand c) {
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!cand_less(&c, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static void sift_down(cand *h, int n, int i) {
    cand x = h[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cand_less(&h[c + 1], &h[c])) c++;
        if (!cand_less(&h[c], &x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static cand heap_pop(cand *h, int *n) {
    cand top = h[0];
    h[0] = h[--(*n)];
    if (*n > 0) sift_down(h, *n, 0);
    return top;
}

static void add_sym(sym *w, int *n, int id, int len) {
    w[*n].id = id;
    w[*n].len = len;
    w[*n].prev = *n - 1;
    w[*n].next = -1;
    if (*n > 0) w[*n - 1].next = *n;
    (*n)++;
}

/* Initial symbols, as HF's BPE::merge_word: each character is looked up
 * (with the continuing-subword prefix on all but the first and the
 * end-of-word suffix on the last); a missing one becomes its <0xNN> byte
 * tokens with byte_fallback, else unk (fused runs with fuse_unk), else it is
 * dropped.  Note HF emits a pending unk only at the next known character, so
 * byte-fallback tokens may come before it; that order is kept. */
static int initial_symbols(const w8_bpe *m, const char *s, size_t n, sym *w, w8_buf *tmp) {
    int ns = 0, unk_len = 0, have_unk = 0;
    size_t i = 0;
    while (i < n) {
        int valid;
        size_t cl = w8_utf8_unit((const unsigned char *)s + i, n - i, &valid);
        int id;
        if (!m->cont_prefix && !m->end_suffix) {
            id = w8_bpe_lookup(m, s + i, cl);
        } else {
            tmp->len = 0;
            if (i > 0 && m->cont_prefix) w8_buf_put(tmp, m->cont_prefix, strlen(m->cont_prefix));
            w8_buf_put(tmp, s + i, cl);
            if (i + cl == n && m->end_suffix) w8_buf_put(tmp, m->end_suffix, strlen(m->end_suffix));
            id = w8_bpe_lookup(m, tmp->s, tmp->len);
        }
        if (id >= 0) {
            if (have_unk) add_sym(w, &ns, m->unk_id, unk_len), have_unk = 0;
            add_sym(w, &ns, id, (int)cl);
        } else {
            int all = m->byte_fallback;
            for (size_t k = 0; all && k < cl; k++) all = m->byte_id[(unsigned char)s[i + k]] >= 0;
            if (all) {
                for (size_t k = 0; k < cl; k++) add_sym(w, &ns, m->byte_id[(unsigned char)s[i + k]], 1);
            } else if (m->unk_id >= 0) {
                if (have_unk && m->fuse_unk) {
                    unk_len += (int)cl;
                } else {
                    if (have_unk) add_sym(w, &ns, m->unk_id, unk_len);
                    have_unk = 1;
                    unk_len = (int)cl;
                }
            }
        }
        i += cl;
    }
    if (have_unk) add_sym(w, &ns, m->unk_id, unk_len);
    return ns;
}

static void try_pair(const w8_bpe *m, const sym *w, int pos, cand *h, int *nh) {
    int nx = w[pos].next;
    if (nx < 0) return;
    const w8_merge_slot *ms = merge_find(m, w[pos].id, w[nx].id);
    if (ms) heap_push(h, nh, (cand){ms->rank, pos, ms->id});
}

static void merge_word(const w8_bpe *m, const char *s, size_t n, w8_ivec *out);

void w8_bpe_word(const w8_bpe *m, const char *s, size_t n, w8_ivec *out) {
    if (n == 0) return;
    if (m->ignore_merges) {
        int id = w8_bpe_lookup(m, s, n);
        if (id >= 0) {
            w8_ivec_push(out, id);
            return;
        }
    }
    if (n > WC_KEY || !m->cache) {
        merge_word(m, s, n, out);
        return;
    }
    uint32_t h = (uint32_t)hash_bytes(s, n);
    if (wc_get(m->cache, h, s, n, out)) return;
    size_t before = out->n;
    merge_word(m, s, n, out);
    /* a word that yields no ids leaves out->v NULL: no offset from it */
    wc_put(m->cache, h, s, n, out->n > before ? out->v + before : NULL, out->n - before);
}

static void merge_word(const w8_bpe *m, const char *s, size_t n, w8_ivec *out) {
    /* small words (nearly all) use the stack */
    sym wst[64];
    cand hst[200];
    sym *w = n <= 64 ? wst : w8_xmalloc(n * sizeof(sym));
    /* at most n-1 initial pairs plus two per merge */
    size_t hcap = 3 * n + 2;
    cand *h = hcap <= 200 ? hst : w8_xmalloc(hcap * sizeof(cand));
    w8_buf tmp = {0};
    int ns = initial_symbols(m, s, n, w, &tmp);
    free(tmp.s);
    /* the initial pairs go in unordered and are heapified at once (O(n)) */
    int nh = 0;
    for (int i = 0; i + 1 < ns; i++) {
        const w8_merge_slot *ms = merge_find(m, w[i].id, w[i + 1].id);
        if (ms) h[nh++] = (cand){ms->rank, i, ms->id};
    }
    for (int i = nh / 2 - 1; i >= 0; i--) sift_down(h, nh, i);
    while (nh > 0) {
        cand c = heap_pop(h, &nh);
        /* skip candidates made stale by earlier merges */
        if (w[c.pos].len == 0 || w[c.pos].next < 0) continue;
        int nx = w[c.pos].next;
        const w8_merge_slot *ms = merge_find(m, w[c.pos].id, w[nx].id);
        if (!ms || ms->id != c.id) continue;
        w[c.pos].id = c.id;
        w[c.pos].len += w[nx].len;
        w[c.pos].next = w[nx].next;
        if (w[nx].next >= 0) w[w[nx].next].prev = c.pos;
        w[nx].len = 0;
        if (w[c.pos].prev >= 0) try_pair(m, w, w[c.pos].prev, h, &nh);
        try_pair(m, w, c.pos, h, &nh);
    }
    for (int i = ns > 0 ? 0 : -1; i >= 0; i = w[i].next) w8_ivec_push(out, w[i].id);
    if (w != wst) free(w);
    if (h != hst) free(h);
}

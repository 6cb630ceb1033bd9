/*
 * tok_internal.h - the pieces of the tokenizer shared by its source files
 * (not a public header: only the tok_*.c files and tokenizer.c include it;
 * it does not include tokenizer.h, so that the parts below depend on
 * nothing above them).
 *
 *   tokenizer.c   loading tokenizer.json / tokenizer_config.json, added
 *                 tokens, the encode pipeline, post-processor, accessors
 *   tok_core.c    the growable containers (tok_core.h; used by every file,
 *                 needing nothing else of the folder)
 *   tok_bpe.c     the BPE model: vocab and merge hash maps, merging, and
 *                 reading vocab/merges from the JSON tree or the raw text
 *   tok_fastjson.c  scanning tokenizer.json's text for the big members
 *   tok_text.c    patterns (Oniguruma), normalizers, pre-tokenizers,
 *                 decoders: parsing from JSON and applying them
 *   tok_decode.c  ids -> text, and the streaming decoder
 *   unicode.c     UTF-8 and Rust character classes (needs nothing of the
 *                 folder either)
 *
 * The pipeline follows Hugging Face tokenizers: added tokens are cut out of
 * the raw text, the rest is normalized, cut again on "normalized" added
 * tokens, pre-tokenized into words, and each word is run through BPE.
 */
#ifndef W8_TOK_INTERNAL_H
#define W8_TOK_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tok_core.h"

/* ---- patterns: a literal string or an Oniguruma regex */

typedef struct {
    char *lit;     /* literal (NULL for a regex) */
    size_t litlen;
    void *re;      /* OnigRegex */
} w8_pat;

/* Parse {"String": s} or {"Regex": r}; errors name `label` and `what`. */
int w8_pat_parse(w8_pat *p, const json_t *j, const char *label, const char *what);
int w8_pat_compile_regex(w8_pat *p, const char *re, size_t len, const char *label, const char *what);
void w8_pat_free(w8_pat *p);
/* All non-overlapping matches, leftmost first, as (start, end) pairs appended
 * to m (byte offsets into s).  Returns the number of pairs or -1. */
int w8_pat_find(const w8_pat *p, const char *s, size_t n, w8_ivec *m);
/* The same matches one by one; a non-zero return of fn stops and is returned
 * (-1 also on a regex failure, error set). */
typedef int (*w8_match_fn)(void *ctx, size_t start, size_t end);
int w8_pat_each(const w8_pat *p, const char *s, size_t n, w8_match_fn fn, void *ctx);

/* ---- normalizers */

enum { W8_NORM_SEQ, W8_NORM_NFC, W8_NORM_NFD, W8_NORM_NFKC, W8_NORM_NFKD, W8_NORM_PREPEND,
       W8_NORM_REPLACE, W8_NORM_LOWER, W8_NORM_STRIP };
typedef struct w8_norm {
    int kind;
    w8_pat pat;          /* REPLACE */
    char *text;          /* PREPEND text, REPLACE content */
    size_t textlen;
    int left, right;     /* STRIP */
    struct w8_norm *sub; /* SEQ */
    int nsub;
} w8_norm;
w8_norm *w8_norm_parse(const json_t *j, const char *label);
void w8_norm_free(w8_norm *n);
/* Normalize s[0..n) into out (replacing its contents). */
int w8_norm_apply(const w8_norm *nm, const char *s, size_t n, w8_buf *out);

/* ---- pre-tokenizers */

enum { W8_PT_SEQ, W8_PT_BYTELEVEL, W8_PT_SPLIT, W8_PT_METASPACE, W8_PT_DIGITS };
enum { W8_SPLIT_REMOVED, W8_SPLIT_ISOLATED, W8_SPLIT_MERGED_PREV, W8_SPLIT_MERGED_NEXT,
       W8_SPLIT_CONTIGUOUS };
enum { W8_PREPEND_ALWAYS, W8_PREPEND_FIRST, W8_PREPEND_NEVER };
typedef struct w8_pretok {
    int kind;
    w8_pat pat;          /* SPLIT; BYTELEVEL with use_regex (GPT-2 regex) */
    int behavior, invert;
    int add_prefix_space, use_regex; /* BYTELEVEL */
    char repl[8];        /* METASPACE replacement char (UTF-8) */
    int repl_len, prepend_scheme, split;
    int individual_digits; /* DIGITS */
    struct w8_pretok *sub;
    int nsub;
} w8_pretok;
w8_pretok *w8_pretok_parse(const json_t *j, const char *label);
void w8_pretok_free(w8_pretok *p);
/* Split one normalized segment into words, handing each to fn in order
 * (at0: the word starts at offset 0 of the original text).  `at_start`: the
 * segment does (Metaspace "first").  A non-zero return of fn stops: -1. */
typedef int (*w8_word_fn)(void *ctx, const char *s, size_t n, int at0);
int w8_pretok_run(const w8_pretok *p, const char *s, size_t n, int at_start, w8_word_fn fn, void *ctx);

/* ---- decoders */

enum { W8_DEC_SEQ, W8_DEC_BYTELEVEL, W8_DEC_REPLACE, W8_DEC_BYTEFALLBACK, W8_DEC_FUSE,
       W8_DEC_STRIP, W8_DEC_METASPACE };
typedef struct w8_dec {
    int kind;
    w8_pat pat;        /* REPLACE */
    char *text;        /* REPLACE content */
    size_t textlen;
    uint32_t strip_ch; /* STRIP content */
    int start, stop;   /* STRIP */
    uint32_t repl_cp;  /* METASPACE */
    int prepend_scheme;
    struct w8_dec *sub;
    int nsub;
} w8_dec;
w8_dec *w8_dec_parse(const json_t *j, const char *label);
void w8_dec_free(w8_dec *d);
/* Transform the list of token strings in place (tok may end up with one). */
int w8_dec_apply(const w8_dec *d, w8_strs *tok);

/* ---- BPE model */

typedef struct {
    uint64_t key;     /* (left id << 32) | right id; UINT64_MAX = empty */
    int32_t rank, id; /* merge priority (lower first) and the merged token */
} w8_merge_slot;

typedef struct {
    char **piece;      /* [npiece] token strings by id (NULL for holes), in arena */
    uint32_t *piece_len;
    int npiece;        /* largest model id + 1 */
    char *arena;       /* all token strings, NUL-terminated, back to back */
    size_t arena_len, arena_cap;
    struct w8_vslot *vslot; /* vocab hash table (tok_bpe.c); vcap a power of two */
    size_t vcap;
    w8_merge_slot *mslot; /* merge hash; mcap a power of two */
    size_t mcap;
    int unk_id;        /* -1 if none */
    int byte_fallback, fuse_unk, ignore_merges;
    char *cont_prefix, *end_suffix; /* continuing_subword_prefix, end_of_word_suffix */
    int byte_id[256];  /* id of <0xNN> (byte_fallback), -1 if absent */
    struct w8_wcache *cache; /* words already merged (tok_bpe.c), shared by threads */
} w8_bpe;

#define W8_MAX_VOCAB_ID (1 << 22) /* refuse absurd ids before allocating for them */

/* Byte ranges of model.vocab and model.merges in the tokenizer.json text
 * (see tok_fastjson.c). */
typedef struct {
    const char *vocab, *vocab_end, *merges, *merges_end;
} w8_fast_ranges;
int w8_fast_skim(const char *buf, size_t len, w8_fast_ranges *r);
/* Scanning primitives over text [p, e): skip JSON whitespace; skip the
 * string that starts at p (NULL when it does not end); decode that string
 * into out (replacing its contents; NULL on an escape or UTF-8 problem the
 * fast path leaves to jansson).  Each returns the position after. */
const char *w8_fast_ws(const char *p, const char *e);
const char *w8_fast_skip_string(const char *p, const char *e);
const char *w8_fast_read_string(const char *p, const char *e, w8_buf *out);

/* Load model (type, options, vocab, merges).  With fr, vocab and merges are
 * read from those text ranges instead of the JSON tree; then -2 means "the
 * fast path could not read them, load again from the tree". */
int w8_bpe_load(w8_bpe *m, const json_t *model, const char *label, const w8_fast_ranges *fr);
/* Building blocks of both paths. */
void w8_bpe_vocab_begin(w8_bpe *m, int npiece, size_t count, size_t total_bytes);
int w8_bpe_vocab_add(w8_bpe *m, int id, const char *key, size_t klen); /* -1 on a duplicate */
void w8_bpe_merges_begin(w8_bpe *m, size_t n);
int w8_bpe_merge_add(w8_bpe *m, size_t i, const char *a, size_t al, const char *b, size_t bl,
                     const char *label, w8_buf *scratch);
void w8_bpe_free(w8_bpe *m);
int w8_bpe_lookup(const w8_bpe *m, const char *s, size_t n); /* -1 if absent */
/* Tokenize one word, appending ids to out. */
void w8_bpe_word(const w8_bpe *m, const char *s, size_t n, w8_ivec *out);

/* ---- the tokenizer */

typedef struct {
    char *content;     /* as written in tokenizer.json */
    size_t len;
    char *norm;        /* normalized content (normalized=true tokens) */
    size_t norm_len;
    int id;
    int special, lstrip, rstrip, single_word, normalized;
} w8_added;

struct w8_tok {
    char *label;         /* file name for messages */
    w8_bpe bpe;
    w8_norm *norm;       /* NULL: none */
    w8_pretok *pretok;   /* NULL: the whole segment is one word */
    w8_dec *dec;         /* NULL: tokens joined with " " (as HF does) */
    w8_added *added;
    int nadded;
    int *added_by_id;    /* [vocab_size] index into added, -1 */
    uint8_t first_raw[256], first_norm[256]; /* first bytes of added tokens */
    int vocab_size;
    /* post-processor: TemplateProcessing "single" */
    int has_template;
    int *tmpl;           /* ids, with -1 standing for the sequence */
    int ntmpl;
    /* tokenizer_config.json */
    char *bos_token, *eos_token, *chat_template;
    int bos_id, eos_id, add_bos, add_eos;
};

#endif

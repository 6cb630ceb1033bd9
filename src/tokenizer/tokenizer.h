/*
 * tokenizer.h - Hugging Face tokenizer.json (BPE) encoder/decoder.
 *
 * Matches the `tokenizers` library id for id: byte-level BPE (Qwen2/2.5/3,
 * Llama 3, GPT-2: NFC normalizer, Split pre-tokenizers with the file's own
 * regex via Oniguruma, ByteLevel) and sentencepiece-style BPE (LLaMA 2,
 * Mistral, stories: Prepend/Replace or Metaspace, byte_fallback <0xNN>,
 * Fuse/Strip decoders).  Added tokens are matched before the model runs.
 * WordPiece, Unigram and other models are refused.
 *
 * Notes on behaviour:
 *  - add_special uses the file's TemplateProcessing post-processor when it
 *    has one; only without one do tokenizer_config.json's add_bos_token /
 *    add_eos_token add the BOS/EOS ids.
 *  - A loaded tokenizer may be used from several threads at once (encode
 *    shares a mutex-guarded word cache; everything else is read-only).
 *  - Lowercase normalization uses the simple 1:1 case mapping (HF uses
 *    Rust's full mapping; they differ for a handful of characters).
 */
#ifndef W8_TOKENIZER_H
#define W8_TOKENIZER_H

#include <stddef.h>

typedef struct w8_tok w8_tok;

/* Load DIR/tokenizer.json and DIR/tokenizer_config.json (optional).  DIR may
 * also be the tokenizer.json file itself (its config is then looked for
 * next to it).  Loading Qwen's 11 MB file takes about 0.2-0.3 s of CPU. */
w8_tok *w8_tok_load(const char *dir);
/* From in-memory tokenizer.json (and optional tokenizer_config.json text, may be NULL). */
w8_tok *w8_tok_from_json(const char *tok_json, size_t len, const char *cfg_json, size_t cfg_len,
                         const char *label);
void w8_tok_free(w8_tok *t);

/* Encode UTF-8 text (invalid UTF-8 is handled as HF does: replaced, never a crash).
 * add_special: apply the post-processor (BOS etc.) as add_special_tokens=True.
 * Returns the number of ids and sets *ids (caller frees), or -1 on error. */
int w8_tok_encode(const w8_tok *t, const char *text, size_t len, int add_special, int **ids);

/* Decode ids to a NUL-terminated UTF-8 string (caller frees).  skip_special drops
 * special added tokens.  Ids out of range are an error (NULL). */
char *w8_tok_decode(const w8_tok *t, const int *ids, size_t n, int skip_special);

/* Streaming decode: feed ids one at a time; each call returns the newly
 * completed text (only whole UTF-8 characters; may be ""), caller frees. */
typedef struct w8_tok_stream w8_tok_stream;
w8_tok_stream *w8_tok_stream_new(const w8_tok *t, int skip_special);
char *w8_tok_stream_push(w8_tok_stream *s, int id);
char *w8_tok_stream_flush(w8_tok_stream *s); /* whatever is left (incomplete bytes as U+FFFD) */
void w8_tok_stream_free(w8_tok_stream *s);

int w8_tok_vocab_size(const w8_tok *t);     /* largest id + 1, added tokens included */
const char *w8_tok_piece(const w8_tok *t, int id); /* raw token string, NULL if none */
int w8_tok_is_special(const w8_tok *t, int id);
int w8_tok_token_id(const w8_tok *t, const char *piece); /* -1 if absent */

/* From tokenizer_config.json (NULL / -1 when absent). */
int w8_tok_bos_id(const w8_tok *t);
int w8_tok_eos_id(const w8_tok *t);
const char *w8_tok_bos_token(const w8_tok *t);
const char *w8_tok_eos_token(const w8_tok *t);
/* The chat template: the string form, or from the list form the one named
 * "default" (NULL if there is none). */
const char *w8_tok_chat_template(const w8_tok *t);

#endif

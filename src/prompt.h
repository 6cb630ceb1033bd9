/*
 * prompt.h - one prompt builder for run and serve: a text, or a chat
 * conversation through the chat template, to token ids.
 *
 * Plain text is encoded with the tokenizer's special tokens (BOS where its
 * post-processor adds one).  A conversation (or, with chat set, a plain text
 * as one user turn) is rendered with add_generation_prompt (the assistant
 * turn opened, as HF's apply_chat_template(add_generation_prompt=True)) and
 * encoded without adding special tokens: the template writes any BOS itself.
 */
#ifndef W8_PROMPT_H
#define W8_PROMPT_H

#include <jansson.h>
#include <stddef.h>

#include "chat_template.h"
#include "config.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    const char *text;  /* plain text (when msgs is NULL) */
    size_t len;
    const json_t *msgs; /* a conversation [{role, content}], or NULL */
    int chat;          /* apply the chat template (always with msgs) */
    const char *tmpl;  /* template text; NULL: the tokenizer's */
    int empty_bos;     /* 1: an empty result becomes [BOS] (run); 0: it stays empty */
    /* The tokenizer's template parsed once (serve: at start, shared by its
     * request threads); NULL: parse the template text for this call. */
    const w8_chat_tmpl *parsed;
} w8_prompt;

typedef enum {
    W8_PROMPT_OK = 0,
    W8_PROMPT_NO_TEMPLATE, /* chat wanted, no template given and none in the tokenizer */
    W8_PROMPT_BAD_TEXT,    /* the text cannot be a JSON message (not UTF-8) */
    W8_PROMPT_TEMPLATE,    /* the template failed to render (w8_lasterr says why) */
    W8_PROMPT_TOKENIZE,    /* the tokenizer failed (w8_lasterr) */
    W8_PROMPT_NO_BOS,      /* empty prompt and no BOS token to stand in */
} w8_prompt_err;

/* The prompt's ids in *ids (malloc'd).  Returns the count (0 only without
 * empty_bos), or -1 with *why and w8_seterr. */
int w8_prompt_ids(const w8_tok *tok, const w8_config *cfg, const w8_prompt *p, int **ids,
                  w8_prompt_err *why);

#endif

/*
 * chat_template.h - a Jinja2 interpreter for Hugging Face chat templates.
 *
 * Covers what real templates use: if/elif/else, for with loop.*, set
 * (with namespace()), macro, whitespace control, literals, slicing, `in`,
 * tests (defined, none, string, ...), the common filters and string methods,
 * raise_exception.  Hostile templates are harmless: nesting depth, loop
 * iteration and output size are capped, and errors name line and column.
 */
#ifndef W8_CHAT_TEMPLATE_H
#define W8_CHAT_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

#include "jinja/jinja_limits.h" /* W8_JINJA_MAX_OUTPUT, _ITERS, _DEPTH */

/* Render template text with the variables of `context` (a JSON object:
 * messages, tools, add_generation_prompt, bos_token, eos_token,
 * enable_thinking, ...).  Returns a malloc'd string, or NULL with an error
 * "template:LINE:COL: message" (or the raise_exception message). */
char *w8_jinja_render(const char *tmpl, size_t len, const json_t *context);

/* Convenience for chat: render with messages (array), tools (array or NULL),
 * add_generation_prompt, and extra variables (object or NULL, e.g.
 * enable_thinking) plus bos_token / eos_token (may be NULL).
 * As transformers' apply_chat_template: `tools` and `documents` are None
 * when not given (so `tools is none` holds), and the standard variables
 * override same-named keys of `extra`. */
char *w8_chat_render(const char *tmpl, const json_t *messages, const json_t *tools,
                     int add_generation_prompt, const json_t *extra, const char *bos_token,
                     const char *eos_token);

/* A template parsed once and rendered many times: the server parses the
 * model's template at start and every request renders it.  Rendering only
 * reads the parsed tree (its constants are immortal values whose reference
 * counts are never touched), so any number of threads may render one
 * w8_chat_tmpl at the same time; parse and free are not concurrent with
 * renders.  w8_chat_tmpl_parse returns NULL with the parse error (as
 * w8_chat_render would report it); the render takes the arguments and gives
 * the bytes w8_chat_render gives for the same template text. */
typedef struct w8_chat_tmpl w8_chat_tmpl;
w8_chat_tmpl *w8_chat_tmpl_parse(const char *tmpl);
char *w8_chat_tmpl_render(const w8_chat_tmpl *ct, const json_t *messages, const json_t *tools,
                          int add_generation_prompt, const json_t *extra, const char *bos_token,
                          const char *eos_token);
void w8_chat_tmpl_free(w8_chat_tmpl *ct);

/* The chat template of model directory DIR, as transformers finds it:
 *   1. DIR/chat_template.jinja (transformers >= 4.47 saves the template
 *      there; PreTrainedTokenizerBase.from_pretrained lets it clobber the
 *      one in tokenizer_config.json);
 *   2. DIR/chat_template.json's "chat_template" (the processors' older file,
 *      which ProcessorMixin uses over the tokenizer's);
 *   3. DIR/tokenizer_config.json's "chat_template".
 * A "chat_template" value is a string or a list of {"name", "template"} (the
 * "default" one is used).  Returns 0 with *out malloc'd, 1 when DIR has none
 * (*out NULL), -1 with an error naming the file and key.  `run --chat`,
 * `serve` (through w8_tok_load) and `chat-template` all use it. */
int w8_chat_template_find(const char *dir, char **out);

#endif

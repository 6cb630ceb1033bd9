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

#endif

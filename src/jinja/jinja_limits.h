/*
 * jinja_limits.h - the caps that keep hostile chat templates harmless.
 *
 * Its own header so that both the public chat_template.h and the
 * interpreter's core can name them without depending on each other.
 */
#ifndef W8_JINJA_LIMITS_H
#define W8_JINJA_LIMITS_H

#include <stddef.h>

#define W8_JINJA_MAX_OUTPUT ((size_t)8 << 20)   /* bytes of rendered output */
#define W8_JINJA_MAX_ITERS 1000000              /* loop iterations per render */
#define W8_JINJA_MAX_DEPTH 200                  /* nesting of blocks/expressions/calls */

#endif

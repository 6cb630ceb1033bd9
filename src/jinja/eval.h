/*
 * eval.h - render a parsed template (eval.c).
 */
#ifndef W8_JINJA_EVAL_H
#define W8_JINJA_EVAL_H

#include <jansson.h>

#include "parse.h"
#include "runtime.h"

int jj_render(const jtemplate *t, const json_t *context, char **out, size_t *out_len);

/* Evaluate expression n into *out (a new reference). */
int jj_eval(jctx *c, const jnode *n, jv *out);
/* Call a macro, global or bound method value with these arguments. */
int jj_call_value(jctx *c, const jnode *at, jv fn, jv *args, int nargs, jv *kwv,
                  const char **kwn, int nkw, jv *out);

#endif

/*
 * globals.h - global functions (range, namespace, dict, raise_exception,
 * strftime_now): a {name, fn} table in globals.c.
 */
#ifndef W8_JINJA_GLOBALS_H
#define W8_JINJA_GLOBALS_H

#include "runtime.h"

/* Index of the global `name` in the table (-1 if none): a JV_FUNC value
 * holds it. */
int jj_global_find(const char *name);
/* Call global number fn. */
int jj_global_call(jctx *c, const jnode *at, int fn, const jargs *a, jv *out);

#endif

/*
 * filters.h - Jinja filters (x|name(args)) and tests (x is name(args)),
 * each a {name, fn} table in filters.c.  The parser checks names with
 * jj_has_filter/jj_has_test and the evaluator calls jj_filter/jj_test: one
 * table answers both, so a name the parser accepts always has a function.
 */
#ifndef W8_JINJA_FILTERS_H
#define W8_JINJA_FILTERS_H

#include "runtime.h"

/* A filter: x|name(a).  `name` is the table entry's name, for functions
 * that serve several names (first/last, upper/lower...).  Returns 0 with
 * *out set (a new reference), or -1 after jj_error. */
typedef int jj_filter_fn(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out);
/* A test: x is name(a).  Returns 1 true / 0 false / -1 error. */
typedef int jj_test_fn(jctx *c, const jnode *at, const char *name, jv x, const jargs *a);

int jj_filter(jctx *c, const jnode *at, const char *name, jv x, const jargs *a, jv *out);
int jj_has_filter(const char *name);
/* Returns 1 true / 0 false / -1 error. */
int jj_test(jctx *c, const jnode *at, const char *name, jv x, const jargs *a);
int jj_has_test(const char *name);

#endif

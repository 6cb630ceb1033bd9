/*
 * methods.h - methods of str, dict, list and loop objects: one {name, fn}
 * table per type in methods.c, used both to call obj.name(args) and to
 * resolve obj.name to a bound method.
 */
#ifndef W8_JINJA_METHODS_H
#define W8_JINJA_METHODS_H

#include "runtime.h"

/* obj.name(args) for str/dict/list/loop objects.  Returns 1 when handled,
 * 0 when obj has no such method, -1 on error. */
int jj_method(jctx *c, const jnode *at, jv obj, const char *name, const jargs *a, jv *out);
/* The static name of obj's method `name`, or NULL: Python's getattr finds
 * methods before dict keys, so `schema.items` is the method, not the key. */
const char *jj_method_name(jv obj, const char *name);

#endif

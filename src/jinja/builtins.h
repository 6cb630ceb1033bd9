/*
 * builtins.h - helpers shared by the builtin tables (filters.c, methods.c,
 * globals.c), in builtins.c.
 */
#ifndef W8_JINJA_BUILTINS_H
#define W8_JINJA_BUILTINS_H

#include "runtime.h"

/* ---- arguments of a call: positional index `pos` or keyword `kw` */

/* The argument, or NULL when absent (borrowed). */
const jv *jb_arg(const jargs *a, int pos, const char *kw);
int jb_arg_bool(const jargs *a, int pos, const char *kw, int def);
/* Error "fn: what" at `at`; returns -1. */
int jb_bad_arg(jctx *c, const jnode *at, const char *fn, const char *what);
/* *out is NULL when absent or None; other non-strings are an error. */
int jb_arg_str(jctx *c, const jnode *at, const jargs *a, int pos, const char *kw, const char *fn,
                   const jv_str **out);
/* *out is def when absent or None; other non-integers are an error. */
int jb_arg_int(jctx *c, const jnode *at, const jargs *a, int pos, const char *kw, const char *fn,
                   long long def, long long *out);
/* str(x) as a new string value. */
jv jb_to_str(jv x);

/* ---- strings, with CPython's results */

typedef enum { CASE_UPPER, CASE_LOWER, CASE_TITLE_JINJA, CASE_TITLE_PY, CASE_CAPITALIZE } case_mode;

/* Unicode letter / letter or number (str.isalpha, str.isalnum). */
int jb_is_alpha(uint32_t cp);
int jb_is_alnum(uint32_t cp);
/* upper(), lower(), title() (Jinja's or Python's), capitalize(). */
jv jb_change_case(const jv_str *s, case_mode mode);
/* Every cased character is upper (lower) case, and there is one
 * (str.isupper / str.islower, the upper / lower tests). */
int jb_str_all(const jv_str *s, int upper);
/* Start of the code point that ends at byte i, not before byte lo. */
size_t jb_prev_cp(const char *s, size_t lo, size_t i);
/* str.strip/lstrip/rstrip(chars); chars NULL for whitespace. */
jv jb_strip(const jv_str *s, const jv_str *chars, int left, int right);
const char *jb_find_bytes(const char *h, size_t hn, const char *n, size_t nn);
/* str.replace(old, new, count) and str.split/rsplit(sep, maxsplit). */
int jb_replace(jctx *c, const jnode *at, const jv_str *s, const jv_str *old, const jv_str *new, long long count,
                   jv *out);
int jb_split(jctx *c, const jnode *at, const jv_str *s, const jv_str *sep, long long maxsplit, int from_right,
                 jv *out);
/* Byte range of code points [start, end) given Python-style optional indices. */
void jb_cp_range(const jv_str *s, const jv *start, const jv *end, size_t *b, size_t *e);
/* Code point index of a byte offset. */
long long jb_cp_index(const jv_str *s, size_t byte);
/* Python's `fmt % args`: the % operator and |format. */
int jj_percent_format(jctx *c, const jnode *at, const jv_str *fmt, jv args, jv *out);

/* ---- dicts */

/* d.items() / d|items: a list of (key, value) tuples. */
int jb_items(jctx *c, const jnode *at, jv x, jv *out);

#endif

/*
 * runtime.h - the state of one render and the services that the evaluator
 * and the builtins share (runtime.c): work and size limits, output, item
 * access, slicing, iteration.
 */
#ifndef W8_JINJA_RUNTIME_H
#define W8_JINJA_RUNTIME_H

#include "core.h"

typedef struct jscope {
    struct jscope *parent;
    jv_dict *vars;
} jscope;

typedef struct jctx {
    const char *src;
    jscope *root;     /* the context variables and top-level sets */
    jscope *scope;    /* innermost scope now */
    w8_buf *out;        /* where output goes now (macro calls and block sets swap it) */
    size_t iters;     /* loop iterations so far (W8_JINJA_MAX_ITERS) */
    int depth;        /* evaluation nesting */
    int macro_depth;  /* macro call nesting */
    int loop_depth;
    jv_dict **nss;    /* every namespace created, to break cycles at the end */
    size_t nns, cap_nss;
} jctx;

/* Evaluation nesting allowed (expressions, statements and macro calls
 * together); keeps the C stack small whatever the template. */
#define JJ_MAX_EVAL_DEPTH (W8_JINJA_MAX_DEPTH * 10)
/* range() longer than this is refused, like Jinja2's sandbox (MAX_RANGE). */
#define JJ_MAX_RANGE 100000

/* Write to the current output, with the size cap. */
int jj_emit(jctx *c, const struct jnode *at, const char *s, size_t n);
/* A buffer whose growth stops at W8_JINJA_MAX_OUTPUT; jj_buf_done() turns it
 * into a string value or an error naming `at`. */
w8_buf jj_buf(void);
int jj_buf_done(jctx *c, const struct jnode *at, w8_buf *b, jv *out);
/* Error for using an undefined value (names the variable when known). */
int jj_undef_error(jctx *c, const struct jnode *at, jv u);
/* The iteration limit in force: W8_JINJA_MAX_ITERS.  Only tests change it
 * (to reach the limit quickly under sanitizers); not for concurrent use. */
extern long jj_iter_limit;
/* Count one unit of work against W8_JINJA_MAX_ITERS. */
int jj_tick(jctx *c, const jnode *at);
/* Count `units` of work at once.  Operations that are linear in a value's
 * size (copying, searching, comparing) charge one unit per JJ_WORK_UNIT
 * bytes or elements (jj_cost), so a loop that repeats them on big values
 * stops at the same limit instead of running for hours. */
int jj_charge(jctx *c, const jnode *at, size_t units);
/* Items of an iterable as a list (a new reference): list items, dict keys,
 * string characters (charged per character), nothing for undefined; any
 * other type is an error at `at`.  Shared by for-loops and filters. */
int jj_iterate(jctx *c, const jnode *at, jv v, jv_list **out);
#define JJ_WORK_UNIT 1024
size_t jj_cost(jv v);
/* Refuse strings/lists beyond W8_JINJA_MAX_OUTPUT. */
int jj_check_size(jctx *c, const jnode *at, size_t n);
void jj_track_ns(jctx *c, jv_dict *ns);

/* Python-style slicing of str/list; missing bounds are JV_NONE. */
int jj_slice(jctx *c, const jnode *at, jv obj, jv start, jv stop, jv step, jv *out);
/* obj[key] / obj.attr: JV_UNDEF when missing (with a hint for messages). */
int jj_getitem(jctx *c, const jnode *at, jv obj, jv key, jv *out);

/* The arguments of a call to a builtin (filters.c, methods.c, globals.c).
 * Arguments are borrowed; a builtin's *out owns a reference. */
typedef struct {
    jv *args; /* positional */
    int nargs;
    jv *kwv;  /* keyword values */
    const char **kwn;
    int nkw;
} jargs;

#endif

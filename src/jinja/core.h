/*
 * core.h - the base of the Jinja2 interpreter behind chat_template.h: values,
 * their output to a w8_buf, UTF-8 helpers, the arena, syntax tree nodes and
 * error reporting.  core.c depends on no other file of the interpreter.
 *
 * The interpreter, bottom to top (each file uses only those above it):
 *   core.c       values with Python semantics (str(), repr(), ==, <, truth,
 *                json.dumps), their conversion from jansson, the arena and
 *                jj_error
 *   lex.c        template text -> tokens, with Jinja2's whitespace rules
 *                (trim_blocks, lstrip_blocks, "-"/"+" modifiers) exactly as
 *                transformers configures them
 *   runtime.c    the render context: limits and work accounting, output,
 *                item access, slicing, iteration
 *   builtins.c   what filters and methods share: argument access, string
 *                helpers, Python's `%` formatting, dict items
 *   filters.c    the filter and test tables
 *   methods.c    the str/dict/list/loop method tables
 *   globals.c    the global function table (range, namespace, ...)
 *   parse.c      tokens -> syntax tree (Jinja2's grammar and precedence);
 *                filter and test names are checked against the tables
 *   eval.c       tree walk: statements, expressions, scopes, macro calls
 *
 * Values are small structs passed by value; strings, lists, dicts and the
 * other heap parts are reference counted.  The syntax tree lives in one
 * arena owned by the parsed template and is only read while rendering: its
 * strings are immortal (jv_ref/jv_free leave their count alone), so one
 * parse may be rendered by several threads at once.  A render owns
 * everything it creates, and every
 * namespace() is also remembered by the render so that reference cycles
 * through namespaces ({% set ns.self = ns %}) are broken before freeing.
 *
 * Errors: functions return -1 (or a NULL/false result) after calling
 * jj_error(), which records "template:LINE:COL: message" via w8_seterr.
 */
#ifndef W8_JINJA_CORE_H
#define W8_JINJA_CORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../buf.h"
#include "jinja_limits.h"

/* ------------------------------------------------------------------ values */

typedef enum {
    JV_UNDEF, /* Jinja's Undefined: falsy, prints "", iterates as empty */
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST, /* also tuples (jv_list.tuple) */
    JV_DICT, /* insertion ordered */
    JV_NS,   /* namespace(): a dict with reference semantics, attributes settable */
    JV_MACRO,
    JV_FUNC, /* a global function (range, namespace, ...) */
    JV_LOOP, /* the `loop` object of a for loop */
    JV_METHOD /* a bound method, e.g. the value of `d.items` without a call */
} jv_type;

typedef struct jv_str {
    int rc;     /* reference count; JV_IMMORTAL (the tree's constants): never changed */
    int markup; /* Jinja's Markup ("x"|safe): `+` HTML-escapes plain strings joined to it */
    size_t len; /* bytes, not counting the NUL */
    char s[];   /* UTF-8, NUL-terminated */
} jv_str;

struct jv;
typedef struct jv_list {
    int rc;
    int tuple; /* repr as (a, b) */
    int depth; /* 1 + deepest element (see jv_depth) */
    size_t n, cap;
    struct jv *items;
} jv_list;

typedef struct jv_dict {
    int rc;
    int depth;
    size_t n, cap;
    struct jv *keys, *vals;
} jv_dict;

struct jnode;
typedef struct jv_macro {
    int rc;
    const struct jnode *def; /* N_MACRO node, or the N_CALLBLOCK for `caller` */
    /* Closure: the scopes (innermost first, the top level excluded) where the
     * macro was defined, shared by reference so a call sees their values at
     * call time, as Python closures do.  Scopes are emptied when they end,
     * which also breaks the macro <-> scope reference cycle. */
    struct jv_dict **closure;
    int nclosure;
} jv_macro;

typedef struct jv_loop {
    int rc;
    struct jv_list *items; /* the (filtered) sequence being iterated (ref) */
    size_t i;              /* current index0 */
    int depth0;
} jv_loop;

struct jv_method;

typedef struct jv {
    jv_type t;
    union {
        int b;
        long long i;
        double f;
        jv_str *s;
        jv_list *l;
        jv_dict *d; /* JV_DICT and JV_NS */
        jv_macro *m;
        jv_loop *lp;
        struct jv_method *me;
        int fn; /* JV_FUNC: index into the globals table */
        const struct jnode *why; /* JV_UNDEF: the expression that produced it, or NULL */
    } u;
} jv;

typedef struct jv_method {
    int rc;
    jv self;          /* the object (reference) */
    const char *name; /* static method name */
} jv_method;

#define JV_IMMORTAL (1 << 29)

static inline jv jv_undef(const struct jnode *why) { jv v = {JV_UNDEF, {.why = why}}; return v; }
static inline jv jv_none(void) { jv v = {JV_NONE, {.i = 0}}; return v; }
static inline jv jv_bool(int b) { jv v = {JV_BOOL, {.b = !!b}}; return v; }
static inline jv jv_int(long long i) { jv v = {JV_INT, {.i = i}}; return v; }
static inline jv jv_float(double f) { jv v = {JV_FLOAT, {.f = f}}; return v; }

jv jv_ref(jv v);     /* returns v with one more reference */
void jv_free(jv v);  /* drops one reference */
void jv_dict_clear(jv_dict *d); /* drops every entry, keeps the storage */

/* Strings: the result owns one reference.  Sizes are checked by the caller
 * (jj_check_size) where templates can make them grow. */
jv jv_str_n(const char *s, size_t len);
jv jv_str_c(const char *s);
/* s as Markup (takes the reference); HTML escaping as markupsafe does it. */
jv jv_markup(jv s);
jv_list *jv_list_new(size_t cap);
void jv_list_push(jv_list *l, jv v); /* takes the reference */
jv jv_list_val(jv_list *l);          /* wraps (takes the reference) */
jv_dict *jv_dict_new(void);
/* Set key -> val, replacing an equal key; takes both references. */
void jv_dict_set(jv_dict *d, jv key, jv val);
/* Borrowed lookup, NULL when absent. */
jv *jv_dict_get(const jv_dict *d, jv key);
jv jv_dict_val(jv_dict *d); /* wraps (takes the reference) */

/* How deeply a value nests (0 for scalars and namespaces, which are the
 * only mutable containers and never recursed into).  Recursive helpers
 * (free, repr, ==, json) are safe because sets refuse values deeper than
 * JJ_MAX_VALUE_DEPTH and one expression can add at most JJ_MAX_EVAL_DEPTH. */
int jv_depth(jv v);
#define JJ_MAX_VALUE_DEPTH 1000

int jv_truthy(jv v);
int jv_is_num(jv v); /* bool, int, float (Python numbers) */
double jv_num(jv v);
int jv_equal(jv a, jv b);
/* Python ordering: -1/0/1, or -2 when the types cannot be ordered. */
int jv_compare(jv a, jv b);
const char *jv_type_name(jv v); /* Python's name: 'str', 'int', 'dict' ... */

/* Output goes to the library's growable buffer (../buf.h); its limit bounds
 * a render's output. */
jv jv_str_take(w8_buf *b); /* hands the bytes to a string value; b is reset */
void jv_html_escape(w8_buf *b, const char *s, size_t n);

/* Python str(v) / repr(v) appended to b. */
void jv_write_str(w8_buf *b, jv v);
void jv_write_repr(w8_buf *b, jv v);
/* Python repr of a float ("1.0", "1e+16", "0.30000000000000004"). */
void jv_fmt_float(double f, char out[40]);
/* json.dumps(v, ensure_ascii=False, indent=indent, separators=..., sort_keys=...):
 * indent NULL for none; item_sep/key_sep NULL for Python's defaults.
 * Returns -1 (with jj error text in *why) on a value JSON cannot hold. */
int jv_write_json(w8_buf *b, jv v, const char *indent, const char *item_sep, const char *key_sep,
                  int sort_keys, int level, const char **why);

/* jansson -> value (copies). */
jv jv_from_json(const json_t *j);

/* UTF-8 helpers. */
size_t ju_len(const char *s, size_t n);                      /* code points */
size_t ju_decode(const char *s, size_t n, uint32_t *cp);     /* bytes used (>=1) */
void ju_encode(w8_buf *b, uint32_t cp);
int ju_isspace(uint32_t cp);                                 /* Python str.isspace */

/* ------------------------------------------------------------------ arena */

/* Bump allocator for everything that lives as long as the parsed template. */
typedef struct jarena_block jarena_block;
typedef struct {
    jarena_block *head;
} jarena;
void *jarena_alloc(jarena *a, size_t n); /* zeroed */
char *jarena_strndup(jarena *a, const char *s, size_t n);
void jarena_free(jarena *a);

/* ------------------------------------------------------------- syntax tree */

typedef enum {
    /* expressions */
    N_CONST, N_NAME, N_LIST, N_TUPLE, N_DICT, N_GETATTR, N_GETITEM, N_SLICE, N_CALL,
    N_KWARG, N_FILTER, N_TEST, N_NOT, N_NEG, N_POS, N_BINOP, N_AND, N_OR, N_COMPARE,
    N_COND,
    /* statements */
    N_BODY, N_TEXT, N_OUTPUT, N_IF, N_FOR, N_SET, N_NSATTR, N_MACRO, N_PARAM, N_CALLBLOCK,
    N_FILTERBLOCK, N_BREAK, N_CONTINUE, N_WITH, N_GENERATION
} jnode_kind;

/* N_MACRO op bits: the body mentions varargs / kwargs. */
#define MACRO_VARARGS 1
#define MACRO_KWARGS 2

typedef struct jnode {
    jnode_kind kind;
    int op;       /* operator token for BINOP/COMPARE ('+', '/', 'F' for //, ...) */
    uint32_t pos; /* where it starts, for error messages */
    struct jnode *a, *b, *c, *d; /* children; meaning per kind (see parse.c) */
    struct jnode *kids;          /* first of a list linked through `next` */
    struct jnode *next;
    const char *name; /* names, attributes, filter/test names, text of N_TEXT */
    size_t len;
    jv val; /* N_CONST value; N_NAME/N_PARAM/N_KWARG: the name as an immortal string */
} jnode;

/* Line and column (in code points, 1-based) of byte offset pos of src. */
void jj_linecol(const char *src, uint32_t pos, int *line, int *col);
/* Record "template:LINE:COL: message" for position pos of src. Returns -1. */
int jj_error(const char *src, uint32_t pos, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif

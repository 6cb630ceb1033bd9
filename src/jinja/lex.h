/*
 * lex.h - template text -> tokens (lex.c).
 */
#ifndef W8_JINJA_LEX_H
#define W8_JINJA_LEX_H

#include "core.h"

typedef enum {
    TK_EOF,
    TK_DATA,        /* text outside tags (str, len) */
    TK_VAR_BEGIN,   /* {{ */
    TK_VAR_END,     /* }} */
    TK_BLOCK_BEGIN, /* {% */
    TK_BLOCK_END,   /* %} */
    TK_NAME,
    TK_STRING, /* decoded */
    TK_INT,
    TK_FLOAT,
    TK_OP /* str holds the operator text, e.g. "//" */
} jtok_type;

typedef struct {
    jtok_type t;
    uint32_t pos; /* byte offset in the (newline-normalized) source */
    const char *str; /* arena text for DATA/NAME/STRING/OP */
    size_t len;
    long long i;
    double f;
} jtok;

/* Tokenize (tokens in the arena, *ntok set); src is the normalized source. */
int jj_lex(const char *src, size_t len, jarena *a, jtok **toks, size_t *ntok);

#endif

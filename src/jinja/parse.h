/*
 * parse.h - template text -> syntax tree (parse.c).
 */
#ifndef W8_JINJA_PARSE_H
#define W8_JINJA_PARSE_H

#include "core.h"

typedef struct {
    const char *src; /* normalized source (owned by the arena) */
    size_t len;
    jarena arena;
    jnode *root; /* N_BODY */
} jtemplate;

/* Parse template text.  Returns 0 and fills t (free with jj_template_free). */
int jj_parse(const char *text, size_t len, jtemplate *t);
void jj_template_free(jtemplate *t);

#endif

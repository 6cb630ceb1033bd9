/*
 * parse.c - tokens -> syntax tree, after jinja2/parser.py.
 *
 * Expression precedence, loosest first (as in Jinja2):
 *   a if c else b  >  or  >  and  >  not  >  ==,!=,<,<=,>,>=,in,not in  >
 *   +,-  >  ~  >  *,/,//,%  >  **  >  unary -,+  >  filters |f, tests `is`,
 *   calls  >  .attr, [index], [a:b:c]  >  literals and names.
 * `**` is left associative and `is` binds tighter than arithmetic, both as
 * in Jinja2.  Unknown filters and tests are errors at parse time, like
 * Jinja2's compile step, so a bad template fails before rendering anything.
 *
 * Node field use per kind:
 *   N_GETATTR a.name   N_GETITEM a[b] (b may be N_SLICE a:b:c)
 *   N_CALL a(kids; N_KWARG name=a)   N_FILTER a|name(kids)   N_TEST a is name(kids)
 *   N_BINOP/N_AND/N_OR a op b   N_COMPARE a then kids (op, a) ...
 *   N_COND a if b else c   N_IF if a: b else c   N_FOR a in b if c: kids else d
 *   N_SET a = b | a = kids-body piped through c   N_NSATTR a.val
 *   N_MACRO name(kids N_PARAM name=a): b   N_CALLBLOCK call a with caller(kids): b
 *   N_FILTERBLOCK b piped through a   N_WITH kids N_KWARG: b   N_GENERATION b
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"
#include "filters.h"
#include "lex.h"
#include "parse.h"

/* ------------------------------------------------------------ parser */

typedef struct {
    const char *src;
    jtok *t;
    size_t n, i;
    jarena *a;
    int depth;      /* expression / block nesting */
    int loops;      /* for loops around the current statement (break/continue) */
    int macro_uses; /* MACRO_VARARGS / MACRO_KWARGS seen in the macro body being parsed */
} parser;

static jtok *cur(parser *p) { return &p->t[p->i]; }
static jtok *peek(parser *p, size_t k) { return &p->t[p->i + k < p->n ? p->i + k : p->n - 1]; }
static void advance(parser *p) {
    if (p->i + 1 < p->n) p->i++;
}

static int is_op(jtok *t, const char *op) { return t->t == TK_OP && !strcmp(t->str, op); }
static int is_name(jtok *t, const char *name) {
    return t->t == TK_NAME && t->len == strlen(name) && !memcmp(t->str, name, t->len);
}

static const char *describe(jtok *t, char buf[64]) {
    switch (t->t) {
    case TK_EOF: return "end of template";
    case TK_DATA: return "template text";
    case TK_VAR_BEGIN: return "'{{'";
    case TK_VAR_END: return "'}}'";
    case TK_BLOCK_BEGIN: return "'{%'";
    case TK_BLOCK_END: return "'%}'";
    case TK_STRING: return "string";
    case TK_INT: return "integer";
    case TK_FLOAT: return "float";
    default: snprintf(buf, 64, "'%.*s'", (int)(t->len > 40 ? 40 : t->len), t->str); return buf;
    }
}

static int fail_unexpected(parser *p, const char *expected) {
    char buf[64];
    if (expected) return jj_error(p->src, cur(p)->pos, "unexpected %s, expected %s", describe(cur(p), buf), expected);
    return jj_error(p->src, cur(p)->pos, "unexpected %s", describe(cur(p), buf));
}

static int expect_op(parser *p, const char *op) {
    if (!is_op(cur(p), op)) {
        char want[16];
        snprintf(want, sizeof want, "'%s'", op);
        return fail_unexpected(p, want);
    }
    advance(p);
    return 0;
}

static int expect_block_end(parser *p) {
    if (cur(p)->t != TK_BLOCK_END) return fail_unexpected(p, "'%}'");
    advance(p);
    return 0;
}

static jnode *node(parser *p, jnode_kind k, uint32_t pos) {
    jnode *n = jarena_alloc(p->a, sizeof *n);
    n->kind = k;
    n->pos = pos;
    return n;
}

/* An immortal string value in the arena (never freed by jv_free). */
static jv arena_str(parser *p, const char *s, size_t len) {
    jv_str *js = jarena_alloc(p->a, sizeof *js + len + 1);
    js->rc = JV_IMMORTAL;
    js->len = len;
    memcpy(js->s, s, len);
    js->s[len] = 0;
    jv v = {JV_STR, {.s = js}};
    return v;
}

static void set_name(parser *p, jnode *n, jtok *t) {
    n->val = arena_str(p, t->str, t->len);
    n->name = n->val.u.s->s;
    n->len = t->len;
}

/* Appends to a `next`-linked list through a tail pointer. */
#define APPEND(tailp, n) (*(tailp) = (n), (tailp) = &(n)->next)

static int enter(parser *p) {
    if (++p->depth > W8_JINJA_MAX_DEPTH) {
        jj_error(p->src, cur(p)->pos, "template nested too deeply (more than %d levels)", W8_JINJA_MAX_DEPTH);
        return -1;
    }
    return 0;
}
static void leave(parser *p) { p->depth--; }

static jnode *parse_expression(parser *p, int with_condexpr);
static jnode *parse_or(parser *p);
static jnode *parse_unary(parser *p, int with_filter);
static jnode *parse_primary(parser *p);
static jnode *parse_postfix(parser *p, jnode *n);
static jnode *parse_filter_expr(parser *p, jnode *n);

/* A tuple if there is a comma, else the single expression. `end_name` is a
 * keyword that also ends it ("in" for for-targets). */
static jnode *parse_tuple(parser *p, int with_condexpr, int explicit_parens) {
    uint32_t pos = cur(p)->pos;
    jnode *first = NULL, **tail = &first;
    int count = 0, is_tuple = 0;
    for (;;) {
        if (count && expect_op(p, ",")) return NULL;
        jtok *t = cur(p);
        if (t->t == TK_VAR_END || t->t == TK_BLOCK_END || is_op(t, ")") || (count && is_name(t, "recursive")))
            break;
        jnode *e = parse_expression(p, with_condexpr);
        if (!e) return NULL;
        APPEND(tail, e);
        count++;
        if (is_op(cur(p), ",")) is_tuple = 1;
        else break;
    }
    if (!is_tuple) {
        if (count) return first;
        if (!explicit_parens) {
            fail_unexpected(p, "an expression");
            return NULL;
        }
    }
    jnode *n = node(p, N_TUPLE, pos);
    n->kids = first;
    return n;
}

/* Arguments of a call / filter / test after '(' up to and including ')'. */
static int parse_call_args(parser *p, jnode **kids) {
    jnode **tail = kids;
    if (expect_op(p, "(")) return -1;
    int kw_seen = 0;
    while (!is_op(cur(p), ")")) {
        if (*kids && expect_op(p, ",")) return -1;
        if (is_op(cur(p), ")")) break; /* trailing comma */
        if (is_op(cur(p), "*") || is_op(cur(p), "**"))
            return jj_error(p->src, cur(p)->pos, "*args and **kwargs in calls are not supported");
        if (cur(p)->t == TK_NAME && is_op(peek(p, 1), "=")) {
            jnode *k = node(p, N_KWARG, cur(p)->pos);
            set_name(p, k, cur(p));
            advance(p);
            advance(p);
            if (!(k->a = parse_expression(p, 1))) return -1;
            APPEND(tail, k);
            kw_seen = 1;
        } else {
            if (kw_seen) return jj_error(p->src, cur(p)->pos, "positional argument follows keyword argument");
            jnode *e = parse_expression(p, 1);
            if (!e) return -1;
            APPEND(tail, e);
        }
    }
    advance(p);
    return 0;
}

static jnode *parse_primary(parser *p) {
    jtok *t = cur(p);
    jnode *n;
    if (t->t == TK_NAME) {
        if (is_name(t, "true") || is_name(t, "True") || is_name(t, "false") || is_name(t, "False")) {
            n = node(p, N_CONST, t->pos);
            n->val = jv_bool(t->str[0] == 't' || t->str[0] == 'T');
        } else if (is_name(t, "none") || is_name(t, "None")) {
            n = node(p, N_CONST, t->pos);
            n->val = jv_none();
        } else {
            n = node(p, N_NAME, t->pos);
            set_name(p, n, t);
            if (!strcmp(n->name, "varargs")) p->macro_uses |= MACRO_VARARGS;
            if (!strcmp(n->name, "kwargs")) p->macro_uses |= MACRO_KWARGS;
        }
        advance(p);
        return n;
    }
    if (t->t == TK_STRING) {
        /* adjacent literals concatenate, as in Python */
        w8_buf b = {0};
        uint32_t pos = t->pos;
        while (cur(p)->t == TK_STRING) {
            w8_buf_put(&b, cur(p)->str, cur(p)->len);
            advance(p);
        }
        n = node(p, N_CONST, pos);
        n->val = arena_str(p, b.s ? b.s : "", b.len);
        w8_buf_free(&b);
        return n;
    }
    if (t->t == TK_INT || t->t == TK_FLOAT) {
        n = node(p, N_CONST, t->pos);
        n->val = t->t == TK_INT ? jv_int(t->i) : jv_float(t->f);
        advance(p);
        return n;
    }
    if (is_op(t, "(")) {
        advance(p);
        n = parse_tuple(p, 1, 1);
        if (!n || expect_op(p, ")")) return NULL;
        return n;
    }
    if (is_op(t, "[") || is_op(t, "{")) {
        int dict = t->str[0] == '{';
        const char *close = dict ? "}" : "]";
        n = node(p, dict ? N_DICT : N_LIST, t->pos);
        jnode **tail = &n->kids;
        advance(p);
        while (!is_op(cur(p), close)) {
            if (n->kids && expect_op(p, ",")) return NULL;
            if (is_op(cur(p), close)) break;
            jnode *e = parse_expression(p, 1);
            if (!e) return NULL;
            APPEND(tail, e);
            if (dict) {
                if (expect_op(p, ":")) return NULL;
                if (!(e = parse_expression(p, 1))) return NULL;
                APPEND(tail, e);
            }
        }
        advance(p);
        return n;
    }
    fail_unexpected(p, NULL);
    return NULL;
}

/* Inside [ ]: an expression or a slice a:b:c with optional parts. */
static jnode *parse_subscribed(parser *p) {
    uint32_t pos = cur(p)->pos;
    jnode *start = NULL, *stop = NULL, *step = NULL;
    if (!is_op(cur(p), ":")) {
        start = parse_expression(p, 1);
        if (!start || !is_op(cur(p), ":")) return start;
    }
    advance(p); /* first ':' */
    if (!is_op(cur(p), "]") && !is_op(cur(p), ",") && !is_op(cur(p), ":"))
        if (!(stop = parse_expression(p, 1))) return NULL;
    if (is_op(cur(p), ":")) {
        advance(p);
        if (!is_op(cur(p), "]") && !is_op(cur(p), ","))
            if (!(step = parse_expression(p, 1))) return NULL;
    }
    jnode *n = node(p, N_SLICE, pos);
    n->a = start;
    n->b = stop;
    n->c = step;
    return n;
}

static jnode *parse_postfix(parser *p, jnode *n) {
    for (;;) {
        jtok *t = cur(p);
        if (is_op(t, ".")) {
            advance(p);
            jtok *a = cur(p);
            jnode *g;
            if (a->t == TK_NAME) {
                g = node(p, N_GETATTR, a->pos);
                set_name(p, g, a);
            } else if (a->t == TK_INT) {
                g = node(p, N_GETITEM, a->pos);
                g->b = node(p, N_CONST, a->pos);
                g->b->val = jv_int(a->i);
            } else {
                fail_unexpected(p, "an attribute name");
                return NULL;
            }
            advance(p);
            g->a = n;
            n = g;
        } else if (is_op(t, "[")) {
            advance(p);
            jnode *g = node(p, N_GETITEM, t->pos), *first = NULL, **tail = &first;
            int count = 0;
            while (!is_op(cur(p), "]")) {
                if (count && expect_op(p, ",")) return NULL;
                if (is_op(cur(p), "]")) break;
                jnode *e = parse_subscribed(p);
                if (!e) return NULL;
                APPEND(tail, e);
                count++;
            }
            if (!count) {
                fail_unexpected(p, "an index");
                return NULL;
            }
            advance(p);
            g->a = n;
            if (count == 1) {
                g->b = first;
            } else {
                g->b = node(p, N_TUPLE, first->pos);
                g->b->kids = first;
            }
            n = g;
        } else if (is_op(t, "(")) {
            jnode *c = node(p, N_CALL, n->pos);
            c->a = n;
            if (parse_call_args(p, &c->kids)) return NULL;
            n = c;
        } else {
            return n;
        }
    }
}

/* Dotted filter/test name ("a.b" is allowed by Jinja2). */
static const char *dotted_name(parser *p, jnode *n) {
    if (cur(p)->t != TK_NAME) {
        fail_unexpected(p, "a name");
        return NULL;
    }
    set_name(p, n, cur(p));
    advance(p);
    return n->name;
}

static jnode *parse_filter(parser *p, jnode *operand) {
    advance(p); /* '|' */
    jnode *f = node(p, N_FILTER, cur(p)->pos);
    f->a = operand;
    if (!dotted_name(p, f)) return NULL;
    if (!jj_has_filter(f->name)) {
        jj_error(p->src, f->pos, "no filter named '%s'", f->name);
        return NULL;
    }
    if (is_op(cur(p), "(") && parse_call_args(p, &f->kids)) return NULL;
    return f;
}

static jnode *parse_test(parser *p, jnode *operand) {
    uint32_t pos = cur(p)->pos;
    advance(p); /* is */
    int negated = 0;
    if (is_name(cur(p), "not")) {
        negated = 1;
        advance(p);
    }
    jnode *t = node(p, N_TEST, cur(p)->pos);
    t->a = operand;
    if (!dotted_name(p, t)) return NULL;
    if (!jj_has_test(t->name)) {
        jj_error(p->src, t->pos, "no test named '%s'", t->name);
        return NULL;
    }
    jtok *c = cur(p);
    if (is_op(c, "(")) {
        if (parse_call_args(p, &t->kids)) return NULL;
    } else if ((c->t == TK_NAME || c->t == TK_STRING || c->t == TK_INT || c->t == TK_FLOAT || is_op(c, "(") ||
                is_op(c, "[") || is_op(c, "{")) &&
               !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
        /* `x is divisibleby 3`: one argument without parentheses */
        if (is_name(c, "is")) {
            jj_error(p->src, c->pos, "you cannot chain multiple tests with 'is'");
            return NULL;
        }
        jnode *arg = parse_primary(p);
        if (!arg || !(arg = parse_postfix(p, arg))) return NULL;
        t->kids = arg;
    }
    if (negated) {
        jnode *n = node(p, N_NOT, pos);
        n->a = t;
        return n;
    }
    return t;
}

static jnode *parse_filter_expr(parser *p, jnode *n) {
    while (n) {
        jtok *t = cur(p);
        if (is_op(t, "|")) n = parse_filter(p, n);
        else if (is_name(t, "is")) n = parse_test(p, n);
        else if (is_op(t, "(")) n = parse_postfix(p, n);
        else break;
    }
    return n;
}

static jnode *parse_unary(parser *p, int with_filter) {
    jtok *t = cur(p);
    jnode *n;
    if (is_op(t, "-") || is_op(t, "+")) {
        advance(p);
        if (enter(p)) return NULL;
        jnode *x = parse_unary(p, 0);
        leave(p);
        if (!x) return NULL;
        n = node(p, t->str[0] == '-' ? N_NEG : N_POS, t->pos);
        n->a = x;
    } else {
        n = parse_primary(p);
    }
    if (n) n = parse_postfix(p, n);
    if (n && with_filter) n = parse_filter_expr(p, n);
    return n;
}

static jnode *binop(parser *p, int op, jnode *a, jnode *b, uint32_t pos) {
    jnode *n = node(p, N_BINOP, pos);
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static jnode *parse_pow(parser *p) {
    jnode *n = parse_unary(p, 1);
    while (n && is_op(cur(p), "**")) {
        uint32_t pos = cur(p)->pos;
        advance(p);
        jnode *r = parse_unary(p, 1);
        n = r ? binop(p, 'P', n, r, pos) : NULL;
    }
    return n;
}

static jnode *parse_math2(parser *p) {
    jnode *n = parse_pow(p);
    while (n) {
        jtok *t = cur(p);
        int op = is_op(t, "*") ? '*' : is_op(t, "/") ? '/' : is_op(t, "//") ? 'F' : is_op(t, "%") ? '%' : 0;
        if (!op) break;
        advance(p);
        jnode *r = parse_pow(p);
        n = r ? binop(p, op, n, r, t->pos) : NULL;
    }
    return n;
}

static jnode *parse_concat(parser *p) {
    jnode *n = parse_math2(p);
    while (n && is_op(cur(p), "~")) {
        uint32_t pos = cur(p)->pos;
        advance(p);
        jnode *r = parse_math2(p);
        n = r ? binop(p, '~', n, r, pos) : NULL;
    }
    return n;
}

static jnode *parse_math1(parser *p) {
    jnode *n = parse_concat(p);
    while (n && (is_op(cur(p), "+") || is_op(cur(p), "-"))) {
        jtok *t = cur(p);
        advance(p);
        jnode *r = parse_concat(p);
        n = r ? binop(p, t->str[0], n, r, t->pos) : NULL;
    }
    return n;
}

static jnode *parse_compare(parser *p) {
    jnode *n = parse_math1(p);
    if (!n) return NULL;
    jnode *cmp = NULL, **tail = NULL;
    for (;;) {
        jtok *t = cur(p);
        int op = 0;
        if (is_op(t, "==")) op = 'E';
        else if (is_op(t, "!=")) op = 'N';
        else if (is_op(t, "<")) op = '<';
        else if (is_op(t, "<=")) op = 'L';
        else if (is_op(t, ">")) op = '>';
        else if (is_op(t, ">=")) op = 'G';
        else if (is_name(t, "in")) op = 'I';
        else if (is_name(t, "not") && is_name(peek(p, 1), "in")) {
            op = 'O';
            advance(p);
        }
        if (!op) break;
        advance(p);
        jnode *r = parse_math1(p);
        if (!r) return NULL;
        if (!cmp) {
            cmp = node(p, N_COMPARE, n->pos);
            cmp->a = n;
            tail = &cmp->kids;
        }
        jnode *w = node(p, N_COMPARE, t->pos);
        w->op = op;
        w->a = r;
        APPEND(tail, w);
    }
    return cmp ? cmp : n;
}

static jnode *parse_not(parser *p) {
    if (is_name(cur(p), "not")) {
        jnode *n = node(p, N_NOT, cur(p)->pos);
        advance(p);
        if (enter(p)) return NULL;
        n->a = parse_not(p);
        leave(p);
        return n->a ? n : NULL;
    }
    return parse_compare(p);
}

static jnode *parse_and(parser *p) {
    jnode *n = parse_not(p);
    while (n && is_name(cur(p), "and")) {
        jnode *x = node(p, N_AND, cur(p)->pos);
        advance(p);
        x->a = n;
        x->b = parse_not(p);
        n = x->b ? x : NULL;
    }
    return n;
}

static jnode *parse_or(parser *p) {
    jnode *n = parse_and(p);
    while (n && is_name(cur(p), "or")) {
        jnode *x = node(p, N_OR, cur(p)->pos);
        advance(p);
        x->a = n;
        x->b = parse_and(p);
        n = x->b ? x : NULL;
    }
    return n;
}

static jnode *parse_condexpr(parser *p) {
    jnode *n = parse_or(p);
    while (n && is_name(cur(p), "if")) {
        jnode *c = node(p, N_COND, cur(p)->pos);
        advance(p);
        c->a = n;
        if (!(c->b = parse_or(p))) return NULL;
        if (is_name(cur(p), "else")) {
            advance(p);
            if (enter(p)) return NULL;
            c->c = parse_condexpr(p);
            leave(p);
            if (!c->c) return NULL;
        }
        n = c;
    }
    return n;
}

static jnode *parse_expression(parser *p, int with_condexpr) {
    if (enter(p)) return NULL;
    jnode *n = with_condexpr ? parse_condexpr(p) : parse_or(p);
    leave(p);
    return n;
}

/* ------------------------------------------------------------ statements */

static jnode *parse_body(parser *p, const char *const *ends, const char *opener, uint32_t open_pos);

/* Parses a body that must end with one of `ends`; leaves the end name as
 * the current token (after "{%"). */
static jnode *sub_body(parser *p, const char *const *ends, const char *opener, uint32_t pos) {
    if (enter(p)) return NULL;
    jnode *b = parse_body(p, ends, opener, pos);
    leave(p);
    return b;
}

/* "endfoo %}" */
static int end_tag(parser *p) {
    advance(p);
    return expect_block_end(p);
}

static jnode *parse_assign_target(parser *p, int allow_ns) {
    jtok *t = cur(p);
    if (t->t != TK_NAME) {
        fail_unexpected(p, "a variable name");
        return NULL;
    }
    if (allow_ns && is_op(peek(p, 1), ".")) {
        jnode *n = node(p, N_NSATTR, t->pos);
        n->a = node(p, N_NAME, t->pos);
        set_name(p, n->a, t);
        advance(p);
        advance(p);
        if (cur(p)->t != TK_NAME) {
            fail_unexpected(p, "an attribute name");
            return NULL;
        }
        set_name(p, n, cur(p));
        advance(p);
        return n;
    }
    /* a, b  or  (a, b) */
    int paren = 0;
    if (is_op(t, "(")) {
        paren = 1;
        advance(p);
    }
    jnode *first = NULL, **tail = &first;
    int count = 0;
    for (;;) {
        if (cur(p)->t != TK_NAME) {
            fail_unexpected(p, "a variable name");
            return NULL;
        }
        jnode *n = node(p, N_NAME, cur(p)->pos);
        set_name(p, n, cur(p));
        advance(p);
        APPEND(tail, n);
        count++;
        if (!is_op(cur(p), ",")) break;
        advance(p);
    }
    if (paren && expect_op(p, ")")) return NULL;
    if (count == 1 && !paren) return first;
    jnode *tup = node(p, N_TUPLE, t->pos);
    tup->kids = first;
    return tup;
}

static jnode *parse_if(parser *p, uint32_t pos) {
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    jnode *n = node(p, N_IF, pos);
    advance(p); /* if / elif */
    if (!(n->a = parse_tuple(p, 1, 0)) || expect_block_end(p)) return NULL;
    if (!(n->b = sub_body(p, ends, "if", pos))) return NULL;
    jtok *t = cur(p);
    if (is_name(t, "elif")) {
        n->c = parse_if(p, t->pos);
        return n->c ? n : NULL;
    }
    if (is_name(t, "else")) {
        static const char *const endif[] = {"endif", NULL};
        advance(p);
        if (expect_block_end(p) || !(n->c = sub_body(p, endif, "if", pos))) return NULL;
    }
    return end_tag(p) ? NULL : n;
}

static jnode *parse_for(parser *p, uint32_t pos) {
    static const char *const ends[] = {"else", "endfor", NULL};
    static const char *const endfor[] = {"endfor", NULL};
    jnode *n = node(p, N_FOR, pos);
    advance(p);
    if (!(n->a = parse_assign_target(p, 0))) return NULL;
    if (!is_name(cur(p), "in")) {
        fail_unexpected(p, "'in'");
        return NULL;
    }
    advance(p);
    if (!(n->b = parse_tuple(p, 0, 0))) return NULL;
    if (is_name(cur(p), "if")) {
        advance(p);
        if (!(n->c = parse_expression(p, 1))) return NULL;
    }
    if (is_name(cur(p), "recursive")) {
        jj_error(p->src, cur(p)->pos, "recursive for loops are not supported");
        return NULL;
    }
    if (expect_block_end(p)) return NULL;
    p->loops++;
    n->kids = sub_body(p, ends, "for", pos);
    p->loops--;
    if (!n->kids) return NULL;
    if (is_name(cur(p), "else")) {
        advance(p);
        if (expect_block_end(p) || !(n->d = sub_body(p, endfor, "for", pos))) return NULL;
    }
    return end_tag(p) ? NULL : n;
}

/* The filters of a filter block or block set: `| f(x) | g`, with a NULL
 * operand at the bottom standing for the block's text. */
static jnode *parse_filter_chain(parser *p, int need_first_pipe) {
    jnode *n = NULL;
    if (!need_first_pipe) {
        /* {% filter upper | trim %}: the first filter has no '|' */
        jnode *f = node(p, N_FILTER, cur(p)->pos);
        if (!dotted_name(p, f)) return NULL;
        if (!jj_has_filter(f->name)) {
            jj_error(p->src, f->pos, "no filter named '%s'", f->name);
            return NULL;
        }
        if (is_op(cur(p), "(") && parse_call_args(p, &f->kids)) return NULL;
        n = f;
    }
    while (is_op(cur(p), "|")) {
        jnode *f = parse_filter(p, n);
        if (!f) return NULL;
        n = f;
    }
    return n;
}

static jnode *parse_set(parser *p, uint32_t pos) {
    static const char *const ends[] = {"endset", NULL};
    jnode *n = node(p, N_SET, pos);
    advance(p);
    if (!(n->a = parse_assign_target(p, 1))) return NULL;
    if (is_op(cur(p), "=")) {
        advance(p);
        if (!(n->b = parse_tuple(p, 1, 0)) || expect_block_end(p)) return NULL;
        return n;
    }
    if (n->a->kind != N_NAME && n->a->kind != N_NSATTR) {
        fail_unexpected(p, "'='");
        return NULL;
    }
    if (is_op(cur(p), "|") && !(n->c = parse_filter_chain(p, 1))) return NULL;
    if (expect_block_end(p)) return NULL;
    if (!(n->kids = sub_body(p, ends, "set", pos))) return NULL;
    return end_tag(p) ? NULL : n;
}

/* "(a, b=1, c='x')" of a macro or call block. */
static int parse_params(parser *p, jnode **params) {
    jnode **tail = params;
    if (expect_op(p, "(")) return -1;
    while (!is_op(cur(p), ")")) {
        if (*params && expect_op(p, ",")) return -1;
        if (cur(p)->t != TK_NAME) return fail_unexpected(p, "a parameter name");
        jnode *a = node(p, N_PARAM, cur(p)->pos);
        set_name(p, a, cur(p));
        advance(p);
        if (is_op(cur(p), "=")) {
            advance(p);
            if (!(a->a = parse_expression(p, 1))) return -1;
        }
        APPEND(tail, a);
    }
    advance(p);
    return 0;
}

static jnode *parse_macro(parser *p, uint32_t pos) {
    static const char *const ends[] = {"endmacro", NULL};
    jnode *n = node(p, N_MACRO, pos);
    advance(p);
    if (cur(p)->t != TK_NAME) {
        fail_unexpected(p, "a macro name");
        return NULL;
    }
    set_name(p, n, cur(p));
    advance(p);
    if (parse_params(p, &n->kids) || expect_block_end(p)) return NULL;
    int loops = p->loops, uses = p->macro_uses;
    p->loops = 0; /* break inside a macro cannot leave an outer loop */
    p->macro_uses = 0;
    n->b = sub_body(p, ends, "macro", pos);
    n->op = p->macro_uses; /* only then are varargs / kwargs built per call */
    p->loops = loops;
    p->macro_uses = uses | p->macro_uses;
    if (!n->b) return NULL;
    advance(p);
    if (cur(p)->t == TK_NAME) advance(p); /* {% endmacro name %} */
    return expect_block_end(p) ? NULL : n;
}

static jnode *parse_call_block(parser *p, uint32_t pos) {
    static const char *const ends[] = {"endcall", NULL};
    jnode *n = node(p, N_CALLBLOCK, pos);
    advance(p);
    if (is_op(cur(p), "(") && parse_params(p, &n->kids)) return NULL;
    if (!(n->a = parse_expression(p, 1))) return NULL;
    if (n->a->kind != N_CALL) {
        jj_error(p->src, n->a->pos, "expected a call after 'call'");
        return NULL;
    }
    if (expect_block_end(p)) return NULL;
    int loops = p->loops;
    p->loops = 0;
    n->b = sub_body(p, ends, "call", pos);
    p->loops = loops;
    if (!n->b) return NULL;
    return end_tag(p) ? NULL : n;
}

static jnode *parse_statement(parser *p) {
    jtok *t = cur(p);
    uint32_t pos = t->pos;
    if (t->t != TK_NAME) {
        fail_unexpected(p, "a statement name");
        return NULL;
    }
    if (is_name(t, "if")) return parse_if(p, pos);
    if (is_name(t, "for")) return parse_for(p, pos);
    if (is_name(t, "set")) return parse_set(p, pos);
    if (is_name(t, "macro")) return parse_macro(p, pos);
    if (is_name(t, "call")) return parse_call_block(p, pos);
    if (is_name(t, "break") || is_name(t, "continue")) {
        if (!p->loops) {
            jj_error(p->src, pos, "'%.*s' outside of a loop", (int)t->len, t->str);
            return NULL;
        }
        jnode *n = node(p, t->str[0] == 'b' ? N_BREAK : N_CONTINUE, pos);
        advance(p);
        return expect_block_end(p) ? NULL : n;
    }
    if (is_name(t, "filter")) {
        static const char *const ends[] = {"endfilter", NULL};
        jnode *n = node(p, N_FILTERBLOCK, pos);
        advance(p);
        if (!(n->a = parse_filter_chain(p, 0)) || expect_block_end(p)) return NULL;
        if (!(n->b = sub_body(p, ends, "filter", pos))) return NULL;
        return end_tag(p) ? NULL : n;
    }
    if (is_name(t, "with")) {
        static const char *const ends[] = {"endwith", NULL};
        jnode *n = node(p, N_WITH, pos), **tail = &n->kids;
        advance(p);
        while (cur(p)->t != TK_BLOCK_END) {
            if (n->kids && expect_op(p, ",")) return NULL;
            if (cur(p)->t != TK_NAME) {
                fail_unexpected(p, "a variable name");
                return NULL;
            }
            jnode *k = node(p, N_KWARG, cur(p)->pos);
            set_name(p, k, cur(p));
            advance(p);
            if (expect_op(p, "=") || !(k->a = parse_expression(p, 1))) return NULL;
            APPEND(tail, k);
        }
        advance(p);
        if (!(n->b = sub_body(p, ends, "with", pos))) return NULL;
        return end_tag(p) ? NULL : n;
    }
    if (is_name(t, "generation")) {
        /* transformers' AppendExtension: the body renders as usual */
        static const char *const ends[] = {"endgeneration", NULL};
        jnode *n = node(p, N_GENERATION, pos);
        advance(p);
        if (expect_block_end(p) || !(n->b = sub_body(p, ends, "generation", pos))) return NULL;
        return end_tag(p) ? NULL : n;
    }
    jj_error(p->src, pos, "unknown tag '%.*s'", (int)t->len, t->str);
    return NULL;
}

static jnode *parse_body(parser *p, const char *const *ends, const char *opener, uint32_t open_pos) {
    jnode *body = node(p, N_BODY, cur(p)->pos), **tail = &body->kids;
    for (;;) {
        jtok *t = cur(p);
        if (t->t == TK_DATA) {
            jnode *n = node(p, N_TEXT, t->pos);
            n->name = t->str;
            n->len = t->len;
            APPEND(tail, n);
            advance(p);
        } else if (t->t == TK_VAR_BEGIN) {
            jnode *n = node(p, N_OUTPUT, t->pos);
            advance(p);
            if (!(n->a = parse_tuple(p, 1, 0))) return NULL;
            if (cur(p)->t != TK_VAR_END) {
                fail_unexpected(p, "'}}'");
                return NULL;
            }
            advance(p);
            APPEND(tail, n);
        } else if (t->t == TK_BLOCK_BEGIN) {
            advance(p);
            jtok *name = cur(p);
            for (int i = 0; ends && ends[i]; i++)
                if (is_name(name, ends[i])) return body;
            if (name->t == TK_NAME && name->len > 3 && !memcmp(name->str, "end", 3)) {
                if (ends) {
                    const char *end = ends[0];
                    for (int i = 0; ends[i]; i++)
                        if (!strncmp(ends[i], "end", 3)) end = ends[i];
                    int l, c;
                    jj_linecol(p->src, open_pos, &l, &c);
                    jj_error(p->src, name->pos, "unexpected '%.*s': expected '%s' to close the '%s' at %d:%d",
                             (int)name->len, name->str, end, opener, l, c);
                } else {
                    jj_error(p->src, name->pos, "unexpected '%.*s' (no block is open)", (int)name->len, name->str);
                }
                return NULL;
            }
            if ((is_name(name, "else") || is_name(name, "elif")) && !ends) {
                jj_error(p->src, name->pos, "unexpected '%.*s' (no block is open)", (int)name->len, name->str);
                return NULL;
            }
            jnode *s = parse_statement(p);
            if (!s) return NULL;
            APPEND(tail, s);
        } else if (t->t == TK_EOF) {
            if (ends) {
                const char *end = ends[0];
                for (int i = 0; ends[i]; i++)
                    if (!strncmp(ends[i], "end", 3)) end = ends[i];
                jj_error(p->src, open_pos, "'%s' is never closed (expected '%s')", opener, end);
                return NULL;
            }
            return body;
        } else {
            fail_unexpected(p, NULL);
            return NULL;
        }
    }
}

/* Newlines normalized to "\n" and one trailing newline dropped, as Jinja2
 * does with keep_trailing_newline=False. */
static char *normalize(jarena *a, const char *text, size_t len, size_t *out_len) {
    char *s = jarena_alloc(a, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && text[i + 1] == '\n') i++;
        } else {
            s[n++] = text[i];
        }
    }
    if (n && s[n - 1] == '\n') n--;
    s[n] = 0;
    *out_len = n;
    return s;
}

int jj_parse(const char *text, size_t len, jtemplate *t) {
    memset(t, 0, sizeof *t);
    if (len > (size_t)UINT32_MAX / 2) return w8_seterr("template: template too large (%zu bytes)", len);
    if (memchr(text, 0, len)) {
        const char *z = memchr(text, 0, len);
        return w8_seterr("template: NUL byte at offset %zu", (size_t)(z - text));
    }
    t->src = normalize(&t->arena, text, len, &t->len);
    jtok *toks;
    size_t ntok;
    if (jj_lex(t->src, t->len, &t->arena, &toks, &ntok)) {
        jarena_free(&t->arena);
        return -1;
    }
    parser p = {t->src, toks, ntok, 0, &t->arena, 0, 0, 0};
    t->root = parse_body(&p, NULL, NULL, 0);
    free(toks);
    if (!t->root) {
        jarena_free(&t->arena);
        return -1;
    }
    return 0;
}

void jj_template_free(jtemplate *t) { jarena_free(&t->arena); }

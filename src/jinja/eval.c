/*
 * eval.c - render a parsed template: statements, expressions, scopes.
 *
 * Scoping follows Jinja2: `for` bodies and macro calls get a fresh scope
 * (each loop iteration starts clean, so a `set` inside a loop is invisible
 * after it - the reason templates use namespace()), `if` does not.  Macros
 * see their arguments and then the top-level variables, looked up at call
 * time.
 *
 * Limits that keep hostile templates harmless, all reported with the
 * position of the expression that hit them:
 *   - output and every string/list value stop at W8_JINJA_MAX_OUTPUT;
 *   - loop iterations, filter element visits and macro calls together stop
 *     at W8_JINJA_MAX_ITERS;
 *   - macro calls nest at most W8_JINJA_MAX_DEPTH deep, and evaluation as a
 *     whole JJ_MAX_EVAL_DEPTH deep (a long a+b+c+... chain is a deep tree);
 *   - range() is limited to JJ_MAX_RANGE items, as in Jinja2's sandbox.
 *
 * exec_*() return 0, -1 on error, or BRK / CONT for loop control.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"
#include "builtins.h"
#include "eval.h"
#include "filters.h"
#include "globals.h"
#include "methods.h"

enum { BRK = 1, CONT = 2 };

#define NOINLINE __attribute__((noinline))

/* ------------------------------------------------------------ helpers */

static int enter(jctx *c, const jnode *at) {
    if (++c->depth > JJ_MAX_EVAL_DEPTH) {
        c->depth--;
        return jj_error(c->src, at->pos, "template evaluation nested too deeply (limit %d)", JJ_MAX_EVAL_DEPTH);
    }
    return 0;
}

static jv *lookup(jctx *c, jv name) {
    for (jscope *s = c->scope; s; s = s->parent) {
        jv *v = jv_dict_get(s->vars, name);
        if (v) return v;
    }
    return NULL;
}

static void assign(jctx *c, jv name, jv val) { jv_dict_set(c->scope->vars, jv_ref(name), val); }

/* ------------------------------------------------------------ operators */

static int type_error(jctx *c, const jnode *at, const char *op, jv a, jv b) {
    if (a.t == JV_UNDEF) return jj_undef_error(c, at, a);
    if (b.t == JV_UNDEF) return jj_undef_error(c, at, b);
    if (op[0] == '+' && a.t == JV_STR)
        return jj_error(c->src, at->pos, "can only concatenate str (not \"%s\") to str", jv_type_name(b));
    return jj_error(c->src, at->pos, "unsupported operand type(s) for %s: '%s' and '%s'", op, jv_type_name(a),
                    jv_type_name(b));
}

static long long as_ll(jv v) { return v.t == JV_INT ? v.u.i : v.u.b; }

static int repeat(jctx *c, const jnode *at, jv seq, long long k, jv *out) {
    if (k < 0) k = 0;
    if (seq.t == JV_STR) {
        size_t len = seq.u.s->len;
        if (len && (unsigned long long)k > W8_JINJA_MAX_OUTPUT / len) return jj_check_size(c, at, (size_t)-1);
        /* copy by doubling: 'x' * 8000000 is a few memcpy calls, not millions */
        size_t total = len * (size_t)k, have = len < total ? len : total;
        char *p = w8_xmalloc(total + 1);
        if (have) memcpy(p, seq.u.s->s, have);
        while (have < total) {
            size_t n = have < total - have ? have : total - have;
            memcpy(p + have, p, n);
            have += n;
        }
        w8_buf b = {.s = p, .len = total, .cap = total + 1};
        p[total] = 0;
        return jj_buf_done(c, at, &b, out);
    }
    size_t n = seq.u.l->n;
    if (n && (unsigned long long)k > W8_JINJA_MAX_OUTPUT / n) return jj_check_size(c, at, (size_t)-1);
    jv_list *l = jv_list_new(n * (size_t)k);
    l->tuple = seq.u.l->tuple;
    for (long long i = 0; i < k; i++)
        for (size_t j = 0; j < n; j++) jv_list_push(l, jv_ref(seq.u.l->items[j]));
    *out = jv_list_val(l);
    return 0;
}

static NOINLINE int arith(jctx *c, const jnode *at, int op, jv a, jv b, jv *out) {
    if (jj_charge(c, at, jj_cost(a) + jj_cost(b))) return -1;
    const char *name = op == 'F' ? "//" : op == 'P' ? "**" : op == '+' ? "+" : op == '-' ? "-" : op == '*' ? "*"
                     : op == '/' ? "/" : "%";
    int ints = (a.t == JV_INT || a.t == JV_BOOL) && (b.t == JV_INT || b.t == JV_BOOL);
    if (jv_is_num(a) && jv_is_num(b)) {
        double x = jv_num(a), y = jv_num(b);
        long long i = as_ll(a), j = as_ll(b), r;
        switch (op) {
        case '+':
            if (!ints) break;
            if (__builtin_add_overflow(i, j, &r)) goto overflow;
            *out = jv_int(r);
            return 0;
        case '-':
            if (!ints) break;
            if (__builtin_sub_overflow(i, j, &r)) goto overflow;
            *out = jv_int(r);
            return 0;
        case '*':
            if (!ints) break;
            if (__builtin_mul_overflow(i, j, &r)) goto overflow;
            *out = jv_int(r);
            return 0;
        case '/':
            if (y == 0) return jj_error(c->src, at->pos, "division by zero");
            *out = jv_float(x / y);
            return 0;
        case 'F':
        case '%':
            if (y == 0) return jj_error(c->src, at->pos, "integer division or modulo by zero");
            if (ints) {
                if (i == INT64_MIN && j == -1) goto overflow;
                long long q = i / j, m = i % j;
                if (m != 0 && ((m < 0) != (j < 0))) {
                    q--;
                    m += j;
                }
                *out = jv_int(op == 'F' ? q : m);
                return 0;
            }
            if (op == 'F') {
                *out = jv_float(floor(x / y));
            } else {
                double m = fmod(x, y);
                if (m != 0 && ((m < 0) != (y < 0))) m += y;
                *out = jv_float(m);
            }
            return 0;
        case 'P':
            if (ints && j >= 0) {
                long long acc = 1, base = i;
                for (long long e = j; e > 0; e >>= 1) {
                    if ((e & 1) && __builtin_mul_overflow(acc, base, &acc)) goto overflow;
                    if (e > 1 && __builtin_mul_overflow(base, base, &base)) goto overflow;
                }
                *out = jv_int(acc);
                return 0;
            }
            if (x == 0 && y < 0) return jj_error(c->src, at->pos, "0.0 cannot be raised to a negative power");
            *out = jv_float(pow(x, y));
            return 0;
        }
        switch (op) {
        case '+': *out = jv_float(x + y); return 0;
        case '-': *out = jv_float(x - y); return 0;
        case '*': *out = jv_float(x * y); return 0;
        }
    }
    if (op == '+' && a.t == JV_STR && b.t == JV_STR) {
        /* Markup + str escapes the str (markupsafe), even with autoescape off */
        int mk = a.u.s->markup || b.u.s->markup;
        w8_buf t = jj_buf();
        if (mk && !a.u.s->markup) jv_html_escape(&t, a.u.s->s, a.u.s->len);
        else w8_buf_put(&t, a.u.s->s, a.u.s->len);
        if (mk && !b.u.s->markup) jv_html_escape(&t, b.u.s->s, b.u.s->len);
        else w8_buf_put(&t, b.u.s->s, b.u.s->len);
        if (jj_buf_done(c, at, &t, out)) return -1;
        if (mk) *out = jv_markup(*out);
        return 0;
    }
    if (op == '+' && a.t == JV_LIST && b.t == JV_LIST && a.u.l->tuple == b.u.l->tuple) {
        if (jj_check_size(c, at, a.u.l->n + b.u.l->n)) return -1;
        jv_list *l = jv_list_new(a.u.l->n + b.u.l->n);
        l->tuple = a.u.l->tuple;
        for (size_t k = 0; k < a.u.l->n; k++) jv_list_push(l, jv_ref(a.u.l->items[k]));
        for (size_t k = 0; k < b.u.l->n; k++) jv_list_push(l, jv_ref(b.u.l->items[k]));
        *out = jv_list_val(l);
        return 0;
    }
    if (op == '*' && (a.t == JV_STR || a.t == JV_LIST) && (b.t == JV_INT || b.t == JV_BOOL))
        return repeat(c, at, a, as_ll(b), out);
    if (op == '*' && (b.t == JV_STR || b.t == JV_LIST) && (a.t == JV_INT || a.t == JV_BOOL))
        return repeat(c, at, b, as_ll(a), out);
    if (op == '%' && a.t == JV_STR) return jj_percent_format(c, at, a.u.s, b, out);
    return type_error(c, at, name, a, b);
overflow:
    return jj_error(c->src, at->pos, "integer overflow in '%s'", name);
}

static int contains(jctx *c, const jnode *at, jv hay, jv needle, int *res) {
    switch (hay.t) {
    case JV_STR:
        if (needle.t != JV_STR)
            return jj_error(c->src, at->pos, "'in <string>' requires string as left operand, not %s",
                            jv_type_name(needle));
        *res = needle.u.s->len == 0 || memmem(hay.u.s->s, hay.u.s->len, needle.u.s->s, needle.u.s->len) != NULL;
        return 0;
    case JV_LIST:
        *res = 0;
        for (size_t i = 0; i < hay.u.l->n && !*res; i++) *res = jv_equal(hay.u.l->items[i], needle);
        return 0;
    case JV_DICT:
    case JV_NS: *res = jv_dict_get(hay.u.d, needle) != NULL; return 0;
    case JV_UNDEF: *res = 0; return 0;
    default: return jj_error(c->src, at->pos, "argument of type '%s' is not iterable", jv_type_name(hay));
    }
}

static NOINLINE int compare(jctx *c, const jnode *at, int op, jv a, jv b, int *res) {
    if (jj_charge(c, at, jj_cost(a) + jj_cost(b))) return -1;
    if (op == 'E' || op == 'N') {
        *res = jv_equal(a, b) == (op == 'E');
        return 0;
    }
    if (op == 'I' || op == 'O') {
        if (contains(c, at, b, a, res)) return -1;
        if (op == 'O') *res = !*res;
        return 0;
    }
    if (a.t == JV_UNDEF) return jj_undef_error(c, at, a);
    if (b.t == JV_UNDEF) return jj_undef_error(c, at, b);
    int k = jv_compare(a, b);
    const char *name = op == '<' ? "<" : op == 'L' ? "<=" : op == '>' ? ">" : ">=";
    if (k == -2)
        return jj_error(c->src, at->pos, "'%s' not supported between instances of '%s' and '%s'", name,
                        jv_type_name(a), jv_type_name(b));
    if (jv_is_num(a) && jv_is_num(b) && (isnan(jv_num(a)) || isnan(jv_num(b)))) {
        *res = 0;
        return 0;
    }
    *res = op == '<' ? k < 0 : op == 'L' ? k <= 0 : op == '>' ? k > 0 : k >= 0;
    return 0;
}

/* ------------------------------------------------------------ calls */

static int exec_body(jctx *c, const jnode *body);

/* Evaluated arguments of a call node (positional and keyword). */
typedef struct {
    jargs a;
    int cap;
} argv_t;

static void args_free(argv_t *v) {
    for (int i = 0; i < v->a.nargs; i++) jv_free(v->a.args[i]);
    for (int i = 0; i < v->a.nkw; i++) jv_free(v->a.kwv[i]);
    free(v->a.args);
    free(v->a.kwv);
    free(v->a.kwn);
}

static int eval_args(jctx *c, const jnode *kids, argv_t *v) {
    int n = 0;
    memset(v, 0, sizeof *v);
    for (const jnode *k = kids; k; k = k->next) n++;
    if (!n) return 0;
    v->a.args = w8_xmalloc((size_t)n * sizeof(jv));
    v->a.kwv = w8_xmalloc((size_t)n * sizeof(jv));
    v->a.kwn = w8_xmalloc((size_t)n * sizeof(char *));
    for (const jnode *k = kids; k; k = k->next) {
        jv x;
        if (jj_eval(c, k->kind == N_KWARG ? k->a : k, &x)) {
            args_free(v);
            return -1;
        }
        if (k->kind == N_KWARG) {
            v->a.kwn[v->a.nkw] = k->name;
            v->a.kwv[v->a.nkw++] = x;
        } else {
            v->a.args[v->a.nargs++] = x;
        }
    }
    return 0;
}

/* Drops a scope's variables.  Emptying first matters: a macro defined in
 * the scope holds the scope's dict (its closure) and sits in it. */
static void scope_end(jv_dict *vars) {
    jv_dict_clear(vars);
    jv_free(jv_dict_val(vars));
}

/* A macro value for `def` closing over the current scopes. */
static jv make_macro(jctx *c, const jnode *def) {
    jv_macro *m = w8_xcalloc(1, sizeof *m);
    m->rc = 1;
    m->def = def;
    for (jscope *s = c->scope; s && s != c->root; s = s->parent) m->nclosure++;
    if (m->nclosure) m->closure = w8_xmalloc((size_t)m->nclosure * sizeof *m->closure);
    int i = 0;
    for (jscope *s = c->scope; s && s != c->root; s = s->parent) {
        s->vars->rc++;
        m->closure[i++] = s->vars;
    }
    jv v = {JV_MACRO, {.m = m}};
    return v;
}

static NOINLINE int call_macro(jctx *c, const jnode *at, jv_macro *m, const jargs *a, jv caller, jv *out) {
    const jnode *def = m->def;
    int is_caller = def->kind == N_CALLBLOCK;
    const char *name = is_caller ? "caller" : def->name;
    if (c->macro_depth >= W8_JINJA_MAX_DEPTH)
        return jj_error(c->src, at->pos, "macro calls nested too deeply (limit %d): '%s'", W8_JINJA_MAX_DEPTH, name);
    /* a call (scope, arguments, output buffer) weighs like ten iterations */
    if (jj_charge(c, at, 10)) return -1;
    /* the macro's scope sits on its closure, then the top-level variables */
    jscope *chain = m->nclosure ? w8_xmalloc((size_t)m->nclosure * sizeof *chain) : NULL, *parent = c->root;
    for (int i = m->nclosure - 1; i >= 0; i--) {
        chain[i].parent = parent;
        chain[i].vars = m->closure[i];
        parent = &chain[i];
    }
    jscope sc = {parent, jv_dict_new()};
    jscope *saved_scope = c->scope;
    w8_buf *saved_out = c->out;
    w8_buf buf = jj_buf();
    int rc = 0, np = 0;
    c->scope = &sc;
    for (const jnode *p = def->kids; p; p = p->next, np++) {
        jv v = jv_undef(NULL);
        int found = 0;
        if (np < a->nargs) {
            v = jv_ref(a->args[np]);
            found = 1;
        }
        for (int k = 0; k < a->nkw; k++)
            if (!strcmp(a->kwn[k], p->name)) {
                if (found) {
                    jv_free(v);
                    rc = jj_error(c->src, at->pos, "macro '%s' got multiple values for argument '%s'", name, p->name);
                    goto done;
                }
                v = jv_ref(a->kwv[k]);
                found = 1;
            }
        if (!found && p->a && jj_eval(c, p->a, &v)) {
            rc = -1;
            goto done;
        }
        assign(c, p->val, v);
    }
    /* extra arguments go to varargs / kwargs, built only for macros that use
     * them (Jinja2 refuses extra arguments otherwise; we ignore them) */
    if (def->op & MACRO_VARARGS) {
        jv_list *varargs = jv_list_new(0);
        varargs->tuple = 1;
        for (int k = np; k < a->nargs; k++) jv_list_push(varargs, jv_ref(a->args[k]));
        jv_dict_set(sc.vars, jv_str_c("varargs"), jv_list_val(varargs));
    }
    if (def->op & MACRO_KWARGS) {
        jv_dict *kwargs = jv_dict_new();
        for (int k = 0; k < a->nkw; k++) {
            int is_param = 0;
            for (const jnode *p = def->kids; p; p = p->next) is_param |= !strcmp(a->kwn[k], p->name);
            if (!is_param) jv_dict_set(kwargs, jv_str_c(a->kwn[k]), jv_ref(a->kwv[k]));
        }
        jv_dict_set(sc.vars, jv_str_c("kwargs"), jv_dict_val(kwargs));
    }
    if (caller.t == JV_MACRO) jv_dict_set(sc.vars, jv_str_c("caller"), jv_ref(caller));
    c->out = &buf;
    c->macro_depth++;
    rc = exec_body(c, def->b);
    c->macro_depth--;
    if (rc > 0) rc = 0;
done:
    c->scope = saved_scope;
    c->out = saved_out;
    scope_end(sc.vars);
    free(chain);
    if (rc) {
        w8_buf_free(&buf);
        return -1;
    }
    return jj_buf_done(c, at, &buf, out);
}

int jj_call_value(jctx *c, const jnode *at, jv fn, jv *args, int nargs, jv *kwv, const char **kwn, int nkw,
                  jv *out) {
    jargs a = {args, nargs, kwv, kwn, nkw};
    switch (fn.t) {
    case JV_MACRO: return call_macro(c, at, fn.u.m, &a, jv_undef(NULL), out);
    case JV_FUNC: return jj_global_call(c, at, fn.u.fn, &a, out);
    case JV_METHOD: {
        int h = jj_method(c, at, fn.u.me->self, fn.u.me->name, &a, out);
        return h < 0 ? -1 : h == 0 ? jj_error(c->src, at->pos, "'%s' is not callable here", fn.u.me->name) : 0;
    }
    case JV_UNDEF: return jj_undef_error(c, at, fn);
    default: return jj_error(c->src, at->pos, "'%s' object is not callable", jv_type_name(fn));
    }
}

static NOINLINE int eval_call(jctx *c, const jnode *n, jv caller, jv *out) {
    argv_t av;
    jv fn = jv_undef(NULL), obj = jv_undef(NULL);
    const jnode *callee = n->a;
    int rc = -1;
    if (callee->kind == N_GETATTR) {
        /* obj.method(...): str/dict/list methods are dispatched by name */
        if (jj_eval(c, callee->a, &obj)) return -1;
        if (obj.t == JV_UNDEF) {
            rc = jj_undef_error(c, callee, obj);
            goto out;
        }
        if (eval_args(c, n->kids, &av)) goto out;
        /* methods first (Python's getattr), so d.items() works even when
         * the dict has an "items" key, as JSON schemas do */
        if (obj.t != JV_NS) {
            int h = jj_method(c, n, obj, callee->name, &av.a, out);
            if (h != 0) {
                rc = h < 0 ? -1 : 0;
                goto out_args;
            }
        }
        if (jj_getitem(c, callee, obj, callee->val, &fn)) goto out_args;
        if (fn.t == JV_UNDEF) {
            rc = jj_error(c->src, callee->pos, "'%s' object has no attribute '%s'", jv_type_name(obj), callee->name);
            goto out_args;
        }
    } else {
        if (jj_eval(c, callee, &fn)) return -1;
        if (eval_args(c, n->kids, &av)) goto out;
    }
    if (fn.t == JV_MACRO) {
        jargs a = av.a;
        rc = call_macro(c, n, fn.u.m, &a, caller, out);
    } else {
        rc = jj_call_value(c, n, fn, av.a.args, av.a.nargs, av.a.kwv, av.a.kwn, av.a.nkw, out);
    }
out_args:
    args_free(&av);
out:
    jv_free(fn);
    jv_free(obj);
    return rc;
}

/* ------------------------------------------------------------ expressions */

static NOINLINE int eval_filter(jctx *c, const jnode *n, jv *input, jv *out) {
    jv x;
    if (!n->a) x = jv_ref(*input);
    else if (n->a->kind == N_FILTER && input) {
        if (eval_filter(c, n->a, input, &x)) return -1;
    } else if (jj_eval(c, n->a, &x)) return -1;
    argv_t av;
    if (eval_args(c, n->kids, &av)) {
        jv_free(x);
        return -1;
    }
    int rc = jj_filter(c, n, n->name, x, &av.a, out);
    args_free(&av);
    jv_free(x);
    return rc;
}

static NOINLINE int eval_seq(jctx *c, const jnode *n, jv *out) {
    jv_list *l = jv_list_new(0);
    l->tuple = n->kind == N_TUPLE;
    for (const jnode *k = n->kids; k; k = k->next) {
        jv v;
        if (jj_eval(c, k, &v)) {
            jv_free(jv_list_val(l));
            return -1;
        }
        jv_list_push(l, v);
    }
    *out = jv_list_val(l);
    return 0;
}

static NOINLINE int eval_dict(jctx *c, const jnode *n, jv *out) {
    jv_dict *d = jv_dict_new();
    for (const jnode *k = n->kids; k; k = k->next->next) {
        jv key, val;
        if (jj_eval(c, k, &key)) goto fail;
        if (jj_eval(c, k->next, &val)) {
            jv_free(key);
            goto fail;
        }
        jv_dict_set(d, key, val);
    }
    *out = jv_dict_val(d);
    return 0;
fail:
    jv_free(jv_dict_val(d));
    return -1;
}

static NOINLINE int eval_compare(jctx *c, const jnode *n, jv *out) {
    jv left;
    if (jj_eval(c, n->a, &left)) return -1;
    int res = 1;
    for (const jnode *w = n->kids; w && res; w = w->next) {
        jv right;
        if (jj_eval(c, w->a, &right)) {
            jv_free(left);
            return -1;
        }
        int rc = compare(c, w, w->op, left, right, &res);
        jv_free(left);
        left = right;
        if (rc) {
            jv_free(left);
            return -1;
        }
    }
    jv_free(left);
    *out = jv_bool(res);
    return 0;
}

/* The cases of eval_inner() that need locals live in their own functions
 * (never inlined) so that the recursive path keeps small stack frames: a
 * template can nest JJ_MAX_EVAL_DEPTH deep. */
static NOINLINE int eval_getattr(jctx *c, const jnode *n, jv *out) {
    jv a;
    if (jj_eval(c, n->a, &a)) return -1;
    /* Python's getattr finds methods first: `d.items` is the method */
    const char *m = jj_method_name(a, n->name);
    if (m) {
        jv_method *me = w8_xmalloc(sizeof *me);
        me->rc = 1;
        me->self = a;
        me->name = m;
        out->t = JV_METHOD;
        out->u.me = me;
        return 0;
    }
    int rc = jj_getitem(c, n, a, n->val, out);
    if (!rc && out->t == JV_UNDEF) out->u.why = n;
    jv_free(a);
    return rc;
}

static NOINLINE int eval_getitem(jctx *c, const jnode *n, jv *out) {
    jv a, b;
    int rc = 0;
    if (jj_eval(c, n->a, &a)) return -1;
    if (n->b->kind == N_SLICE) {
        jv s[3] = {jv_none(), jv_none(), jv_none()};
        const jnode *parts[3] = {n->b->a, n->b->b, n->b->c};
        for (int k = 0; k < 3 && !rc; k++)
            if (parts[k]) rc = jj_eval(c, parts[k], &s[k]);
        if (!rc) rc = jj_slice(c, n, a, s[0], s[1], s[2], out);
        for (int k = 0; k < 3; k++) jv_free(s[k]);
        jv_free(a);
        return rc;
    }
    if (jj_eval(c, n->b, &b)) {
        jv_free(a);
        return -1;
    }
    rc = jj_getitem(c, n, a, b, out);
    jv_free(a);
    jv_free(b);
    return rc;
}

static NOINLINE int eval_test(jctx *c, const jnode *n, jv *out) {
    jv a;
    if (jj_eval(c, n->a, &a)) return -1;
    argv_t av;
    if (eval_args(c, n->kids, &av)) {
        jv_free(a);
        return -1;
    }
    int r = jj_test(c, n, n->name, a, &av.a);
    args_free(&av);
    jv_free(a);
    if (r < 0) return -1;
    *out = jv_bool(r);
    return 0;
}

static NOINLINE int eval_unary(jctx *c, const jnode *n, jv *out) {
    jv a;
    if (jj_eval(c, n->a, &a)) return -1;
    if (!jv_is_num(a)) {
        int rc = a.t == JV_UNDEF ? jj_undef_error(c, n, a)
                                 : jj_error(c->src, n->pos, "bad operand type for unary %c: '%s'",
                                            n->kind == N_NEG ? '-' : '+', jv_type_name(a));
        jv_free(a);
        return rc;
    }
    if (n->kind == N_POS) *out = a.t == JV_BOOL ? jv_int(a.u.b) : a;
    else if (a.t == JV_FLOAT) *out = jv_float(-a.u.f);
    else if (as_ll(a) == INT64_MIN) return jj_error(c->src, n->pos, "integer overflow in '-'");
    else *out = jv_int(-as_ll(a));
    return 0;
}

static NOINLINE int eval_binop(jctx *c, const jnode *n, jv *out) {
    jv a, b;
    int rc;
    if (jj_eval(c, n->a, &a)) return -1;
    if (jj_eval(c, n->b, &b)) {
        jv_free(a);
        return -1;
    }
    if (n->op == '~') {
        w8_buf t = jj_buf();
        jv_write_str(&t, a);
        jv_write_str(&t, b);
        rc = jj_buf_done(c, n, &t, out);
    } else {
        rc = arith(c, n, n->op, a, b, out);
    }
    jv_free(a);
    jv_free(b);
    return rc;
}

static int eval_inner(jctx *c, const jnode *n, jv *out) {
    jv a;
    int rc;
    switch (n->kind) {
    case N_CONST: *out = jv_ref(n->val); return 0;
    case N_NAME: {
        jv *v = lookup(c, n->val);
        if (v) {
            *out = jv_ref(*v);
            return 0;
        }
        int g = jj_global_find(n->name);
        if (g >= 0) {
            jv f = {JV_FUNC, {.fn = g}};
            *out = f;
        } else {
            *out = jv_undef(n);
        }
        return 0;
    }
    case N_LIST:
    case N_TUPLE: return eval_seq(c, n, out);
    case N_DICT: return eval_dict(c, n, out);
    case N_GETATTR: return eval_getattr(c, n, out);
    case N_GETITEM: return eval_getitem(c, n, out);
    case N_CALL: return eval_call(c, n, jv_undef(NULL), out);
    case N_FILTER: return eval_filter(c, n, NULL, out);
    case N_TEST: return eval_test(c, n, out);
    case N_NOT:
        if (jj_eval(c, n->a, &a)) return -1;
        *out = jv_bool(!jv_truthy(a));
        jv_free(a);
        return 0;
    case N_NEG:
    case N_POS: return eval_unary(c, n, out);
    case N_BINOP: return eval_binop(c, n, out);
    case N_AND:
    case N_OR:
        /* Python returns the deciding operand, not a bool */
        if (jj_eval(c, n->a, &a)) return -1;
        if (jv_truthy(a) == (n->kind == N_OR)) {
            *out = a;
            return 0;
        }
        jv_free(a);
        return jj_eval(c, n->b, out);
    case N_COMPARE: return eval_compare(c, n, out);
    case N_COND:
        if (jj_eval(c, n->b, &a)) return -1;
        rc = jv_truthy(a);
        jv_free(a);
        if (rc) return jj_eval(c, n->a, out);
        if (n->c) return jj_eval(c, n->c, out);
        *out = jv_undef(NULL);
        return 0;
    default: return jj_error(c->src, n->pos, "internal error: node %d is not an expression", (int)n->kind);
    }
}

int jj_eval(jctx *c, const jnode *n, jv *out) {
    if (enter(c, n)) return -1;
    int rc = eval_inner(c, n, out);
    c->depth--;
    return rc;
}

/* ------------------------------------------------------------ statements */

static int check_depth(jctx *c, const jnode *at, jv v) {
    if (jv_depth(v) > JJ_MAX_VALUE_DEPTH)
        return jj_error(c->src, at->pos, "value nested too deeply (limit %d)", JJ_MAX_VALUE_DEPTH);
    return 0;
}

/* Binds a for/set target: a name, or names unpacked from a sequence.
 * Takes the reference to v. */
static int bind(jctx *c, const jnode *target, jv v) {
    if (target->kind == N_NAME) {
        assign(c, target->val, v);
        return 0;
    }
    jv_list *l;
    if (jj_iterate(c, target, v, &l)) {
        jv_free(v);
        return -1;
    }
    jv_free(v);
    size_t n = 0;
    for (const jnode *k = target->kids; k; k = k->next) n++;
    int rc = 0;
    if (l->n != n) {
        rc = jj_error(c->src, target->pos, "%s values to unpack (expected %zu, got %zu)",
                      l->n > n ? "too many" : "not enough", n, l->n);
    } else {
        size_t i = 0;
        for (const jnode *k = target->kids; k; k = k->next) assign(c, k->val, jv_ref(l->items[i++]));
    }
    jv_free(jv_list_val(l));
    return rc;
}

static NOINLINE int exec_for(jctx *c, const jnode *n) {
    jv seq;
    jv_list *items, *kept;
    if (jj_eval(c, n->b, &seq)) return -1;
    int rc = jj_iterate(c, n->b, seq, &items);
    jv_free(seq);
    if (rc) return -1;
    jscope sc = {c->scope, jv_dict_new()};
    jscope *saved = c->scope;
    c->scope = &sc;
    /* `for x in xs if cond`: filter first, so loop.length and loop.last
     * count only the kept items */
    if (n->c) {
        kept = jv_list_new(0);
        for (size_t i = 0; i < items->n && !rc; i++) {
            jv t;
            if ((rc = jj_tick(c, n))) break;
            if ((rc = bind(c, n->a, jv_ref(items->items[i])))) break;
            if ((rc = jj_eval(c, n->c, &t))) break;
            if (jv_truthy(t)) jv_list_push(kept, jv_ref(items->items[i]));
            jv_free(t);
        }
        jv_free(jv_list_val(items));
        items = kept;
    }
    jv_loop *lp = w8_xcalloc(1, sizeof *lp);
    lp->rc = 1;
    lp->items = items;
    lp->depth0 = 0;
    jv loopv = {JV_LOOP, {.lp = lp}};
    jv loopname = jv_str_c("loop");
    for (size_t i = 0; i < items->n && !rc; i++) {
        if ((rc = jj_tick(c, n))) break;
        /* a fresh scope per iteration, as in Jinja2 (storage reused) */
        jv_dict_clear(sc.vars);
        lp->i = i;
        if ((rc = bind(c, n->a, jv_ref(items->items[i])))) break;
        jv_dict_set(sc.vars, jv_ref(loopname), jv_ref(loopv));
        rc = exec_body(c, n->kids);
        if (rc == CONT) rc = 0;
    }
    if (rc == BRK) rc = 0;
    c->scope = saved;
    int ran = items->n > 0;
    jv_free(loopname);
    jv_free(loopv);
    scope_end(sc.vars);
    if (!rc && !ran && n->d) rc = exec_body(c, n->d);
    return rc;
}

/* Renders a body into a string value (block set, filter block). */
static int capture(jctx *c, const jnode *body, const jnode *at, jv *out) {
    w8_buf buf = jj_buf(), *saved = c->out;
    c->out = &buf;
    int rc = exec_body(c, body);
    c->out = saved;
    if (rc < 0) {
        w8_buf_free(&buf);
        return -1;
    }
    return jj_buf_done(c, at, &buf, out);
}

static NOINLINE int exec_set(jctx *c, const jnode *n) {
    jv v;
    if (n->b) {
        if (jj_eval(c, n->b, &v)) return -1;
    } else {
        jv text;
        if (capture(c, n->kids, n, &text)) return -1;
        if (n->c) {
            int rc = eval_filter(c, n->c, &text, &v);
            jv_free(text);
            if (rc) return -1;
        } else {
            v = text;
        }
    }
    if (check_depth(c, n, v)) {
        jv_free(v);
        return -1;
    }
    if (n->a->kind == N_NSATTR) {
        jv *ns = lookup(c, n->a->a->val);
        if (!ns || ns->t != JV_NS) {
            jv_free(v);
            return jj_error(c->src, n->a->pos, "cannot assign attribute on non-namespace object '%s'", n->a->a->name);
        }
        jv_dict_set(ns->u.d, jv_ref(n->a->val), v);
        return 0;
    }
    return bind(c, n->a, v);
}

/* {% call(args) m(x) %}body{% endcall %}: m runs with `caller` bound to a
 * macro made of the body, which sees the variables visible here. */
static NOINLINE int exec_callblock(jctx *c, const jnode *n) {
    jv caller = make_macro(c, n), out;
    int rc = eval_call(c, n->a, caller, &out);
    jv_free(caller);
    if (rc) return -1;
    rc = jj_emit(c, n, out.u.s->s, out.u.s->len);
    jv_free(out);
    return rc;
}

static NOINLINE int exec_output(jctx *c, const jnode *n) {
    jv v;
    if (jj_eval(c, n->a, &v)) return -1;
    int rc;
    if (v.t == JV_STR) {
        rc = jj_emit(c, n, v.u.s->s, v.u.s->len);
    } else {
        w8_buf t = jj_buf();
        jv_write_str(&t, v);
        rc = t.over ? jj_error(c->src, n->pos, "output larger than %zu bytes", (size_t)W8_JINJA_MAX_OUTPUT)
                    : jj_emit(c, n, t.s ? t.s : "", t.len);
        w8_buf_free(&t);
    }
    jv_free(v);
    return rc;
}

static int exec_stmt(jctx *c, const jnode *n) {
    jv v;
    int rc;
    switch (n->kind) {
    case N_TEXT: return jj_emit(c, n, n->name, n->len);
    case N_OUTPUT: return exec_output(c, n);
    case N_IF:
        if (jj_eval(c, n->a, &v)) return -1;
        rc = jv_truthy(v);
        jv_free(v);
        if (rc) return exec_body(c, n->b);
        if (!n->c) return 0;
        return n->c->kind == N_IF ? exec_stmt(c, n->c) : exec_body(c, n->c);
    case N_FOR: return exec_for(c, n);
    case N_SET: return exec_set(c, n);
    case N_MACRO: assign(c, n->val, make_macro(c, n)); return 0;
    case N_CALLBLOCK: return exec_callblock(c, n);
    case N_FILTERBLOCK: {
        jv text, res;
        if (capture(c, n->b, n, &text)) return -1;
        rc = eval_filter(c, n->a, &text, &res);
        jv_free(text);
        if (rc) return -1;
        if (res.t == JV_STR) {
            rc = jj_emit(c, n, res.u.s->s, res.u.s->len);
        } else {
            w8_buf t = jj_buf();
            jv_write_str(&t, res);
            rc = jj_emit(c, n, t.s ? t.s : "", t.len);
            w8_buf_free(&t);
        }
        jv_free(res);
        return rc;
    }
    case N_WITH: {
        jscope sc = {c->scope, jv_dict_new()};
        rc = 0;
        for (const jnode *k = n->kids; k && !rc; k = k->next) {
            if (!(rc = jj_eval(c, k->a, &v))) jv_dict_set(sc.vars, jv_ref(k->val), v);
        }
        jscope *saved = c->scope;
        c->scope = &sc;
        if (!rc) rc = exec_body(c, n->b);
        c->scope = saved;
        scope_end(sc.vars);
        return rc;
    }
    case N_GENERATION: return exec_body(c, n->b);
    case N_BREAK: return BRK;
    case N_CONTINUE: return CONT;
    default: return jj_error(c->src, n->pos, "internal error: node %d is not a statement", (int)n->kind);
    }
}

static int exec_body(jctx *c, const jnode *body) {
    if (enter(c, body)) return -1;
    int rc = 0;
    for (const jnode *n = body->kids; n && !rc; n = n->next) rc = exec_stmt(c, n);
    c->depth--;
    return rc;
}

/* ------------------------------------------------------------ entry */

int jj_render(const jtemplate *t, const json_t *context, char **out, size_t *out_len) {
    jctx c;
    memset(&c, 0, sizeof c);
    c.src = t->src;
    jv ctxv = context && json_is_object(context) ? jv_from_json(context) : jv_dict_val(jv_dict_new());
    if (jv_depth(ctxv) > JJ_MAX_VALUE_DEPTH) {
        jv_free(ctxv);
        return w8_seterr("template: context nested too deeply (limit %d)", JJ_MAX_VALUE_DEPTH);
    }
    jscope root = {NULL, ctxv.u.d};
    w8_buf buf = jj_buf();
    c.root = &root;
    c.scope = &root;
    c.out = &buf;
    int rc = exec_body(&c, t->root);
    /* namespaces may reference each other (or themselves): empty them all
     * before dropping the references, so every cycle is broken */
    for (size_t i = 0; i < c.nns; i++) {
        jv_dict *d = c.nss[i];
        jv *keys = d->keys, *vals = d->vals;
        size_t n = d->n;
        d->keys = d->vals = NULL;
        d->n = d->cap = 0;
        for (size_t k = 0; k < n; k++) {
            jv_free(keys[k]);
            jv_free(vals[k]);
        }
        free(keys);
        free(vals);
    }
    for (size_t i = 0; i < c.nns; i++) {
        jv ns = {JV_NS, {.d = c.nss[i]}};
        jv_free(ns);
    }
    free(c.nss);
    jv_free(ctxv);
    if (rc) {
        w8_buf_free(&buf);
        return -1;
    }
    *out_len = buf.len;
    *out = buf.s ? buf.s : w8_xstrdup("");
    return 0;
}

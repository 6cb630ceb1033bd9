/*
 * lex.c - template text -> tokens, with Jinja2's whitespace rules.
 *
 * transformers compiles chat templates with trim_blocks=True and
 * lstrip_blocks=True (and keep_trailing_newline=False, handled by the
 * caller's newline normalization).  This lexer follows jinja2/lexer.py:
 *   - "{%-", "{{-", "{#-" strip all whitespace before the tag; "-%}",
 *     "-}}", "-#}" strip all whitespace after it;
 *   - lstrip_blocks: spaces/tabs between the start of a line and "{%" or
 *     "{#" are removed, unless the tag is "{%+" (never for "{{");
 *   - trim_blocks: one newline right after "%}" or "#}" is removed, unless
 *     the tag ends with "+%}";
 *   - inside a tag, "}}" and "%}" only end it when (), [] and {} are
 *     balanced, so {{ {'a': {'b': 1}}}} works;
 *   - {% raw %}...{% endraw %} is passed through as text.
 * Strings are decoded like Python's unicode-escape (\n, \t, \xhh, \uXXXX...).
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"
#include "lex.h"

typedef struct {
    const char *s;
    size_t n;
    jarena *a;
    jtok *t;
    size_t nt, cap;
} lexer;

static jtok *emit(lexer *L, jtok_type type, size_t pos) {
    if (L->nt == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 256;
        L->t = w8_xrealloc(L->t, L->cap * sizeof(jtok));
    }
    jtok *t = &L->t[L->nt++];
    memset(t, 0, sizeof *t);
    t->t = type;
    t->pos = (uint32_t)pos;
    return t;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static int is_name0(unsigned char c) { return isalpha(c) || c == '_' || c >= 0x80; }
static int is_name1(unsigned char c) { return isalnum(c) || c == '_' || c >= 0x80; }

/* Text before a tag, after the tag's whitespace control.  `mod` is the
 * '-'/'+' right after the opening delimiter (0 if none), `lstrip_ok` says
 * whether lstrip_blocks applies to this kind of tag. */
static void emit_text(lexer *L, size_t from, size_t to, char mod, int lstrip_ok, int line_starting) {
    if (mod == '-') {
        while (to > from && is_ws(L->s[to - 1])) to--;
    } else if (mod != '+' && lstrip_ok) {
        size_t l = to;
        while (l > from && L->s[l - 1] != '\n') l--;
        if (l > from || line_starting) {
            size_t k = l;
            while (k < to && is_ws(L->s[k])) k++;
            if (k == to) to = l;
        }
    }
    if (to > from) {
        jtok *t = emit(L, TK_DATA, from);
        t->str = L->s + from;
        t->len = to - from;
    }
}

/* "{%[-+]? *NAME *" at p: returns the position after the name and spaces,
 * or 0 when the tag is not {% NAME. */
static size_t match_tag_word(lexer *L, size_t p, const char *word) {
    if (p + 2 > L->n || L->s[p] != '{' || L->s[p + 1] != '%') return 0;
    p += 2;
    if (p < L->n && (L->s[p] == '-' || L->s[p] == '+')) p++;
    while (p < L->n && is_ws(L->s[p])) p++;
    size_t w = strlen(word);
    if (p + w > L->n || memcmp(L->s + p, word, w)) return 0;
    p += w;
    if (p < L->n && is_name1((unsigned char)L->s[p])) return 0;
    while (p < L->n && is_ws(L->s[p])) p++;
    return p;
}

/* Block end at p ("+%}", "-%}\s*", "%}\n?"): returns the position after it, or 0. */
static size_t match_block_end(lexer *L, size_t p, int trim) {
    const char *s = L->s;
    if (p + 3 <= L->n && s[p] == '+' && s[p + 1] == '%' && s[p + 2] == '}') return p + 3;
    if (p + 3 <= L->n && s[p] == '-' && s[p + 1] == '%' && s[p + 2] == '}') {
        p += 3;
        while (p < L->n && is_ws(s[p])) p++;
        return p;
    }
    if (p + 2 <= L->n && s[p] == '%' && s[p + 1] == '}') {
        p += 2;
        if (trim && p < L->n && s[p] == '\n') p++;
        return p;
    }
    return 0;
}

/* Python's unicode-escape decoding of a string literal's body. */
static void decode_string(w8_buf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) {
            w8_buf_putc(b, s[i]);
            continue;
        }
        char c = s[++i];
        uint32_t cp = 0;
        int digits = 0, base = 16;
        switch (c) {
        case '\n': continue;
        case '\\': w8_buf_putc(b, '\\'); continue;
        case '\'': w8_buf_putc(b, '\''); continue;
        case '"': w8_buf_putc(b, '"'); continue;
        case 'a': w8_buf_putc(b, '\a'); continue;
        case 'b': w8_buf_putc(b, '\b'); continue;
        case 'f': w8_buf_putc(b, '\f'); continue;
        case 'n': w8_buf_putc(b, '\n'); continue;
        case 'r': w8_buf_putc(b, '\r'); continue;
        case 't': w8_buf_putc(b, '\t'); continue;
        case 'v': w8_buf_putc(b, '\v'); continue;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
            if (c >= '0' && c <= '7') {
                base = 8;
                digits = 3;
                i--; /* the digit itself is part of the number */
                break;
            }
            w8_buf_putc(b, '\\');
            w8_buf_putc(b, c);
            continue;
        }
        int got = 0;
        while (got < digits && i + 1 < n) {
            char d = s[i + 1];
            int v = d >= '0' && d <= '9' ? d - '0' : d >= 'a' && d <= 'f' ? d - 'a' + 10 : d >= 'A' && d <= 'F' ? d - 'A' + 10 : 99;
            if (v >= base) break;
            cp = cp * (uint32_t)base + (uint32_t)v;
            got++;
            i++;
        }
        if (got == 0 || (base == 16 && got < digits) || cp > 0x10FFFF) {
            /* Python rejects these; keep the text rather than guess */
            w8_buf_putc(b, '\\');
            w8_buf_putc(b, c);
            continue;
        }
        ju_encode(b, cp);
    }
}

static int lex_number(lexer *L, size_t p, size_t *end) {
    const char *s = L->s;
    size_t q = p;
    if (s[q] == '0' && q + 1 < L->n && strchr("bBoOxX", s[q + 1]) && s[q + 1]) {
        int base = (s[q + 1] | 0x20) == 'b' ? 2 : (s[q + 1] | 0x20) == 'o' ? 8 : 16;
        q += 2;
        long long v = 0;
        int nd = 0;
        for (; q < L->n; q++) {
            int c = (unsigned char)s[q], d;
            if (c == '_') continue;
            d = isdigit(c) ? c - '0' : isxdigit(c) ? (c | 0x20) - 'a' + 10 : 99;
            if (d >= base) break;
            if (v > (0x7FFFFFFFFFFFFFFFLL - d) / base) return jj_error(s, (uint32_t)p, "integer literal too large");
            v = v * base + d;
            nd++;
        }
        if (!nd) return jj_error(s, (uint32_t)p, "invalid integer literal");
        jtok *t = emit(L, TK_INT, p);
        t->i = v;
        *end = q;
        return 0;
    }
    while (q < L->n && (isdigit((unsigned char)s[q]) || (s[q] == '_' && q + 1 < L->n && isdigit((unsigned char)s[q + 1])))) q++;
    int is_float = 0;
    /* a float needs digits after '.', and no '.' before it (x.0.1 is x[0][1]) */
    int after_dot = p > 0 && s[p - 1] == '.';
    if (!after_dot && q + 1 < L->n && s[q] == '.' && isdigit((unsigned char)s[q + 1])) {
        is_float = 1;
        q++;
        while (q < L->n && (isdigit((unsigned char)s[q]) || (s[q] == '_' && q + 1 < L->n && isdigit((unsigned char)s[q + 1])))) q++;
    }
    if (!after_dot && q < L->n && (s[q] == 'e' || s[q] == 'E')) {
        size_t r = q + 1;
        if (r < L->n && (s[r] == '+' || s[r] == '-')) r++;
        if (r < L->n && isdigit((unsigned char)s[r])) {
            while (r < L->n && (isdigit((unsigned char)s[r]) || s[r] == '_')) r++;
            is_float = 1;
            q = r;
        }
    }
    char tmp[64];
    size_t k = 0;
    for (size_t i = p; i < q && k < sizeof tmp - 1; i++)
        if (s[i] != '_') tmp[k++] = s[i];
    tmp[k] = 0;
    if (q - p >= sizeof tmp - 1) return jj_error(s, (uint32_t)p, "number literal too long");
    jtok *t = emit(L, is_float ? TK_FLOAT : TK_INT, p);
    if (is_float) {
        t->f = strtod(tmp, NULL);
    } else {
        char *e;
        errno = 0;
        t->i = strtoll(tmp, &e, 10);
        if (errno) return jj_error(s, (uint32_t)p, "integer literal too large");
    }
    *end = q;
    return 0;
}

/* Jinja2's operators, longest first; returns a static string or NULL. */
static const char *match_op(const char *s, size_t rem) {
    static const char *const two[] = {"//", "**", "==", "!=", ">=", "<="};
    static const char one[] = "+-/*%~[](){}><=.:|,;";
    static const char *const ones[] = {"+", "-", "/", "*", "%", "~", "[", "]", "(", ")",
                                       "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"};
    if (rem >= 2)
        for (size_t i = 0; i < sizeof two / sizeof two[0]; i++)
            if (s[0] == two[i][0] && s[1] == two[i][1]) return two[i];
    const char *p = s[0] ? memchr(one, s[0], sizeof one - 1) : NULL;
    return p ? ones[p - one] : NULL;
}

/* Tokens of one {{ }} or {% %} tag starting after its opening delimiter. */
static int lex_tag(lexer *L, size_t tagpos, size_t p, int block, size_t *end) {
    const char *s = L->s;
    char stack[W8_JINJA_MAX_DEPTH];
    int depth = 0;
    for (;;) {
        if (depth == 0) {
            size_t e = 0;
            if (block) e = match_block_end(L, p, 1);
            else if (p + 3 <= L->n && s[p] == '-' && s[p + 1] == '}' && s[p + 2] == '}') {
                e = p + 3;
                while (e < L->n && is_ws(s[e])) e++;
            } else if (p + 2 <= L->n && s[p] == '}' && s[p + 1] == '}') e = p + 2;
            if (e) {
                emit(L, block ? TK_BLOCK_END : TK_VAR_END, p);
                *end = e;
                return 0;
            }
        }
        if (p >= L->n)
            return jj_error(s, (uint32_t)tagpos, "unexpected end of template: '%s' is never closed with '%s'",
                            block ? "{%" : "{{", block ? "%}" : "}}");
        unsigned char c = (unsigned char)s[p];
        if (is_ws((char)c)) {
            p++;
        } else if (isdigit(c)) {
            if (lex_number(L, p, &p)) return -1;
        } else if (is_name0(c)) {
            size_t q = p;
            while (q < L->n && is_name1((unsigned char)s[q])) q++;
            jtok *t = emit(L, TK_NAME, p);
            t->str = s + p;
            t->len = q - p;
            p = q;
        } else if (c == '\'' || c == '"') {
            size_t q = p + 1;
            while (q < L->n && s[q] != (char)c) q += s[q] == '\\' ? 2 : 1;
            if (q >= L->n) return jj_error(s, (uint32_t)p, "unterminated string");
            w8_buf b = {0};
            decode_string(&b, s + p + 1, q - p - 1);
            jtok *t = emit(L, TK_STRING, p);
            t->str = jarena_strndup(L->a, b.s ? b.s : "", b.len);
            t->len = b.len;
            w8_buf_free(&b);
            p = q + 1;
        } else {
            const char *op = match_op(s + p, L->n - p);
            if (!op) return jj_error(s, (uint32_t)p, "unexpected char '%c'", c);
            if (strchr("([{", op[0])) {
                if (depth == W8_JINJA_MAX_DEPTH) return jj_error(s, (uint32_t)p, "brackets nested too deeply");
                stack[depth++] = op[0] == '(' ? ')' : op[0] == '[' ? ']' : '}';
            } else if (strchr(")]}", op[0])) {
                if (!depth) return jj_error(s, (uint32_t)p, "unexpected '%c'", op[0]);
                if (stack[depth - 1] != op[0])
                    return jj_error(s, (uint32_t)p, "unexpected '%c', expected '%c'", op[0], stack[depth - 1]);
                depth--;
            }
            jtok *t = emit(L, TK_OP, p);
            t->str = op;
            t->len = strlen(op);
            p += t->len;
        }
    }
}

/* {% raw %}...{% endraw %}: `p` is just after the raw tag. */
static int lex_raw(lexer *L, size_t tagpos, size_t p, size_t *end) {
    int line_starting = p > 0 && L->s[p - 1] == '\n';
    for (size_t q = p; q + 1 < L->n; q++) {
        size_t w;
        if (L->s[q] != '{' || L->s[q + 1] != '%' || !(w = match_tag_word(L, q, "endraw"))) continue;
        size_t e = match_block_end(L, w, 1);
        if (!e) continue;
        char mod = L->s[q + 2] == '-' || L->s[q + 2] == '+' ? L->s[q + 2] : 0;
        emit_text(L, p, q, mod, 1, line_starting);
        *end = e;
        return 0;
    }
    return jj_error(L->s, (uint32_t)tagpos, "missing end of raw directive");
}

int jj_lex(const char *src, size_t len, jarena *a, jtok **toks, size_t *ntok) {
    lexer L = {src, len, a, NULL, 0, 0};
    size_t pos = 0;
    int line_starting = 1;
    *toks = NULL;
    while (pos < len) {
        size_t q = pos;
        while (q + 1 < len && !(src[q] == '{' && (src[q + 1] == '{' || src[q + 1] == '%' || src[q + 1] == '#'))) q++;
        if (q + 1 >= len) {
            emit_text(&L, pos, len, 0, 0, 0);
            break;
        }
        char kind = src[q + 1];
        char mod = q + 2 < len && (src[q + 2] == '-' || src[q + 2] == '+') ? src[q + 2] : 0;
        size_t body = q + 2 + (mod != 0), end = 0;
        size_t raw = kind == '%' ? match_tag_word(&L, q, "raw") : 0;
        size_t raw_end = 0;
        if (raw) {
            /* the raw tag itself ends with "-%}\s*" or "%}" (no trim_blocks) */
            if (raw + 3 <= len && src[raw] == '-' && src[raw + 1] == '%' && src[raw + 2] == '}') {
                raw_end = raw + 3;
                while (raw_end < len && is_ws(src[raw_end])) raw_end++;
            } else if (raw + 2 <= len && src[raw] == '%' && src[raw + 1] == '}') {
                raw_end = raw + 2;
            }
        }
        emit_text(&L, pos, q, mod, kind != '{', line_starting);
        if (raw_end) {
            if (lex_raw(&L, q, raw_end, &end)) goto fail;
        } else if (kind == '#') {
            size_t r = body;
            while (r + 1 < len && !(src[r] == '#' && src[r + 1] == '}')) r++;
            if (r + 1 >= len) {
                jj_error(src, (uint32_t)q, "missing end of comment tag");
                goto fail;
            }
            end = r + 2;
            if (r > body && src[r - 1] == '-') {
                while (end < len && is_ws(src[end])) end++;
            } else if (!(r > body && src[r - 1] == '+') && end < len && src[end] == '\n') {
                end++;
            }
        } else {
            emit(&L, kind == '%' ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, q);
            if (lex_tag(&L, q, body, kind == '%', &end)) goto fail;
        }
        line_starting = end > 0 && src[end - 1] == '\n';
        pos = end;
    }
    emit(&L, TK_EOF, len);
    *toks = L.t;
    *ntok = L.nt;
    return 0;
fail:
    free(L.t);
    return -1;
}

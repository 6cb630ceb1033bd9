/* json.c - see json.h. */
#include "json.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

json_t *w8_json_load_file(const char *path) {
    size_t len;
    char *buf = w8_read_file(path, W8_JSON_MAX_FILE, &len);
    if (!buf) return NULL;
    json_t *v = w8_json_load_buf(buf, len, path);
    free(buf);
    return v;
}

/* Length of the JSON string starting at s[0] == '"' (through the closing
 * quote), or the rest of the buffer when it is unterminated. */
static size_t string_len(const char *s, size_t n) {
    size_t i = 1;
    while (i < n && s[i] != '"') i += s[i] == '\\' ? 2 : 1;
    return i < n ? i + 1 : n;
}

/* Rewrites, in a copy of buf, every integer literal outside the long long
 * range as a real of the same or shorter length (padded with spaces, which
 * JSON allows after a number), so that lines and columns of any later error
 * stay those of the file.  The real is the closest double (strtod rounds
 * correctly); beyond the double range, the largest double.  NULL when there
 * is none to rewrite. */
static char *rewrite_big_ints(const char *buf, size_t len) {
    char *out = NULL;
    size_t i = 0;
    while (i < len) {
        char c = buf[i];
        if (c == '"') {
            i += string_len(buf + i, len - i);
            continue;
        }
        if (c != '-' && !(c >= '0' && c <= '9')) {
            i++;
            continue;
        }
        size_t start = i, j = i + (c == '-');
        size_t d0 = j;
        while (j < len && buf[j] >= '0' && buf[j] <= '9') j++;
        size_t ndig = j - d0;
        int is_int = !(j < len && (buf[j] == '.' || buf[j] == 'e' || buf[j] == 'E'));
        /* skip the rest of a real: fraction, exponent */
        while (j < len && buf[j] && strchr("0123456789.eE+-", buf[j])) j++;
        i = j;
        if (!is_int || ndig < 19) continue;
        char tmp[400];
        size_t n = j - start;
        if (n >= sizeof tmp) n = sizeof tmp - 1; /* > 1e398: strtod gives HUGE_VAL anyway */
        memcpy(tmp, buf + start, n);
        tmp[n] = 0;
        errno = 0;
        (void)strtoll(tmp, NULL, 10);
        if (errno != ERANGE) continue;
        double d = strtod(tmp, NULL);
        if (isinf(d)) d = d > 0 ? DBL_MAX : -DBL_MAX;
        /* 17 significant digits name every double exactly; written as an
         * integer mantissa ("18446744073709552e3") they fit in the width of
         * any integer of 19 or more digits */
        char e17[64], rep[64];
        snprintf(e17, sizeof e17, "%.16e", d); /* [-]D.DDDDDDDDDDDDDDDDe+XX */
        const char *p = e17;
        int w = 0;
        if (*p == '-') rep[w++] = *p++;
        rep[w++] = *p++;
        p++; /* the decimal point */
        while (*p >= '0' && *p <= '9') rep[w++] = *p++;
        w += snprintf(rep + w, sizeof rep - (size_t)w, "e%d", atoi(p + 1) - 16);
        if ((size_t)w > j - start) continue; /* cannot happen, see above */
        if (!out) {
            out = w8_xmalloc(len + 1);
            memcpy(out, buf, len);
            out[len] = 0;
        }
        memcpy(out + start, rep, (size_t)w);
        memset(out + start + w, ' ', j - start - (size_t)w);
    }
    return out;
}

json_t *w8_json_parse(const char *buf, size_t len, json_error_t *e) {
    size_t flags = JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL;
    json_t *v = json_loadb(buf, len, flags, e);
    /* Hugging Face writes integers Python holds exactly but jansson cannot
     * (tokenizer_config.json's "model_max_length": 1000000000000000019884624838656):
     * retry with those as reals.  Only on that error, so other files cost nothing. */
    if (!v && strstr(e->text, "too big integer")) {
        char *copy = rewrite_big_ints(buf, len);
        if (copy) {
            v = json_loadb(copy, len, flags, e);
            free(copy);
        }
    }
    return v;
}

json_t *w8_json_load_buf(const char *buf, size_t len, const char *label) {
    json_error_t e;
    json_t *v = w8_json_parse(buf, len, &e);
    if (!v) w8_seterr("%s:%d:%d: malformed JSON: %s", label, e.line, e.column, e.text);
    return v;
}

const char *w8_json_type_name(const json_t *v) {
    if (!v) return "nothing";
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static const json_t *lookup(const json_t *obj, const char *key) {
    if (!json_is_object(obj)) return NULL;
    const json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

static int wrong(const char *label, const char *key, const char *want, const json_t *v) {
    return w8_seterr("%s: key '%s': expected %s, got %s", label, key, want, w8_json_type_name(v));
}

int w8_json_as_int(const json_t *v, long long *out) {
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 1;
    }
    /* 4096.0 is an integer written as a float: accept it, reject 1.5 */
    if (json_is_real(v)) {
        double d = json_real_value(v);
        /* range first: converting an out-of-range double is undefined */
        if (d > -9e18 && d < 9e18 && d == (double)(long long)d) {
            *out = (long long)d;
            return 1;
        }
    }
    return 0;
}

int w8_json_get_int(const json_t *obj, const char *key, const char *label, long long *out) {
    const json_t *v = lookup(obj, key);
    if (!v) return 1;
    if (w8_json_as_int(v, out)) return 0;
    return wrong(label, key, "integer", v);
}

int w8_json_get_num(const json_t *obj, const char *key, const char *label, double *out) {
    const json_t *v = lookup(obj, key);
    if (!v) return 1;
    if (!json_is_number(v)) return wrong(label, key, "number", v);
    *out = json_number_value(v);
    return 0;
}

int w8_json_get_bool(const json_t *obj, const char *key, const char *label, int *out) {
    const json_t *v = lookup(obj, key);
    if (!v) return 1;
    if (!json_is_boolean(v)) return wrong(label, key, "boolean", v);
    *out = json_is_true(v);
    return 0;
}

int w8_json_get_str(const json_t *obj, const char *key, const char *label, const char **out) {
    const json_t *v = lookup(obj, key);
    if (!v) return 1;
    if (!json_is_string(v)) return wrong(label, key, "string", v);
    *out = json_string_value(v);
    return 0;
}

char *w8_json_dumps(const json_t *v, int ascii) {
    size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | (ascii ? JSON_ENSURE_ASCII : 0);
    char *s = json_dumps(v, flags);
    if (!s) {
        fprintf(stderr, "w8a8: out of memory serializing JSON\n");
        abort();
    }
    return s;
}

/* ------------------------------------------------------------ text edits */

/* One top-level member of an object's text: the key from its opening quote
 * to after its closing quote, the value's span. */
typedef struct {
    size_t kbeg, kend, vbeg, vend;
} member;

static size_t skip_ws(const char *t, size_t n, size_t i) {
    while (i < n && (t[i] == ' ' || t[i] == '\t' || t[i] == '\r' || t[i] == '\n')) i++;
    return i;
}

/* End of the value starting at t[i] (the text was parsed already). */
static size_t skip_value(const char *t, size_t n, size_t i) {
    if (i >= n) return n;
    if (t[i] == '"') return i + string_len(t + i, n - i);
    if (t[i] == '{' || t[i] == '[') {
        int depth = 0;
        while (i < n) {
            char c = t[i];
            if (c == '"') {
                i += string_len(t + i, n - i);
                continue;
            }
            if (c == '{' || c == '[') depth++;
            if ((c == '}' || c == ']') && --depth == 0) return i + 1;
            i++;
        }
        return n;
    }
    while (i < n && !strchr(",}] \t\r\n", t[i])) i++;
    return i;
}

/* The members of the object text; -1 when it is not `{ "k": v, ... }`.
 * *open and *close are the offsets of the outer braces. */
static int scan_members(const char *t, size_t n, member **out, size_t *nm, size_t *open, size_t *close) {
    *out = NULL;
    *nm = 0;
    size_t i = skip_ws(t, n, 0), cap = 0;
    if (i >= n || t[i] != '{') return -1;
    *open = i;
    i = skip_ws(t, n, i + 1);
    while (i < n && t[i] != '}') {
        member m;
        if (t[i] != '"') goto bad;
        m.kbeg = i;
        m.kend = i + string_len(t + i, n - i);
        i = skip_ws(t, n, m.kend);
        if (i >= n || t[i] != ':') goto bad;
        m.vbeg = skip_ws(t, n, i + 1);
        m.vend = skip_value(t, n, m.vbeg);
        if (m.vend <= m.vbeg || m.vend > n) goto bad;
        if (*nm == cap) *out = w8_xrealloc(*out, (cap = cap ? cap * 2 : 32) * sizeof(member));
        (*out)[(*nm)++] = m;
        i = skip_ws(t, n, m.vend);
        if (i < n && t[i] == ',') i = skip_ws(t, n, i + 1);
        else if (i >= n || t[i] != '}') goto bad;
    }
    if (i >= n) goto bad;
    *close = i;
    return 0;
bad:
    free(*out);
    *out = NULL;
    return -1;
}

/* Index of the member whose key is written exactly as "key" (no escapes), or -1. */
static long find_member(const char *t, const member *m, size_t nm, const char *key) {
    size_t kl = strlen(key);
    for (size_t i = 0; i < nm; i++)
        if (m[i].kend - m[i].kbeg == kl + 2 && !memcmp(t + m[i].kbeg + 1, key, kl)) return (long)i;
    return -1;
}

static char *splice(const char *t, size_t n, size_t a, size_t b, const char *ins, size_t il) {
    char *out = w8_xmalloc(n - (b - a) + il + 1);
    memcpy(out, t, a);
    memcpy(out + a, ins, il);
    memcpy(out + a + il, t + b, n - b);
    out[n - (b - a) + il] = 0;
    return out;
}

char *w8_json_text_set(const char *text, size_t len, const char *key, const char *value) {
    member *m;
    size_t nm, open, close;
    if (scan_members(text, len, &m, &nm, &open, &close) < 0) return NULL;
    long i = find_member(text, m, nm, key);
    char *out;
    size_t cap = strlen(key) + strlen(value) + 16, bl;
    char *b;
    if (i >= 0) {
        out = splice(text, len, m[i].vbeg, m[i].vend, value, strlen(value));
    } else if (nm == 0) {
        b = w8_xmalloc(cap);
        bl = (size_t)snprintf(b, cap, "{\n  \"%s\": %s\n}", key, value);
        out = splice(text, len, open, close + 1, b, bl);
        free(b);
    } else {
        /* after the last member, in its style: the whitespace before its
         * key and the separator between its key and value */
        const member *l = &m[nm - 1];
        size_t ws = l->kbeg;
        while (ws > 0 && strchr(" \t\r\n", text[ws - 1])) ws--;
        cap += (l->kbeg - ws) + (l->vbeg - l->kend);
        b = w8_xmalloc(cap);
        bl = (size_t)snprintf(b, cap, ",%.*s\"%s\"%.*s%s", (int)(l->kbeg - ws), text + ws, key,
                              (int)(l->vbeg - l->kend), text + l->kend, value);
        out = splice(text, len, l->vend, l->vend, b, bl);
        free(b);
    }
    free(m);
    return out;
}

char *w8_json_text_del(const char *text, size_t len, const char *key) {
    member *m;
    size_t nm, open, close;
    if (scan_members(text, len, &m, &nm, &open, &close) < 0) return NULL;
    long i = find_member(text, m, nm, key);
    char *out;
    if (i < 0) out = w8_xstrndup(text, len);
    else if (nm == 1) out = splice(text, len, open + 1, close, "", 0);
    else if ((size_t)i + 1 < nm) out = splice(text, len, m[i].kbeg, m[i + 1].kbeg, "", 0);
    else out = splice(text, len, m[i - 1].vend, m[i].vend, "", 0);
    free(m);
    return out;
}

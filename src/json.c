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

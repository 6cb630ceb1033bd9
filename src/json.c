/* json.c - see json.h. */
#include "json.h"

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

json_t *w8_json_load_buf(const char *buf, size_t len, const char *label) {
    json_error_t e;
    json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
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

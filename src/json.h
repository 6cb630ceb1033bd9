/*
 * json.h - thin helpers over jansson (Debian libjansson-dev).
 *
 * jansson does the parsing (with its own nesting-depth limit of 2048 and
 * insertion-ordered objects, which tojson in chat templates relies on); these
 * helpers add what every caller needs: error lines that name the file and
 * position, and typed key lookups whose errors name the file and the key.
 */
#ifndef W8_JSON_H
#define W8_JSON_H

#include <jansson.h>
#include <stddef.h>

/* Largest JSON file we read (tokenizer.json of real models is ~11 MB). */
#define W8_JSON_MAX_FILE ((size_t)256 << 20)

/* Parse a file / buffer.  On error: NULL and "LABEL:LINE:COL: message".
 * `label` names the input in messages (usually the file path). */
json_t *w8_json_load_file(const char *path);
json_t *w8_json_load_buf(const char *buf, size_t len, const char *label);
/* jansson's json_loadb (duplicate keys refused, NUL in strings allowed),
 * except that integers beyond the long long range, which Hugging Face files
 * hold ("model_max_length": 1000000000000000019884624838656), are read as
 * the nearest double instead of failing. */
json_t *w8_json_parse(const char *buf, size_t len, json_error_t *e);

/* Typed lookups in an object.  Each returns 0 when the key holds the right
 * type, 1 when the key is absent or null (value untouched), and -1 with an
 * error "LABEL: key 'KEY': expected TYPE, got TYPE" for a wrong type. */
int w8_json_get_int(const json_t *obj, const char *key, const char *label, long long *out);
int w8_json_get_num(const json_t *obj, const char *key, const char *label, double *out);
int w8_json_get_bool(const json_t *obj, const char *key, const char *label, int *out);
int w8_json_get_str(const json_t *obj, const char *key, const char *label, const char **out);

/* 1 and *out set when v is an integer, or a real with an integral value
 * inside the long long range (4096.0); 0 otherwise. */
int w8_json_as_int(const json_t *v, long long *out);

/* Name of a json_t's type ("object", "string", ...), for messages. */
const char *w8_json_type_name(const json_t *v);

/* Serialize compactly with key order kept; caller frees.  Non-ASCII is kept
 * as UTF-8 (ensure_ascii = 0) unless `ascii` is set. */
char *w8_json_dumps(const json_t *v, int ascii);

/* Edits of a JSON object's text that keep every other byte as it was
 * (number spellings, key order, layout), for files we copy with one change.
 * text_set gives top-level `key` the JSON text `value`: replaced in place
 * when present, else appended after the last member in that member's style.
 * text_del removes a top-level member and its comma.  Keys match as written
 * (a key spelled with escapes is not found).  Both return a malloc'd string,
 * or NULL when the text is not a JSON object. */
char *w8_json_text_set(const char *text, size_t len, const char *key, const char *value);
char *w8_json_text_del(const char *text, size_t len, const char *key);

#endif

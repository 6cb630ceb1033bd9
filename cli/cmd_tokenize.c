/*
 * cmd_tokenize.c - `w8a8 tokenize`: JSON lines through the tokenizer.
 *
 * Encode: each input line {"text": "..."} becomes {"ids": [...]}.
 * Decode (--decode): each {"ids": [...]} becomes {"text": "..."}.
 * Blank lines are skipped.  A bad line stops the command with its line
 * number; output is written only when every line succeeded, so a failure
 * never leaves partial output behind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/json.h"
#include "../src/tokenizer/tokenizer.h"
#include "../src/util.h"
#include "args.h"
#include "commands.h"

#define MAX_INPUT ((size_t)1 << 30) /* bytes of input */

typedef struct {
    char *s;
    size_t len, cap;
} outbuf;

static void out_put(outbuf *o, const char *s, size_t n) {
    if (o->len + n + 1 > o->cap) {
        while (o->len + n + 1 > o->cap) o->cap = o->cap ? o->cap * 2 : 4096;
        o->s = w8_xrealloc(o->s, o->cap);
    }
    memcpy(o->s + o->len, s, n);
    o->len += n;
}

static int encode_line(const w8_tok *t, const json_t *j, int add_special, const char *where, outbuf *o) {
    const json_t *text = json_object_get(j, "text");
    if (!json_is_string(text)) return w8_seterr("%s: expected {\"text\": \"...\"}", where);
    int *ids = NULL;
    int n = w8_tok_encode(t, json_string_value(text), json_string_length(text), add_special, &ids);
    if (n < 0) return w8_preferr("%s", where);
    out_put(o, "{\"ids\": [", 9);
    char num[24];
    for (int i = 0; i < n; i++) {
        int l = snprintf(num, sizeof num, i ? ", %d" : "%d", ids[i]);
        out_put(o, num, (size_t)l);
    }
    out_put(o, "]}\n", 3);
    free(ids);
    return 0;
}

static int decode_line(const w8_tok *t, const json_t *j, int skip, const char *where, outbuf *o) {
    const json_t *arr = json_object_get(j, "ids");
    if (!json_is_array(arr)) return w8_seterr("%s: expected {\"ids\": [...]}", where);
    size_t n = json_array_size(arr);
    int *ids = w8_xmalloc((n + 1) * sizeof(int));
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_array_get(arr, i);
        if (!json_is_integer(x) || json_integer_value(x) < -2147483647LL ||
            json_integer_value(x) > 2147483647LL) {
            free(ids);
            return w8_seterr("%s: ids[%zu] is not an integer id", where, i);
        }
        ids[i] = (int)json_integer_value(x);
    }
    char *text = w8_tok_decode(t, ids, n, skip);
    free(ids);
    if (!text) return w8_preferr("%s", where);
    json_t *s = json_string(text);
    free(text);
    if (!s) return w8_seterr("%s: decoded text is not valid UTF-8", where);
    char *dump = w8_json_dumps(s, 0);
    json_decref(s);
    out_put(o, "{\"text\": ", 9);
    out_put(o, dump, strlen(dump));
    out_put(o, "}\n", 2);
    free(dump);
    return 0;
}

static int run_lines(const w8_tok *t, const char *buf, size_t len, const char *fname, int decode,
                     int add_special, int skip, outbuf *o) {
    long lineno = 0;
    int rc = 0;
    for (const char *p = buf, *end = buf + len; rc == 0 && p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        const char *line = p;
        p += n + 1;
        lineno++;
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
        if (k == n) continue; /* blank line */
        char where[512];
        snprintf(where, sizeof where, "%s:%ld", fname, lineno);
        json_t *j = w8_json_load_buf(line, n, where);
        if (!j) rc = -1;
        else if (!json_is_object(j)) rc = w8_seterr("%s: expected a JSON object", where);
        else rc = decode ? decode_line(t, j, skip, where, o) : encode_line(t, j, add_special, where, o);
        json_decref(j);
    }
    return rc;
}

int w8_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *file = NULL;
    int add_special = 0, decode = 0, skip = 0;
    w8_opt opts[] = {
        {"model_path", 'm', W8_ARG_STR, &model, "directory with tokenizer.json (required)"},
        {"file", 'f', W8_ARG_STR, &file, "JSON lines input, '-' for stdin, a pipe or FIFO too (required)"},
        {"add_special_tokens", 0, W8_ARG_FLAG, &add_special, "apply the post-processor (BOS etc.)"},
        {"decode", 'd', W8_ARG_FLAG, &decode, "read {\"ids\": [...]} lines, write {\"text\": ...}"},
        {"skip_special_tokens", 0, W8_ARG_FLAG, &skip, "with --decode: drop special tokens"},
    };
    int r = w8_args_parse(argc, argv, "w8a8 tokenize --model_path DIR --file F [options]",
                          "Encode JSON lines {\"text\": ...} to {\"ids\": [...]} with the model's "
                          "tokenizer.json, or decode ids back with --decode.",
                          opts, (int)(sizeof opts / sizeof opts[0]));
    if (r) return r > 0 ? 0 : 1;
    if (!model || !file) {
        fprintf(stderr, "w8a8: tokenize: --model_path and --file are required (see --help)\n");
        return 1;
    }
    w8_tok *t = w8_tok_load(model);
    if (!t) {
        fprintf(stderr, "w8a8: %s\n", w8_lasterr());
        return 1;
    }
    size_t len = 0;
    char *input = w8_read_input(file, MAX_INPUT, &len);
    if (!input) {
        fprintf(stderr, "w8a8: %s\n", w8_lasterr());
        w8_tok_free(t);
        return 1;
    }
    outbuf o = {0};
    int rc = run_lines(t, input, len, strcmp(file, "-") ? file : "<stdin>", decode, add_special,
                       skip, &o);
    free(input);
    w8_tok_free(t);
    if (rc == 0 && o.len && fwrite(o.s, 1, o.len, stdout) != o.len) rc = w8_seterr("write error on stdout");
    if (rc == 0 && fflush(stdout) != 0) rc = w8_seterr("write error on stdout");
    free(o.s);
    if (rc) {
        fprintf(stderr, "w8a8: %s\n", w8_lasterr());
        return 1;
    }
    return 0;
}

/*
 * cmd_chat_template.c - `w8a8 chat-template`: render a model's chat template
 * for JSON lines of conversations.
 *
 *   w8a8 chat-template --model_path DIR [--file F|-] [--template FILE]
 *
 * The template is --template, else the model directory's, found as
 * transformers finds it (w8_chat_template_find: chat_template.jinja, then
 * chat_template.json, then tokenizer_config.json's "chat_template", whose
 * list form gives the "default" entry).  Each input line is
 *   {"input": {"messages": [...], "add_generation_prompt": bool,
 *              "tools"?: [...], "enable_thinking"?: ..., ...}}
 * (the bare inner object is accepted too) and gives one output line
 *   {"rendered": "..."}
 * Every line is rendered before anything is written, so an error leaves no
 * partial output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/chat_template.h"
#include "../src/json.h"
#include "../src/util.h"
#include "args.h"
#include "commands.h"

#define MAX_INPUT ((size_t)1 << 30)

/* A special token in tokenizer_config.json: a string or {"content": ...}. */
static const char *special_token(const json_t *cfg, const char *key) {
    const json_t *v = json_object_get(cfg, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* The template text (malloc'd): --template, else the model directory's (as
 * w8_chat_template_find finds it); *cfg_out is DIR/tokenizer_config.json
 * (special tokens), NULL when absent. */
static char *load_template(const char *model_dir, const char *tmpl_path, json_t **cfg_out) {
    *cfg_out = NULL;
    if (model_dir && !w8_is_dir(model_dir)) {
        w8_seterr("%s: not a model directory", model_dir);
        return NULL;
    }
    if (model_dir) {
        /* special tokens come from the model, whichever template is used */
        char *cfg_path = w8_path_join(model_dir, "tokenizer_config.json");
        int have = w8_file_exists(cfg_path);
        json_t *cfg = have ? w8_json_load_file(cfg_path) : NULL;
        free(cfg_path);
        if (have && !cfg) return NULL;
        *cfg_out = cfg;
    }
    char *text = NULL;
    if (tmpl_path) {
        text = w8_read_input(tmpl_path, W8_JINJA_MAX_OUTPUT, NULL);
    } else if (w8_chat_template_find(model_dir, &text) == 1) {
        w8_seterr("%s: no chat template (no chat_template.jinja, chat_template.json or "
                  "chat_template in tokenizer_config.json)", model_dir);
    }
    if (!text) {
        json_decref(*cfg_out);
        *cfg_out = NULL;
    }
    return text;
}

/* Renders one input line into a {"rendered": ...} line (malloc'd). */
static char *render_line(const char *tmpl, const json_t *cfg, const char *line, size_t len, long lineno) {
    char label[64];
    snprintf(label, sizeof label, "input line %ld", lineno);
    json_t *obj = w8_json_load_buf(line, len, label);
    if (!obj) return NULL;
    char *out = NULL;
    json_t *in = json_object_get(obj, "input");
    if (!in) in = obj;
    json_t *messages = json_object_get(in, "messages"), *tools = json_object_get(in, "tools");
    json_t *agp = json_object_get(in, "add_generation_prompt");
    if (!json_is_object(in) || !json_is_array(messages)) {
        w8_seterr("%s: expected {\"input\": {\"messages\": [...], ...}}", label);
    } else if (agp && !json_is_boolean(agp) && !json_is_null(agp)) {
        w8_seterr("%s: add_generation_prompt: expected a boolean", label);
    } else {
        json_t *extra = json_deep_copy(in);
        json_object_del(extra, "messages");
        json_object_del(extra, "tools");
        json_object_del(extra, "add_generation_prompt");
        char *r = w8_chat_render(tmpl, messages, tools, json_is_true(agp), extra,
                                 cfg ? special_token(cfg, "bos_token") : NULL,
                                 cfg ? special_token(cfg, "eos_token") : NULL);
        json_decref(extra);
        if (!r) {
            w8_preferr("%s", label);
        } else {
            json_t *o = json_object();
            json_t *s = json_string(r);
            if (!s) {
                w8_seterr("%s: rendered text is not valid UTF-8", label);
            } else {
                json_object_set_new(o, "rendered", s);
                out = w8_json_dumps(o, 0);
            }
            json_decref(o);
            free(r);
        }
    }
    json_decref(obj);
    return out;
}

int w8_cmd_chat_template(int argc, char **argv) {
    const char *model = NULL, *file = "-", *tmpl_path = NULL;
    w8_opt opts[] = {
        {"model_path", 'm', W8_ARG_STR, &model, "model directory with tokenizer_config.json"},
        {"file", 'f', W8_ARG_STR, &file, "JSON lines {\"input\": {messages, ...}} ('-' = stdin, default)"},
        {"template", 0, W8_ARG_STR, &tmpl_path, "Jinja template file to use instead of the model's"},
    };
    int rc = w8_args_parse(argc, argv, "w8a8 chat-template --model_path DIR [--file F]",
                           "Render the model's Jinja chat template for each input line and print\n"
                           "{\"rendered\": \"...\"} lines, as transformers' apply_chat_template(tokenize=False).",
                           opts, (int)(sizeof opts / sizeof opts[0]));
    if (rc) return rc > 0 ? 0 : 1;
    if (!model && !tmpl_path) {
        fprintf(stderr, "w8a8: chat-template: --model_path (or --template) is required (see --help)\n");
        return 1;
    }
    json_t *cfg = NULL;
    char *tmpl = NULL, *input = NULL;
    char **lines = NULL;
    size_t nlines = 0, len = 0;
    int status = 1;
    tmpl = load_template(model, tmpl_path, &cfg);
    if (!tmpl) goto done;
    input = w8_read_input(file, MAX_INPUT, &len);
    if (!input) goto done;
    long lineno = 0;
    for (char *p = input, *end = input + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        lineno++;
        size_t k = 0;
        while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r')) k++;
        if (k < n) {
            char *out = render_line(tmpl, cfg, p, n, lineno);
            if (!out) goto done;
            lines = w8_xrealloc(lines, (nlines + 1) * sizeof *lines);
            lines[nlines++] = out;
        }
        p += n + 1;
    }
    for (size_t i = 0; i < nlines; i++) printf("%s\n", lines[i]);
    status = fflush(stdout) == 0 ? 0 : 1;
done:
    if (status) fprintf(stderr, "w8a8: %s\n", w8_lasterr());
    for (size_t i = 0; i < nlines; i++) free(lines[i]);
    free(lines);
    free(input);
    free(tmpl);
    json_decref(cfg);
    return status;
}

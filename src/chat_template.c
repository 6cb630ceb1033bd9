/*
 * chat_template.c - render Hugging Face chat templates (see chat_template.h).
 *
 * The Jinja2 interpreter itself is in src/jinja/ (jinja/core.h explains the
 * split); this file is the public face: parse, render, free, the chat
 * convenience that builds the variables transformers passes to
 * apply_chat_template, and finding a model directory's template.
 */
#include "chat_template.h"

#include <stdlib.h>
#include <string.h>

#include "jinja/eval.h"
#include "jinja/parse.h"
#include "json.h"
#include "util.h"

char *w8_jinja_render(const char *tmpl, size_t len, const json_t *context) {
    if (!tmpl) {
        w8_seterr("template: no template");
        return NULL;
    }
    if (context && !json_is_object(context)) {
        w8_seterr("template: the context must be a JSON object");
        return NULL;
    }
    jtemplate t;
    if (jj_parse(tmpl, len, &t)) return NULL;
    char *out = NULL;
    size_t n;
    int rc = jj_render(&t, context, &out, &n);
    jj_template_free(&t);
    return rc ? NULL : out;
}

/* A parsed template: the syntax tree in its arena.  Rendering never writes
 * to it, so one parse serves any number of concurrent renders (see
 * chat_template.h and jinja/core.h, "immortal"). */
struct w8_chat_tmpl {
    jtemplate t;
};

w8_chat_tmpl *w8_chat_tmpl_parse(const char *tmpl) {
    if (!tmpl) {
        w8_seterr("template: no template");
        return NULL;
    }
    w8_chat_tmpl *ct = w8_xcalloc(1, sizeof *ct);
    if (jj_parse(tmpl, strlen(tmpl), &ct->t)) {
        free(ct);
        return NULL;
    }
    return ct;
}

void w8_chat_tmpl_free(w8_chat_tmpl *ct) {
    if (!ct) return;
    jj_template_free(&ct->t);
    free(ct);
}

/* The variables transformers' apply_chat_template passes, or NULL with an
 * error. */
static json_t *chat_context(const json_t *messages, const json_t *tools, int add_generation_prompt,
                            const json_t *extra, const char *bos_token, const char *eos_token) {
    if (!messages || !json_is_array(messages)) {
        w8_seterr("chat template: messages must be an array");
        return NULL;
    }
    if (extra && !json_is_object(extra)) {
        w8_seterr("chat template: extra variables must be an object");
        return NULL;
    }
    /* Like transformers' apply_chat_template: extra keys (enable_thinking,
     * ...) first, then the standard ones win; tools and documents are None
     * when absent, so `tools is defined` behaves as in Python. */
    json_t *ctx = extra ? json_deep_copy(extra) : json_object();
    if (!ctx) {
        w8_seterr("chat template: out of memory");
        return NULL;
    }
    json_object_set(ctx, "messages", (json_t *)messages);
    json_object_set_new(ctx, "tools", tools && !json_is_null(tools) ? json_incref((json_t *)tools) : json_null());
    if (!json_object_get(ctx, "documents")) json_object_set_new(ctx, "documents", json_null());
    json_object_set_new(ctx, "add_generation_prompt", json_boolean(add_generation_prompt));
    if (bos_token) json_object_set_new(ctx, "bos_token", json_string(bos_token));
    if (eos_token) json_object_set_new(ctx, "eos_token", json_string(eos_token));
    return ctx;
}

char *w8_chat_render(const char *tmpl, const json_t *messages, const json_t *tools,
                     int add_generation_prompt, const json_t *extra, const char *bos_token,
                     const char *eos_token) {
    json_t *ctx = chat_context(messages, tools, add_generation_prompt, extra, bos_token, eos_token);
    if (!ctx) return NULL;
    char *out = w8_jinja_render(tmpl, strlen(tmpl), ctx);
    json_decref(ctx);
    return out;
}

char *w8_chat_tmpl_render(const w8_chat_tmpl *ct, const json_t *messages, const json_t *tools,
                          int add_generation_prompt, const json_t *extra, const char *bos_token,
                          const char *eos_token) {
    json_t *ctx = chat_context(messages, tools, add_generation_prompt, extra, bos_token, eos_token);
    if (!ctx) return NULL;
    char *out = NULL;
    size_t n;
    int rc = jj_render(&ct->t, ctx, &out, &n);
    json_decref(ctx);
    return rc ? NULL : out;
}

/* ------------------------------------------------------------ finding it */

/* A "chat_template" value: a string, or a list of {"name", "template"} from
 * which transformers' apply_chat_template uses the one named "default". */
static int template_value(const json_t *ct, const char *label, char **out) {
    if (json_is_string(ct)) {
        *out = w8_xstrdup(json_string_value(ct));
        return 0;
    }
    if (json_is_array(ct)) {
        size_t i;
        const json_t *e;
        json_array_foreach(ct, i, e) {
            const json_t *name = json_object_get(e, "name"), *t = json_object_get(e, "template");
            if (json_is_string(name) && !strcmp(json_string_value(name), "default") && json_is_string(t)) {
                *out = w8_xstrdup(json_string_value(t));
                return 0;
            }
        }
        return w8_seterr("%s: key 'chat_template': no template named 'default'", label);
    }
    return w8_seterr("%s: key 'chat_template': expected a string or a list, got %s", label,
                     w8_json_type_name(ct));
}

/* "chat_template" of a JSON file: 0 found, 1 absent (no file, or no key). */
static int template_from_json(const char *dir, const char *name, char **out) {
    char *p = w8_path_join(dir, name);
    int rc = 1;
    if (w8_file_exists(p)) {
        json_t *j = w8_json_load_file(p);
        const json_t *ct = json_is_object(j) ? json_object_get(j, "chat_template") : NULL;
        if (!j) rc = -1;
        else if (!json_is_object(j)) rc = w8_seterr("%s: expected a JSON object", p);
        else if (ct && !json_is_null(ct)) rc = template_value(ct, p, out);
        json_decref(j);
    }
    free(p);
    return rc;
}

int w8_chat_template_find(const char *dir, char **out) {
    *out = NULL;
    char *p = w8_path_join(dir, "chat_template.jinja");
    if (w8_file_exists(p)) {
        *out = w8_read_file(p, W8_JINJA_MAX_OUTPUT, NULL);
        free(p);
        return *out ? 0 : -1;
    }
    free(p);
    int rc = template_from_json(dir, "chat_template.json", out);
    if (rc != 1) return rc;
    return template_from_json(dir, "tokenizer_config.json", out);
}

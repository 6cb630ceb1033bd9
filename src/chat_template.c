/*
 * chat_template.c - render Hugging Face chat templates (see chat_template.h).
 *
 * The Jinja2 interpreter itself is in src/jinja/ (jinja/core.h explains the
 * split); this file is the public face: parse, render, free, and the chat
 * convenience that builds the variables transformers passes to
 * apply_chat_template.
 */
#include "chat_template.h"

#include <string.h>

#include "jinja/eval.h"
#include "jinja/parse.h"
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

char *w8_chat_render(const char *tmpl, const json_t *messages, const json_t *tools,
                     int add_generation_prompt, const json_t *extra, const char *bos_token,
                     const char *eos_token) {
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
    char *out = w8_jinja_render(tmpl, strlen(tmpl), ctx);
    json_decref(ctx);
    return out;
}

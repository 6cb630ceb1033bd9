/*
 * prompt.c - text or conversation to prompt ids (see prompt.h).
 */
#include "prompt.h"

#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "util.h"

static int fail(w8_prompt_err *why, w8_prompt_err e) {
    *why = e;
    return -1;
}

int w8_prompt_ids(const w8_tok *tok, const w8_config *cfg, const w8_prompt *p, int **ids,
                  w8_prompt_err *why) {
    int n;
    *why = W8_PROMPT_OK;
    *ids = NULL;
    if (p->chat || p->msgs) {
        const char *tmpl = p->tmpl ? p->tmpl : w8_tok_chat_template(tok);
        if (!tmpl) {
            w8_seterr("the model has no chat template (no chat_template.jinja, "
                      "chat_template.json or chat_template in tokenizer_config.json)");
            return fail(why, W8_PROMPT_NO_TEMPLATE);
        }
        json_t *msgs = NULL;
        if (p->msgs) {
            msgs = json_incref((json_t *)p->msgs);
        } else {
            json_t *content = json_stringn(p->text, p->len); /* NULL: not UTF-8 */
            if (content) msgs = json_pack("[{s:s, s:o}]", "role", "user", "content", content);
        }
        if (!msgs) {
            w8_seterr("the input text is not valid UTF-8");
            return fail(why, W8_PROMPT_BAD_TEXT);
        }
        char *text = p->parsed && !p->tmpl
                         ? w8_chat_tmpl_render(p->parsed, msgs, NULL, 1, NULL,
                                               w8_tok_bos_token(tok), w8_tok_eos_token(tok))
                         : w8_chat_render(tmpl, msgs, NULL, 1, NULL, w8_tok_bos_token(tok),
                                          w8_tok_eos_token(tok));
        json_decref(msgs);
        if (!text) return fail(why, W8_PROMPT_TEMPLATE);
        /* the rendered template carries its own special tokens */
        n = w8_tok_encode(tok, text, strlen(text), 0, ids);
        free(text);
    } else {
        n = w8_tok_encode(tok, p->text, p->len, 1, ids);
    }
    if (n < 0) return fail(why, W8_PROMPT_TOKENIZE);
    if (n == 0 && p->empty_bos) {
        int bos = cfg->bos_id >= 0 ? cfg->bos_id : w8_tok_bos_id(tok);
        if (bos < 0) {
            w8_seterr("empty prompt and the model has no BOS token");
            return fail(why, W8_PROMPT_NO_BOS);
        }
        *ids = w8_xrealloc(*ids, sizeof(int));
        (*ids)[0] = bos;
        n = 1;
    }
    return n;
}

/*
 * fuzz_jinja.c - chat template parsing and rendering: arbitrary template text
 * and, after the first NUL byte, an arbitrary JSON message list.  The render
 * must end (loop and output caps) and never crash.
 */
#include <string.h>

#include "../src/chat_template.h"
#include "../src/json.h"
#include "../src/util.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *tmpl = (const char *)data;
    const char *nul = memchr(data, 0, size);
    size_t tlen = nul ? (size_t)(nul - tmpl) : size;
    json_t *messages = NULL;
    if (nul) messages = json_loadb(nul + 1, size - tlen - 1, 0, NULL);
    if (!json_is_array(messages)) {
        json_decref(messages);
        messages = json_pack("[{s:s,s:s},{s:s,s:s}]", "role", "system", "content", "Be brief.",
                             "role", "user", "content", "What's deep learning?");
    }
    char *t = w8_xstrndup(tmpl, tlen);
    char *out = w8_chat_render(t, messages, NULL, 1, NULL, "<s>", "</s>");
    free(out);
    free(t);
    json_decref(messages);
    return 0;
}

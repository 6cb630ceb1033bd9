/*
 * fuzz_eval_tasks.c - the task file reader of `w8a8 eval --tasks` (JSON
 * lines of multiple choice, generation and loglikelihood items), and the
 * answer extraction of generation lines (stop strings, regex).
 */
#include <stdlib.h>
#include <string.h>

#include "../src/eval.h"
#include "../src/util.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    w8_eval_set s;
    if (w8_eval_parse((const char *)data, size, "fuzz.jsonl", (int)(size % 4), &s) != 0) return 0;
    if (s.n < 1 || s.n_tasks < 1) abort();
    for (int i = 0; i < s.n; i++) {
        const w8_eval_item *it = &s.items[i];
        if (it->task < 0 || it->task >= s.n_tasks || !it->context) abort();
        if (it->kind == W8_EVAL_MC && (it->gold < 0 || it->gold >= it->n_choices)) abort();
        if (it->kind == W8_EVAL_GEN) {
            /* the prompt as a model's output: cut, regex, strip */
            char *x = w8_eval_extract(it->context, it->stop, it->n_stop, it->regex);
            if (!x && !it->regex) abort(); /* only a bad regex may fail */
            free(x);
        }
    }
    w8_eval_set_free(&s);
    return 0;
}

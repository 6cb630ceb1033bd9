/*
 * main.c - the w8a8 command: dispatch to a sub-command.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

/* libgomp's waiting threads spin ~300000 pause loops (milliseconds) at
 * every barrier and between parallel regions before they sleep.  On a host
 * shared with other work, one of our threads being descheduled makes its
 * partner spin away its whole time slice: perf showed ~40% of a prompt's
 * cycles in that spin on a loaded 2-core VM, where a few thousand loops
 * (tens of microseconds, longer than any wait of a balanced run on a quiet
 * host) made pp512 ~2x and tg ~2-5x faster.  libgomp reads GOMP_SPINCOUNT
 * once, before main (and libc's own start-up resets any environment set
 * earlier), so the process sets it and executes itself again, once.  A
 * user's OMP_WAIT_POLICY or GOMP_SPINCOUNT is left alone; if the exec
 * fails, the run goes on with libgomp's default. */
static void omp_spin_default(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("GOMP_SPINCOUNT", "3000", 0) != 0) return;
    execv("/proc/self/exe", argv);
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"run", w8_cmd_run, "generate text from a float or W8A8 model (MindIE run_pa style)"},
    {"quant", w8_cmd_quant, "quantize a float Hugging Face model to msModelSlim W8A8"},
    {"inspect", w8_cmd_inspect, "describe a model directory and validate it against FORMAT.md"},
    {"tokenize", w8_cmd_tokenize, "encode JSON lines {\"text\": ...} to {\"ids\": [...]}"},
    {"chat-template", w8_cmd_chat_template, "render chat templates for JSON lines of messages"},
    {"ppl", w8_cmd_ppl, "perplexity of a model over a text file"},
    {"eval", w8_cmd_eval, "accuracy on lm-eval style tasks, several models side by side"},
    {"compare", w8_cmd_compare, "per-layer and logit agreement of a float and a W8A8 model"},
    {"bench", w8_cmd_bench, "prompt processing and generation speed (llama-bench style)"},
    {"synth", w8_cmd_synth, "write a random-weight model with real Qwen shapes"},
    {"serve", w8_cmd_serve, "OpenAI-compatible HTTP server with continuous batching"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: w8a8 COMMAND [options]   (w8a8 COMMAND --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    omp_spin_default(argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "w8a8: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 1;
}

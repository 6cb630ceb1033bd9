/*
 * args.h - the option parser every command shares.
 *
 * Accepts "--name value", "--name=value", short "-t 2", flags without a
 * value, and list options that take every following word up to the next
 * option (MindIE's --input_texts "a" "b"; a repeated list option adds to
 * its list, so the w8_strlist must start zeroed).  An entry with name NULL takes a
 * positional argument.  "--help"/"-h" prints the usage and option table.
 */
#ifndef W8_ARGS_H
#define W8_ARGS_H

#include "../src/model.h"

/* W8_ARG_BOOL: a flag that may take a value, as Python tools spell booleans
 * ("--trust_remote_code", "--trust_remote_code True", "--x=false"): the next
 * word is taken only when it is a boolean word (true/false, 1/0, yes/no,
 * on/off, any case), so a bare flag before a positional still works. */
typedef enum { W8_ARG_FLAG, W8_ARG_INT, W8_ARG_FLOAT, W8_ARG_STR, W8_ARG_LIST, W8_ARG_BOOL } w8_arg_type;

typedef struct {
    int n;
    char **v; /* points into argv; free(v) only */
} w8_strlist;

typedef struct {
    const char *name;   /* long name without "--", or NULL for a positional */
    char short_name;    /* 0 if none */
    w8_arg_type type;
    void *dst;          /* int* (FLAG, INT, BOOL), float* (FLOAT), const char** (STR), w8_strlist* (LIST) */
    const char *help;   /* one line, shown by --help (include the default) */
} w8_opt;

/* Returns 0 to go on, 1 when --help was printed (caller returns 0),
 * -1 on a usage error (message printed; caller returns 1).
 * `usage` is the first help line, e.g. "w8a8 run --model_path DIR [options]". */
int w8_args_parse(int argc, char **argv, const char *usage, const char *about,
                  const w8_opt *opts, int nopts);

/* A boolean word: 1 (true/1/yes/on), 0 (false/0/no/off), any case; -1 otherwise. */
int w8_args_bool(const char *s);

/* The common -t/--threads option applies itself: call after parsing. */
void w8_args_apply_threads(int threads);

/* The common --float_layers option (run, serve, bench, ppl, compare, eval):
 * its help line, and its value (NULL: the default, "file") into o.  A bad
 * value prints one line and returns -1 (the caller returns 1). */
#define W8_ARGS_FLOAT_LAYERS_HELP                                                            \
    "file: float layers run as stored (default); int8: made per-channel int8 at load, "   \
    "per-token activations (W8A8_DYNAMIC)"
int w8_args_float_layers(const char *value, w8_load_opts *o);

#endif

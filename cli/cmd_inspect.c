/*
 * cmd_inspect.c - `w8a8 inspect DIR`: what a model directory is, and for a
 * W8A8 directory every violation of FORMAT.md (exit 1 when there is any),
 * the variants of other msModelSlim versions it accepted, and whether
 * vllm-ascend (A2/A3, 310P) and MindIE will load it.  A consumer that will
 * not load the directory does not change the exit status: the directory
 * still follows FORMAT.md and our runtime loads it.
 */
#include <stdio.h>

#include "../src/inspect.h"
#include "../src/util.h"
#include "args.h"
#include "commands.h"

int w8_cmd_inspect(int argc, char **argv) {
    const char *dir = NULL;
    const w8_opt opts[] = {
        {NULL, 0, W8_ARG_STR, &dir, "model directory (float or W8A8)"},
    };
    int pr = w8_args_parse(argc, argv, "w8a8 inspect DIR",
                           "Describe a model directory; validate a W8A8 one against FORMAT.md "
                           "(exit status 1 lists each violation), name the variants it "
                           "accepts, and say per consumer (vllm-ascend A2/A3, vllm-ascend 310P, "
                           "MindIE) whether it will load, with the rule that fails (reported "
                           "only: the exit status stays 0).",
                           opts, 1);
    if (pr != 0) return pr > 0 ? 0 : 1;
    if (!dir) {
        fprintf(stderr, "w8a8: inspect needs a directory (see --help)\n");
        return 1;
    }
    w8_inspect_info info;
    if (w8_inspect_dir(dir, &info) != 0) {
        fprintf(stderr, "w8a8: %s\n", w8_lasterr());
        return 1;
    }
    w8_inspect_print(stdout, dir, &info);
    int rc = info.n_violations ? 1 : 0;
    if (rc) fprintf(stderr, "w8a8: %s: %d violation%s of FORMAT.md\n", dir, info.n_violations,
                    info.n_violations == 1 ? "" : "s");
    w8_inspect_free(&info);
    return rc;
}

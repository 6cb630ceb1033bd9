/* cmd_bench.c - placeholder until the command lands (owned by its issue). */
#include <stdio.h>

#include "commands.h"

int w8_cmd_bench(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "w8a8: 'bench' is not built yet\n");
    return 1;
}

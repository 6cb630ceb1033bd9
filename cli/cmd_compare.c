/* cmd_compare.c - placeholder until the command lands (owned by its issue). */
#include <stdio.h>

#include "commands.h"

int w8_cmd_compare(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "w8a8: 'compare' is not built yet\n");
    return 1;
}

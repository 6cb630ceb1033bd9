/* cmd_tokenize.c - placeholder until the command lands (owned by its issue). */
#include <stdio.h>

#include "commands.h"

int w8_cmd_tokenize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "w8a8: 'tokenize' is not built yet\n");
    return 1;
}

/* cmd_inspect.c - placeholder until the command lands (owned by its issue). */
#include <stdio.h>

#include "commands.h"

int w8_cmd_inspect(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "w8a8: 'inspect' is not built yet\n");
    return 1;
}

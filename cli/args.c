/* args.c - see args.h. */
#include "args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../src/util.h"

static void print_help(const char *usage, const char *about, const w8_opt *o, int n) {
    printf("usage: %s\n", usage);
    if (about) printf("\n%s\n", about);
    printf("\noptions:\n");
    for (int i = 0; i < n; i++) {
        char left[64];
        const char *meta = o[i].type == W8_ARG_FLAG   ? ""
                           : o[i].type == W8_ARG_BOOL ? " [BOOL]"
                           : o[i].type == W8_ARG_LIST ? " V [V ...]"
                           : o[i].type == W8_ARG_INT  ? " N"
                           : o[i].type == W8_ARG_FLOAT ? " X"
                                                       : " S";
        if (!o[i].name) snprintf(left, sizeof left, "  %s", meta + 1);
        else if (o[i].short_name)
            snprintf(left, sizeof left, "  -%c, --%s%s", o[i].short_name, o[i].name, meta);
        else snprintf(left, sizeof left, "  --%s%s", o[i].name, meta);
        printf("%-34s %s\n", left, o[i].help ? o[i].help : "");
    }
    printf("  %-32s %s\n", "-h, --help", "show this help");
}

int w8_args_bool(const char *s) {
    static const char *const yes[] = {"true", "1", "yes", "on"}, *const no[] = {"false", "0", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) return 1;
        if (!strcasecmp(s, no[i])) return 0;
    }
    return -1;
}

static int set_value(const w8_opt *o, const char *val, const char *usage) {
    char *end;
    switch (o->type) {
    case W8_ARG_INT: {
        long v = strtol(val, &end, 10);
        if (!*val || *end || v < -2147483647L || v > 2147483647L) goto bad;
        *(int *)o->dst = (int)v;
        return 0;
    }
    case W8_ARG_FLOAT: {
        float v = strtof(val, &end);
        if (!*val || *end) goto bad;
        *(float *)o->dst = v;
        return 0;
    }
    case W8_ARG_STR: *(const char **)o->dst = val; return 0;
    default: return 0;
    }
bad:
    fprintf(stderr, "w8a8: %s: option --%s: '%s' is not a valid %s\n", usage,
            o->name ? o->name : "argument", val, o->type == W8_ARG_INT ? "integer" : "number");
    return -1;
}

static const w8_opt *find_long(const w8_opt *o, int n, const char *name, size_t len) {
    for (int i = 0; i < n; i++)
        if (o[i].name && strlen(o[i].name) == len && !strncmp(o[i].name, name, len)) return &o[i];
    /* accept dashes for underscores (--max-output-length) */
    for (int i = 0; i < n; i++) {
        if (!o[i].name || strlen(o[i].name) != len) continue;
        size_t j = 0;
        for (; j < len; j++) {
            char a = o[i].name[j], b = name[j];
            if (a != b && !(a == '_' && b == '-')) break;
        }
        if (j == len) return &o[i];
    }
    return NULL;
}

static int is_option(const char *s, const w8_opt *o, int n) {
    if (s[0] != '-' || !s[1]) return 0;
    if (s[1] == '-') return 1;
    /* "-5" is a value, "-t" an option */
    for (int i = 0; i < n; i++)
        if (o[i].short_name == s[1]) return 1;
    return s[1] == 'h';
}

int w8_args_parse(int argc, char **argv, const char *usage, const char *about,
                  const w8_opt *opts, int nopts) {
    /* argv[0] is the command name ("run") */
    const char *cmdname = usage;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help(usage, about, opts, nopts);
            return 1;
        }
        const w8_opt *o = NULL;
        const char *val = NULL;
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            o = find_long(opts, nopts, a + 2, len);
            if (eq) val = eq + 1;
        } else if (is_option(a, opts, nopts)) {
            for (int j = 0; j < nopts; j++)
                if (opts[j].short_name == a[1]) o = &opts[j];
            if (o && a[2]) val = a + 2;
        } else {
            for (int j = 0; j < nopts; j++)
                if (!opts[j].name && opts[j].type == W8_ARG_STR &&
                    !*(const char **)opts[j].dst) {
                    *(const char **)opts[j].dst = a;
                    o = &opts[j];
                    break;
                }
            if (!o) {
                fprintf(stderr, "w8a8: unexpected argument '%s' (see --help)\n", a);
                return -1;
            }
            continue;
        }
        if (!o) {
            fprintf(stderr, "w8a8: unknown option '%s' (see --help)\n", a);
            return -1;
        }
        if (o->type == W8_ARG_FLAG) {
            if (val) {
                fprintf(stderr, "w8a8: option --%s takes no value\n", o->name);
                return -1;
            }
            *(int *)o->dst = 1;
            continue;
        }
        if (o->type == W8_ARG_BOOL) {
            int b = 1;
            if (val && (b = w8_args_bool(val)) < 0) {
                fprintf(stderr, "w8a8: option --%s: '%s' is not a boolean (true/false)\n", o->name,
                        val);
                return -1;
            }
            if (!val && i + 1 < argc && w8_args_bool(argv[i + 1]) >= 0) b = w8_args_bool(argv[++i]);
            *(int *)o->dst = b;
            continue;
        }
        if (o->type == W8_ARG_LIST) {
            /* a repeated list option adds to the list (--model_path A --model_path B);
             * every value is a word of argv, so argc entries always suffice */
            w8_strlist *l = o->dst;
            if (!l->v) {
                l->n = 0;
                l->v = w8_xcalloc((size_t)argc, sizeof(char *));
            }
            if (val) l->v[l->n++] = (char *)val;
            while (i + 1 < argc && !is_option(argv[i + 1], opts, nopts)) l->v[l->n++] = argv[++i];
            continue;
        }
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "w8a8: option %s needs a value (see --help)\n", a);
                return -1;
            }
            val = argv[++i];
        }
        if (set_value(o, val, cmdname) != 0) return -1;
    }
    return 0;
}

void w8_args_apply_threads(int threads) {
    if (threads > 0) w8_set_threads(threads);
}

int w8_args_float_layers(const char *value, w8_load_opts *o) {
    *o = (w8_load_opts){0};
    if (!value) return 0;
    if (w8_float_layers_parse(value, &o->float_layers) == 0) return 0;
    fprintf(stderr, "w8a8: %s\n", w8_lasterr());
    return -1;
}

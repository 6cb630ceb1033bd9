/*
 * dirtx.c - write a directory under a temporary name, then rename it into
 * place (see dirtx.h).
 */
#include "dirtx.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static void note(FILE *log, const char *fmt, ...) W8_PRINTF(2, 3);
static void note(FILE *log, const char *fmt, ...) {
    if (!log) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(log, fmt, ap);
    va_end(ap);
    fputc('\n', log);
}

static int dir_is_empty(const char *p) {
    DIR *d = opendir(p);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty;
}

/* Remove TARGET.w8a8-tmp-PID directories left by runs that were killed;
 * report the ones whose process still runs, and .w8a8-old-PID leftovers of an
 * interrupted --force swap (they hold the previous output: reported only). */
static void clean_leftovers(const char *save, const char *who, FILE *log) {
    char *parent = w8_path_parent(save);
    const char *slash = strrchr(save, '/');
    const char *base = slash ? slash + 1 : save;
    size_t pn = strlen(base) + sizeof ".w8a8-tmp-";
    char *tp = w8_xmalloc(pn), *op = w8_xmalloc(pn);
    snprintf(tp, pn, "%s.w8a8-tmp-", base);
    snprintf(op, pn, "%s.w8a8-old-", base);
    DIR *d = opendir(parent);
    if (!d) {
        free(tp);
        free(op);
        free(parent);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        int is_tmp = !strncmp(e->d_name, tp, strlen(tp));
        int is_old = !strncmp(e->d_name, op, strlen(op));
        if (!is_tmp && !is_old) continue;
        const char *num = e->d_name + strlen(is_tmp ? tp : op);
        char *end;
        long pid = strtol(num, &end, 10);
        if (!*num || *end || pid <= 0) continue;
        char *full = w8_path_join(parent, e->d_name);
        int alive = pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
        if (alive)
            note(log, "note: %s belongs to a %s run that is still running (pid %ld); left "
                 "alone", full, who, pid);
        else if (is_tmp && pid != (long)getpid()) {
            if (w8_rm_rf(full) == 0)
                note(log, "note: removed %s, left by an interrupted %s run (pid %ld)", full, who,
                     pid);
            else
                note(log, "warning: could not remove %s, left by an interrupted %s run", full, who);
        } else if (is_old)
            note(log, "warning: %s holds the previous output of an interrupted --force run; "
                 "remove it when no longer needed", full);
        free(full);
    }
    closedir(d);
    free(tp);
    free(op);
    free(parent);
}

/* The temporary (TARGET.w8a8-tmp-PID) and moved-aside (TARGET.w8a8-old-PID)
 * names are the target's plus a suffix of the same length, and the system
 * refuses a path of PATH_MAX bytes or more: refuse such a target before
 * anything is written (a name cut to fit could be someone else's path).  The
 * message shows only the path's start: the error line holds W8_ERRMAX bytes,
 * and the whole path would push out what is wrong with it. */
int w8_dirtx_check_len(const char *target) {
    char suffix[64];
    size_t n = strlen(target);
    while (n > 1 && target[n - 1] == '/') n--;
    size_t sl = (size_t)snprintf(suffix, sizeof suffix, ".w8a8-tmp-%ld", (long)getpid());
    if (n + sl < PATH_MAX) return 0;
    return w8_seterr("%.60s...: path too long (%zu bytes; with the %zu-byte temporary suffix "
                     "it must stay under %d)", target, n, sl, PATH_MAX);
}

int w8_dirtx_begin(w8_dirtx *tx, const char *target, int force, const char *who, FILE *log) {
    memset(tx, 0, sizeof *tx);
    if (w8_dirtx_check_len(target)) return -1;
    char *save = w8_path_strip(target);
    char *parent = w8_path_parent(save);
    int ok = w8_is_dir(parent);
    free(parent);
    if (!ok) {
        w8_seterr("%s: the parent directory does not exist", save);
        free(save);
        return -1;
    }
    struct stat st;
    if (lstat(save, &st) == 0 && !force) {
        const char *why = !S_ISDIR(st.st_mode) ? "is not a directory"
                          : !dir_is_empty(save) ? "is not empty"
                                                : NULL;
        if (why) {
            w8_seterr("%s exists and %s (use --force to replace it)", save, why);
            free(save);
            return -1;
        }
    }
    clean_leftovers(save, who, log);
    char buf[64];
    snprintf(buf, sizeof buf, ".w8a8-tmp-%ld", (long)getpid());
    char *tmp = w8_xmalloc(strlen(save) + strlen(buf) + 1);
    strcpy(tmp, save);
    strcat(tmp, buf);
    w8_rm_rf(tmp); /* this process's own earlier temp (a second run in one process) */
    if (mkdir(tmp, 0755) != 0) {
        w8_seterr("%s: cannot create temporary directory: %s", tmp, strerror(errno));
        free(tmp);
        free(save);
        return -1;
    }
    tx->target = save;
    tx->tmp = tmp;
    return 0;
}

/* An existing target is moved aside first and removed only once the new one
 * is in place, so a failed rename leaves the old output where it was. */
int w8_dirtx_commit(w8_dirtx *tx) {
    const char *save = tx->target, *tmp = tx->tmp;
    struct stat st;
    char old[PATH_MAX];
    int rc = 0;
    int n = snprintf(old, sizeof old, "%s.w8a8-old-%ld", save, (long)getpid());
    int had = lstat(save, &st) == 0;
    if (n < 0 || (size_t)n >= sizeof old) /* a cut name could be someone else's path */
        rc = w8_seterr("%s: path too long (%d bytes)", save, (int)strlen(save));
    else if (had && rename(save, old) != 0)
        rc = w8_seterr("%s: cannot move the existing directory aside: %s", save, strerror(errno));
    else if (rename(tmp, save) != 0) {
        int e = errno;
        if (had) rename(old, save);
        rc = w8_seterr("%s: cannot rename %s into place: %s", save, tmp, strerror(e));
    } else {
        if (had) w8_rm_rf(old);
        free(tx->tmp);
        tx->tmp = NULL; /* in place: nothing for abort to remove */
    }
    w8_dirtx_abort(tx);
    return rc;
}

void w8_dirtx_abort(w8_dirtx *tx) {
    if (tx->tmp) w8_rm_rf(tx->tmp);
    free(tx->tmp);
    free(tx->target);
    tx->tmp = tx->target = NULL;
}

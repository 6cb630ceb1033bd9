/*
 * test_dirtx.c - the write-to-temp-then-rename directory transaction
 * (src/dirtx.c) that quant and synth write their outputs with.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/dirtx.h"
#include "../src/util.h"
#include "test.h"

static char root[] = "/tmp/w8a8-test-dirtx-XXXXXX";

static char *at(const char *name) { return w8_path_join(root, name); }

static void put(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* a file inside DIR */
static int has(const char *dir, const char *name) {
    char *p = w8_path_join(dir, name);
    int r = w8_file_exists(p);
    free(p);
    return r;
}

/* the pid of a process that has exited and been reaped: no such process now */
static long dead_pid(void) {
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    return (long)p;
}

static void test_new_target(void) {
    char *t = at("new");
    w8_dirtx tx;
    int rc = w8_dirtx_begin(&tx, t, 0, "test", NULL);
    char want[4200];
    snprintf(want, sizeof want, "%s.w8a8-tmp-%ld", t, (long)getpid());
    CHECK(rc == 0 && tx.tmp && !strcmp(tx.tmp, want) && w8_is_dir(tx.tmp) && !w8_file_exists(t),
          "begin creates TARGET.w8a8-tmp-PID and not the target");
    char *f = w8_path_join(tx.tmp, "a.txt");
    put(f, "x");
    free(f);
    char *tmp = w8_xstrdup(tx.tmp);
    rc = w8_dirtx_commit(&tx);
    CHECK(rc == 0 && has(t, "a.txt") && !w8_file_exists(tmp) && !tx.tmp && !tx.target,
          "commit renames the temp into place and frees the transaction");
    free(tmp);
    /* a trailing slash names the same target; now it is not empty */
    char slashed[4200];
    snprintf(slashed, sizeof slashed, "%s/", t);
    rc = w8_dirtx_begin(&tx, slashed, 0, "test", NULL);
    CHECK(rc == -1 && strstr(w8_lasterr(), "exists and is not empty") &&
              strstr(w8_lasterr(), "--force") && has(t, "a.txt"),
          "a non-empty target is refused without force: %s", w8_lasterr());
    free(t);
}

static void test_force_and_abort(void) {
    char *t = at("old");
    w8_mkdir_p(t);
    char *keep = w8_path_join(t, "keep.txt");
    put(keep, "mine");
    w8_dirtx tx;
    int rc = w8_dirtx_begin(&tx, t, 1, "test", NULL);
    char *tmp = rc == 0 ? w8_xstrdup(tx.tmp) : NULL;
    if (rc == 0) w8_dirtx_abort(&tx);
    CHECK(rc == 0 && tmp && !w8_file_exists(tmp) && w8_file_exists(keep),
          "abort removes the temp and leaves the old target as it was");
    free(tmp);
    rc = w8_dirtx_begin(&tx, t, 1, "test", NULL);
    if (rc == 0) {
        char *f = w8_path_join(tx.tmp, "new.txt");
        put(f, "new");
        free(f);
        rc = w8_dirtx_commit(&tx);
    }
    char old[4200];
    snprintf(old, sizeof old, "%s.w8a8-old-%ld", t, (long)getpid());
    CHECK(rc == 0 && has(t, "new.txt") && !w8_file_exists(keep) && !w8_file_exists(old),
          "with force, commit replaces the target and removes the old one");
    /* a file (not a directory) as the target */
    char *file = at("file");
    put(file, "f");
    rc = w8_dirtx_begin(&tx, file, 0, "test", NULL);
    CHECK(rc == -1 && strstr(w8_lasterr(), "is not a directory"),
          "a non-directory target is refused without force: %s", w8_lasterr());
    free(file);
    free(keep);
    free(t);
}

static void test_leftovers(void) {
    char *t = at("left");
    char name[256];
    long dead = dead_pid();
    snprintf(name, sizeof name, "left.w8a8-tmp-%ld", dead);
    char *gone = at(name);
    w8_mkdir_p(gone);
    /* pid 1 always runs: its temp belongs to a live process */
    char *live = at("left.w8a8-tmp-1");
    w8_mkdir_p(live);
    char *other = at("leftover.w8a8-tmp-x");
    w8_mkdir_p(other);
    char *logp = at("log.txt");
    FILE *log = fopen(logp, "w+");
    w8_dirtx tx;
    int rc = w8_dirtx_begin(&tx, t, 0, "test", log);
    char text[4096] = {0};
    if (log) {
        rewind(log);
        size_t n = fread(text, 1, sizeof text - 1, log);
        text[n] = 0;
        fclose(log);
    }
    CHECK(rc == 0 && !w8_file_exists(gone) && strstr(text, "left by an interrupted test run"),
          "begin removes the temp of a run whose process is gone and says so");
    CHECK(w8_is_dir(live) && strstr(text, "still running (pid 1)") && w8_is_dir(other),
          "a live process's temp and unrelated names are left alone");
    if (rc == 0) w8_dirtx_abort(&tx);
    free(logp);
    free(other);
    free(live);
    free(gone);
    free(t);
}

static void test_missing_parent(void) {
    char *t = at("no/such/dir");
    w8_dirtx tx;
    int rc = w8_dirtx_begin(&tx, t, 1, "test", NULL);
    CHECK(rc == -1 && strstr(w8_lasterr(), "parent directory does not exist") && !tx.tmp,
          "a missing parent directory is refused, nothing created: %s", w8_lasterr());
    free(t);
}

/* A target whose temporary name would reach PATH_MAX is refused before
 * anything is made, with the reason in the one error line; one byte shorter
 * it is taken.  The path is long only as a string ("./" repeated), so its
 * parent exists. */
static void test_long_path(void) {
    char suffix[64];
    size_t sl = (size_t)snprintf(suffix, sizeof suffix, ".w8a8-tmp-%ld", (long)getpid());
    size_t len = PATH_MAX - sl; /* tmp = len + sl bytes: one too many with the NUL */
    char *t = w8_xmalloc(len + 1);
    size_t n = (size_t)snprintf(t, len + 1, "%s/", root);
    while (n + 5 < len) t[n++] = '.', t[n++] = '/'; /* then "xxx" or more */
    while (n < len) t[n++] = 'x';
    t[len] = 0;
    w8_dirtx tx;
    int rc = w8_dirtx_begin(&tx, t, 0, "test", NULL);
    CHECK(rc == -1 && !tx.tmp && strstr(w8_lasterr(), "...: path too long") &&
              strlen(w8_lasterr()) < 200,
          "a %zu-byte target is refused in a short line: %s", len, w8_lasterr());
    t[len - 1] = 0;
    rc = w8_dirtx_begin(&tx, t, 0, "test", NULL);
    CHECK(rc == 0 && tx.tmp && strlen(tx.tmp) == PATH_MAX - 1,
          "a %zu-byte one is taken (temporary name of %zu bytes) %s", len - 1,
          tx.tmp ? strlen(tx.tmp) : 0, rc ? w8_lasterr() : "");
    if (rc == 0) w8_dirtx_abort(&tx);
    free(t);
}

static void test_path_helpers(void) {
    static const char *const cases[][3] = {
        {"a/b//", "a/b", "a"}, {"/x", "/x", "/"}, {"name/", "name", "."}, {"/", "/", "/"}};
    int good = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = w8_path_strip(cases[i][0]), *p = w8_path_parent(s);
        good &= !strcmp(s, cases[i][1]) && !strcmp(p, cases[i][2]);
        free(s);
        free(p);
    }
    CHECK(good, "w8_path_strip and w8_path_parent: a/b// -> a/b in a, /x in /, name in ., / in /");
}

int main(void) {
    if (!mkdtemp(root)) {
        CHECK(0, "mkdtemp: %s", strerror(errno));
        TEST_DONE();
    }
    test_new_target();
    test_force_and_abort();
    test_leftovers();
    test_missing_parent();
    test_long_path();
    test_path_helpers();
    w8_rm_rf(root);
    TEST_DONE();
}

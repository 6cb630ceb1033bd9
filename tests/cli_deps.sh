#!/usr/bin/env bash
# cli_deps.sh - no two source files of src/ need each other (tools/deps.sh),
# and the checker itself finds the cycles it is meant to find.
#
# usage: bash tests/cli_deps.sh BUILD/w8a8 ASAN/w8a8   (from the repo root)
# The objects of the normal build (BUILD/obj) give the cross-file calls.
set -u
W=${1:-build/w8a8}
OBJ=$(dirname "$W")/obj
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

. "$(dirname "$0")/lib.sh"

# ---- the checker on a tiny tree made for it
mkdir -p "$T/src/sub" "$T/obj/src/sub"
cat >"$T/src/a.h" <<'EOF'
int a(int x);
EOF
cat >"$T/src/a.c" <<'EOF'
#include "a.h"
#include "sub/b.h"
int a(int x) { return x > 0 ? b(x - 1) : 0; }
EOF
cat >"$T/src/sub/b.h" <<'EOF'
int b(int x);
EOF
cat >"$T/src/sub/b.c" <<'EOF'
#include "b.h"
int b(int x) { return x + 1; }
EOF
cat >"$T/src/c.c" <<'EOF'
#include "a.h"
int c(void) { return a(3); }
EOF
build_tiny() {
    for f in a sub/b c; do gcc -c "$T/src/$f.c" -o "$T/obj/src/$f.o" || return 1; done
}
tiny() { (cd "$T" && bash "$OLDPWD/tools/deps.sh" "$@" src obj "$T/allow.txt") >"$T/out" 2>&1; }

: >"$T/allow.txt"
if build_tiny && tiny; then
    ok "one-way dependencies (c -> a -> sub/b, include and call) are no cycle"
else
    fail "one-way dependencies reported as a cycle: $(head -5 "$T/out")"
fi
tiny -v
if grep -q '^src/a.c -> src/sub/b.c  (#include src/sub/b.h, b())' "$T/out"; then
    ok "-v shows the edge a -> sub/b with both reasons"
else
    fail "-v output lacks the edge a -> sub/b: $(head -5 "$T/out")"
fi

# b now calls back into a: a two-file cycle found through the symbols alone
cat >"$T/src/sub/b.c" <<'EOF'
int a(int x);
int b(int x) { return x > 5 ? a(x - 5) : x + 1; }
EOF
build_tiny
if tiny; then
    fail "a <-> sub/b by calls not reported"
elif grep -q '^cycle 1: src/a.c src/sub/b.c' "$T/out" && grep -q 'a()).*\[mutual\]' "$T/out"; then
    ok "a <-> sub/b by calls reported as a mutual cycle"
else
    fail "a <-> sub/b: unexpected report: $(head -5 "$T/out")"
fi

# the allow list tolerates one edge of the loop
echo "src/sub/b.c src/a.c   # tolerated for the test" >"$T/allow.txt"
if tiny; then ok "an allowed edge breaks the cycle"; else fail "allow list ignored: $(head -5 "$T/out")"; fi

# a longer loop c -> a -> b -> c, through an include
echo "int c(void);" >"$T/src/c.h"
cat >"$T/src/sub/b.c" <<'EOF'
#include "../c.h"
int b(int x) { return x + 1; }
EOF
: >"$T/allow.txt"
build_tiny
if ! tiny && grep -q 'loop: src/.* -> src/.* -> src/.* -> src/' "$T/out"; then
    ok "three-file loop through an include reported with its path"
else
    fail "three-file loop: $(head -5 "$T/out")"
fi

# a missing object is an error, not a silently smaller graph
rm "$T/obj/src/c.o"
tiny
if [ $? -eq 2 ] && grep -q 'obj/src/c.o missing' "$T/out"; then
    ok "a missing object is an error"
else
    fail "missing object not reported: $(head -3 "$T/out")"
fi

# ---- the real tree
if [ ! -d "$OBJ/src" ]; then
    fail "no objects in $OBJ (build first)"
    exit 1
fi
if tools/deps.sh src "$OBJ" tools/deps-allow.txt >"$T/real" 2>&1; then
    ok "src/ has no dependency cycle outside tools/deps-allow.txt ($(tail -1 "$T/real"))"
else
    fail "src/ has dependency cycles:"
    sed 's/^/    /' "$T/real"
fi
# One source of the thread count (util.h): every OpenMP parallel region of
# src/ names num_threads(...), else a region run on a thread that never called
# omp_set_num_threads (the server's scheduler) would ignore -t.  Pragmas
# continued with a backslash are joined first.
omp_unnamed='
    /^[[:space:]]*#[[:space:]]*pragma[[:space:]]+omp[[:space:]]+parallel/ { p = $0; at = FILENAME ":" FNR }
    p != "" && p != $0 { p = p " " $0 }
    p != "" && p !~ /\\$/ { if (p !~ /num_threads\(/) print at; p = "" }
'
find src -name '*.[ch]' | LC_ALL=C sort | xargs awk "$omp_unnamed" >"$T/omp"
if [ -s "$T/omp" ]; then
    fail "OpenMP parallel regions without num_threads(...): $(tr '\n' ' ' <"$T/omp")"
else
    ok "every OpenMP parallel region in src/ names its thread count"
fi
# and the check finds one that does not
printf '%s\n' 'void f(int n) {' '#pragma omp parallel for \' '    schedule(static)' \
    '    for (int i = 0; i < n; i++) {}' '}' >"$T/omp_bad.c"
if awk "$omp_unnamed" "$T/omp_bad.c" | grep -q 'omp_bad.c:2'; then
    ok "the num_threads check finds a continued pragma without it"
else
    fail "the num_threads check missed a region without num_threads"
fi

# informational: the notes and long files, in the log
grep -E '^(note|long):' "$T/real" | sed 's/^/# /'
exit 0

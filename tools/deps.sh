#!/usr/bin/env bash
# deps.sh - the dependency graph between the source files of src/, its cycles,
# and the files that grew too long.
#
# usage: tools/deps.sh [-v] [SRC_DIR [OBJ_DIR [ALLOW_FILE]]]
#        defaults: src  build/obj  tools/deps-allow.txt
#
# A "module" is a stem under SRC_DIR: src/jinja/eval.c and src/jinja/eval.h are
# one module, src/jinja/jinja.h alone (a header with no .c) is another.  Module
# A depends on module B when
#   - a file of A #includes B's header ("x.h" resolved, as the compiler does
#     without -I flags, relative to the including file), or
#   - A's object (OBJ_DIR/<path>.o, built by make) has an undefined symbol that
#     B's object defines (`nm`): a cross-file call or use of a global.
# Two modules that need each other, directly or around a longer loop, form a
# cycle; every strongly connected component with more than one module is
# reported with its edges (and why each exists) and one loop through it, and
# the exit status is 1.  ALLOW_FILE names edges "A B" (A depends on B, module
# names as printed) that are tolerated for now; '#' starts a comment.
# Informational, never failing: files over 1000 lines, allowed edges that no
# longer exist.  -v also prints the whole graph.
#
# Needs only bash, coreutils, awk (POSIX; mawk is fine) and nm (binutils): it
# runs where the suite runs, without python.
set -u
verbose=0
if [ "${1:-}" = "-v" ]; then verbose=1; shift; fi
SRC=${1:-src}
OBJ=${2:-build/obj}
ALLOW=${3:-tools/deps-allow.txt}
LONG=1000

if [ ! -d "$SRC" ]; then echo "deps: $SRC: not a directory" >&2; exit 2; fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# every source file, as a path relative to the current directory
find "$SRC" -type f \( -name '*.c' -o -name '*.h' \) | sed 's|^\./||' | LC_ALL=C sort >"$T/files"
if [ ! -s "$T/files" ]; then echo "deps: no .c or .h file under $SRC" >&2; exit 2; fi

# includes: "FILE TARGET" with TARGET resolved relative to FILE's folder
while read -r f; do
    d=$(dirname "$f")
    sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" |
        while read -r inc; do
            echo "$f $(realpath -m --relative-to=. "$d/$inc")"
        done
done <"$T/files" >"$T/includes"

# symbols: "D MODULE SYM" for definitions, "U MODULE SYM" for undefined uses.
# A .c whose object is missing is an error: the graph would silently lack it.
missing=0
while read -r f; do
    case $f in *.c) ;; *) continue ;; esac
    o="$OBJ/${f%.c}.o"
    if [ ! -f "$o" ]; then
        echo "deps: $o missing (run make first)" >&2
        missing=1
        continue
    fi
    m=${f%.c}
    nm -P --defined-only "$o" | awk -v m="$m" '$2 ~ /^[TDBRCVWGS]$/ { print "D", m, $1 }'
    nm -P --undefined-only "$o" | awk -v m="$m" '{ print "U", m, $1 }'
done <"$T/files" >"$T/syms"
[ "$missing" -eq 0 ] || exit 2

# line counts: "LINES FILE"
while read -r f; do echo "$(wc -l <"$f") $f"; done <"$T/files" >"$T/lines"

ALLOWF=$ALLOW
if [ ! -f "$ALLOW" ]; then : >"$T/allow"; ALLOWF=$T/allow; fi

awk -v verbose="$verbose" -v long="$LONG" \
    -v F="$T/files" -v I="$T/includes" -v S="$T/syms" -v L="$T/lines" -v A="$ALLOWF" '
function stem(p) { sub(/\.[ch]$/, "", p); return p }
function addedge(a, b, why) {
    if (a == b) return
    if (!((a, b) in has)) {
        has[a, b] = 1
        adj[a, ++deg[a]] = b
        reason[a, b] = why
    } else if (length(reason[a, b]) < 60 && index(" " reason[a, b] ", ", " " why ", ") == 0) {
        reason[a, b] = reason[a, b] ", " why
    }
}
# Tarjan: strongly connected components, recursive (awk locals are scalars only,
# so the per-node state lives in global arrays indexed by module)
function connect(v,   i, w, c) {
    idx[v] = low[v] = ++counter
    stk[++sp] = v
    onstk[v] = 1
    for (i = 1; i <= deg[v]; i++) {
        w = adj[v, i]
        if ((v, w) in allowed) continue
        if (!(w in idx)) {
            connect(w)
            if (low[w] < low[v]) low[v] = low[w]
        } else if (onstk[w] && idx[w] < low[v]) low[v] = idx[w]
    }
    if (low[v] == idx[v]) {
        ncomp++
        c = 0
        do {
            w = stk[sp--]
            onstk[w] = 0
            comp[w] = ncomp
            member[ncomp, ++c] = w
        } while (w != v)
        size[ncomp] = c
    }
}
# one shortest loop from s back to s inside its component (breadth first)
function loop_through(s,   q, h, t, v, i, w, path, k) {
    split("", prev)
    h = 1; t = 0
    q[++t] = s
    seen_[s] = ++bfs
    while (h <= t) {
        v = q[h++]
        for (i = 1; i <= deg[v]; i++) {
            w = adj[v, i]
            if ((v, w) in allowed || comp[w] != comp[s]) continue
            if (w == s) {
                path = s
                for (k = v; k != s; k = prev[k]) path = k " -> " path
                return s " -> " path
            }
            if (seen_[w] == bfs) continue
            seen_[w] = bfs
            prev[w] = v
            q[++t] = w
        }
    }
    return "(none)"
}
BEGIN {
    while ((getline f < F) > 0) {
        m = stem(f)
        if (!(m in isfile)) { isfile[m] = 1; mods[++nm_] = m }
        if (f ~ /\.c$/) hasc[m] = 1
        exists[f] = 1
    }
    for (i = 1; i <= nm_; i++) name[mods[i]] = mods[i] (hasc[mods[i]] ? ".c" : ".h")
    while ((getline line < I) > 0) {
        split(line, p, " ")
        if (p[2] in exists) addedge(stem(p[1]), stem(p[2]), "#include " p[2])
    }
    while ((getline line < S) > 0) {
        split(line, p, " ")
        if (p[1] == "D") def[p[3]] = p[2]
        else { nu++; um[nu] = p[2]; us[nu] = p[3] }
    }
    for (i = 1; i <= nu; i++)
        if (us[i] in def) addedge(um[i], def[us[i]], us[i] "()")
    # allow list: "A B" module names as printed (with .c/.h), comments after #
    while ((getline line < A) > 0) {
        sub(/#.*/, "", line)
        if (split(line, p, " ") < 2) continue
        a = stem(p[1]); b = stem(p[2])
        allowed[a, b] = 1
        if (!((a, b) in has)) printf "note: allowed edge %s -> %s no longer exists; drop it from the allow list\n", p[1], p[2]
    }

    if (verbose) {
        for (i = 1; i <= nm_; i++) {
            v = mods[i]
            for (j = 1; j <= deg[v]; j++)
                printf "%s -> %s  (%s)%s\n", name[v], name[adj[v, j]], reason[v, adj[v, j]], \
                    ((v, adj[v, j]) in allowed) ? "  [allowed]" : ""
        }
    }

    for (i = 1; i <= nm_; i++) if (!(mods[i] in idx)) connect(mods[i])
    bad = 0
    for (c = 1; c <= ncomp; c++) {
        if (size[c] < 2) continue
        bad++
        list = ""
        for (k = size[c]; k >= 1; k--) list = list " " name[member[c, k]]
        printf "cycle %d:%s\n", bad, list
        for (k = size[c]; k >= 1; k--) {
            v = member[c, k]
            for (j = 1; j <= deg[v]; j++) {
                w = adj[v, j]
                if (comp[w] != c || (v, w) in allowed) continue
                printf "  %s -> %s  (%s)%s\n", name[v], name[w], reason[v, w], \
                    ((w, v) in has && !((w, v) in allowed)) ? "  [mutual]" : ""
            }
        }
        lp = loop_through(member[c, size[c]])
        gsub(/ -> /, " ", lp); n = split(lp, p, " "); lp = name[p[1]]
        for (k = 2; k <= n; k++) lp = lp " -> " name[p[k]]
        printf "  loop: %s\n", lp
    }
    while ((getline line < L) > 0) {
        split(line, p, " ")
        if (p[1] + 0 > long) printf "long: %s has %d lines (over %d)\n", p[2], p[1], long
    }
    if (bad) { printf "deps: %d cycle(s) among the modules of the source tree\n", bad; exit 1 }
    printf "deps: %d modules, no cycle\n", nm_
}'

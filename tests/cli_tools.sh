#!/usr/bin/env bash
# cli_tools.sh - `w8a8 bench` on stories260K (ppl and compare join once the
# tokenizer is in main).
#
# usage: bash tests/cli_tools.sh BUILD/w8a8 ASAN/w8a8   (from the repo root)
# Speeds are never asserted: only that the commands run, print what they
# promise, and fail cleanly on bad input.
set -u
W=${1:-build/w8a8}
A=${2:-build/asan/w8a8}
S=${W8A8_SHARED:-../shared}
M=$S/models/stories260K-hf-f16
TXT=$S/corpus/tinystories-excerpt.txt
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export W8A8_QUIET=1

ok() { echo "ok - $*"; }
fail() { echo "FAIL - $*"; }
check() { # description, command...
    local d=$1
    shift
    if "$@"; then ok "$d"; else fail "$d"; fi
}

# ---- bench
for bin in "$W" "$A"; do
    tag=$(basename "$(dirname "$bin")")
    if "$bin" bench --model_path "$M" -p 16 -n 8 -r 1 -t 2 >"$T/bench.out" 2>"$T/bench.err"; then
        ok "bench runs ($tag)"
    else
        fail "bench runs ($tag): $(head -3 "$T/bench.err")"
    fi
    check "bench table header ($tag)" grep -q '^| model | size | params | backend | threads | test | t/s |$' "$T/bench.out"
    check "bench pp16 row ($tag)" grep -Eq '^\| llama F16 \| [0-9.]+ KiB \| [0-9.]+ K \| CPU \([a-z0-9]+\) \| 2 \| pp16 \| [0-9.]+ ± [0-9.]+ \|$' "$T/bench.out"
    check "bench tg8 row ($tag)" grep -Eq '^\| .* \| tg8 \| [0-9.]+ ± [0-9.]+ \|$' "$T/bench.out"
    check "bench prints peak RSS ($tag)" grep -q '^peak RSS: ' "$T/bench.out"
done
"$W" bench --model_path "$M" -p 16 -n 8 -r 2 -t 2 --json >"$T/bench.json" 2>"$T/bench.err"
check "bench --json exits 0" test $? -eq 0
if command -v python3 >/dev/null; then
    check "bench --json is valid JSON with pp16 and tg8 (python3)" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert [t["test"] for t in d] == ["pp16", "tg8"], d
assert all(t["avg_ts"] > 0 and len(t["samples_ts"]) == 2 and t["model_n_params"] > 0 for t in d)
' "$T/bench.json"
elif command -v jq >/dev/null; then
    check "bench --json is valid JSON with pp16 and tg8 (jq)" \
        bash -c "[ \"\$(jq -r '[.[].test] | join(\",\")' '$T/bench.json')\" = pp16,tg8 ]"
else
    check "bench --json looks like a JSON array with pp16 and tg8" \
        bash -c "head -c1 '$T/bench.json' | grep -q '\[' && grep -q '\"test\": \"pp16\"' '$T/bench.json' && grep -q '\"test\": \"tg8\"' '$T/bench.json'"
fi
"$W" bench --model_path "$M" -p 0 -n 4 -r 1 >"$T/o" 2>&1
check "bench -p 0 skips pp" bash -c "grep -q '| tg4 |' '$T/o' && ! grep -q '| pp' '$T/o'"
"$W" bench --model_path "$M" -p 0 -n 0 >"$T/o" 2>"$T/e"
check "bench -p 0 -n 0 refused" bash -c "[ $? -eq 1 ] && grep -q '^w8a8: ' '$T/e'"


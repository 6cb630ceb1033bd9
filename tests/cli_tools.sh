#!/usr/bin/env bash
# cli_tools.sh - `w8a8 ppl`, `w8a8 bench` and `w8a8 compare` on stories260K.
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

. "$(dirname "$0")/lib.sh"

# ---- ppl
for bin in "$W" "$A"; do
    tag=$(basename "$(dirname "$bin")")
    if "$bin" ppl --model_path "$M" --file "$TXT" --ctx 128 --chunks 3 -t 1 >"$T/ppl.out" 2>"$T/ppl.err"; then
        ok "ppl runs ($tag)"
    else
        fail "ppl runs ($tag): $(head -3 "$T/ppl.err")"
    fi
    half=$(sed -n 's/^perplexity, llama.cpp-style (second half): *\([0-9.]*\) +\/- .*/\1/p' "$T/ppl.out")
    full=$(sed -n 's/^perplexity, full window: *\([0-9.]*\) +\/- .*/\1/p' "$T/ppl.out")
    check "ppl prints both figures ($tag: half '$half', full '$full')" \
        awk -v h="$half" -v f="$full" 'BEGIN { exit !(h > 1 && h < 30 && f > 1 && f < 30) }'
done
check "ppl reports 3 windows of 128" grep -q "3 windows of 128" "$T/ppl.out"
"$W" ppl --model_path "$M" --file "$TXT" --ctx 128 --chunks 3 --batch 50 -t 1 >"$T/ppl50.out" 2>&1
full50=$(sed -n 's/^perplexity, full window: *\([0-9.]*\) +\/- .*/\1/p' "$T/ppl50.out")
check "ppl --batch 50 gives the same figure ($full50 vs $full)" \
    awk -v a="$full50" -v b="$full" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d < 0.001) }'

# bad input: clean error, exit 1, nothing on stdout after the header
printf 'Once upon a time.' >"$T/short.txt"
for bin in "$W" "$A"; do
    "$bin" ppl --model_path "$M" --file "$T/short.txt" --ctx 128 >"$T/o" 2>"$T/e"
    rc=$?
    check "ppl on a text shorter than one window exits 1 with a message" \
        bash -c "[ $rc -eq 1 ] && grep -q '^w8a8: .*fewer than one window' '$T/e'"
done
"$W" ppl --model_path "$M" --file "$T/missing.txt" >"$T/o" 2>"$T/e"
check "ppl on a missing file exits 1 naming it" \
    bash -c "[ $? -eq 1 ] && grep -q 'missing.txt' '$T/e'"
"$W" ppl --model_path "$T/nomodel" --file "$TXT" >"$T/o" 2>"$T/e"
check "ppl on a missing model exits 1" bash -c "[ $? -eq 1 ] && grep -q '^w8a8: ' '$T/e'"
"$W" ppl --model_path "$M" --file "$TXT" --ctx 1 >"$T/o" 2>"$T/e"
check "ppl --ctx 1 refused" bash -c "[ $? -eq 1 ] && grep -q 'ctx' '$T/e'"
check "ppl --help" bash -c "'$W' ppl --help | grep -q -- '--model_path'"

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
"$W" bench --model_path "$M" -p 16 -n 8 -r 2 -t 1 --json >"$T/bench.json" 2>"$T/bench.err"
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
"$W" bench --model_path "$M" -p 0 -n 4 -r 1 -t 1 >"$T/o" 2>&1
check "bench -p 0 skips pp" bash -c "grep -q '| tg4 |' '$T/o' && ! grep -q '| pp' '$T/o'"
"$W" bench --model_path "$M" -p 0 -n 0 >"$T/o" 2>"$T/e"
check "bench -p 0 -n 0 refused" bash -c "[ $? -eq 1 ] && grep -q '^w8a8: ' '$T/e'"

# ---- compare (same model on both sides: the numbers are exact)
for bin in "$W" "$A"; do
    tag=$(basename "$(dirname "$bin")")
    if "$bin" compare --float "$M" --quant "$M" --file "$TXT" --ctx 64 --chunks 2 -t 1 >"$T/cmp.out" 2>"$T/cmp.err"; then
        ok "compare runs ($tag)"
    else
        fail "compare runs ($tag): $(head -3 "$T/cmp.err")"
    fi
    check "compare table has a row per layer with cosine 1.000000 ($tag)" \
        bash -c "[ \$(grep -Ec '^\| +[0-9]+ \| +1\.000000 \| +1\.000000 \| +0\.000000 \|$' '$T/cmp.out') -eq 5 ]"
    check "compare: top-1 100%, KL 0 ($tag)" \
        bash -c "grep -q 'top-1 agreement *100.00 %' '$T/cmp.out' && grep -q 'KL(float || quant) *0.000000 nats' '$T/cmp.out'"
    check "compare summary line ($tag)" grep -Eq '^summary: last layer cosine 1\.000000.*top-1 100\.00 %; KL 0\.000000; ppl ([0-9.]+) -> \1 \(\+0\.00 %\)$' "$T/cmp.out"
done
"$W" compare --float "$M" --quant "$S/models/stories260K" --file "$TXT" >"$T/o" 2>"$T/e"
check "compare with a non-HF model dir exits 1" bash -c "[ $? -eq 1 ] && grep -q '^w8a8: ' '$T/e'"

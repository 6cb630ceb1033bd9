#!/usr/bin/env bash
# replay.sh ASAN_BUILD_DIR - replay every fuzz target's seed corpus (from
# ../shared) and its regression corpus (fuzz/regressions/TARGET/: every input
# that ever crashed or hung a target) and the corpus long runs grew
# (fuzz/corpus/TARGET/) under AddressSanitizer, without
# libFuzzer.  Prints ok/FAIL lines.
set -u
cd "$(dirname "$0")/.."
A=${1:-build/asan}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for src in fuzz/fuzz_*.c; do
    t=$(basename "$src" .c)
    bin="$A/fuzz/$t"
    if [ ! -x "$bin" ]; then echo "FAIL - $t: $bin not built"; continue; fi
    bash fuzz/seeds.sh "$t" "$tmp/$t"
    dirs=("$tmp/$t")
    for d in "fuzz/regressions/$t" "fuzz/corpus/$t"; do [ -d "$d" ] && dirs+=("$d"); done
    if timeout 300 "$bin" "${dirs[@]}" >"$tmp/$t.log" 2>&1; then
        echo "ok - $t replays seeds and regressions cleanly ($(grep -o 'replayed [0-9]* inputs' "$tmp/$t.log" | awk '{s+=$2} END {print s+0}') inputs)"
    else
        echo "FAIL - $t: replay failed"
        tail -30 "$tmp/$t.log"
    fi
done

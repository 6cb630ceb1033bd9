#!/usr/bin/env bash
# run.sh - run every test program (normal build, then AddressSanitizer +
# UndefinedBehaviorSanitizer build) and every CLI test script, count their
# "ok"/"FAIL" lines, and end with the suite's summary line.
#
# usage: tests/run.sh [BUILD_DIR [ASAN_BUILD_DIR]]
set -u
cd "$(dirname "$0")/.."
B=${1:-build}
A=${2:-build/asan}
export W8A8_SHARED=${W8A8_SHARED:-../shared}
export W8A8_QUIET=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
LOG=$B/test-logs
mkdir -p "$LOG"
pass=0
fail=0

run_one() { # name, command...
    local name=$1
    shift
    local log="$LOG/$(echo "$name" | tr '/ ' '__').log"
    local t0=$(date +%s)
    "$@" >"$log" 2>&1
    local rc=$?
    local p f
    p=$(grep -c '^ok ' "$log")
    f=$(grep -c '^FAIL ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
        echo "FAIL - $name exited with status $rc" >>"$log"
    fi
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        f=1
        echo "FAIL - $name ran no check" >>"$log"
    fi
    pass=$((pass + p))
    fail=$((fail + f))
    printf '%-44s %4d passed %3d failed  %3ds\n' "$name" "$p" "$f" $(($(date +%s) - t0))
    if [ "$f" -ne 0 ]; then grep -E '^FAIL|ERROR|runtime error|Sanitizer' "$log" | head -20 | sed 's/^/    /'; fi
}

for t in "$B"/tests/test_*; do
    [ -x "$t" ] || continue
    run_one "$(basename "$t")" "$t"
done
for t in "$A"/tests/test_*; do
    [ -x "$t" ] || continue
    run_one "asan/$(basename "$t")" "$t"
done
for t in tests/cli_*.sh; do
    [ -f "$t" ] || continue
    run_one "$(basename "$t")" bash "$t" "$B/w8a8" "$A/w8a8"
done
if [ -f fuzz/replay.sh ]; then run_one "fuzz-replay" bash fuzz/replay.sh "$A"; fi
if [ "${FUZZ_SECONDS:-0}" -gt 0 ]; then run_one "fuzz-run-${FUZZ_SECONDS}s" bash fuzz/run.sh "$FUZZ_SECONDS"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

#!/usr/bin/env bash
# run.sh SECONDS [TARGET...] - build the libFuzzer targets (clang) and fuzz each one for
# SECONDS, starting from its seeds, its regression corpus and the corpus that
# earlier long runs grew (fuzz/corpus/TARGET/, minimized with -merge=1), so a
# short run begins where the long ones ended.  A crash, leak or
# hang (10 s per input) is a FAIL line; the input that caused it is copied to
# build/fuzz/findings/TARGET/ to be added to fuzz/regressions/TARGET/.
set -u
cd "$(dirname "$0")/.."
SECS=${1:-30}
if ! make -s fuzz >build-fuzz.log 2>&1; then
    echo "FAIL - building fuzz targets with clang"
    tail -20 build-fuzz.log
    rm -f build-fuzz.log
    exit 1
fi
rm -f build-fuzz.log
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || for src in fuzz/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
for t in "${targets[@]}"; do
    # "qlayer" and "fuzz_qlayer" both name fuzz/fuzz_qlayer.c
    [ -x "build/fuzz/$t" ] || t=fuzz_${t#fuzz_}
    if [ ! -x "build/fuzz/$t" ]; then
        echo "FAIL - no fuzz target $t (fuzz/$t.c)"
        continue
    fi
    work=build/fuzz/work/$t
    find=build/fuzz/findings/$t
    rm -rf "$work" "$find"
    mkdir -p "$work/corpus" "$find"
    bash fuzz/seeds.sh "$t" "$work/corpus"
    [ -d "fuzz/regressions/$t" ] && cp fuzz/regressions/$t/* "$work/corpus/" 2>/dev/null
    [ -d "fuzz/corpus/$t" ] && cp fuzz/corpus/$t/* "$work/corpus/" 2>/dev/null
    dict=""
    [ -f "fuzz/$t.dict" ] && dict="-dict=fuzz/$t.dict"
    if build/fuzz/$t $dict -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -artifact_prefix="$find/" -print_final_stats=1 "$work/corpus" \
        >"$work/log" 2>&1; then
        execs=$(grep -m1 'stat::number_of_executed_units' "$work/log" | awk '{print $2}')
        cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -1)
        echo "ok - fuzz $t ${SECS}s: ${execs:-?} executions, ${cov:-cov: ?}"
    else
        echo "FAIL - fuzz $t found a problem (input saved in $find/)"
        grep -E 'ERROR|SUMMARY|Sanitizer|timeout' "$work/log" | head -10
    fi
done

#!/usr/bin/env bash
# cli_sensitivity.sh - `w8a8 quant --disable_level LN --sensitivity_report F`
# on stories260K: the ranking is printed and written, the N first layers of
# it are FLOAT in the description, bad values are refused.
#
# usage: bash tests/cli_sensitivity.sh BUILD/w8a8 ASAN/w8a8   (from the repo root)
set -u
W=${1:-build/w8a8}
A=${2:-build/asan/w8a8}
S=${W8A8_SHARED:-../shared}
M=$S/models/stories260K-hf-f16
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export W8A8_QUIET=1
SMALL=(--calib_samples 2 --calib_seq_len 32 -t 1)

. "$(dirname "$0")/lib.sh"

for bin in "$W" "$A"; do
    tag=$(basename "$(dirname "$bin")")
    rm -rf "$T/q" "$T/rep.json"
    if "$bin" quant --model_path "$M" --save_path "$T/q" --quant_type w8a8 --disable_level L2 \
        --sensitivity_report "$T/rep.json" "${SMALL[@]}" >"$T/out" 2>&1; then
        ok "quant --disable_level L2 --sensitivity_report runs ($tag)"
    else
        fail "quant --disable_level L2 --sensitivity_report runs ($tag): $(tail -2 "$T/out")"
    fi
    check "the ranking is printed with two layers kept float ($tag)" \
        bash -c "[ \$(grep -c -- '-> kept float (--disable_level)' '$T/out') -eq 2 ]"
    check "the summary counts 33 W8A8 and 2 float layers ($tag)" grep -q '33 layers W8A8 (0 dynamic), 2 float' "$T/out"
done
if command -v python3 >/dev/null; then
    check "the report's first two layers are FLOAT in the description, the rest W8A8 (python3)" python3 -c '
import json, sys
r = json.load(open(sys.argv[1])); d = json.load(open(sys.argv[2] + "/quant_model_description.json"))
L = r["layers"]
assert r["measure"] == "kl_final_logits" and r["disable_level"] == 2 and len(L) == 35
assert [x["rank"] for x in L] == list(range(1, 36))
assert all(L[i]["kl"] >= L[i + 1]["kl"] for i in range(34))
for i, x in enumerate(L):
    assert d[x["name"] + ".weight"] == ("FLOAT" if i < 2 else "W8A8"), x
    assert x["kept_float"] == (i < 2)
' "$T/rep.json" "$T/q"
else
    check "the report names its measure" grep -q '"measure":"kl_final_logits"' "$T/rep.json"
fi

# --sensitivity_report alone measures and keeps everything int8
"$W" quant --model_path "$M" --save_path "$T/q0" --quant_type w8a8 --sensitivity_report "$T/r0.json" \
    "${SMALL[@]}" >"$T/out0" 2>&1
check "--sensitivity_report alone writes the ranking and keeps 35 layers W8A8" \
    bash -c "grep -q '35 layers W8A8 (0 dynamic), 0 float' '$T/out0' && grep -q '\"disable_level\":0' '$T/r0.json'"

# bad values
for v in Lx -1 "L2.5"; do
    "$W" quant --model_path "$M" --save_path "$T/bad" --quant_type w8a8 --disable_level "$v" >"$T/o" 2>"$T/e"
    check "--disable_level '$v' refused with exit 1" \
        bash -c "[ $? -eq 1 ] && grep -q '^w8a8: --disable_level' '$T/e' && [ ! -e '$T/bad' ]"
done
check "quant --help lists --disable_level" bash -c "'$W' quant --help | grep -q -- '--disable_level'"

# compare --sensitivity on an existing pair (normal build only: 16 samples x 20 units)
"$W" quant --model_path "$M" --save_path "$T/q0s" --quant_type w8a8 "${SMALL[@]}" >/dev/null 2>&1
TXT=$S/corpus/tinystories-excerpt.txt
if "$W" compare --float "$M" --quant "$T/q0s" --file "$TXT" --ctx 64 --chunks 1 --sensitivity_report "$T/cmp.json" \
    -t 1 >"$T/cmp" 2>"$T/cmp.err"; then
    ok "compare --sensitivity_report runs"
else
    fail "compare --sensitivity_report runs: $(tail -2 "$T/cmp.err")"
fi
check "compare prints the ranking with fused groups as units" \
    bash -c "grep -q '^sensitivity: KL(float || one layer int8)' '$T/cmp' && grep -q 'self_attn.q_proj+k_proj+v_proj' '$T/cmp'"
check "compare's report has 20 units" bash -c "[ \$(grep -o '\"rank\":' '$T/cmp.json' | wc -l) -eq 20 ]"
"$W" quant --model_path "$M" --save_path "$T/qs" --quant_type w8a8 --anti_outlier smoothquant "${SMALL[@]}" >/dev/null 2>&1
"$W" compare --float "$M" --quant "$T/qs" --file "$TXT" --ctx 32 --chunks 1 --sensitivity -t 1 >"$T/o" 2>"$T/e"
check "compare --sensitivity refuses a smoothed W8A8 model with one line, exit 1" \
    bash -c "[ $? -eq 1 ] && grep -q '^w8a8: sensitivity: .*smoothed' '$T/e'"

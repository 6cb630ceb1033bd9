#!/usr/bin/env bash
# cli_quant.sh - `w8a8 quant` and `w8a8 inspect` from the command line:
# option handling, a valid output that inspect accepts, determinism (normal and
# ASan builds give byte-identical files), the source never written, refusal of
# an existing target, SIGKILL in the middle of writing (no --save_path; the
# next run removes the temp directory), a full disk (tmpfs, when mount is
# permitted), calibration files, f32 sources, sharding, inspect exit codes.
#
# usage: bash tests/cli_quant.sh BUILD/w8a8 ASAN/w8a8
set -u
W=${1:-build/w8a8}
A=${2:-build/asan/w8a8}
S=${W8A8_SHARED:-../shared}
export W8A8_QUIET=1
T=$(mktemp -d /tmp/w8a8-cli-quant-XXXXXX)
MNT=""
cleanup() {
    [ -n "$MNT" ] && umount "$MNT" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

. "$(dirname "$0")/lib.sh"

F16=$S/models/stories260K-hf-f16
BF16=$S/models/stories260K-hf-bf16
CAL=$S/corpus/tinystories-excerpt.txt
SMALL=(--calib_file "$CAL" --calib_samples 3 --calib_seq_len 48)

sum_dir() { (cd "$1" && find . -type f -exec sha256sum {} + | sort); }
SRC_SUM=$(sum_dir "$F16")

# ---- options
"$W" quant --model_path "$F16" --save_path "$T/x" --quant_type w4a16 >"$T/out" 2>&1
rc=$?
check "--quant_type w4a16 refused with the supported list" \
    test $rc -eq 1 -a -n "$(grep 'not supported (supported: w8a8, w8a8_dynamic, w8a8_mix)' "$T/out")"
"$W" quant --model_path "$F16" --save_path "$T/x" --quant_type w8a8 --device gpu >"$T/out" 2>&1
rc=$?
check "--device gpu refused" test $rc -eq 1 -a -n "$(grep 'supported: cpu' "$T/out")"
"$W" quant --save_path "$T/x" --quant_type w8a8 >"$T/out" 2>&1
rc=$?
check "missing --model_path is a usage error" test $rc -eq 1 -a -n "$(grep model_path "$T/out")"
"$W" quant --help >"$T/out" 2>&1
check "quant --help lists the msModelSlim flags" grep -q -- '--disable_names' "$T/out"
check "no output from refused runs" test ! -e "$T/x"

# ---- a valid output, and determinism across the normal and ASan builds
"$W" quant --model_path "$F16" --save_path "$T/q1" --quant_type w8a8 --trust_remote_code \
    --device cpu -t 2 "${SMALL[@]}" >"$T/out" 2>&1
rc=$?
check "quant stories260K-hf-f16 (exit $rc)" test $rc -eq 0
check "quant prints the float-layer plan" grep -q 'plan: 35 linear layers quantized' "$T/out"
"$W" inspect "$T/q1" >"$T/insp" 2>&1
rc=$?
check "inspect accepts the output (exit $rc)" test $rc -eq 0
check "inspect reports W8A8 fp16 and the layer counts" \
    grep -q 'W8A8 model, fp16' "$T/insp"
check "inspect says valid" grep -q 'valid: follows FORMAT.md' "$T/insp"
"$A" quant --model_path "$F16" --save_path "$T/q2" --quant_type w8a8 -t 1 "${SMALL[@]}" \
    >"$T/out2" 2>&1
rc=$?
check "ASan build quantizes too (exit $rc)" test $rc -eq 0
same=1
for f in quant_model_weight_w8a8.safetensors quant_model_description.json config.json \
    tokenizer.json; do
    cmp -s "$T/q1/$f" "$T/q2/$f" || same=0
done
check "deterministic: two runs (2 threads, 1 thread, ASan) give byte-identical files" \
    test $same -eq 1
check "config.json gains \"quantize\": \"w8a8\"" grep -q '"quantize": "w8a8"' "$T/q1/config.json"

# ---- existing target
"$W" quant --model_path "$F16" --save_path "$T/q1" --quant_type w8a8 "${SMALL[@]}" \
    >"$T/out" 2>&1
rc=$?
check "existing non-empty --save_path refused (exit 1, mentions --force)" \
    test $rc -eq 1 -a -n "$(grep -- '--force' "$T/out")"
check "refused run left the existing output untouched" \
    cmp -s "$T/q1/quant_model_weight_w8a8.safetensors" "$T/q2/quant_model_weight_w8a8.safetensors"
"$W" quant --model_path "$F16" --save_path "$T/q1" --quant_type w8a8 --force "${SMALL[@]}" \
    >"$T/out" 2>&1
check "--force replaces it" test $? -eq 0

# ---- a --save_path too long for its temporary name (TARGET.w8a8-tmp-PID
# past PATH_MAX): refused before anything is written, in one line that says
# why (the whole path would fill the error line and push the reason out)
LONG=$T/$(printf './%.0s' $(seq 2040))long
"$A" quant --model_path "$F16" --save_path "$LONG" --quant_type w8a8 "${SMALL[@]}" \
    >"$T/lout" 2>"$T/lerr"
rc=$?
check "a --save_path of ${#LONG} bytes is refused: exit 1, one line 'path too long'" \
    test $rc -eq 1 -a "$(wc -l <"$T/lerr")" -eq 1 -a \
    -n "$(grep '^w8a8: .*\.\.\.: path too long ([0-9]* bytes' "$T/lerr")"
check "... and leaves nothing behind" bash -c "! ls -d '$T'/long* 2>/dev/null | grep -q ."

# ---- SIGKILL in the middle of writing
W8A8_TEST_QUANT_SLEEP=60 "$W" quant --model_path "$F16" --save_path "$T/k" --quant_type w8a8 \
    "${SMALL[@]}" >"$T/kout" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    ls "$T"/k.w8a8-tmp-*/quant_model_weight_w8a8.safetensors >/dev/null 2>&1 && break
    sleep 0.1
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
check "killed run left no --save_path" test ! -e "$T/k"
check "killed run left its clearly named temp dir" test -d "$T/k.w8a8-tmp-$pid"
"$W" quant --model_path "$F16" --save_path "$T/k" --quant_type w8a8 "${SMALL[@]}" \
    >"$T/out" 2>&1
rc=$?
check "next run succeeds (exit $rc)" test $rc -eq 0
check "next run reports removing the leftover temp dir" grep -q "removed .*k.w8a8-tmp-$pid" "$T/out"
check "leftover temp dir is gone" test ! -e "$T/k.w8a8-tmp-$pid"

# ---- full disk (needs root and tmpfs; skipped otherwise)
mkdir -p "$T/small"
if mount -t tmpfs -o size=200k tmpfs "$T/small" 2>/dev/null; then
    MNT=$T/small
    "$W" quant --model_path "$F16" --save_path "$T/small/q" --quant_type w8a8 "${SMALL[@]}" \
        >"$T/out" 2>&1
    rc=$?
    check "full disk: exit 1 with a clear message ($(grep -o 'No space left on device' "$T/out" | head -1))" \
        test $rc -eq 1 -a -n "$(grep 'No space left' "$T/out")"
    check "full disk: no --save_path and no temp dir" \
        test -z "$(ls -A "$T/small")"
    umount "$T/small" && MNT=""
else
    ok "skip full-disk test (mount -t tmpfs not permitted)"
fi

# ---- calibration files
printf '%s\n' '{"text": "Once upon a time there was a dog."}' '' \
    '{"inputs_pretokenized": "The cat sat on the mat."}' 'A plain line of text.' \
    '{not json, plain text}' >"$T/cal.jsonl"
"$W" quant --model_path "$BF16" --save_path "$T/c" --quant_type w8a8 --calib_file "$T/cal.jsonl" \
    >"$T/out" 2>&1
rc=$?
check "JSON-lines + plain calibration file accepted (exit $rc)" test $rc -eq 0
check "4 samples taken from it (empty line skipped)" grep -q 'calibration: 4 samples' "$T/out"
printf '%s\n' 'plain' '{"prompt": "no text field"}' >"$T/bad.jsonl"
"$W" quant --model_path "$BF16" --save_path "$T/c2" --quant_type w8a8 --calib_file "$T/bad.jsonl" \
    >"$T/out" 2>&1
rc=$?
check "JSON line without text field: exit 1 naming line 2" \
    test $rc -eq 1 -a -n "$(grep 'bad.jsonl:2:' "$T/out")"
check "... and no output" test ! -e "$T/c2"

# ---- f32 source, Qwen2 recipe, disable_names, smoothquant, shards
"$W" quant --model_path "$S/models/stories260K-hf-f32" --save_path "$T/f32" --quant_type w8a8 \
    "${SMALL[@]}" >"$T/out" 2>&1
rc=$?
check "f32 source quantized with a note (exit $rc)" \
    test $rc -eq 0 -a -n "$(grep 'source is F32' "$T/out")"
"$W" inspect "$T/f32" >"$T/insp" 2>&1
check "f32 source gives a valid bf16 W8A8 directory" \
    test $? -eq 0 -a -n "$(grep 'W8A8 model, bf16' "$T/insp")"
check "f32 source: config.json torch_dtype becomes bfloat16" \
    grep -q '"torch_dtype": "bfloat16"' "$T/f32/config.json"
# a sharded source (model.safetensors.index.json) with Qwen's byte-level tokenizer
if W8A8_SHARED=$S "$W" synth --shape tiny --dtype f16 --shard_gb 0.0002 --out "$T/syn" >/dev/null 2>&1; then
    "$W" quant --model_path "$T/syn" --save_path "$T/synq" --quant_type w8a8 --calib_samples 4 \
        --calib_seq_len 32 >"$T/out" 2>&1
    rc=$?
    check "sharded synthetic Qwen2 source quantized with the built-in set (exit $rc)" test $rc -eq 0
    "$W" inspect "$T/synq" >"$T/insp" 2>&1
    check "... and inspect accepts it" test $? -eq 0
    check "... index of the source not copied" \
        test ! -e "$T/synq/model.safetensors.index.json"
else
    fail "w8a8 synth --shape tiny failed"
fi
"$W" quant --model_path "$S/models/stories260K-as-qwen2-bf16-zero-bias" --save_path "$T/qw" \
    --quant_type w8a8 --disable_names model.layers.0.self_attn.k_proj,model.layers.1.self_attn.o_proj \
    --anti_outlier smoothquant --alpha 0.5 --part_file_size 0.0001 "${SMALL[@]}" >"$T/out" 2>&1
rc=$?
check "Qwen2 + disable_names + smoothquant + shards (exit $rc)" test $rc -eq 0
check "plan lists the Qwen2 down_proj rule" grep -q 'Qwen2 recipe keeps mlp.down_proj float' "$T/out"
check "plan lists --disable_names layers" grep -q 'float (--disable_names): model.layers.0.self_attn.k_proj model.layers.1.self_attn.o_proj' "$T/out"
check "sharded files and index written" \
    test -f "$T/qw/quant_model_weight_w8a8.safetensors.index.json" -a \
    -f "$T/qw/quant_model_weight_w8a8-00001-of-0000$(ls "$T/qw" | grep -c -- '-of-').safetensors"
"$W" inspect "$T/qw" >"$T/insp" 2>&1
rc=$?
check "inspect accepts the sharded Qwen2 output (exit $rc)" test $rc -eq 0
check "inspect counts 26 W8A8 and 10 float layers (layer 0's q/k/v float with k_proj; lm_head the tied copy)" grep -q '26 quantized, 10 float' "$T/insp"

# ---- inspect exit codes
"$W" inspect "$F16" >"$T/insp" 2>&1
check "inspect of a float directory: summary, exit 0" \
    test $? -eq 0 -a -n "$(grep 'float model, fp16' "$T/insp")"
cp -r "$T/q1" "$T/broken"
grep -v '"model.layers.2.mlp.gate_proj.quant_bias"' "$T/q1/quant_model_description.json" \
    >"$T/broken/quant_model_description.json"
"$W" inspect "$T/broken" >"$T/insp" 2>&1
rc=$?
check "inspect of a broken directory: exit 1 listing the violation" \
    test $rc -eq 1 -a -n "$(grep "no entry for tensor 'model.layers.2.mlp.gate_proj.quant_bias'" "$T/insp")"
"$W" inspect "$T/nonexistent" >"$T/insp" 2>&1
check "inspect of a missing directory: exit 1" test $? -eq 1

# ---- the source was never written
check "source directory unchanged (checksums)" test "$SRC_SUM" == "$(sum_dir "$F16")"

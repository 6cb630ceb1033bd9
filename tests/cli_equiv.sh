#!/usr/bin/env bash
# cli_equiv.sh - the Qwen2 copy of stories260K with all-zero q/k/v biases must
# compute exactly what the LLaMA copy computes, float and W8A8 (issue 5):
# quantize both with the same recipe (the Qwen2 one: down_proj float) and
# check that `w8a8 compare` sees identical layers and logits, and that the
# W8A8 model stays within 3% of the float model's perplexity.
#
# usage: bash tests/cli_equiv.sh BUILD/w8a8 [ASAN/w8a8]   (from the repo root)
set -u
BIN=${1:-build/w8a8}
S=${W8A8_SHARED:-../shared}
M=$S/models
C=$S/corpus/tinystories-excerpt.txt
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.sh"

summary() { # float quant -> the compare summary line
    "$BIN" compare --float "$1" --quant "$2" --file "$C" --ctx 256 -t 2 2>/dev/null | grep '^summary:'
}
IDENT="last layer cosine 1.000000, lowest mean cosine 1.000000 (layer 0); top-1 100.00 %; KL 0.000000"

s=$(summary "$M/stories260K-hf-bf16" "$M/stories260K-as-qwen2-bf16-zero-bias")
case "$s" in *"$IDENT"*) ok "float: qwen2 zero-bias copy == llama copy ($s)" ;; *) fail "float copies differ: $s" ;; esac

"$BIN" quant --model_path "$M/stories260K-hf-bf16" --save_path "$TMP/llama" --quant_type w8a8 \
    --model_type qwen2 --calib_file "$C" -t 2 >/dev/null 2>&1 || fail "quantize llama copy"
"$BIN" quant --model_path "$M/stories260K-as-qwen2-bf16-zero-bias" --save_path "$TMP/qwen2" \
    --quant_type w8a8 --calib_file "$C" -t 2 >/dev/null 2>&1 || fail "quantize qwen2 copy"
s=$(summary "$TMP/llama" "$TMP/qwen2")
case "$s" in *"$IDENT"*) ok "W8A8: qwen2 zero-bias copy == llama copy ($s)" ;; *) fail "W8A8 copies differ: $s" ;; esac

a=$("$BIN" run --model_path "$TMP/llama" --input_texts "" --max_output_length 60 --print_ids 2>/dev/null | grep -i ids)
b=$("$BIN" run --model_path "$TMP/qwen2" --input_texts "" --max_output_length 60 --print_ids 2>/dev/null | grep -i ids)
if [ -n "$a" ] && [ "$a" = "$b" ]; then ok "W8A8 greedy ids identical for both copies"; else fail "W8A8 greedy ids: '$a' vs '$b'"; fi

# perplexity cost of quantization: within 3% (FORMAT.md defaults, stories calibration text)
s=$(summary "$M/stories260K-hf-bf16" "$TMP/llama")
pct=$(echo "$s" | sed -n 's/.*(+\{0,1\}\(-\{0,1\}[0-9.]*\) %)$/\1/p')
if [ -n "$pct" ] && awk -v p="$pct" 'BEGIN { exit !(p < 3.0 && p > -3.0) }'; then
    ok "W8A8 perplexity within 3% of float ($s)"
else
    fail "W8A8 perplexity change '$pct' ($s)"
fi

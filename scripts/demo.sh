#!/usr/bin/env bash
# demo.sh - the main job end to end on the default model:
#   quantize ../shared/models/stories260K-hf-f16 to W8A8 (msModelSlim format),
#   check the result with `w8a8 inspect`, then ask both the float and the
#   W8A8 model "What's deep learning?" for 20 tokens and print them side by side.
# usage: scripts/demo.sh [MODEL_DIR]   (run after `make`)
set -eu
cd "$(dirname "$0")/.."
W=build/w8a8
SRC=${1:-../shared/models/stories260K-hf-f16}
DST=build/demo/$(basename "$SRC")-w8a8
PROMPT="What's deep learning?"
CALIB=../shared/corpus/tinystories-excerpt.txt

echo "== quantize $SRC -> $DST"
mkdir -p build/demo
$W quant --model_path "$SRC" --save_path "$DST" --quant_type w8a8 --calib_file "$CALIB" --force
echo
echo "== inspect $DST"
$W inspect "$DST"
echo
echo "== float model ($SRC)"
$W run --model_path "$SRC" --input_texts "$PROMPT" --max_output_length 20
echo
echo "== W8A8 model ($DST)"
$W run --model_path "$DST" --input_texts "$PROMPT" --max_output_length 20

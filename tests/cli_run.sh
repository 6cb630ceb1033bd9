#!/usr/bin/env bash
# cli_run.sh - `w8a8 run` end to end on stories260K: the known greedy ids and
# text from BOS for every copy of the model, batching and paging give the same
# ids as single runs, and broken model directories are one-line errors that
# name the file (normal and ASan binaries).
#
# usage: bash tests/cli_run.sh BUILD/w8a8 ASAN/w8a8   (from the repo root)
set -u
BIN=${1:-build/w8a8}
ASAN=${2:-build/asan/w8a8}
S=${W8A8_SHARED:-../shared}
M=$S/models
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

. "$(dirname "$0")/lib.sh"

IDS="403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 292 411 322 265 282 295 433 426 385 328 432 358 394 261 370 432 352"
RB_IDS="403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 292 411 322 265 282 295 433 426 385 328 432 358 263 377 267 265 282"
TEXT="Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high"

# ---- known greedy output from BOS (empty prompt)
for m in stories260K-hf-f32 stories260K-hf-bf16 stories260K-hf-f16 stories260K-as-qwen2-bf16-zero-bias; do
    "$BIN" run --model_path "$M/$m" --input_texts "" --max_output_length 60 --print_ids -t 2 \
        >"$TMP/out" 2>"$TMP/err"
    rc=$?
    check "$m: exit 0" [ $rc -eq 0 ]
    check "$m: greedy ids from BOS (first 40)" grep -q "^\[0\] ids: $IDS " "$TMP/out"
    check "$m: decoded text of 60 tokens" grep -qxF "[0] output: $TEXT" "$TMP/out"
done
"$BIN" run --model_path "$M/stories260K-as-qwen2-bf16-random-bias" --input_texts "" \
    --max_output_length 40 --print_ids >"$TMP/out" 2>&1
check "qwen2 random bias: reference ids" grep -qx "\[0\] ids: $RB_IDS" "$TMP/out"
check "summary line" grep -qE '^prompt tokens 1, generated tokens 40, prefill [0-9.]+ tok/s, decode [0-9.]+ tok/s$' "$TMP/out"

# ---- batching and paging do not change greedy ids
F32=$M/stories260K-hf-f32
for t in "Once upon a time" "" "The cat sat"; do
    "$BIN" run --model_path "$F32" --input_texts "$t" --max_output_length 16 --print_ids -t 1 2>/dev/null |
        grep '^\[0\] ids:' | sed 's/^\[0\]//' >>"$TMP/alone"
done
"$BIN" run --model_path "$F32" --input_texts "Once upon a time" "" "The cat sat" \
    --max_output_length 16 --max_batch_size 3 --print_ids >"$TMP/batch" 2>&1
check "three prompts in one batch print three outputs" [ "$(grep -c '^\[[0-9]\] output:' "$TMP/batch")" -eq 3 ]
grep '^\[[0-9]\] ids:' "$TMP/batch" | sed 's/^\[[0-9]\]//' >"$TMP/batch_ids"
check "batched ids equal single runs" cmp -s "$TMP/alone" "$TMP/batch_ids"
"$BIN" run --model_path "$F32" --input_texts "Once upon a time" "" "The cat sat" \
    --max_output_length 16 --max_batch_size 2 --block_size 4 --print_ids 2>&1 |
    grep '^\[[0-9]\] ids:' | sed 's/^\[[0-9]\]//' >"$TMP/paged_ids"
check "block size 4 in batches of 2 equals single runs" cmp -s "$TMP/alone" "$TMP/paged_ids"
"$BIN" run --model_path "$F32" --input_texts "" --max_output_length 8 --max_batch_size 3 \
    --print_ids >"$TMP/rep" 2>&1
check "one text with --max_batch_size 3 is replicated 3 times" \
    [ "$(grep -c "ids: $(echo $IDS | cut -d' ' -f1-8)\$" "$TMP/rep")" -eq 3 ]
"$BIN" run --model_path "$F32" --input_texts "Once" --max_output_length 10 --temperature 1 \
    --top_k 40 --top_p 0.9 --seed 7 --print_ids >"$TMP/s1" 2>&1
"$BIN" run --model_path "$F32" --input_texts "Once" --max_output_length 10 --temperature 1 \
    --top_k 40 --top_p 0.9 --seed 7 --print_ids >"$TMP/s2" 2>&1
check "seeded sampling is reproducible" cmp -s <(grep ids "$TMP/s1") <(grep ids "$TMP/s2")

# ---- errors: one "w8a8: ..." line naming the file, exit 1, no output
expect_err() { # description, pattern, binary, args...
    local d=$1 pat=$2 bin=$3
    shift 3
    "$bin" run --max_output_length 4 "$@" >"$TMP/eo" 2>"$TMP/ee"
    local rc=$?
    if [ $rc -eq 1 ] && [ ! -s "$TMP/eo" ] && grep -q "^w8a8: .*$pat" "$TMP/ee" &&
        ! grep -qiE 'sanitizer|runtime error' "$TMP/ee"; then
        ok "$d"
    else
        fail "$d (rc $rc: $(head -c 300 "$TMP/ee"))"
    fi
}
mkbad() { # name: a copy of the f32 model dir (links) with its own safetensors
    mkdir -p "$TMP/$1"
    for f in "$F32"/*; do ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$TMP/$1/"; done
    rm -f "$TMP/$1/model.safetensors"
}
ST=$F32/model.safetensors
mkbad missing
perl -0777 -pe 's/"model\.layers\.3\.mlp\.up_proj\.weight"/"model.layers.3.mlp.up_prxj.weight"/' "$ST" >"$TMP/missing/model.safetensors"
mkbad dtype
perl -0777 -pe 's/("model\.norm\.weight":\{"dtype":")F32/${1}I32/' "$ST" >"$TMP/dtype/model.safetensors"
mkbad shape
perl -0777 -pe 's/("model\.layers\.0\.mlp\.gate_proj\.weight":\{"dtype":"F32","shape":)\[172,64\]/${1}[64,172]/' "$ST" >"$TMP/shape/model.safetensors"
mkbad trunc
head -c 100000 "$ST" >"$TMP/trunc/model.safetensors"
mkbad noconfig
cp "$ST" "$TMP/noconfig/" && rm "$TMP/noconfig/config.json"

for b in "$BIN" "$ASAN"; do
    [ -x "$b" ] || continue
    n=$(basename "$(dirname "$b")")
    expect_err "$n: missing tensor named with its file" \
        "missing/model.safetensors: tensor 'model.layers.3.mlp.up_proj.weight' is missing" \
        "$b" --model_path "$TMP/missing"
    expect_err "$n: wrong dtype" "dtype/model.safetensors: tensor 'model.norm.weight' has dtype I32" \
        "$b" --model_path "$TMP/dtype"
    expect_err "$n: wrong shape" "shape/model.safetensors: tensor 'model.layers.0.mlp.gate_proj.weight' has shape" \
        "$b" --model_path "$TMP/shape"
    expect_err "$n: truncated safetensors" "trunc/model.safetensors" "$b" --model_path "$TMP/trunc"
    expect_err "$n: missing config.json" "noconfig/config.json" "$b" --model_path "$TMP/noconfig"
    expect_err "$n: not a directory" "nowhere" "$b" --model_path "$TMP/nowhere"
    expect_err "$n: KV cache too small" "kv cache" "$b" --model_path "$F32" --kv_cache_gb 0.00001 \
        --block_size 4 --max_batch_size 4 --input_texts "Once upon a time"
done
expect_err "bad option value" "max_output_length" "$BIN" --model_path "$F32" --max_output_length x
expect_err "missing --model_path" "model_path" "$BIN"
"$ASAN" run --model_path "$F32" --input_texts "" "Once" --max_output_length 12 --max_batch_size 2 \
    --block_size 4 --print_ids >"$TMP/asan" 2>&1
check "ASan binary: batched paged run clean, reference ids" \
    grep -q "^\[0\] ids: $(echo $IDS | cut -d' ' -f1-12)\$" "$TMP/asan"

# ---- --chat: the template's rendering, tokenized without adding BOS again
CH=$TMP/chat
mkdir -p "$CH"
for f in "$F32"/*; do ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$CH/"; done
rm "$CH/tokenizer_config.json"
cat >"$CH/tokenizer_config.json" <<'JSON'
{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true,
 "chat_template": "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"}
JSON
"$BIN" run --model_path "$CH" --chat --input_texts "Lily" --max_output_length 12 --print_ids -t 1 \
    >"$TMP/chat1" 2>/dev/null
"$BIN" run --model_path "$CH" --input_texts "$(printf 'user: Lily\nassistant:')" --max_output_length 12 \
    --print_ids -t 1 >"$TMP/chat2" 2>/dev/null
check "--chat equals the rendered prompt run plainly" \
    cmp -s <(grep -oE 'ids.*|^prompt tokens 15, generated tokens 12' "$TMP/chat1") \
        <(grep -oE 'ids.*|^prompt tokens 15, generated tokens 12' "$TMP/chat2")
check "--chat output present" grep -q '^\[0\] ids: [0-9]' "$TMP/chat1"
expect_err "--chat without a template" "chat_template" "$BIN" --model_path "$F32" --chat

# ---- a W8A8 directory written by `w8a8 quant` runs and starts like float
if "$BIN" quant --model_path "$F32" --save_path "$TMP/w8a8" --quant_type w8a8 \
    --calib_file "$S/corpus/tinystories-excerpt.txt" --calib_samples 8 -t 1 >/dev/null 2>&1; then
    "$BIN" run --model_path "$TMP/w8a8" --input_texts "" --max_output_length 40 --print_ids -t 1 \
        >"$TMP/q" 2>&1
    check "W8A8 stories260K: greedy from BOS runs" grep -q '^\[0\] ids: [0-9]' "$TMP/q"
    check "W8A8 stories260K: first 10 ids equal float's" \
        grep -q "^\[0\] ids: $(echo $IDS | cut -d' ' -f1-10)" "$TMP/q"
else
    fail "w8a8 quant of stories260K failed"
fi

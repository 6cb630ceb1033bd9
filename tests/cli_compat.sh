#!/usr/bin/env bash
# cli_compat.sh - the documented Ascend command lines, pasted with only the
# program name changed (issue 18): msModelSlim's `msmodelslim quant ...` and a
# MindIE `run_pa` line with its common options.  --device npu gives the bytes
# of --device cpu (every file compared); doc model names map to a recipe or
# are refused; run_pa's input file, chat template, --ignore_eos,
# --max_position_embeddings and cluster options keep their meaning.
#
# usage: bash tests/cli_compat.sh BUILD/w8a8 ASAN/w8a8   (from the repo root)
set -u
W=${1:-build/w8a8}
A=${2:-build/asan/w8a8}
S=${W8A8_SHARED:-../shared}
export W8A8_QUIET=1
T=$(mktemp -d /tmp/w8a8-cli-compat-XXXXXX)
trap 'rm -rf "$T"' EXIT

. "$(dirname "$0")/lib.sh"
same_dirs() { # every file of both directories, byte for byte
    [ "$(cd "$1" && ls | sort)" = "$(cd "$2" && ls | sort)" ] || return 1
    local f
    for f in $(cd "$1" && ls); do cmp -s "$1/$f" "$2/$f" || return 1; done
}

SRC=$S/models/stories260K-hf-f16
F32=$S/models/stories260K-hf-f32
SUM0=$(cd "$SRC" && find . -type f -exec sha256sum {} + | sort)

# ---- msModelSlim: the documented line, program name replaced
"$W" quant --model_path "$SRC" --save_path "$T/npu" --device npu --model_type Llama-3.1-8B \
    --quant_type w8a8 --trust_remote_code True >"$T/out" 2>&1
rc=$?
check "documented msmodelslim quant line runs (exit $rc)" [ $rc -eq 0 ]
check "--device npu says once that it quantizes on the CPU" \
    [ "$(grep -c 'quantizing on the CPU' "$T/out")" -eq 1 ]
"$W" quant --model_path "$SRC" --save_path "$T/cpu" --device cpu --model_type Llama-3.1-8B \
    --quant_type w8a8 --trust_remote_code False >"$T/out2" 2>&1
check "--device cpu runs, without the NPU line" \
    [ $? -eq 0 -a -z "$(grep 'quantizing on the CPU' "$T/out2")" ]
check "--device npu and --device cpu: every file byte-identical" same_dirs "$T/npu" "$T/cpu"
check "the model directory is unchanged" \
    [ "$(cd "$SRC" && find . -type f -exec sha256sum {} + | sort)" = "$SUM0" ]
"$W" inspect "$T/npu" >/dev/null 2>&1
check "inspect accepts the --device npu output" [ $? -eq 0 ]

# the same line with msModelSlim's other spellings (ASan build; small calibration)
SMALL=(--calib_samples 2 --calib_seq_len 16)
"$A" quant --model_path "$SRC" --save_path "$T/npu0" --device npu:0 --device_id 0 1 \
    --model_type llama-2-7b --trust_remote_code --tag atlas_800 --debug --log_level INFO -v \
    "${SMALL[@]}" >"$T/out" 2>&1
rc=$?
check "npu:0, --device_id, bare --trust_remote_code, --tag, --debug, --log_level, -v (ASan, exit $rc)" \
    [ $rc -eq 0 ]
check "no --quant_type means w8a8, as msModelSlim" grep -q '35 layers W8A8' "$T/out"
"$W" quant --model_path "$SRC" --save_path "$T/q2" --model_type Qwen2.5-7B-Instruct \
    --trust_remote_code=true -q "${SMALL[@]}" >"$T/out" 2>&1
check "Qwen2.5-7B-Instruct takes the qwen2 recipe (down_proj float)" \
    [ $? -eq 0 -a -n "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["model.layers.0.mlp.down_proj.weight"])' "$T/q2/quant_model_description.json" | grep -x FLOAT)" ]
check "-q prints nothing on success" [ ! -s "$T/out" ]
"$W" quant --model_path "$S/models/stories260K-as-qwen2-bf16-zero-bias" --save_path "$T/qd" \
    --model_type default "${SMALL[@]}" >"$T/out" 2>&1
check "--model_type default: the recipe follows config.json (qwen2 here)" \
    grep -q 'recipe qwen2, from config architectures' "$T/out"
"$W" quant --model_path "$SRC" --save_path "$T/q3" --model_type Qwen3-8B "${SMALL[@]}" >"$T/out" 2>&1
rc=$?
# (the qwen3 recipe comes from another branch: before it is merged the name
# is refused as such, after it the quantization runs)
if [ $rc -eq 0 ]; then
    check "Qwen3-8B runs with the qwen3 recipe (exit 0)" [ -s "$T/q3/quant_model_description.json" ]
else
    check "Qwen3-8B maps to qwen3, a recipe not in this build (exit $rc)" \
        grep -q 'the qwen3 recipe is not in this build (recipes: qwen2, llama' "$T/out"
fi

bad() { # description, expected message, quant options...
    local d=$1 msg=$2
    shift 2
    "$W" quant --model_path "$SRC" --save_path "$T/bad" "$@" >"$T/out" 2>&1
    local rc=$?
    check "$d" [ $rc -eq 1 -a -n "$(grep -F -- "$msg" "$T/out")" ]
}
bad "unknown --model_type refused with the known families" "unknown model family (known: Qwen3*, Qwen2*, Qwen2.5*, Qwen1.5*" \
    --model_type Baichuan2-7B
bad "--model_type Mixtral (no letter-run prefix match) refused" "unknown model family" \
    --model_type Mixtral-8x7B
bad "--device cuda refused" "supported: cpu, npu, npu:N" --device cuda
bad "--device npu:x refused" "supported: cpu, npu, npu:N" --device npu:x
bad "--trust_remote_code maybe refused" "is not a boolean" --trust_remote_code=maybe
bad "--config YAML refused (recipe built in)" "YAML configs are not read" --config_path q.yaml
bad "--quant_type w8a8s refused" "supported: w8a8" --quant_type w8a8s
bad "--log_level loud refused" "is not a level" --log_level loud
check "no output from refused runs" [ ! -e "$T/bad" ]

# ---- MindIE run_pa: a run_pa line with its common options
cat >"$T/tmpl.jinja" <<'EOF'
{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}
{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}
EOF
printf '%s\n' 'Once upon a time' '' \
    '[{"role":"system","content":"Be brief."},{"role":"user","content":"Tell a story"}]' \
    '{"messages":[{"role":"user","content":"The cat"}]}' 'Lily went' >"$T/in.jsonl"
run_pa=(--model_path "$T/npu" --input_file "$T/in.jsonl" --is_chat_model
    --chat_template "$T/tmpl.jinja" --max_input_length 1024 --max_output_length 12
    --max_batch_size 2 --max_position_embeddings 512 --block_size 16 --trust_remote_code
    --tp 1 --dp -1 --world_size 1 --enable_atb_torch --max_prefill_tokens -1)
"$W" run "${run_pa[@]}" --print_ids >"$T/run" 2>&1
rc=$?
check "run_pa line runs (exit $rc)" [ $rc -eq 0 ]
check "four inputs (blank line skipped), four outputs" [ "$(grep -c '^\[[0-3]\] output:' "$T/run")" -eq 4 ]
check "a JSON conversation line is printed as its prompt" \
    grep -qF '[2] prompt: {"messages":[{"role":"user","content":"The cat"}]}' "$T/run"
"$A" run "${run_pa[@]}" --max_batch_size 4 --print_ids >"$T/run_a" 2>&1
check "ASan build, one batch of 4: the same ids" \
    [ $? -eq 0 -a "$(grep ' ids:' "$T/run")" = "$(grep ' ids:' "$T/run_a")" ]
# the three spellings of one user turn give the same ids, and differ from the raw text
printf '%s\n' 'Tell a story' '[{"role":"user","content":"Tell a story"}]' \
    '{"messages":[{"role":"user","content":"Tell a story"}]}' >"$T/three.jsonl"
"$W" run --model_path "$T/npu" --input_file "$T/three.jsonl" --is_chat_model --max_batch_size 3 \
    --chat_template "$(cat "$T/tmpl.jinja")" --max_output_length 12 --print_ids >"$T/three" 2>&1
"$W" run --model_path "$T/npu" --input_texts 'Tell a story' --max_output_length 12 --print_ids >"$T/raw" 2>&1
check "text line, message list and {messages} render alike (template given as text)" \
    [ "$(grep -c ids: "$T/three")" -eq 3 -a "$(grep ids: "$T/three" | cut -d' ' -f3- | sort -u | wc -l)" -eq 1 ]
check "the chat template changes the prompt (ids differ from the raw text)" \
    [ -n "$(grep ids: "$T/raw")" -a "$(grep '^\[0\] ids:' "$T/three")" != "$(grep ids: "$T/raw")" ]
"$W" run --model_path "$T/npu" --input_file "$T/in.jsonl" >"$T/out" 2>&1
check "a conversation without --is_chat_model is refused, naming the line" \
    [ $? -eq 1 -a -n "$(grep -F 'in.jsonl:3: a chat conversation; add --is_chat_model' "$T/out")" ]
printf 'Once upon a time\nThe cat sat\n' >"$T/plain.txt"
"$W" run --model_path "$F32" --input_file "$T/plain.txt" --max_output_length 8 --print_ids >"$T/a" 2>&1
"$W" run --model_path "$F32" --input_texts "Once upon a time" "The cat sat" --max_output_length 8 \
    --print_ids >"$T/b" 2>&1
check "--input_file lines equal --input_texts" [ -s "$T/a" -a "$(grep ids: "$T/a")" = "$(grep ids: "$T/b")" ]
printf 'The cat sat' >"$T/prompt.txt"
"$W" run --model_path "$F32" --input_texts "$T/prompt.txt" --max_output_length 8 --print_ids >"$T/c" 2>&1
check "--input_texts FILE reads the file (run_pa)" [ "$(grep ids: "$T/c")" = "$(grep '^\[1\] ids:' "$T/b" | sed 's/^\[1\]/[0]/')" ]
printf '{"messages": "nope"}\n' >"$T/bad.jsonl"
"$W" run --model_path "$F32" --input_file "$T/bad.jsonl" --is_chat_model --chat_template "$T/tmpl.jinja" >"$T/out" 2>&1
check "a malformed conversation line is refused with file:line" [ $? -eq 1 -a -n "$(grep -F 'bad.jsonl:1:' "$T/out")" ]
"$W" run --model_path "$F32" --input_texts "Once upon a time" --max_input_length 3 --max_output_length 2 >"$T/out" 2>&1
check "--max_input_length: a longer prompt is warned about and run (run_pa)" \
    [ $? -eq 0 -a -n "$(grep 'more than --max_input_length 3' "$T/out")" -a -n "$(grep '^\[0\] output:' "$T/out")" ]
"$W" run --model_path "$F32" --input_texts "Once upon a time" --max_output_length 100 \
    --max_position_embeddings 20 >"$T/out" 2>&1
check "--max_position_embeddings 20 ends the context at 20 tokens" \
    grep -q '^prompt tokens 5, generated tokens 16,' "$T/out"

# --ignore_eos: a copy whose eos is the 6th greedy token from BOS stops there without it
mkdir "$T/eos"
cp "$F32"/* "$T/eos/"
sed -i 's/"eos_token_id": 2/"eos_token_id": 383/' "$T/eos/config.json" "$T/eos/generation_config.json"
"$W" run --model_path "$T/eos" --input_texts "" --max_output_length 30 >"$T/out" 2>&1
check "eos id 383 stops after 6 tokens" grep -q '^prompt tokens 1, generated tokens 6,' "$T/out"
"$W" run --model_path "$T/eos" --input_texts "" --max_output_length 30 --ignore_eos >"$T/out" 2>&1
check "--ignore_eos generates all 30" grep -q '^prompt tokens 1, generated tokens 30,' "$T/out"

runbad() { # description, expected message, run options...
    local d=$1 msg=$2
    shift 2
    "$W" run --model_path "$F32" --max_output_length 2 "$@" >"$T/out" 2>&1
    local rc=$?
    check "$d" [ $rc -eq 1 -a -n "$(grep -F -- "$msg" "$T/out")" ]
}
runbad "--tp 8 refused (one CPU process)" "--tp 8 would split" --tp 8
runbad "--world_size 2 refused" "--world_size 2 would split" --world_size 2
runbad "--local_rank 1 refused" "--local_rank 1: run is one process" --local_rank 1
runbad "--is_embedding_model refused" "embedding output is not supported" --is_embedding_model
runbad "--load_tokenizer False refused" "--load_tokenizer False" --load_tokenizer False
runbad "--lora_modules refused" "LoRA adapters" --lora_modules '{"a": "/x"}'
runbad "--kw_args refused" "--kw_args" --kw_args '{"k": 1}'
runbad "--input_texts with --input_file refused" "not both" --input_texts a --input_file "$T/plain.txt"
runbad "--chat_template of a missing file refused" "--chat_template" --is_chat_model \
    --chat_template "$T/missing.jinja"
runbad "--is_chat_model without any template refused" "has no chat template" --is_chat_model

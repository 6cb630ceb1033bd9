#!/usr/bin/env bash
# cli_synth.sh BUILD/w8a8 ASAN/w8a8 - `w8a8 synth`: deterministic bytes for a
# seed, other bytes for another seed, the directory layout and config, sharding,
# and refusals (bad shape/dtype, non-empty output directory).
set -u
W=${1:-build/w8a8}
A=${2:-build/asan/w8a8}
export W8A8_SHARED=${W8A8_SHARED:-../shared}
export W8A8_QUIET=1
T=$(mktemp -d /tmp/w8a8-cli-synth-XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"

check "synth tiny f16 seed 1" $W synth --shape tiny --dtype f16 --seed 1 --out "$T/a" -t 2
check "synth tiny f16 seed 1 again (1 thread, ASan build)" $A synth --shape tiny --dtype f16 --seed 1 --out "$T/b" -t 1
check "same seed -> identical weights" cmp -s "$T/a/model.safetensors" "$T/b/model.safetensors"
check "same seed -> identical config" cmp -s "$T/a/config.json" "$T/b/config.json"
check "synth tiny f16 seed 2" $W synth --shape tiny --dtype f16 --seed 2 --out "$T/c"
check "other seed -> other weights" bash -c "! cmp -s '$T/a/model.safetensors' '$T/c/model.safetensors'"
check "same size for another seed" test "$(stat -c %s "$T/a/model.safetensors")" = "$(stat -c %s "$T/c/model.safetensors")"
for f in config.json generation_config.json tokenizer.json tokenizer_config.json model.safetensors; do
    check "directory has $f" test -s "$T/a/$f"
done
check "no temporary left" bash -c "! ls -d '$T'/*.w8a8-tmp-* 2>/dev/null | grep -q ."
check "tokenizer.json is the qwen2.5-derived one" cmp -s "$T/a/tokenizer.json" "$W8A8_SHARED/tokenizers/qwen2.5-derived/tokenizer.json"
check "tokenizer_config.json has the chat template" grep -q '"chat_template"' "$T/a/tokenizer_config.json"
check "config: Qwen2ForCausalLM" grep -q '"Qwen2ForCausalLM"' "$T/a/config.json"
check "config: torch_dtype float16" grep -q '"torch_dtype": "float16"' "$T/a/config.json"
check "config: vocab 151936" grep -q '"vocab_size": 151936' "$T/a/config.json"
check "config: tied embeddings" grep -q '"tie_word_embeddings": true' "$T/a/config.json"
check "generation_config: eos 151645 and 151643" bash -c "tr -d ' \n' < '$T/a/generation_config.json' | grep -q '\"eos_token_id\":\[151645,151643\]'"
check "header names the embeddings" bash -c "head -c 4096 '$T/a/model.safetensors' | grep -aq '\"model.embed_tokens.weight\":{\"dtype\":\"F16\",\"shape\":\[151936,32\]'"
check "no lm_head when tied" bash -c "! head -c 4096 '$T/a/model.safetensors' | grep -aq lm_head"

check "synth tiny bf16 sharded" $W synth --shape tiny --dtype bf16 --shard_gb 0.004 --out "$T/s"
check "sharded: index + 2 shards" test -s "$T/s/model.safetensors.index.json" -a -s "$T/s/model-00001-of-00002.safetensors" -a -s "$T/s/model-00002-of-00002.safetensors"
check "sharded: config bfloat16" grep -q '"torch_dtype": "bfloat16"' "$T/s/config.json"

mkdir "$T/empty"
check "an existing empty dir is filled" $W synth --shape tiny --dtype f16 --out "$T/empty" --seed 1
check "filled dir matches the seed-1 model" cmp -s "$T/a/model.safetensors" "$T/empty/model.safetensors"
rm -rf "$T/empty"

refuse() { # description, expected message part, command...
    local d=$1 want=$2
    shift 2
    local err
    err=$("$@" 2>&1 >/dev/null)
    local rc=$?
    if [ $rc -eq 1 ] && [[ "$err" == w8a8:* ]] && [[ "$err" == *"$want"* ]]; then ok "$d: $err"; else fail "$d (rc $rc): $err"; fi
}
refuse "refuses an existing non-empty dir" "already exists" $W synth --shape tiny --out "$T/a"
refuse "refuses an unknown shape" "unknown shape 'gpt5'" $W synth --shape gpt5 --out "$T/x"
refuse "refuses an unknown dtype" "--dtype 'f8'" $W synth --shape tiny --dtype f8 --out "$T/x"
refuse "requires --out" "required" $W synth --shape tiny
refuse "refuses a missing parent dir" "/nonexistent-dir/m" $W synth --shape tiny --out /nonexistent-dir/m
check "nothing written for refused runs" test ! -e "$T/x"

# Ctrl-C mid-run: exit 1, no output dir, no temporary left behind
$W synth --shape qwen2.5-0.5b --out "$T/int" -t 1 2>"$T/int.err" &
pid=$!
sleep 1
kill -INT $pid
wait $pid
rc=$?
if [ $rc -eq 1 ] && grep -q "interrupted" "$T/int.err" && [ ! -e "$T/int" ] && ! ls -d "$T"/int.w8a8-tmp-* >/dev/null 2>&1; then
    ok "SIGINT stops synth and removes its temporary directory"
else
    fail "SIGINT: rc $rc, $(cat "$T/int.err"), $(ls -d "$T"/int* 2>&1)"
fi
check "--help" bash -c "$W synth --help | grep -q -- --shard_gb"

#!/usr/bin/env bash
# cli_qwen3.sh - Qwen3 dense (Qwen3ForCausalLM) through every command: synth
# --shape qwen3-tiny (the real config keys, Qwen3's own tokenizer, head_dim
# 16 with hidden 32 and 4 heads, q_norm / k_norm tensors), float run, quant
# with the Qwen3 recipe (every mlp.down_proj float, q_norm / k_norm FLOAT),
# inspect, W8A8 run (normal and ASan builds), ppl, compare, bench, serve,
# --model_type qwen3 / llama, and a directory without q_norm refused.
#
# usage: bash tests/cli_qwen3.sh BUILD/w8a8 ASAN/w8a8   (from the repo root)
set -u
W=${1:-build/w8a8}
A=${2:-build/asan/w8a8}
S=${W8A8_SHARED:-../shared}
export W8A8_SHARED=$S
export W8A8_QUIET=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
T=$(mktemp -d /tmp/w8a8-cli-qwen3-XXXXXX)
cleanup() {
    kill_servers
    rm -rf "$T"
}
trap cleanup EXIT

. "$(dirname "$0")/lib.sh"
TXT=$S/corpus/tinystories-excerpt.txt
M=$T/q3
Q=$T/q3-w8a8

# ---- synth: a Qwen3 directory like the hub's
if ! "$W" synth --shape qwen3-tiny --dtype bf16 --out "$M" -t 2 >"$T/out" 2>&1; then
    fail "synth --shape qwen3-tiny: $(tail -2 "$T/out")"
    exit 1
fi
ok "synth --shape qwen3-tiny"
check "config: Qwen3ForCausalLM" grep -q '"Qwen3ForCausalLM"' "$M/config.json"
check "config: model_type qwen3" grep -q '"model_type": "qwen3"' "$M/config.json"
check "config: head_dim 16" grep -q '"head_dim": 16' "$M/config.json"
check "config: attention_bias false" grep -q '"attention_bias": false' "$M/config.json"
check "config: rope_theta 1000000 as the hub writes it" grep -q '"rope_theta": 1000000,' "$M/config.json"
check "tokenizer.json is Qwen3's" cmp -s "$M/tokenizer.json" "$S/tokenizers/qwen3/tokenizer.json"
check "tokenizer_config.json is Qwen3's" cmp -s "$M/tokenizer_config.json" "$S/tokenizers/qwen3/tokenizer_config.json"
hdr=$(head -c 8192 "$M/model.safetensors" | tr -d '\0')
check "q_proj is [heads * head_dim, hidden] = [64, 32]" \
    grep -q '"model.layers.0.self_attn.q_proj.weight":{"dtype":"BF16","shape":\[64,32\]' <<<"$hdr"
check "o_proj is [hidden, heads * head_dim] = [32, 64]" \
    grep -q '"model.layers.1.self_attn.o_proj.weight":{"dtype":"BF16","shape":\[32,64\]' <<<"$hdr"
check "q_norm and k_norm are [head_dim]" \
    bash -c 'grep -q "\"model.layers.1.self_attn.q_norm.weight\":{\"dtype\":\"BF16\",\"shape\":\[16\]" <<<"$1" &&
             grep -q "\"model.layers.1.self_attn.k_norm.weight\":{\"dtype\":\"BF16\",\"shape\":\[16\]" <<<"$1"' _ "$hdr"
check "no q/k/v bias, no lm_head (tied)" bash -c '! grep -q "_proj.bias\|lm_head" <<<"$1"' _ "$hdr"

# ---- float run
"$W" run --model_path "$M" --input_texts "Hello there" --max_output_length 6 -t 2 >"$T/frun" 2>&1
check "float run (exit $?)" grep -q "generated tokens 6" "$T/frun"

# ---- quant with the default (Qwen3) recipe
"$W" quant --model_path "$M" --save_path "$Q" --quant_type w8a8 --calib_file "$TXT" \
    --calib_samples 4 --calib_seq_len 48 -t 2 >"$T/out" 2>&1
rc=$?
check "quant (exit $rc)" test $rc -eq 0
check "plan names the qwen3 recipe" grep -q 'recipe qwen3, from config architectures' "$T/out"
check "plan keeps every down_proj float" \
    grep -q 'float (Qwen3 recipe keeps mlp.down_proj float): model.layers.{0..1}.mlp.down_proj' "$T/out"
check "q_norm / k_norm are FLOAT in the description" \
    bash -c "grep -q '\"model.layers.1.self_attn.q_norm.weight\": \"FLOAT\"' '$Q/quant_model_description.json' &&
             grep -q '\"model.layers.1.self_attn.k_norm.weight\": \"FLOAT\"' '$Q/quant_model_description.json'"
check "q_proj is W8A8, down_proj FLOAT" \
    bash -c "grep -q '\"model.layers.0.self_attn.q_proj.weight\": \"W8A8\"' '$Q/quant_model_description.json' &&
             grep -q '\"model.layers.0.mlp.down_proj.weight\": \"FLOAT\"' '$Q/quant_model_description.json'"
"$W" inspect "$Q" >"$T/insp" 2>&1
check "inspect accepts it (exit $?)" grep -q 'W8A8 model, bf16, Qwen3ForCausalLM' "$T/insp"
check "inspect: 12 quantized, 3 float (lm_head copy)" grep -q "linear layers: 12 quantized, 3 float" "$T/insp"

# ---- W8A8 run, normal and ASan builds give the same tokens
for tb in "opt:$W" "asan:$A"; do
    tag=${tb%%:*}
    "${tb#*:}" run --model_path "$Q" --input_texts "Hello there" --max_output_length 6 -t 1 >"$T/qrun.$tag" 2>&1
    check "W8A8 run ($tag, exit $?)" grep -q "generated tokens 6" "$T/qrun.$tag"
done
check "W8A8 run: the ASan build prints the same text" \
    bash -c "[ \"\$(grep output: '$T/qrun.opt')\" = \"\$(grep output: '$T/qrun.asan')\" ]"
"$A" quant --model_path "$M" --save_path "$T/q3-asan" --quant_type w8a8 --calib_file "$TXT" \
    --calib_samples 4 --calib_seq_len 48 -t 2 >"$T/out" 2>&1
check "ASan quant (exit $?) writes the same weights" \
    cmp -s "$Q/quant_model_weight_w8a8.safetensors" "$T/q3-asan/quant_model_weight_w8a8.safetensors"

# ---- ppl, compare, bench on the W8A8 model
"$W" ppl --model_path "$Q" --file "$TXT" --ctx 64 --chunks 2 -t 2 >"$T/ppl" 2>&1
check "ppl (exit $?)" grep -Eq '^perplexity, full window: *[0-9.]+ ' "$T/ppl"
"$W" compare --float "$M" --quant "$Q" --file "$TXT" --ctx 64 --chunks 2 -t 2 >"$T/cmp" 2>&1
check "compare (exit $?) has a row per layer" bash -c "[ \$(grep -Ec '^\| +[0-9]+ \| +[0-9.]+ \|' '$T/cmp') -eq 2 ]"
check "compare summary" grep -q '^summary: last layer cosine' "$T/cmp"
"$W" bench --model_path "$Q" -p 16 -n 4 -r 1 -t 2 >"$T/bench" 2>&1
check "bench (exit $?)" bash -c "grep -q '| pp16 |' '$T/bench' && grep -q '| tg4 |' '$T/bench'"

# ---- serve the W8A8 model
start_server "$W" "$T/serve.log" --model_path "$Q" -t 1
code=$(curl -s -m 60 -o "$T/resp" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary '{"prompt":"Hello","max_tokens":4,"temperature":0}' "$URL/v1/completions")
check "serve: /v1/completions answers 200 ($code)" bash -c "[ '$code' = 200 ] && grep -q '\"completion_tokens\":4' '$T/resp'"
stop_server "$SPID"

# ---- --model_type picks the recipe
"$W" quant --model_path "$M" --save_path "$T/q3-llama" --quant_type w8a8 --model_type llama \
    --calib_file "$TXT" --calib_samples 2 --calib_seq_len 32 -t 2 >"$T/out" 2>&1
check "--model_type llama quantizes every linear layer" \
    bash -c "grep -q 'recipe default, from --model_type' '$T/out' && grep -q '14 linear layers quantized to W8A8, 0 of them W8A8_DYNAMIC, 0 kept float' '$T/out'"
"$W" quant --model_path "$S/models/stories260K-hf-f16" --save_path "$T/st-q3" --quant_type w8a8 \
    --model_type Qwen3-8B --calib_file "$TXT" --calib_samples 2 --calib_seq_len 32 -t 2 >"$T/out" 2>&1
check "--model_type Qwen3-8B selects the qwen3 recipe" \
    grep -q 'float (Qwen3 recipe keeps mlp.down_proj float)' "$T/out"

# ---- a Qwen3 directory without q_norm is refused by name
mkdir "$T/noqn"
cp "$M"/*.json "$T/noqn/"
command -v python3 >/dev/null && python3 - "$M/model.safetensors" "$T/noqn/model.safetensors" <<'EOF' 2>/dev/null
import json, struct, sys
src, dst = sys.argv[1:3]
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
data = b[8 + n:]
drop = "model.layers.0.self_attn.q_norm.weight"
out, parts, off = {}, [], 0
for k, v in sorted(((k, v) for k, v in h.items() if k not in ("__metadata__", drop)),
                   key=lambda kv: kv[1]["data_offsets"][0]):
    s, e = v["data_offsets"]
    parts.append(data[s:e])
    out[k] = dict(v, data_offsets=[off, off + e - s])
    off += e - s
hb = json.dumps(out, separators=(",", ":")).encode()
hb += b" " * (-len(hb) % 8)
open(dst, "wb").write(struct.pack("<Q", len(hb)) + hb + b"".join(parts))
EOF
if [ -s "$T/noqn/model.safetensors" ]; then
    "$W" run --model_path "$T/noqn" --input_texts "Hi" --max_output_length 2 >"$T/o" 2>"$T/e"
    rc=$?
    check "run without q_norm exits 1 naming the tensor ($(head -1 "$T/e"))" \
        bash -c "[ $rc -eq 1 ] && grep -q \"^w8a8: .*tensor 'model.layers.0.self_attn.q_norm.weight' is missing\" '$T/e'"
else
    echo "# skipped the missing-q_norm check: no python3 (test_forward covers it)"
fi

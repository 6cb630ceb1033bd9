#!/usr/bin/env bash
# cli_realpipe.sh BUILD/w8a8 ASAN/w8a8 - the whole pipeline on real model
# directories: for each directory of ../shared/realmodels (the small files as
# the hub publishes them, or as newer transformers re-save them) and a Qwen3
# config, `synth --config` writes random weights with the exact tensor names
# and shapes (one layer, to stay fast), then float run, quant, inspect, W8A8
# run and, where the directory ships a chat template, run --chat.  The
# normal build only: each model has a real vocabulary (up to 128k x 2048).
set -u
W=${1:-build/w8a8}
export W8A8_SHARED=${W8A8_SHARED:-../shared}
export W8A8_QUIET=1
S=$W8A8_SHARED
T=$(mktemp -d /tmp/w8a8-cli-realpipe-XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/lib.sh"
check() { # description, command...
    local d=$1
    shift
    if "$@" >"$T/out" 2>&1; then ok "$d"; else fail "$d: $(tail -3 "$T/out")"; fi
}

# Qwen3-0.6B's config.json as published (no weights, no tokenizer here:
# Qwen3's tokenizer files come from ../shared/tokenizers/qwen3)
mkdir -p "$T/src/Qwen3-0.6B"
cat >"$T/src/Qwen3-0.6B/config.json" <<'EOF'
{
  "architectures": [
    "Qwen3ForCausalLM"
  ],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 1024,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "max_position_embeddings": 40960,
  "max_window_layers": 28,
  "model_type": "qwen3",
  "num_attention_heads": 16,
  "num_hidden_layers": 28,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 1000000,
  "sliding_window": null,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.51.0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
}
EOF
cp "$S/tokenizers/qwen3/"* "$T/src/Qwen3-0.6B/"

# a tokenizer.json for directories whose own is over the 4 MiB the shared
# copy keeps (same vocabulary for Qwen; SmolLM2's for LLaMA-3, whose ids fit)
borrow() { # dir
    case "$(basename "$1")" in
    Qwen*) cp "$S/tokenizers/qwen2.5-derived/tokenizer.json" "$1/" ;;
    *) cp "$S/realmodels/SmolLM2-360M-Instruct/tokenizer.json" "$1/" ;;
    esac
}

dirs="$T/src/Qwen3-0.6B"
for d in "$S"/realmodels/*/; do dirs="$dirs ${d%/}"; done
for src in $dirs; do
    n=$(basename "$src")
    m=$T/$n
    q=$T/$n-w8a8
    check "$n: synth --config --layers 1" $W synth --config "$src" --layers 1 --out "$m" --seed 3
    [ -d "$m" ] || continue
    check "$n: every small file of the source copied" bash -c "for f in '$src'/*; do [ -s '$m'/\$(basename \"\$f\") ] || exit 1; done"
    check "$n: no weights file from the source" bash -c "[ \$(ls '$m'/*.safetensors | wc -l) -eq 1 ]"
    check "$n: config says 1 layer" grep -Eq '"num_hidden_layers": ?1,' "$m/config.json"
    hdr() { head -c 65536 "$m/model.safetensors" | tr -d ' '; }
    case "$n" in
    Qwen3*)
        check "$n: q_norm [128], q_proj [2048,1024], o_proj [1024,2048], no q bias, tied" bash -c "h=\$(head -c 65536 '$m/model.safetensors');
            [[ \$h == *'q_norm.weight\":{\"dtype\":\"BF16\",\"shape\":[128]'* ]] &&
            [[ \$h == *'q_proj.weight\":{\"dtype\":\"BF16\",\"shape\":[2048,1024]'* ]] &&
            [[ \$h == *'o_proj.weight\":{\"dtype\":\"BF16\",\"shape\":[1024,2048]'* ]] &&
            [[ \$h != *q_proj.bias* ]] && [[ \$h != *lm_head* ]]" ;;
    Llama-3.2*)
        check "$n: k_proj [512,2048] (head_dim 64, 8 kv heads), tied" bash -c "h=\$(head -c 65536 '$m/model.safetensors');
            [[ \$h == *'k_proj.weight\":{\"dtype\":\"BF16\",\"shape\":[512,2048]'* ]] && [[ \$h != *lm_head* ]]" ;;
    Qwen2.5*)
        check "$n: q/k/v biases" bash -c "head -c 65536 '$m/model.safetensors' | grep -aq 'v_proj.bias'" ;;
    TinyLlama*)
        check "$n: float32 as its config says, untied lm_head [32000,2048]" bash -c "head -c 65536 '$m/model.safetensors' |
            grep -aq 'lm_head.weight\":{\"dtype\":\"F32\",\"shape\":\[32000,2048\]'" ;;
    esac
    [ -f "$m/tokenizer.json" ] || borrow "$m"
    check "$n: float run" $W run --model_path "$m" --input_texts "Once upon a time" --max_output_length 4
    check "$n: quant" $W quant --model_path "$m" --save_path "$q" --quant_type w8a8 \
        --calib_samples 2 --calib_seq_len 16
    check "$n: inspect accepts the output" $W inspect "$q"
    $W inspect "$q" >"$T/insp" 2>&1
    check "$n: inspect says all three consumers load it" [ "$(grep -c 'consumer .*: loads$' "$T/insp")" -eq 3 ]
    check "$n: W8A8 run" $W run --model_path "$q" --input_texts "Once upon a time" --max_output_length 4
    if grep -q '"chat_template"' "$src/tokenizer_config.json" 2>/dev/null || [ -f "$src/chat_template.jinja" ] ||
        [ -f "$src/chat_template.json" ]; then
        check "$n: run --chat (float)" $W run --model_path "$m" --chat --input_texts "Hi" --max_output_length 3
        check "$n: run --chat (W8A8)" $W run --model_path "$q" --chat --input_texts "Hi" --max_output_length 3
    fi
    rm -rf "$m" "$q"
done

# an architecture we do not run is refused in one line, by name
mkdir -p "$T/gemma"
sed 's/Qwen3ForCausalLM/Gemma2ForCausalLM/; s/"qwen3"/"gemma2"/' "$T/src/Qwen3-0.6B/config.json" >"$T/gemma/config.json"
for cmd in "synth --config $T/gemma --out $T/g2" "run --model_path $T/gemma --input_texts x" \
    "quant --model_path $T/gemma --save_path $T/g3 --quant_type w8a8"; do
    err=$($W $cmd 2>&1 >/dev/null)
    rc=$?
    if [ $rc -ne 0 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && [[ "$err" == *Gemma2ForCausalLM* ]]; then
        ok "unknown architecture refused by ${cmd%% *}: $err"
    else
        fail "unknown architecture by ${cmd%% *} (rc $rc): $err"
    fi
done
check "nothing written for the refused architecture" bash -c "! ls -d '$T'/g2* '$T'/g3* 2>/dev/null | grep -q ."

#!/usr/bin/env bash
# seeds.sh TARGET OUTDIR - write the seed corpus of a fuzz target, made from
# the real files in ../shared (models, tokenizers, templates, test data), into
# OUTDIR.  Seeds are derived at run time: nothing from shared/ is copied into
# the repository.
set -eu
T=$1
O=$2
S=${W8A8_SHARED:-../shared}
mkdir -p "$O"
pre() { # byte-prefix FILE OUT
    { printf "\\x$(printf %02x "$1")"; cat "$2"; } >"$3"
}
case "$T" in
fuzz_safetensors)
    # small valid files (libFuzzer caps input length), then the real models' headers
    st_seed() { # OUT HEADER_JSON DATA_BYTES
        local n=${#2}
        { printf '\x00'; printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((n & 255)) $((n >> 8 & 255)) 0 0)"
          printf '\0\0\0\0%s' "$2"; head -c "$3" /dev/zero; } >"$1"
    }
    st_seed "$O/small" '{"__metadata__":{"format":"pt"},"a":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},"b":{"dtype":"I8","shape":[4],"data_offsets":[12,16]}}' 16
    st_seed "$O/scalar" '{"s":{"dtype":"BF16","shape":[],"data_offsets":[0,2]},"e":{"dtype":"I64","shape":[0,5],"data_offsets":[2,2]}}' 2
    for m in stories260K-hf-f16 stories260K-as-qwen2-bf16-zero-bias; do
        pre 0 "$S/models/$m/model.safetensors" "$O/st-$m"
    done
    printf '\x01{"metadata":{"total_size":8},"weight_map":{"x":"a.safetensors"}}' >"$O/index-ok"
    ;;
fuzz_config)
    i=0
    for f in "$S"/models/*/config.json; do pre 0 "$f" "$O/config-$i"; i=$((i + 1)); done
    for f in "$S"/models/*/generation_config.json; do pre 1 "$f" "$O/gen-$i"; i=$((i + 1)); done
    for f in "$S"/realmodels/*/config.json; do
        pre 0 "$f" "$O/config-$i"
        pre 3 "$f" "$O/edit-$i"
        i=$((i + 1))
    done
    for f in "$S"/realmodels/*/generation_config.json; do pre 1 "$f" "$O/gen-$i"; i=$((i + 1)); done
    printf '\x02{"model_quant_type":"W8A8","version":"1.0.0","a.weight":"W8A8","b.weight":"FLOAT"}' >"$O/qdesc"
    ;;
fuzz_tokenizer_load)
    cp "$S/models/stories260K-hf-f16/tokenizer.json" "$O/stories"
    { cat "$S/models/stories260K-hf-f16/tokenizer.json"; printf '\0'; cat "$S/models/stories260K-hf-f16/tokenizer_config.json"; } >"$O/stories-cfg"
    ;;
fuzz_tokenizer_encode)
    n=0
    while IFS= read -r line && [ $n -lt 40 ]; do
        printf '%s' "$line" | sed 's/^{"text":"//; s/","ids".*$//' >"$O/l$n.txt"
        pre $((n % 2)) "$O/l$n.txt" "$O/t$n"
        rm "$O/l$n.txt"
        n=$((n + 1))
    done <"$S/testdata/tokenizer/qwen3_tricky_public.jsonl"
    printf '\x02\x01\x00\x00\x00\x93\x01\x00\x00\x9b\x01\x00\x00' >"$O/decode-stories"
    printf '\x03\x22\x61\x00\x00\xa0\x4e\x00\x00' >"$O/decode-qwen"
    ;;
fuzz_jinja)
    # small templates with the constructs real chat templates use
    printf '{%% for m in messages %%}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%% endfor %%}{%% if add_generation_prompt %%}<|im_start|>assistant\n{%% endif %%}' >"$O/chatml"
    printf '{%%- set ns = namespace(x=0) -%%}{%% for m in messages[::-1] %%}{%% set ns.x = ns.x + 1 %%}{{ loop.index }}{{ m.content|length }}{%% endfor %%}{{ ns.x }}' >"$O/ns"
    printf '{%% macro f(a, b=2) %%}{{ a ~ b }}{%% endmacro %%}{{ f(1) }}{{ "x"|upper }}{{ [1,2]|tojson }}' >"$O/macro"
    ;;
fuzz_api)
    printf '\x00{"model":"m","messages":[{"role":"user","content":"Hi"}],"temperature":0,"max_tokens":8,"stream":true}' >"$O/chat"
    printf '\x00{"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"stop":["x","y"],"seed":1,"top_p":0.9,"top_k":5,"n":1}' >"$O/chat-parts"
    printf '\x01{"prompt":"Once upon a time","max_tokens":16,"stop":"\\n","stream_options":{"include_usage":true}}' >"$O/completion"
    ;;
fuzz_stop)
    # byte 0: stop-string count (low 3 bits) and id mode (bit 3); NUL-separated fields
    printf '\x02stop\0\0Once upon a ti\0me st\0op here\0' >"$O/two-stops-one-empty"
    printf '\x01a little girl\0there was a lit\0tle\0 girl named Lily' >"$O/spanning"
    printf '\x03\xe4\xbd\0\xa0\0abc\0x\xe4\0\xbd\xa0\xff\xfe\0' >"$O/invalid-utf8"
    printf '\x04aa\0aaa\0ab\0b\0aaaaaaaaaaaaab' >"$O/overlapping"
    printf '\x00no stop strings at all\0\0\0' >"$O/none"
    # id mode: stories260K ids (little-endian uint16), BOS then a story and byte tokens
    printf '\x09Lily\0\x01\x00\x93\x01\x9b\x01\x20\x00\x40\x01\x10\x00\x05\x00\x06\x00' >"$O/ids"
    printf '\x0a\xef\xbf\0\0\x83\x00\x84\x00\xc5\x00\xbf\x00\x07\x00' >"$O/ids-bytes"
    ;;
fuzz_qlayer)
    # byte 0: variant (bit 0 tied, 1 bf16, 2 qwen2, 3 int8 lm_head, 4 W8A16 type); then
    # 8-byte edits [op, tensor, a..f] (see fuzz_qlayer.c).  Tensors of the fp16 llama
    # variant: 0 embed, 1-2 norms, q_proj 3-7 (weight, input_scale, input_offset,
    # quant_bias, deq_scale), k_proj 8-12, v 13-17, o 18-22, gate 23-27, up 28-32, down 33-37
    hexbin() { printf "$(printf %s "$1" | sed 's/../\\x&/g')"; }
    hexbin 00 >"$O/fp16"
    hexbin 01 >"$O/tied"
    hexbin 02 >"$O/bf16"
    hexbin 04 >"$O/qwen2"
    hexbin 06 >"$O/qwen2-bf16"
    hexbin 08 >"$O/lm-head-int8"
    hexbin 10 >"$O/w8a16-type"
    hexbin 000207030000000000 >"$O/deq-nan"
    hexbin 000207060000010000 >"$O/deq-denormal-upper-bits"
    hexbin 000307000000000000 >"$O/deq-all-zero"
    hexbin 000307040000010000 >"$O/deq-all-inf-upper-ones"
    hexbin 020207030100000000 >"$O/deq-f32-nan"
    hexbin 000304000000000000 >"$O/scale-zero"
    hexbin 000304060000000000 >"$O/scale-denormal"
    hexbin 000304020000000000 >"$O/scale-negative"
    hexbin 0003050d0000000000 >"$O/offset-128"
    hexbin 000003000000000000 >"$O/weight-f32"
    hexbin 000007010000000000 >"$O/deq-f16"
    hexbin 000103010500000000 >"$O/weight-cols-5"
    hexbin 000507000000000000 >"$O/deq-dropped"
    hexbin 000603000000000000 >"$O/q-float-in-desc"
    hexbin 0003090f0000000000 >"$O/kv-scales-differ"
    hexbin 0007000001000000000228030000000000 >"$O/norm-bias-nan"
    ;;
fuzz_calib)
    head -c 4000 "$S/corpus/tinystories-excerpt.txt" >"$O/plain"
    printf '{"text":"hello"}\n{"inputs_pretokenized":"world"}\n\n' >"$O/jsonl"
    ;;
fuzz_eval_tasks)
    cp examples/tinystories_tasks.jsonl "$O/tinystories"
    printf '{"prompt":"so 3 + 4 = 7\\n#### 7","answer":"7","stop":["\\n\\n"],"regex":"#### (\\\\-?[0-9\\\\.\\\\,]+)"}\n' >"$O/gsm8k"
    ;;
*)
    ;;
esac

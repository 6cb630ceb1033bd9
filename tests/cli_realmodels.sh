#!/usr/bin/env bash
# cli_realmodels.sh - the small files of real Hugging Face model directories
# (../shared/realmodels: originals and transformers 4.56 / 5.1 re-saves)
# through tokenize, chat-template and run --chat; where the chat template
# comes from (chat_template.jinja, chat_template.json, tokenizer_config.json);
# input from standard input, pipes and FIFOs (--file -, <(...), mkfifo) for
# tokenize, chat-template, ppl and compare; LLaMA-3.1's too-big
# model_max_length; config keys we cannot honour refused by file and key.
#
# usage: bash tests/cli_realmodels.sh BUILD/w8a8 ASAN/w8a8
set -u
BIN=${1:-build/w8a8}
ASAN=${2:-$BIN}
SHARED=${W8A8_SHARED:-../shared}
REAL=$SHARED/realmodels
STORIES=$SHARED/models/stories260K-hf-f16
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

. "$(dirname "$0")/lib.sh"
same() { # description, file a, file b: equal and not empty
    if [ -s "$2" ] && cmp -s "$2" "$3"; then ok "$1"; else fail "$1: $(head -c 300 "$2") vs $(head -c 300 "$3")"; fi
}

echo '{"input": {"messages": [{"role": "user", "content": "Hi there"}], "add_generation_prompt": true}}' >"$TMP/chat.jsonl"

# 1. chat templates of real directories, each from where it is kept
"$ASAN" chat-template --model_path "$REAL/TinyLlama-1.1B-Chat-v1.0-resaved" --file "$TMP/chat.jsonl" >"$TMP/tl.out" 2>"$TMP/err"
check "TinyLlama (template only in chat_template.jinja) renders" \
    grep -qxF '{"rendered":"<|user|>\nHi there</s>\n<|assistant|>\n"}' "$TMP/tl.out"
"$ASAN" chat-template --model_path "$REAL/SmolLM2-360M-Instruct" --file "$TMP/chat.jsonl" >"$TMP/sm.out" 2>"$TMP/err"
check "SmolLM2 (template in tokenizer_config.json) renders" \
    grep -qxF '{"rendered":"<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"}' "$TMP/sm.out"
"$BIN" chat-template --model_path "$REAL/Qwen2.5-1.5B-Instruct-tf5-resaved" --file "$TMP/chat.jsonl" >"$TMP/q5.out" 2>"$TMP/err"
"$BIN" chat-template --model_path "$REAL/Qwen2.5-0.5B-Instruct" --file "$TMP/chat.jsonl" >"$TMP/q4.out" 2>"$TMP/err"
same "Qwen2.5 tf5 re-save (chat_template.jinja) renders as the original (tokenizer_config.json)" "$TMP/q5.out" "$TMP/q4.out"

# 2. precedence, as transformers: chat_template.jinja, then chat_template.json,
#    then tokenizer_config.json
P=$TMP/prec
mkdir -p "$P"
echo '{"eos_token": "</s>", "chat_template": "CONFIG"}' >"$P/tokenizer_config.json"
render() { "$BIN" chat-template --model_path "$P" --file "$TMP/chat.jsonl" 2>&1; }
check "tokenizer_config.json's template alone" test "$(render)" = '{"rendered":"CONFIG"}'
echo '{"chat_template": "JSON"}' >"$P/chat_template.json"
check "chat_template.json over tokenizer_config.json" test "$(render)" = '{"rendered":"JSON"}'
printf 'JINJA' >"$P/chat_template.jinja"
check "chat_template.jinja over both" test "$(render)" = '{"rendered":"JINJA"}'
echo '{"chat_template": 7}' >"$P/chat_template.json"
rm "$P/chat_template.jinja"
out=$("$BIN" chat-template --model_path "$P" --file "$TMP/chat.jsonl" 2>&1)
case $out in *"chat_template.json: key 'chat_template': expected a string or a list, got integer"*)
    ok "a malformed chat_template.json names file and key" ;;
*) fail "a malformed chat_template.json: $out" ;; esac

# 3. tokenize on real tokenizer.json files, from a file, stdin, <(...) and a FIFO
echo '{"text": "Hello world"}' >"$TMP/tok.jsonl"
"$ASAN" tokenize --model_path "$REAL/TinyLlama-1.1B-Chat-v1.0-resaved" --file "$TMP/tok.jsonl" >"$TMP/tl.ids" 2>"$TMP/err"
check "TinyLlama tokenizer: Hello world -> [15043, 3186]" grep -qxF '{"ids": [15043, 3186]}' "$TMP/tl.ids"
for m in TinyLlama-1.1B-Chat-v1.0-resaved SmolLM2-360M-Instruct; do
    "$BIN" tokenize --model_path "$REAL/$m" --file "$TMP/tok.jsonl" >"$TMP/a" 2>&1
    "$BIN" tokenize --model_path "$REAL/$m" --file - <"$TMP/tok.jsonl" >"$TMP/b" 2>&1
    same "$m: tokenize --file - reads stdin" "$TMP/a" "$TMP/b"
    "$BIN" tokenize --model_path "$REAL/$m" --file <(cat "$TMP/tok.jsonl") >"$TMP/b" 2>&1
    same "$m: tokenize --file <(...) reads the pipe" "$TMP/a" "$TMP/b"
done
mkfifo "$TMP/fifo"
cat "$TMP/tok.jsonl" >"$TMP/fifo" &
"$ASAN" tokenize --model_path "$REAL/SmolLM2-360M-Instruct" --file "$TMP/fifo" >"$TMP/b" 2>&1
wait
"$BIN" tokenize --model_path "$REAL/SmolLM2-360M-Instruct" --file "$TMP/tok.jsonl" >"$TMP/a" 2>&1
same "tokenize reads a FIFO" "$TMP/a" "$TMP/b"
"$BIN" chat-template --model_path "$REAL/SmolLM2-360M-Instruct" --file <(cat "$TMP/chat.jsonl") >"$TMP/b" 2>&1
same "chat-template --file <(...)" "$TMP/sm.out" "$TMP/b"
out=$("$BIN" tokenize --model_path "$REAL/SmolLM2-360M-Instruct" --file "$TMP" 2>&1)
case $out in *"is a directory"*) ok "a directory as --file is refused: $out" ;; *) fail "directory as --file: $out" ;; esac

# 4. LLaMA-3.1's tokenizer_config.json: model_max_length 1000000000000000019884624838656
#    (Llama-3.2's files with that value, and a borrowed tokenizer.json)
L=$TMP/llama31
mkdir -p "$L"
cp "$REAL/Llama-3.2-1B-Instruct/config.json" "$REAL/Llama-3.2-1B-Instruct/generation_config.json" "$L/"
sed 's/"model_max_length": 131072/"model_max_length": 1000000000000000019884624838656/' \
    "$REAL/Llama-3.2-1B-Instruct/tokenizer_config.json" >"$L/tokenizer_config.json"
cp "$REAL/SmolLM2-360M-Instruct/tokenizer.json" "$L/tokenizer.json"
check "the test's tokenizer_config.json holds the big integer" grep -q '1000000000000000019884624838656' "$L/tokenizer_config.json"
"$ASAN" tokenize --model_path "$L" --file "$TMP/tok.jsonl" >"$TMP/b" 2>"$TMP/err"
check "tokenize accepts it$(sed 's/^/: /' "$TMP/err" | head -1)" grep -q '"ids"' "$TMP/b"
"$ASAN" chat-template --model_path "$L" --file "$TMP/chat.jsonl" >"$TMP/b" 2>"$TMP/err"
check "chat-template accepts it$(sed 's/^/: /' "$TMP/err" | head -1)" grep -qF '<|begin_of_text|><|start_header_id|>system<|end_header_id|>' "$TMP/b"

# 5. run --chat takes the template from chat_template.jinja (stories260K's
#    weights; the template writes BOS and a fixed opening, so the chat run
#    equals a plain run of that text)
S=$TMP/stories
mkdir -p "$S"
cp "$STORIES"/* "$S/"
printf '{{ bos_token }}Once upon a time{%% for m in messages %%} {{ m.content }}{%% endfor %%}' >"$S/chat_template.jinja"
"$ASAN" run --model_path "$S" --chat --input_texts "there was" --max_output_length 8 >"$TMP/chat.run" 2>"$TMP/err"
"$BIN" run --model_path "$S" --input_texts "Once upon a time there was" --max_output_length 8 >"$TMP/plain.run" 2>&1
grep '^\[0\] output' "$TMP/chat.run" >"$TMP/a"
grep '^\[0\] output' "$TMP/plain.run" >"$TMP/b"
same "run --chat uses chat_template.jinja$(grep -v '^w8a8: .*linear layers' "$TMP/err" | sed 's/^/: /' | head -1)" "$TMP/a" "$TMP/b"
rm "$S/chat_template.jinja"
out=$("$BIN" run --model_path "$S" --chat --input_texts "hi" --max_output_length 4 2>&1 | tail -1)
case $out in *"no chat template"*"chat_template.jinja"*) ok "run --chat without any template: $out" ;;
*) fail "run --chat without a template: $out" ;; esac

# 6. ppl and compare read standard input and pipes
head -c 400 "$SHARED/corpus/tinystories-excerpt.txt" >"$TMP/text.txt"
"$BIN" ppl --model_path "$STORIES" --file "$TMP/text.txt" --ctx 32 2>/dev/null | grep '^perplexity' >"$TMP/a"
"$ASAN" ppl --model_path "$STORIES" --file - --ctx 32 <"$TMP/text.txt" 2>/dev/null | grep '^perplexity' >"$TMP/b"
same "ppl --file - scores standard input as the file" "$TMP/a" "$TMP/b"
"$BIN" ppl --model_path "$STORIES" --file <(cat "$TMP/text.txt") --ctx 32 2>/dev/null | grep '^perplexity' >"$TMP/b"
same "ppl --file <(...)" "$TMP/a" "$TMP/b"
"$BIN" compare --float "$STORIES" --quant "$STORIES" --file "$TMP/text.txt" --ctx 32 2>/dev/null | grep '^summary' >"$TMP/a"
"$ASAN" compare --float "$STORIES" --quant "$STORIES" --file - --ctx 32 <"$TMP/text.txt" 2>/dev/null | grep '^summary' >"$TMP/b"
same "compare --file - reads standard input" "$TMP/a" "$TMP/b"

# 7. config keys we cannot honour: one line naming the file and the key
refuse() { # description, sed edit of stories' config.json, expected text
    local what=$1 edit=$2 want=$3
    rm -rf "$TMP/bad"
    mkdir -p "$TMP/bad"
    cp "$STORIES"/* "$TMP/bad/"
    sed "$edit" "$STORIES/config.json" >"$TMP/bad/config.json"
    local out rc
    out=$("$ASAN" run --model_path "$TMP/bad" --input_texts "hi" --max_output_length 2 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] &&
        printf '%s' "$out" | grep -qF "$TMP/bad/config.json" && printf '%s' "$out" | grep -qF -- "$want"; then
        ok "$what: $out"
    else
        fail "$what: status $rc: $out"
    fi
}
refuse "unknown rope_type" 's/"rope_scaling": null/"rope_scaling": {"rope_type": "yarn", "factor": 4.0}/' \
    "key 'rope_scaling.rope_type': 'yarn' is unsupported"
refuse "unknown activation" 's/"hidden_act": "silu"/"hidden_act": "gelu_pytorch_tanh"/' \
    "key 'hidden_act': 'gelu_pytorch_tanh' is unsupported"
refuse "a layer type we do not run" \
    's/"use_cache": true/"layer_types": ["full_attention", "full_attention", "chunked_attention", "full_attention", "full_attention"]/' \
    "key 'layer_types': element 2 ('chunked_attention') is unsupported"

# 8. random weights of a tiny Qwen2 shape (synth) with the tokenizer and
#    chat-template files of real directories: run --chat renders their
#    template (its prompt is the rendered text's tokens)
"$BIN" synth --shape tiny --out "$TMP/tiny" >/dev/null 2>&1
for m in TinyLlama-1.1B-Chat-v1.0-resaved SmolLM2-360M-Instruct; do
    d=$TMP/tiny-$m
    cp -r "$TMP/tiny" "$d"
    rm -f "$d/tokenizer.json" "$d/tokenizer_config.json"
    for f in tokenizer.json tokenizer_config.json special_tokens_map.json chat_template.jinja; do
        if [ -f "$REAL/$m/$f" ]; then cp "$REAL/$m/$f" "$d/"; fi
    done
    "$ASAN" run --model_path "$d" --chat --input_texts "Hi there" --max_output_length 4 >"$TMP/r" 2>"$TMP/err"
    n_run=$(sed -n 's/^prompt tokens \([0-9]*\),.*/\1/p' "$TMP/r")
    "$BIN" chat-template --model_path "$d" --file "$TMP/chat.jsonl" | sed 's/^{"rendered":/{"text":/' |
        "$BIN" tokenize --model_path "$d" --file - >"$TMP/ids"
    n_tpl=$(tr -cd ',' <"$TMP/ids" | wc -c)
    n_tpl=$((n_tpl + 1))
    if grep -q '^\[0\] output' "$TMP/r" && [ -n "$n_run" ] && [ "$n_run" -eq "$n_tpl" ]; then
        ok "$m files: run --chat prompts with the rendered template ($n_run tokens)"
    else
        fail "$m files: run --chat: prompt tokens '$n_run' vs template $n_tpl: $(tail -1 "$TMP/err")"
    fi
done

# 9. the same weights under a transformers 5 config (rope_parameters, dtype,
#    layer_types): the same greedy ids; quant keeps its text, adds only quantize
T5=$TMP/tiny-tf5
cp -r "$TMP/tiny" "$T5"
sed -i 's/  "rope_scaling": null,/  "rope_parameters": {\n    "rope_theta": 1000000.0,\n    "rope_type": "default"\n  },\n  "layer_types": ["full_attention", "full_attention"],/; /"rope_theta": 1000000.0,$/d; s/"torch_dtype"/"dtype"/' "$T5/config.json"
check "the 5.x config has no top-level rope_theta" test "$(grep -c '^  "rope_theta"' "$T5/config.json")" -eq 0
"$BIN" run --model_path "$TMP/tiny" --input_texts "Hello there" --max_output_length 12 --print_ids >"$TMP/a" 2>&1
"$ASAN" run --model_path "$T5" --input_texts "Hello there" --max_output_length 12 --print_ids >"$TMP/b" 2>&1
grep '^\[0\] ids' "$TMP/a" >"$TMP/a.ids"
grep '^\[0\] ids' "$TMP/b" >"$TMP/b.ids"
same "4.x and 5.x configs: the same greedy ids" "$TMP/a.ids" "$TMP/b.ids"
sed 's/"rope_theta": 1000000.0,$/"rope_theta": 10000.0,/' "$TMP/tiny/config.json" >"$TMP/c.json"
mkdir -p "$TMP/tiny-theta"
cp "$TMP/tiny"/* "$TMP/tiny-theta/"
cp "$TMP/c.json" "$TMP/tiny-theta/config.json"
for d in "$TMP/tiny" "$T5" "$TMP/tiny-theta"; do
    "$BIN" ppl --model_path "$d" --file "$TMP/text.txt" --ctx 32 2>/dev/null | grep '^perplexity' >"$d.ppl"
done
same "4.x and 5.x configs: the same perplexity to the last digit" "$TMP/tiny.ppl" "$T5.ppl"
if [ -s "$TMP/tiny.ppl" ] && ! cmp -s "$TMP/tiny.ppl" "$TMP/tiny-theta.ppl"; then
    ok "rope_theta 1e4 gives another perplexity (so 1e6 was read from rope_parameters)"
else
    fail "rope_theta 1e4 gives the same perplexity: $(cat "$TMP/tiny-theta.ppl")"
fi
"$ASAN" quant --model_path "$T5" --save_path "$TMP/tiny-tf5-w8a8" --quant_type w8a8 --calib_samples 2 --calib_seq_len 16 >/dev/null 2>&1
sed 's/^  "vocab_size": 151936$/  "vocab_size": 151936,\n  "quantize": "w8a8"/' "$T5/config.json" >"$TMP/want.json"
same "quant of a 5.x config: the source text plus \"quantize\" only" "$TMP/want.json" "$TMP/tiny-tf5-w8a8/config.json"

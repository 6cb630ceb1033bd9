#!/usr/bin/env bash
# cli_chat_template.sh - `w8a8 chat-template` on Qwen3's template and test
# data, plus its error handling.  The "rendered" strings are compared as the
# JSON text both sides write (transformers' test data was written with
# ensure_ascii=False, as the command writes), so no JSON tool is needed.
#
# usage: bash tests/cli_chat_template.sh BUILD/w8a8 ASAN/w8a8
set -u
BIN=${1:-build/w8a8}
ASAN=${2:-$BIN}
SHARED=${W8A8_SHARED:-../shared}
DATA=$SHARED/testdata/chat/qwen3_chat_template.jsonl
MODEL=$SHARED/tokenizers/qwen3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

. "$(dirname "$0")/lib.sh"

# 1. every test case, through the file and through stdin
sed 's/.*,"rendered":\(".*"\)}$/\1/' "$DATA" >"$TMP/want"
for bin in "$BIN" "$ASAN"; do
    if "$bin" chat-template --model_path "$MODEL" --file "$DATA" >"$TMP/out" 2>"$TMP/err"; then
        sed 's/^{"rendered":\(".*"\)}$/\1/' "$TMP/out" >"$TMP/got"
        check "$bin: $(wc -l <"$TMP/want") qwen3 cases render byte for byte" cmp -s "$TMP/want" "$TMP/got"
        if ! cmp -s "$TMP/want" "$TMP/got"; then diff "$TMP/want" "$TMP/got" | head -5; fi
    else
        fail "$bin chat-template exited with an error: $(cat "$TMP/err")"
    fi
done
head -1 "$DATA" | "$BIN" chat-template --model_path "$MODEL" >"$TMP/one"
check "reads stdin by default" grep -qxF '{"rendered":"<|im_start|>user\nWhat'"'"'s deep learning?<|im_end|>\n<|im_start|>assistant\n"}' "$TMP/one"

# 2. a template given with --template, special tokens from the model
printf '{{ bos_token }}|{{ eos_token }}|{%% for m in messages %%}{{ m.content | upper }}{%% endfor %%}' >"$TMP/t.jinja"
echo '{"input": {"messages": [{"role": "user", "content": "hi"}]}}' |
    "$ASAN" chat-template --model_path "$MODEL" --template "$TMP/t.jinja" >"$TMP/t.out"
check "--template with the model's special tokens" grep -qxF '{"rendered":"|<|im_end|>|HI"}' "$TMP/t.out"

# 3. tokenizer_config.json forms: a list of named templates ("default" is
#    used), special tokens as {"content": ...} objects
mkdir -p "$TMP/m"
cat >"$TMP/m/tokenizer_config.json" <<'JSON'
{"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>",
 "chat_template": [{"name": "tool_use", "template": "TOOLS"},
                   {"name": "default", "template": "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"}]}
JSON
echo '{"input": {"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": true}}' |
    "$ASAN" chat-template --model_path "$TMP/m" >"$TMP/m.out"
check "named templates and token objects" grep -qxF '{"rendered":"<s>[user]hi</s>[assistant]"}' "$TMP/m.out"

# 4. errors: a message with line:col, exit status 1, nothing on stdout
expect_error() { # description, expected stderr text, input, args...
    local what=$1 want=$2 input=$3
    shift 3
    printf '%s\n' "$input" | "$ASAN" chat-template "$@" >"$TMP/e.out" 2>"$TMP/e.err"
    local rc=$?
    if [ $rc -eq 1 ] && [ ! -s "$TMP/e.out" ] && grep -qF -- "$want" "$TMP/e.err"; then
        ok "$what: $(head -1 "$TMP/e.err")"
    else
        fail "$what: status $rc, stderr: $(head -3 "$TMP/e.err")"
    fi
}
good='{"input": {"messages": [{"role": "user", "content": "hi"}]}}'
expect_error "no model" "--model_path" "$good"
expect_error "missing model directory" "w8a8: " "$good" --model_path "$TMP/nope"
expect_error "bad JSON line (no partial output)" "input line 2" "$good
{not json" --model_path "$MODEL"
expect_error "line without messages" "input line 1" '{"input": {}}' --model_path "$MODEL"
printf 'ok\n{%% for m in messages %%}\n  {{ m.content + 1 }}\n{%% endfor %%}' >"$TMP/bad.jinja"
expect_error "runtime error names line:col" "template:3:" "$good" --template "$TMP/bad.jinja"
printf '{%% if x %%}never closed' >"$TMP/unclosed.jinja"
expect_error "syntax error names line:col" "template:1:4: 'if' is never closed" "$good" --template "$TMP/unclosed.jinja"
printf '{{ raise_exception("System role not supported") }}' >"$TMP/raise.jinja"
expect_error "raise_exception message" "System role not supported" "$good" --template "$TMP/raise.jinja"
"$BIN" chat-template --help >"$TMP/help" 2>&1
check "--help" grep -q "model_path" "$TMP/help"

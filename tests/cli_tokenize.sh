#!/usr/bin/env bash
# cli_tokenize.sh - `w8a8 tokenize` end to end: encode and decode JSON lines
# with Qwen3 and stories260K, exact output, and clear errors for bad lines.
# usage: bash tests/cli_tokenize.sh BUILD/w8a8 ASAN/w8a8
set -u
BIN=${1:-build/w8a8}
ASAN=${2:-build/asan/w8a8}
S=${W8A8_SHARED:-../shared}
Q3=$S/tokenizers/qwen3
ST=$S/models/stories260K-hf-f16
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

check() { # name, expected, got
    if [ "$2" == "$3" ]; then echo "ok - $1"; else
        echo "FAIL - $1"
        echo "  expected: $2"
        echo "  got:      $3"
    fi
}

for b in "$BIN" "$ASAN"; do
    [ -x "$b" ] || { echo "FAIL - $b not built"; continue; }
    tag=$(basename "$(dirname "$b")")
    printf '%s\n' '{"text": "Hello world"}' '' '{"text": "<|im_start|>user\n中文测试"}' >"$TMP/in.jsonl"
    got=$("$b" tokenize --model_path "$Q3" --file "$TMP/in.jsonl" 2>&1)
    check "$tag: qwen3 encode two lines" \
        "$(printf '%s\n' '{"ids": [9707, 1879]}' '{"ids": [151644, 872, 198, 104811, 81705]}')" "$got"

    got=$(printf '%s\n' '{"ids": [151644, 872, 198, 104811, 81705]}' |
        "$b" tokenize --model_path "$Q3" --file - --decode 2>&1)
    check "$tag: qwen3 decode" '{"text": "<|im_start|>user\n中文测试"}' "$got"

    got=$(printf '%s\n' '{"text": "Once upon a time"}' |
        "$b" tokenize --model_path "$ST" --file - --add_special_tokens 2>&1)
    check "$tag: stories encode with BOS" '{"ids": [1, 403, 407, 261, 378]}' "$got"

    got=$(printf '%s\n' '{"ids": [1, 403, 407, 261, 378]}' |
        "$b" tokenize --model_path "$ST" --file - --decode --skip_special_tokens 2>&1)
    check "$tag: stories decode skipping BOS" '{"text": "Once upon a time"}' "$got"

    # a bad line: exit 1, the line number in the message, nothing on stdout
    printf '%s\n' '{"text": "fine"}' '{"text": 5}' >"$TMP/bad.jsonl"
    "$b" tokenize --model_path "$Q3" --file "$TMP/bad.jsonl" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    check "$tag: bad line -> exit 1, line number, no output" "1 yes 0" \
        "$rc $(grep -q 'bad.jsonl:2' "$TMP/err" && echo yes || echo no) $(wc -c <"$TMP/out")"

    printf '%s\n' '{"ids": [1, 512]}' >"$TMP/bad2.jsonl"
    "$b" tokenize --model_path "$ST" --file "$TMP/bad2.jsonl" --decode >"$TMP/out" 2>"$TMP/err"
    rc=$?
    check "$tag: id out of range -> exit 1 with message" "1 yes" \
        "$rc $(grep -q 'out of range' "$TMP/err" && echo yes || echo no)"

    printf '%s\n' '{"text": "x"' >"$TMP/bad3.jsonl"
    "$b" tokenize --model_path "$ST" --file "$TMP/bad3.jsonl" >"$TMP/out" 2>"$TMP/err"
    check "$tag: malformed JSON line -> exit 1" "1 yes" \
        "$? $(grep -q 'bad3.jsonl:1' "$TMP/err" && echo yes || echo no)"

    "$b" tokenize --model_path "$TMP" --file "$TMP/in.jsonl" >/dev/null 2>"$TMP/err"
    check "$tag: directory without tokenizer.json -> exit 1" "1 yes" \
        "$? $(grep -q 'tokenizer.json' "$TMP/err" && echo yes || echo no)"
done

#!/usr/bin/env bash
# cli_run_serve.sh - `w8a8 run` and `w8a8 serve` drive the same scheduler
# (src/sched.c) and resolve sampling the same way (w8_sampling_resolve), so
# the same prompt, options and seed give the same text from both: sampled
# (temperature 0.8, top_p 0.9, seed 7), greedy, and with only the model's
# generation_config.json (do_sample false with top_k/top_p set: greedy; its
# repetition_penalty applied by both).  run uses the normal binary, serve the
# ASan one.
#
# usage: bash tests/cli_run_serve.sh BUILD/w8a8 ASAN/w8a8   (from the repo root)
set -u
B=${1:-build/w8a8}
A=${2:-build/asan/w8a8}
S=${W8A8_SHARED:-../shared}
M=$S/models/stories260K-hf-f16
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
T=$(mktemp -d /tmp/w8runserve.XXXXXX)
cleanup() {
    kill_servers
    rm -rf "$T"
}
trap cleanup EXIT

. "$(dirname "$0")/lib.sh"

if [ ! -d "$M" ]; then
    fail "model $M not found"
    exit 1
fi

# start MODEL_DIR: serve it with the ASan build; sets SPID, URL
start() {
    start_server "$A" "$T/log" --model_path "$1" -t 1 && return 0
    sed 's/^/# serve: /' "$T/log" | tail -5
    return 1
}
# stop: SIGTERM; exit status 0 and no ASan/UBSan report in the log
stop() { stop_server "$SPID" "$T/log"; }

# run_text MODEL OPTIONS... -> the output text in $T/run
run_text() {
    local m=$1
    shift
    "$B" run --model_path "$m" --input_texts "${RUN_IN:-Once upon a time}" \
        --max_output_length "${RUN_MAX:-30}" -t 1 "$@" \
        >"$T/run.out" 2>"$T/run.err" || return 1
    # the output may span lines: up to the summary line
    awk '/^prompt tokens [0-9]+, generated/ { p = 0 } p { print } /^\[0\] output: / { sub(/^\[0\] output: /, ""); print; p = 1 }' \
        "$T/run.out" >"$T/run"
    [ -s "$T/run" ]
}
# serve_text JSON_OPTIONS -> the completion's text in $T/serve
serve_text() {
    curl -s -m 120 -o "$T/out" -H 'Content-Type: application/json' \
        --data-binary "{\"prompt\":\"Once upon a time\",\"max_tokens\":30$1}" \
        "$URL/v1/completions" || return 1
    grep -oE '"text":"([^"\\]|\\.)*"' "$T/out" | head -1 |
        sed -E 's/^"text":"(.*)"$/\1/; s/\\n/\n/g; s/\\"/"/g; s/\\\\/\\/g' >"$T/serve"
    [ -s "$T/serve" ]
}
same() { # what
    if [ "$(cat "$T/run")" = "$(cat "$T/serve")" ]; then
        ok "$1: run and serve give the same text"
    else
        fail "$1: run and serve differ"
        echo "# run:   $(cat "$T/run")"
        echo "# serve: $(cat "$T/serve")"
    fi
}

if start "$M"; then
    ok "serve starts"
    run_text "$M" --temperature 0.8 --top_p 0.9 --seed 7 && cp "$T/run" "$T/run7"
    serve_text ',"temperature":0.8,"top_p":0.9,"seed":7'
    same "sampled, seed 7"
    run_text "$M" --temperature 0.8 --top_p 0.9 --seed 8
    check "sampled: another seed gives another text (the test can fail)" \
        sh -c "! cmp -s '$T/run' '$T/run7'"
    run_text "$M" --temperature 0
    serve_text ',"temperature":0'
    same "greedy"
    run_text "$M"
    serve_text ''
    same "defaults (generation_config: do_sample false)"
    check "serve exits 0 on SIGTERM, no sanitizer report" stop
else
    fail "serve starts"
fi

# generation_config sets sampling values with do_sample false (greedy) and a
# repetition penalty: both apply the penalty, neither samples
G=$T/model
mkdir -p "$G"
for f in "$M"/*; do ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$G/"; done
rm "$G/generation_config.json" "$G/tokenizer_config.json"
# and a chat template (the stories tokenizer has none)
sed '0,/{/s//{\n  "chat_template": "{% for m in messages %}{{ m['"'"'role'"'"'] }}: {{ m['"'"'content'"'"'] }}. {% endfor %}{% if add_generation_prompt %}assistant: {% endif %}",/' \
    "$M/tokenizer_config.json" >"$G/tokenizer_config.json"
cat >"$G/generation_config.json" <<'J'
{"bos_token_id": 1, "eos_token_id": 2, "do_sample": false, "top_k": 3, "top_p": 0.5,
 "temperature": 0.7, "repetition_penalty": 1.5}
J
if start "$G"; then
    run_text "$G" --seed 3
    serve_text ',"seed":9'
    same "generation_config repetition_penalty, do_sample false"
    run_text "$G" --repetition_penalty 1
    cp "$T/run" "$T/nopen"
    run_text "$G"
    check "the config's repetition_penalty changes the output (the test can fail)" \
        sh -c "! cmp -s '$T/run' '$T/nopen'"
    serve_text ',"repetition_penalty":1'
    cp "$T/nopen" "$T/run"
    same "request repetition_penalty 1 overrides the config"
    # chat: the same prompt builder renders the template for both
    RUN_IN="Tell me a story" RUN_MAX=16 run_text "$G" --chat
    curl -s -m 120 -o "$T/out" -H 'Content-Type: application/json' \
        --data-binary '{"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":16}' \
        "$URL/v1/chat/completions"
    grep -oE '"content":"([^"\\]|\\.)*"' "$T/out" | head -1 |
        sed -E 's/^"content":"(.*)"$/\1/; s/\\n/\n/g; s/\\"/"/g; s/\\\\/\\/g' >"$T/serve"
    same "chat template, one user turn"
    check "serve exits 0 on SIGTERM, no sanitizer report (config copy)" stop
else
    fail "serve starts (config copy)"
fi

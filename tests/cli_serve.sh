#!/usr/bin/env bash
# cli_serve.sh - end-to-end tests of `w8a8 serve` on stories260K, with curl.
#
# usage: bash tests/cli_serve.sh BUILD/w8a8 ASAN/w8a8   (from the repo root)
#
# The functional and abuse checks run against the ASan+UBSan server (so a
# memory error, or a leak reported at its exit after SIGTERM, fails the
# test); the RSS check runs against the optimized one (ASan's quarantine
# grows memory on purpose).  Servers bind 127.0.0.1 on a port the kernel
# picks (--port 0; the port is read from the startup line) and are killed at
# exit whatever happens.  JSON is checked with grep on compact jansson
# output, so no jq/python is needed.
set -u
B=${1:-build/w8a8}
A=${2:-build/asan/w8a8}
S=${W8A8_SHARED:-../shared}
M=$S/models/stories260K-hf-f16
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
T=$(mktemp -d /tmp/w8serve.XXXXXX)
PIDS=""
cleanup() {
    kill_servers
    jobs -p | xargs -r kill -9 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

. "$(dirname "$0")/lib.sh"

if [ ! -d "$M" ]; then
    fail "model $M not found"
    exit 1
fi

# post PATH JSON -> body in $T/out, status in $CODE
post() {
    CODE=$(curl -s -m 60 -o "$T/out" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "$2" "$URL$1")
}
# The JSON-escaped value of "KEY":"..." in a file (first match).
jstr() { grep -oE "\"$1\":\"([^\"\\\\]|\\\\.)*\"" "$2" | head -1 | sed -E "s/^\"$1\":\"(.*)\"$/\\1/"; }
# All such values concatenated (stream chunks).
jcat() { grep -oE "\"$1\":\"([^\"\\\\]|\\\\.)*\"" "$2" | sed -E "s/^\"$1\":\"(.*)\"$/\\1/" | tr -d '\n'; }
health_field() { curl -s -m 10 "$URL/health" | grep -oE "\"$1\":[0-9]+" | cut -d: -f2; }
# Wait until the engine is idle with every block free (up to 10 s).
wait_idle() {
    for _ in $(seq 100); do
        local run free total
        run=$(health_field running)
        free=$(health_field free_blocks)
        total=$(health_field total_blocks)
        [ "$run" = 0 ] && [ -n "$free" ] && [ "$free" = "$total" ] && return 0
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- server 1
if ! start_server "$A" "$T/s1.log" --model_path "$M" -t 1 --max_batch_size 8 --max_body 65536 \
    --timeout 3 --prefill_chunk 16; then
    fail "server starts"
    sed 's/^/    /' "$T/s1.log" | head -20
    exit 1
fi
S1=$SPID
ok "server starts (port ${URL##*:})"
check "startup line names the layers and KV capacity" \
    grep -qE 'float, 0 int8 / [0-9]+ float|0 int8 / [0-9]+ float' "$T/s1.log"
check "startup line shows KV blocks x block size" grep -qE 'KV cache [0-9]+ blocks x [0-9]+ tokens' "$T/s1.log"

curl -s -m 10 "$URL/health" >"$T/h"
check "GET /health" grep -q '"status":"ok"' "$T/h"
curl -s -m 10 "$URL/v1/models" >"$T/m"
check "GET /v1/models lists the directory name" grep -q '"id":"stories260K-hf-f16"' "$T/m"

# Greedy from BOS only: the known TinyStories opening.
post /v1/completions '{"prompt":"","max_tokens":30,"temperature":0}'
check "completion: 200" [ "$CODE" = 200 ]
TXT=$(jstr text "$T/out")
check "completion: known greedy text ('${TXT:0:60}...')" \
    grep -q "Once upon a time, there was a little girl named Lily" <<<"$TXT"
check "completion: text_completion object, finish length, usage" \
    grep -qE '"object":"text_completion".*"finish_reason":"length".*"completion_tokens":30' "$T/out"

# Stop string: the text up to it, finish_reason stop.
post /v1/completions '{"prompt":"","max_tokens":60,"temperature":0,"stop":["Lily","zzz"]}'
STOPTXT=$(jstr text "$T/out")
check "stop string cuts the text before it ('$STOPTXT')" \
    bash -c '[[ "$1" == *"named " || "$1" == *"named" ]] && [[ "$1" != *Lily* ]]' _ "$STOPTXT"
check "stop string: finish_reason stop" grep -q '"finish_reason":"stop"' "$T/out"

# A stop string spanning several tokens, streamed: nothing of it leaks into
# the chunks (the text that might start it is held back until known).
post /v1/completions '{"prompt":"","max_tokens":60,"temperature":0,"stop":"a little girl"}'
NS=$(jstr text "$T/out")
post /v1/completions '{"prompt":"","max_tokens":60,"temperature":0,"stop":"a little girl","stream":true}'
check "multi-token stop string, streamed: same text, stop excluded ('$NS')" \
    bash -c '[ "$1" = "$2" ] && [[ "$1" == *"there was " ]]' _ "$(jcat text "$T/out")" "$NS"

# Streaming reassembles to the non-streamed text.
post /v1/completions '{"prompt":"Once upon a time","max_tokens":40,"temperature":0}'
REF=$(jstr text "$T/out")
post /v1/completions '{"prompt":"Once upon a time","max_tokens":40,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}'
check "stream: 200 text/event-stream" [ "$CODE" = 200 ]
GOT=$(jcat text "$T/out")
check "stream: chunks reassemble to the non-streamed text" [ -n "$REF" ] && [ "$GOT" = "$REF" ]
check "stream: ends with data: [DONE]" bash -c '[ "$(tail -c 14 "$1")" = "data: [DONE]" ] || tail -n 2 "$1" | grep -q "^data: \[DONE\]$"' _ "$T/out"
check "stream: a final chunk with finish_reason and a usage chunk" \
    bash -c 'grep -q "\"finish_reason\":\"length\"" "$1" && grep -q "\"choices\":\[\],\"usage\"\|\"usage\":{\"prompt_tokens\"" "$1"' _ "$T/out"

# 8 concurrent streams give what each gives alone.
PROMPTS=("Once upon a time" "The cat" "Lily and Tom" "One day" "There was a" "The sun was" "A little dog" "Mom said")
for i in "${!PROMPTS[@]}"; do
    post /v1/completions "{\"prompt\":\"${PROMPTS[$i]}\",\"max_tokens\":24,\"temperature\":0}"
    jstr text "$T/out" >"$T/alone$i"
done
CPIDS=""
for i in "${!PROMPTS[@]}"; do
    curl -s -N -m 60 -H 'Content-Type: application/json' -o "$T/conc$i" \
        --data-binary "{\"prompt\":\"${PROMPTS[$i]}\",\"max_tokens\":24,\"temperature\":0,\"stream\":true}" \
        "$URL/v1/completions" &
    CPIDS="$CPIDS $!"
done
wait $CPIDS
same=0
for i in "${!PROMPTS[@]}"; do
    [ "$(jcat text "$T/conc$i")" = "$(cat "$T/alone$i")" ] && [ -s "$T/alone$i" ] && same=$((same + 1))
done
check "8 concurrent greedy streams equal their solo runs ($same/8)" [ "$same" = 8 ]

# A prompt of ~100 tokens, prefilled here in chunks of 16 (compared with the
# unchunked server 3 below).
MID=$(printf 'Lily saw a big red ball in the park and she wanted to play. %.0s' 1 2 3 4 5 6 7)
post /v1/completions "{\"prompt\":\"$MID\",\"max_tokens\":20,\"temperature\":0}"
jstr text "$T/out" >"$T/chunked"
check "chunked prefill of a long prompt: 200" bash -c '[ "$1" = 200 ] && [ -s "$2" ]' _ "$CODE" "$T/chunked"

# ---- errors
post /v1/completions '{"prompt": "abc", '
check "400 malformed JSON" bash -c '[ "$1" = 400 ] && grep -q "\"type\":\"invalid_request_error\"" "$2"' _ "$CODE" "$T/out"
post /v1/completions '{"prompt":"abc","max_tokens":"ten"}'
check "400 wrong type names the param" bash -c '[ "$1" = 400 ] && grep -q "\"param\":\"max_tokens\"" "$2"' _ "$CODE" "$T/out"
post /v1/chat/completions '{"messages":"hi"}'
check "400 chat messages not an array" [ "$CODE" = 400 ]
post /v1/chat/completions '{"messages":[{"role":"user","content":"hi"}]}'
check "400 chat on a model without a template" [ "$CODE" = 400 ]
post /v1/completions '{"prompt":"a","n":3}'
check "400 n > 1" [ "$CODE" = 400 ]
LONG=$(printf 'the cat sat on the mat %.0s' $(seq 200))
post /v1/completions "{\"prompt\":\"$LONG\"}"
check "400 prompt longer than the context" bash -c '[ "$1" = 400 ] && grep -q "context" "$2"' _ "$CODE" "$T/out"
CODE=$(curl -s -m 10 -o "$T/out" -w '%{http_code}' "$URL/nope")
check "404 unknown path" [ "$CODE" = 404 ]
CODE=$(curl -s -m 10 -o "$T/out" -w '%{http_code}' "$URL/v1/completions")
check "405 GET on a POST path" [ "$CODE" = 405 ]
CODE=$(curl -s -m 10 -o "$T/out" -w '%{http_code}' -X DELETE "$URL/health")
check "405 DELETE /health" [ "$CODE" = 405 ]
head -c 100000 /dev/zero | tr '\0' a >"$T/big"
CODE=$(curl -s -m 10 -o "$T/out" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$T/big" "$URL/v1/completions")
check "413 body over --max_body (Content-Length)" [ "$CODE" = 413 ]
CODE=$(curl -s -m 10 -o "$T/out" -w '%{http_code}' -H 'Content-Type: application/json' \
    -H 'Transfer-Encoding: chunked' --data-binary @"$T/big" "$URL/v1/completions")
check "413 chunked body over --max_body" [ "$CODE" = 413 ]

# ---- abuse
printf '{"prompt":"bad \xc3\x28 \xff utf8"}' >"$T/badutf"
CODE=$(curl -s -m 10 -o "$T/out" -w '%{http_code}' --data-binary @"$T/badutf" "$URL/v1/completions")
check "invalid UTF-8 in a prompt: 400" [ "$CODE" = 400 ]
printf '{"messages":[{"role":"user","content":"\xed\xa0\x80"}]}' >"$T/badutf"
CODE=$(curl -s -m 10 -o "$T/out" -w '%{http_code}' --data-binary @"$T/badutf" "$URL/v1/chat/completions")
check "surrogate bytes in a message: 400" [ "$CODE" = 400 ]
post /v1/completions '{"prompt":"The end","max_tokens":100000000,"temperature":0}'
check "max_tokens far beyond the context: 200, finish length" \
    bash -c '[ "$1" = 200 ] && grep -q "\"finish_reason\":\"length\"" "$2"' _ "$CODE" "$T/out"
CT=$(grep -oE '"total_tokens":[0-9]+' "$T/out" | cut -d: -f2)
check "... and stops at the context (total_tokens $CT <= 512)" [ "${CT:-999}" -le 512 ]

# Mid-stream disconnect frees the sequence at once.  These checks run on a
# server of their own, slowed by the test-only W8A8_TEST_STEP_DELAY_MS to
# 25 ms per step: the 511 tokens the context allows then take 12+ s on any
# machine, so "stopped early" measures the server's reaction to the client
# leaving, not how fast the machine runs a tiny model (unslowed, a fast
# machine finished all 511 before the client's timeout).  The streaming
# client leaves as soon as it has read the first chunk.  One sequence runs
# and one waits at a time (for the queue-full check below).
URL1=$URL
if W8A8_TEST_STEP_DELAY_MS=25 start_server "$A" "$T/slow.log" --model_path "$M" -t 1 \
    --max_batch_size 1 --max_queue 1; then
    S3=$SPID
    G0=$(health_field tokens_generated)
    curl -s -N -m 60 -H 'Content-Type: application/json' \
        --data-binary '{"prompt":"","max_tokens":2000,"temperature":0,"stream":true}' \
        "$URL/v1/completions" 2>/dev/null | grep -m 1 '"text"' >"$T/cut"
    check "disconnect: the client got part of a stream" grep -q '"text"' "$T/cut"
    check "disconnect: sequence dropped, all blocks free again" wait_idle
    G1=$(health_field tokens_generated)
    check "disconnect: it stopped early ($((G1 - G0)) of 511 tokens)" [ $((G1 - G0)) -lt 511 ]
    post /v1/completions '{"prompt":"","max_tokens":5,"temperature":0}'
    check "disconnect: server still answers" [ "$CODE" = 200 ]
    # The same for a client that leaves while waiting for a non-streamed
    # answer: the sequence stops early (fewer than the 511 tokens allowed).
    G0=$(health_field tokens_generated)
    curl -s -m 0.5 -o /dev/null -H 'Content-Type: application/json' \
        --data-binary '{"prompt":"","max_tokens":2000,"temperature":0}' "$URL/v1/completions"
    wait_idle
    G1=$(health_field tokens_generated)
    check "disconnect while waiting for a whole answer: dropped after $((G1 - G0)) tokens" \
        [ $((G1 - G0)) -lt 511 ]

    # Queue full, step by step so no race decides it: one request running
    # (400 tokens: 10+ s here), one waiting, then six more are each refused
    # with 429 at once; the first two are then dropped by hanging up.
    wait_field() { # KEY VALUE: up to 20 s
        for _ in $(seq 200); do [ "$(health_field "$1")" = "$2" ] && return 0; sleep 0.1; done
        return 1
    }
    curl -s -m 60 -o /dev/null -H 'Content-Type: application/json' \
        --data-binary '{"prompt":"","max_tokens":400,"temperature":0}' "$URL/v1/completions" &
    QA=$!
    check "queue full: the first request runs" wait_field running 1
    curl -s -m 60 -o /dev/null -H 'Content-Type: application/json' \
        --data-binary '{"prompt":"","max_tokens":400,"temperature":0}' "$URL/v1/completions" &
    QB=$!
    check "queue full: the second one waits (max_queue 1)" wait_field waiting 1
    CPIDS=""
    for i in $(seq 6); do
        curl -s -m 60 -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
            --data-binary '{"prompt":"","max_tokens":400,"temperature":0}' "$URL/v1/completions" >"$T/q$i" &
        CPIDS="$CPIDS $!"
    done
    wait $CPIDS
    n429=$(cat "$T"/q? | grep -c '^429$')
    check "queue full: the six others are refused with 429 ($n429/6)" [ "$n429" = 6 ]
    kill "$QA" "$QB" 2>/dev/null
    wait "$QA" "$QB" 2>/dev/null
    check "queue full: both dropped when their clients hang up, all blocks free" wait_idle
    check "slowed server: exit status 0 on SIGTERM" stop_server "$S3"
    check "slowed server: no sanitizer report" \
        bash -c '! grep -qE "Sanitizer|runtime error|leak" "$1"' _ "$T/slow.log"
else
    fail "slowed server starts"
    sed 's/^/    /' "$T/slow.log" | head -20
fi
URL=$URL1

# Clients that send headers byte by byte and stall: others are still served.
# The server runs with --timeout 3: each stalled connection must be closed.
SPIDS=""
for i in 1 2 3 4; do
    (
        exec 3<>/dev/tcp/127.0.0.1/${URL##*:} || exit 0
        for c in P O S T ' ' /; do printf '%s' "$c" >&3; sleep 0.2; done
        t0=$SECONDS
        read -r -t 15 -u 3 _
        rc=$?
        # EOF (status 1, not a >128 timeout) within the idle timeout + slack
        if [ "$rc" = 1 ] && [ $((SECONDS - t0)) -le 8 ]; then echo closed >"$T/stall$i"; fi
    ) 2>/dev/null &
    SPIDS="$SPIDS $!"
done
sleep 0.5
post /v1/completions '{"prompt":"Lily","max_tokens":5,"temperature":0}'
check "stalled byte-by-byte clients do not block others" [ "$CODE" = 200 ]
wait $SPIDS
check "stalled clients are cut off by the idle timeout" \
    bash -c '[ "$(cat "$1"/stall? 2>/dev/null | grep -c closed)" = 4 ]' _ "$T"

# 64 concurrent streams, half of them hang up mid-stream.
CPIDS=""
for i in $(seq 64); do
    if [ $((i % 2)) = 0 ]; then
        curl -s -N -m 1 -o /dev/null -H 'Content-Type: application/json' \
            --data-binary '{"prompt":"","max_tokens":2000,"stream":true,"seed":'$i'}' "$URL/v1/completions" &
    else
        curl -s -N -m 90 -o "$T/s64_$i" -H 'Content-Type: application/json' \
            --data-binary '{"prompt":"Tom","max_tokens":8,"stream":true,"seed":'$i'}' "$URL/v1/completions" &
    fi
    CPIDS="$CPIDS $!"
done
sleep 0.3
CODE=$(curl -s -m 30 -o "$T/out" -w '%{http_code}' "$URL/health")
check "health answers while 64 streams run" [ "$CODE" = 200 ]
wait $CPIDS
done32=0
for i in $(seq 1 2 63); do grep -q '^data: \[DONE\]' "$T/s64_$i" 2>/dev/null && done32=$((done32 + 1)); done
check "64 streams: the 32 that stayed all completed ($done32/32)" [ "$done32" = 32 ]
check "64 streams: afterwards all blocks are free" wait_idle
check "server 1 is alive" kill -0 "$S1"

# SIGTERM with a stream in flight: exit 0 (and no leak reported by ASan).
curl -s -N -m 30 -o "$T/inflight" -H 'Content-Type: application/json' \
    --data-binary '{"prompt":"","max_tokens":2000,"stream":true}' "$URL/v1/completions" &
CPIDS=$!
sleep 0.5
check "SIGTERM with a stream in flight: exit status 0" stop_server "$S1"
wait $CPIDS
check "... and no sanitizer report" bash -c '! grep -qE "Sanitizer|runtime error|leak" "$1"' _ "$T/s1.log"

# ---------------------------------------------------------------- chat model
# The stories tokenizer has no chat template: give a copy one.
mkdir -p "$T/chat"
for f in config.json generation_config.json model.safetensors tokenizer.json; do
    ln -s "$(cd "$M" && pwd)/$f" "$T/chat/$f"
done
sed '0,/{/s//{\n  "chat_template": "{% for m in messages %}{{ m['"'"'role'"'"'] }}: {{ m['"'"'content'"'"'] }}. {% endfor %}{% if add_generation_prompt %}assistant: {% endif %}",/' \
    "$M/tokenizer_config.json" >"$T/chat/tokenizer_config.json"
if start_server "$A" "$T/s2.log" --model_path "$T/chat" -t 1; then
    S2=$SPID
    post /v1/chat/completions '{"model":"chat","messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":16,"temperature":0}'
    check "chat: 200 chat.completion" bash -c '[ "$1" = 200 ] && grep -q "\"object\":\"chat.completion\"" "$2"' _ "$CODE" "$T/out"
    check "chat: assistant message with content" grep -qE '"role":"assistant","content":"[^"]+' "$T/out"
    CREF=$(jstr content "$T/out")
    post /v1/chat/completions '{"messages":[{"role":"user","content":[{"type":"text","text":"Tell me a story"}]}],"max_tokens":16,"temperature":0,"stream":true}'
    check "chat stream: role delta first" bash -c 'grep -m1 "^data: {" "$1" | grep -q "\"delta\":{\"role\":\"assistant\""' _ "$T/out"
    check "chat stream: content deltas reassemble to the message" [ "$(jcat content "$T/out")" = "$CREF" ]
    check "chat stream: chat.completion.chunk objects" grep -q '"object":"chat.completion.chunk"' "$T/out"
    check "chat server: SIGTERM exits 0" stop_server "$S2"
else
    fail "chat server starts"
    sed 's/^/    /' "$T/s2.log" | head
fi

# ---------------------------------------------------------------- a queue of one
if start_server "$B" "$T/s3.log" --model_path "$M" -t 1 --max_batch_size 1 --max_queue 1; then
    S3=$SPID
    post /v1/completions "{\"prompt\":\"$MID\",\"max_tokens\":20,\"temperature\":0}"
    check "chunked (16) and whole (256) prefill give the same greedy text" \
        [ "$(jstr text "$T/out")" = "$(cat "$T/chunked")" ]

    # RSS after 1000 requests is within 5% of after the first 100.
    printf '{"prompt":"Tom","max_tokens":2,"temperature":0}' >"$T/small"
    burst() { # n requests, 1 at a time per curl (the queue holds one)
        : >"$T/urls"
        for _ in $(seq "$1"); do printf 'url = "%s/v1/completions"\noutput = "/dev/null"\n' "$URL" >>"$T/urls"; done
        curl -s -m 300 -K "$T/urls" -H 'Content-Type: application/json' --data-binary @"$T/small" \
            -w '%{http_code}\n' | grep -c '^200$'
    }
    n1=$(burst 100)
    r1=$(awk '/VmRSS/{print $2}' /proc/$S3/status)
    n2=$(burst 900)
    r2=$(awk '/VmRSS/{print $2}' /proc/$S3/status)
    check "1000 requests all answered 200 ($((n1 + n2)))" [ $((n1 + n2)) = 1000 ]
    check "RSS after 1000 requests ${r2} kB within 5% of after 100 (${r1} kB)" \
        [ "$((r2 * 100))" -le "$((r1 * 105))" ]
    check "queue-full server: SIGTERM exits 0" stop_server "$S3"
else
    fail "third server starts"
fi

# ---------------------------------------------------------------- KV pool full
# 1 MiB of KV in 16-token blocks holds one 400-token sequence at a time: the
# others wait for blocks (no error) and each still gets its solo greedy text.
if start_server "$B" "$T/s4.log" --model_path "$M" -t 1 --kv_cache_gb 0.001 --block_size 16; then
    S4=$SPID
    post /v1/completions '{"prompt":"Lily","max_tokens":400,"temperature":0}'
    jstr text "$T/out" >"$T/kvalone"
    CPIDS=""
    for i in 1 2 3; do
        curl -s -m 120 -o "$T/kv$i" -H 'Content-Type: application/json' \
            --data-binary '{"prompt":"Lily","max_tokens":400,"temperature":0}' "$URL/v1/completions" &
        CPIDS="$CPIDS $!"
    done
    sleep 0.3
    WAITING=$(health_field waiting)
    wait $CPIDS
    same=0
    for i in 1 2 3; do [ "$(jstr text "$T/kv$i")" = "$(cat "$T/kvalone")" ] && same=$((same + 1)); done
    check "KV pool full: requests wait for blocks (waiting=$WAITING) and all complete alike ($same/3)" \
        [ "$same" = 3 ]
    check "KV-limited server: SIGTERM exits 0" stop_server "$S4"
else
    fail "fourth server starts"
    sed 's/^/    /' "$T/s4.log" | head
fi

# ---------------------------------------------------------------- sizes that overflow an int
# The KV pool's size in tokens and the rows per step are ints: options whose
# product or sum passes INT_MAX are refused with a message, not wrapped.
"$A" serve --model_path "$M" --port 0 -t 1 --max_seq_len 512 --max_batch_size 2000000000 \
    >"$T/big1" 2>&1 </dev/null
RC=$?
check "serve: max_seq_len x max_batch_size past INT_MAX is refused (status $RC)" \
    bash -c '[ "$1" = 1 ] && grep -q "too many for the KV cache" "$2"' _ "$RC" "$T/big1"
"$A" serve --model_path "$M" --port 0 -t 1 --kv_cache_gb 1e30 >"$T/big2" 2>&1 </dev/null
RC=$?
check "serve: --kv_cache_gb 1e30 is refused, not cast past size_t (status $RC)" \
    bash -c '[ "$1" = 1 ] && grep -q "too large" "$2" && ! grep -q "runtime error" "$2"' _ "$RC" "$T/big2"
"$A" serve --model_path "$M" --port 0 -t 1 --max_batch_size 2147483000 --prefill_chunk 1000 \
    --kv_cache_gb 0.01 >"$T/big3" 2>&1 </dev/null
RC=$?
check "serve: max_batch_size + prefill_chunk past INT_MAX is refused (status $RC)" \
    bash -c '[ "$1" = 1 ] && grep -q "overflow" "$2"' _ "$RC" "$T/big3"

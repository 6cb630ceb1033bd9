#!/usr/bin/env bash
# loadtest.sh - load `w8a8 serve` with many streaming clients (not part of
# the test suite: on the 2-core machine a full run takes minutes).
#
# usage: scripts/loadtest.sh MODEL_DIR [CLIENTS=32] [REQUESTS=20] [MAX_TOKENS=32] [-- serve options]
#
# Builds build/w8a8 and build/loadtest (tools/loadtest.c), starts the server
# on a free port, runs CLIENTS x REQUESTS streamed completions, and prints
# the aggregate generated tokens/s, p50/p99 time to first token and the
# server's RSS before and after.  The server is stopped with SIGTERM at the
# end (and killed if the script is interrupted).
set -eu
cd "$(dirname "$0")/.."
MODEL=${1:?usage: scripts/loadtest.sh MODEL_DIR [CLIENTS] [REQUESTS] [MAX_TOKENS] [-- serve options]}
shift
C=32 R=20 N=32
[ $# -gt 0 ] && [ "$1" != -- ] && { C=$1; shift; }
[ $# -gt 0 ] && [ "$1" != -- ] && { R=$1; shift; }
[ $# -gt 0 ] && [ "$1" != -- ] && { N=$1; shift; }
[ $# -gt 0 ] && [ "$1" = -- ] && shift
make -s build/w8a8
mkdir -p build
cc -O2 -Wall -Wextra -D_GNU_SOURCE -o build/loadtest tools/loadtest.c -lcurl -lpthread
LOG=$(mktemp /tmp/w8load.XXXXXX)
build/w8a8 serve --model_path "$MODEL" --port 0 --max_batch_size "$C" "$@" >"$LOG" 2>&1 &
PID=$!
trap 'kill -9 $PID 2>/dev/null; rm -f "$LOG"; true' EXIT
for _ in $(seq 600); do
    grep -q "listening on" "$LOG" && break
    kill -0 $PID 2>/dev/null || { cat "$LOG"; exit 1; }
    sleep 0.1
done
cat "$LOG"
URL=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$LOG")
rss() { awk '/VmRSS/{print $2 " kB"}' /proc/$PID/status; }
echo "loadtest: $C clients x $R requests, max_tokens $N, against $URL"
echo "server RSS at start: $(rss)"
# one warm-up request per client touches the KV blocks and weights a full
# batch uses, so growth after it would be a leak
build/loadtest "$URL" "$C" 1 "$N" >/dev/null || true
echo "server RSS after warm-up ($C requests): $(rss)"
build/loadtest "$URL" "$C" "$R" "$N" || true
echo "server RSS after:  $(rss)"
kill -TERM $PID
wait $PID && echo "server exited 0"

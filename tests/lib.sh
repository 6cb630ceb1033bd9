# lib.sh - helpers shared by the tests/cli_*.sh scripts, which source it:
#   . "$(dirname "$0")/lib.sh"
#
#   ok / fail WHAT             print the suite's "ok - WHAT" / "FAIL - WHAT" line
#   check WHAT COMMAND...      ok when COMMAND succeeds, else fail
#   start_server BIN LOG ARGS...   `BIN serve --port 0 ARGS...` in the background
#   stop_server PID [LOG]      SIGTERM it and judge how it ended
#   kill_servers               for an EXIT trap: every server still running
# bash only; nothing here runs at source time.

ok() { echo "ok - $*"; }
fail() { echo "FAIL - $*"; }
check() { # description, then a command that must succeed
    local d=$1
    shift
    if "$@"; then ok "$d"; else fail "$d"; fi
}

# Output goes to LOG.  Waits up to 90 s (an ASan build on a loaded machine)
# for the "listening on" line.  Sets SPID and URL (the kernel-picked port on
# 127.0.0.1) and adds the pid to PIDS; returns 1 when the server did not
# start (it exited, or never listened).
start_server() {
    local bin=$1 log=$2
    shift 2
    "$bin" serve --port 0 "$@" >"$log" 2>&1 &
    SPID=$!
    PIDS="${PIDS:-} $SPID"
    for _ in $(seq 900); do
        grep -q "listening on" "$log" && break
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    local port
    port=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$log")
    URL=http://127.0.0.1:${port:-1}
    [ -n "$port" ]
}

# 0 when the server exits with status 0 within 20 s of SIGTERM and, given its
# LOG, wrote no sanitizer report there (ASan reports leaks at exit, when the
# status may still be 0); otherwise 1 (after 20 s it is killed).
stop_server() {
    local pid=$1 log=${2:-}
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid"
        wait "$pid" 2>/dev/null
        return 1
    fi
    wait "$pid" || return 1
    [ -z "$log" ] || ! grep -qE "Sanitizer|runtime error" "$log"
}

kill_servers() {
    local p
    for p in ${PIDS:-}; do kill -9 "$p" 2>/dev/null; done
}

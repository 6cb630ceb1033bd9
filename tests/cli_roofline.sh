#!/usr/bin/env bash
# cli_roofline.sh - `w8a8 bench --roofline` (issue 17.3): the measured int8
# peak and read bandwidth are printed, and each phase's fraction of its
# ceiling is a positive number (markdown and JSON; every ISA the CPU has;
# the ASan build once).  Timing values are never compared: the machine is shared.
#
# usage: bash tests/cli_roofline.sh BUILD/w8a8 ASAN/w8a8   (from the repo root)
set -u
W=${1:-build/w8a8}
A=${2:-build/asan/w8a8}
S=${W8A8_SHARED:-../shared}
export W8A8_QUIET=1
T=$(mktemp -d /tmp/w8a8-cli-roofline-XXXXXX)
trap 'rm -rf "$T"' EXIT

. "$(dirname "$0")/lib.sh"
NUM='[0-9]+(\.[0-9]+)?'
# a number above zero, as %g prints it (a tiny fraction, such as the ASan
# build's on a loaded machine, is 1.2e-05, not 0.0000)
POS='0*[1-9][0-9]*(\.[0-9]+)?(e[-+][0-9]+)?|0+\.[0-9]*[1-9][0-9]*(e[-+][0-9]+)?'
# one repetition, steady or not (whether the host held still is not ours to assert)
ONE='(1 of 1 repetitions steady, their median|none of 1 repetitions steady: the median of all)'

"$W" quant --model_path "$S/models/stories260K-hf-f16" --save_path "$T/q" -q \
    --calib_samples 2 --calib_seq_len 16 >"$T/out" 2>&1
check "quantize stories260K" [ $? -eq 0 ]

# W8A8_CPU caps the ISA: on a CPU without avx512 the first run measures avx2
for isa in avx512 avx2 scalar; do
    W8A8_CPU=$isa "$W" bench --model_path "$T/q" -p 16 -n 8 -r 1 -t 2 --roofline >"$T/b" 2>"$T/e"
    rc=$?
    got=$(grep -o 'CPU ([a-z0-9]*)' "$T/b" | head -1)
    check "bench --roofline runs (W8A8_CPU=$isa -> $got, exit $rc)" [ $rc -eq 0 ]
    check "peak and bandwidth line ($isa)" grep -Eq \
        "^roofline: int8 peak ($POS) GOPS \([a-z0-9]+ [A-Za-z0-9 ]+, 2 threads\), read bandwidth ($POS) GB/s \($NUM MiB buffer\)$" "$T/b"
    check "the one-thread int8 loop and the threads' scaling ($isa)" grep -Eq \
        "^roofline: the int8 loop on one thread: ($POS) GOPS; on 2 threads ($POS)x that \(about 2 when each thread has a core of its own\)$" "$T/b"
    check "pp16: a positive fraction of the int8 peak ($isa)" \
        grep -Eq "^roofline: pp16: ($POS) of int8 peak \($NUM GOPS; 2 x [0-9.e+]+ int8 MACs/token\)$" "$T/b"
    check "tg8: a positive fraction of the read bandwidth ($isa)" \
        grep -Eq "^roofline: tg8: ($POS) of read bandwidth \($NUM GB/s; [0-9.e+]+ MB of weights/token" "$T/b"
    check "pp16 and tg8: a positive fraction of the probes run around each repetition ($isa)" \
        [ -n "$(grep -E "^roofline: pp16: ($POS) of the int8 loop run around each repetition \($ONE; it ran at ($POS) GOPS\)$" "$T/b")" \
          -a -n "$(grep -E "^roofline: tg8: ($POS) of a plain read of the same weights around each repetition \($ONE; it ran at ($POS) GB/s\)$" "$T/b")" ]
done

# the paired fraction is the median of the repetitions' own: with -r 3 every
# repetition had its probes (none left at 0, which would print 0), and the
# count of steady ones is 0..3
"$W" bench --model_path "$T/q" -p 16 -n 8 -r 3 -t 2 --roofline >"$T/b3" 2>&1
check "-r 3: both paired fractions are medians over the 3 repetitions, positive" \
    [ "$(grep -Ec "^roofline: (pp16|tg8): ($POS) of (the int8 loop|a plain read).*\(([123] of 3 repetitions steady, their median|none of 3 repetitions steady: the median of all); it ran at ($POS) G" "$T/b3")" -eq 2 ]
check "-r 3: the steadiness rule is printed" \
    grep -qx "roofline: a repetition is steady when the probes before and after it differ by at most 10%" "$T/b3"

# a prompt token's MACs are its layers' (stories260K: 5 x (64 x (64 + 32 + 32 + 64 + 2 x 172)
# + 172 x 64) = 226560), less the last layer's o_proj and MLP (64 x 64 + 2 x 172 x 64
# + 172 x 64 = 37120) for all rows but the last: 226560 - 37120 x 15 / 16 = 191760 at
# -p 16; lm_head, int8 with --float_layers int8, runs for the last row only
"$W" bench --model_path "$T/q" -p 16 -n 0 -r 1 -t 1 --roofline --float_layers int8 >"$T/b8" 2>&1
check "pp MACs per token: the layers' 1.92e+05 at -p 16, with lm_head int8 or not" \
    [ -n "$(grep -F '2 x 1.92e+05 int8 MACs/token' "$T/b")" -a \
      -n "$(grep -F '2 x 1.92e+05 int8 MACs/token' "$T/b8")" ]
"$W" bench --model_path "$T/q" -p 1 -n 0 -r 1 -t 1 --roofline >"$T/b1" 2>&1
check "pp MACs per token: a 1-token prompt runs every layer in full (2.27e+05)" \
    grep -qF "2 x 2.27e+05 int8 MACs/token" "$T/b1"

"$W" bench --model_path "$T/q" -p 16 -n 8 -r 1 -t 1 --roofline --json >"$T/j" 2>&1
check "bench --roofline --json exits 0" [ $? -eq 0 ]
check "JSON: each test has its bound and a positive fraction" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert [t["test"] for t in d] == ["pp16", "tg8"], d
assert [t["roofline_bound"] for t in d] == ["int8", "bandwidth"], d
for t in d:
    assert t["roofline_fraction"] > 0 and t["roofline_int8_peak_ops"] > 0, t
    assert t["roofline_read_bytes_per_s"] > 0 and t["roofline_achieved"] > 0, t
    assert t["roofline_paired_fraction"] > 0 and t["roofline_paired_ceiling"] > 0, t
    assert t["roofline_paired_steady"] in (0, 1), t
    assert t["roofline_int8_peak_ops_1thread"] is None, t  # -t 1: nothing to scale
' "$T/j"

"$W" bench --model_path "$S/models/stories260K-hf-f16" -p 16 -n 8 -r 1 -t 1 --roofline >"$T/f" 2>&1
check "float model: pp has no int8 fraction (nor a paired one), tg has both" \
    [ -n "$(grep '^roofline: pp16: no int8 layer' "$T/f")" -a -n "$(grep -E "^roofline: tg8: ($POS) of read bandwidth" "$T/f")" \
      -a -z "$(grep '^roofline: pp16: .*int8 loop' "$T/f")" -a -n "$(grep -E "^roofline: tg8: ($POS) of a plain read" "$T/f")" ]
"$W" bench --model_path "$T/q" -p 16 -n 8 -r 1 >"$T/n" 2>&1
check "without --roofline nothing is measured" [ -z "$(grep roofline "$T/n")" ]

"$A" bench --model_path "$T/q" -p 8 -n 4 -r 1 -t 2 --roofline >"$T/a" 2>&1
check "ASan build: bench --roofline runs clean, with both fractions of each test" \
    [ $? -eq 0 -a "$(grep -Ec "^roofline: (pp8|tg4): ($POS) of" "$T/a")" -eq 4 ]

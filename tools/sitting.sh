#!/bin/bash
# tools/sitting.sh W8A8 DIR [0.5b 1.5b 7b] - one benchmark sitting: llama.cpp and
# ik_llama.cpp (Q8_0, built by ../shared/peers/setup-peers.sh into $PEERS, default
# /tmp/peers) and ours, one after the other on the same machine, so ratios compare.
# DIR holds our models for each size S (q05, q15, q7 for 0.5b, 1.5b, 7b), made with
#   w8a8 synth --shape qwen2.5-0.5b --out DIR/q05
#   w8a8 quant --model_path DIR/q05 --save_path DIR/q05-w8a8 --quant_type w8a8
#   w8a8 quant ... --save_path DIR/q05-llama --model_type llama     (every linear int8)
#   w8a8 quant ... --save_path DIR/q05-mix --quant_type w8a8_mix
# (the quantized directories are enough; 7B: qwen2-7b, -p 128 -n 32; size 0.5b-f16 reads
# DIR/q05f16-*, made from `synth --dtype f16`, next to the same peers).  Missing ones are skipped.
# setup-peers.sh's GGUF writer imports gguf-py, which needs Debian's python3-sentencepiece
# and python3-yaml besides python3-numpy; its 7b step needs ~30 GB of free disk for a while.
W=${1:?usage: tools/sitting.sh W8A8 DIR [sizes]}; D=${2:?usage: tools/sitting.sh W8A8 DIR [sizes]}
shift 2
P=${PEERS:-/tmp/peers}
export W8A8_QUIET=1
echo "== sitting $(date -u +%FT%TZ) binary $W"
lscpu | grep -E "Model name|^CPU\(s\)"
uptime
peer() { # label binary gguf p n r args...
    [ -x "$2" ] && [ -f "$3" ] || { echo "== $1: skipped (no $2 or $3)"; return; }
    echo "== $1"; "$2" -m "$3" -p "$4" -n "$5" -t 2 -r "$6" "${@:7}" 2>&1 | grep -E '^\| (qwen|model)'
}
ours() { # label dir p n r args...
    [ -d "$2" ] || { echo "== ours $1: skipped (no $2)"; return; }
    echo "== ours $1"
    "$W" bench --model_path "$2" -p "$3" -n "$4" -t 2 -r "$5" --roofline "${@:6}" 2>&1 |
        grep -E '^\| qwen|roofline:|peak RSS|CPU-time'
}
for s in "${@:-0.5b}"; do
    case $s in
    0.5b) d=$D/q05 p=512 n=128 r=3 ;;
    0.5b-f16) d=$D/q05f16 p=512 n=128 r=3 ;; # the same shape from an fp16 source
    1.5b) d=$D/q15 p=512 n=128 r=2 ;;
    7b) d=$D/q7 p=128 n=32 r=1 ;;
    *) echo "unknown size $s" >&2; exit 1 ;;
    esac
    g=$P/qwen${s%-f16}-q8_0.gguf
    echo "######## $s (pp$p tg$n, $r repetitions)"
    peer "llama.cpp Q8_0" "$P/llama.cpp/build/bin/llama-bench" "$g" $p $n $r
    peer "ik_llama.cpp Q8_0 -rtr 1" "$P/ik/build/bin/llama-bench" "$g" $p $n $r -rtr 1
    peer "ik_llama.cpp Q8_0 -rtr 1 -fa 1" "$P/ik/build/bin/llama-bench" "$g" $p $n $r -rtr 1 -fa 1
    ours "Qwen2 recipe" "$d-w8a8" $p $n $r
    ours "Qwen2 recipe, --float_layers int8" "$d-w8a8" $p $n $r --float_layers int8
    ours "every linear int8" "$d-llama" $p $n $r
    ours "w8a8_mix" "$d-mix" $p $n $r
    uptime
done

#!/usr/bin/env bash
# cli_eval.sh - `w8a8 eval` on stories260K: the float model and a W8A8 quant
# of it side by side on examples/tinystories_tasks.jsonl.
#
# usage: bash tests/cli_eval.sh BUILD/w8a8 ASAN/w8a8   (from the repo root)
set -u
W=${1:-build/w8a8}
A=${2:-build/asan/w8a8}
S=${W8A8_SHARED:-../shared}
M=$S/models/stories260K-hf-f16
TASKS=examples/tinystories_tasks.jsonl
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export W8A8_QUIET=1

. "$(dirname "$0")/lib.sh"

if "$W" quant --model_path "$M" --save_path "$T/q" --quant_type w8a8 -t 1 >"$T/quant.out" 2>&1; then
    ok "quantize stories260K to W8A8"
else
    fail "quantize stories260K to W8A8: $(tail -2 "$T/quant.out")"
fi

for bin in "$W" "$A"; do
    tag=$(basename "$(dirname "$bin")")
    if "$bin" eval --model_path "$M" --model_path "$T/q" --tasks "$TASKS" -t 1 >"$T/table" 2>"$T/err"; then
        ok "eval of float and W8A8 runs ($tag)"
    else
        fail "eval of float and W8A8 runs ($tag): $(head -3 "$T/err")"
    fi
    check "the table names both models ($tag)" \
        bash -c "grep -q '^  \[1\] $M  (llama, float)' '$T/table' && grep -q '^  \[2\] $T/q  (llama, W8A8' '$T/table'"
    check "the table has a difference column ($tag)" grep -q '\[2\]-\[1\]' "$T/table"
    # every acc / acc_norm / exact_match value of both models within [0, 1]
    check "acc, acc_norm, exact_match of both models within [0, 1] ($tag)" awk '
        $0 ~ / (acc|acc_norm|exact_match) / {
            for (i = 1; i <= NF; i++) if ($i == "acc" || $i == "acc_norm" || $i == "exact_match") break
            a = $(i + 2); b = $(i + 5); seen++
            if (!(a >= 0 && a <= 1 && b >= 0 && b <= 1)) bad++
        }
        END { exit !(seen >= 5 && bad == 0) }' "$T/table"
done
for t in story_words story_grammar story_gen story_loglik overall; do
    check "the table has a row for $t" grep -q "^$t " "$T/table"
done

# a model side by side with itself: every difference is zero
"$W" eval --model_path "$M" "$M" --tasks "$TASKS" -t 1 >"$T/self" 2>&1
check "a model against itself differs by +0.0000 everywhere" \
    awk '/^ *[a-z_]* +(acc|acc_norm|exact_match|logprob|greedy) / { n++; if ($0 !~ /\+0\.0000/) bad++ } END { exit !(n >= 7 && bad == 0) }' "$T/self"

# JSON
"$W" eval --model_path "$M" --model_path "$T/q" --tasks "$TASKS" --json -t 1 >"$T/json" 2>"$T/err"
if command -v python3 >/dev/null; then
    check "--json parses, has 2 models, acc rows within [0, 1], 5 generations (python3)" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["models"]) == 2 and d["models"][1]["type"].startswith("W8A8")
accs = [m["value"] for r in d["results"] if r["metric"] in ("acc", "acc_norm", "exact_match") for m in r["models"]]
assert accs and all(0 <= a <= 1 for a in accs)
assert all("diff" in r["models"][1] and "significant" in r["models"][1] for r in d["results"])
assert len(d["generations"]) == 5 and all(len(g["models"]) == 2 for g in d["generations"])
' "$T/json"
elif command -v jq >/dev/null; then
    check "--json parses with 2 models (jq)" bash -c "[ \"\$(jq '.models | length' '$T/json')\" = 2 ]"
else
    check "--json looks like JSON" grep -q '^{"models": \[' "$T/json"
fi

# --limit: one line per task
"$W" eval --model_path "$M" --tasks "$TASKS" --limit 1 -t 1 >"$T/lim" 2>&1
check "--limit 1 scores one line per task" \
    awk '$1 == "story_words" && $2 == "acc" { f = ($3 == 1) } END { exit !f }' "$T/lim"

# the loglikelihood of a continuation matches the one ppl reports for the text
printf 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her mom.' >"$T/story.txt"
nid=$("$W" tokenize --model_path "$M" --file <(printf '{"text": "%s"}\n' "$(cat "$T/story.txt")") 2>/dev/null |
    sed 's/[^,]//g' | awk '{ print length($0) + 2 }') # ids + the BOS ppl adds
if [ -n "$nid" ] && [ "$nid" -ge 8 ]; then
    "$W" ppl --model_path "$M" --file "$T/story.txt" --ctx "$nid" -t 1 >"$T/ppl" 2>&1
    ppl=$(sed -n 's/^perplexity, full window: *\([0-9.]*\) +\/- .*/\1/p' "$T/ppl")
    printf '{"context": "", "continuation": "%s"}\n' "$(cat "$T/story.txt")" >"$T/ll.jsonl"
    "$W" eval --model_path "$M" --tasks "$T/ll.jsonl" --json -t 1 >"$T/ll.json" 2>&1
    lp=$(sed -n 's/.*"metric":"logprob","n":1,"models":\[{"value":\([-0-9.e]*\).*/\1/p' "$T/ll.json")
    check "eval's logprob ($lp) over $((nid - 1)) tokens is ppl's full-window figure ($ppl)" \
        awk -v lp="$lp" -v p="$ppl" -v n="$((nid - 1))" 'BEGIN { e = exp(-lp / n); d = e - p; if (d < 0) d = -d; exit !(lp != "" && lp + 0 < 0 && d < 0.0001 * p) }'
else
    fail "tokenize counts the story's ids ($nid)"
fi

# --chat: a copy of the model whose tokenizer_config.json has a chat template
mkdir -p "$T/chat"
cp "$M"/config.json "$M"/generation_config.json "$M"/model.safetensors "$M"/tokenizer.json "$T/chat/"
sed 's|"add_bos_token": true,|"add_bos_token": true, "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }} Lily said:{% endfor %}",|' \
    "$M/tokenizer_config.json" >"$T/chat/tokenizer_config.json"
printf '{"context": "Once upon a time", "continuation": " hi"}\n{"context": "Once upon a time Lily said:", "continuation": " hi"}\n' >"$T/chat.jsonl"
sed -n 1p "$T/chat.jsonl" >"$T/c1.jsonl"
sed -n 2p "$T/chat.jsonl" >"$T/c2.jsonl"
for bin in "$W" "$A"; do
    "$bin" eval --model_path "$T/chat" --tasks "$T/chat.jsonl" --chat --json -t 1 >"$T/chat.json" 2>"$T/e"
    check "--chat runs with the model's template ($(basename "$(dirname "$bin")"))" grep -q '"metric":"logprob"' "$T/chat.json"
done
"$W" eval --model_path "$T/chat" --tasks "$T/c2.jsonl" --json -t 1 >"$T/plain.json" 2>&1
lc=$(sed -n 's/.*"metric":"logprob","n":1,"models":\[{"value":\([-0-9.e]*\).*/\1/p' "$T/chat.json")
lp=$(sed -n 's/.*"metric":"logprob","n":1,"models":\[{"value":\([-0-9.e]*\).*/\1/p' "$T/plain.json")
"$W" eval --model_path "$T/chat" --tasks "$T/c1.jsonl" --chat --json -t 1 >"$T/one.json" 2>&1
l1=$(sed -n 's/.*"metric":"logprob","n":1,"models":\[{"value":\([-0-9.e]*\).*/\1/p' "$T/one.json")
check "--chat scores the rendered context: same as the rendered text given plainly ($l1 vs $lp)" \
    awk -v a="$l1" -v b="$lp" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && a + 0 < 0 && d < 1e-9) }'

# bad input: one clear line, exit 1
printf '{"context": "x", "choices": [" a"], "gold": 2}\n' >"$T/bad.jsonl"
"$W" eval --model_path "$M" --tasks "$T/bad.jsonl" >"$T/o" 2>"$T/e"
check "a gold index out of range exits 1 naming file and line" \
    bash -c "[ $? -eq 1 ] && grep -q '^w8a8: .*bad.jsonl:1: \"gold\"' '$T/e'"
"$W" eval --model_path "$M" --tasks "$T/missing.jsonl" >"$T/o" 2>"$T/e"
check "a missing task file exits 1 naming it" bash -c "[ $? -eq 1 ] && grep -q 'missing.jsonl' '$T/e'"
"$W" eval --model_path "$T/nomodel" --tasks "$TASKS" >"$T/o" 2>"$T/e"
check "a missing model exits 1" bash -c "[ $? -eq 1 ] && grep -q '^w8a8: ' '$T/e'"
"$W" eval --tasks "$TASKS" >"$T/o" 2>"$T/e"
check "eval without --model_path exits 1" bash -c "[ $? -eq 1 ] && grep -q 'model_path' '$T/e'"
"$A" eval --model_path "$M" --tasks "$TASKS" --chat >"$T/o" 2>"$T/e"
check "--chat on a model without a chat template exits 1 (asan)" \
    bash -c "[ $? -eq 1 ] && grep -q 'chat_template' '$T/e'"
check "eval --help" bash -c "'$W' eval --help | grep -q -- '--tasks'"

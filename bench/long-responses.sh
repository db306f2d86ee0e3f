#!/usr/bin/env bash
# Training memory on long responses: one DPO step with the default settings on 5 TRL pairs,
# one of whose chosen responses is about 40 paragraphs (3,000+ tokens). Prints the trainer's
# peak memory and the wall time. Usage: bench/long-responses.sh [path/to/pairwise [dpo flags]],
# e.g. `--no-gradient-checkpointing` or `--max-length 4096`.
set -euo pipefail
program="${1:-target/debug/pairwise}"
shift || true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/train.jsonl" <<'PY'
import json, random, sys
random.seed(1)
words = ("the quick brown fox jumps over a lazy dog while seven wizards quietly judge "
         "boxing matches near old river banks").split()
def para(n):
    return " ".join(random.choice(words) for _ in range(n))
with open(sys.argv[1], "w") as f:
    for i in range(5):
        chosen = "\n\n".join(para(60) for _ in range(40)) if i == 0 else para(80)
        f.write(json.dumps({"prompt": f"Tell me a long story number {i}.",
                            "chosen": chosen, "rejected": para(70)}) + "\n")
PY
start=$(date +%s)
"$program" dpo --data "$work/train.jsonl" --out "$work/out" --max-steps 1 --json "$@" \
  >"$work/steps" 2>"$work/err"
head -n 1 "$work/steps"
grep -h "peak memory" "$work/err"
echo "wall: $(( $(date +%s) - start )) s"

#!/usr/bin/env bash
# Training benchmark: DPO and reward-model pairs/s on SmolLM2-135M (Q4_1 GGUF dequantised to
# f32), CPU, batch 4, max length 128; Pairwise's tch trainers beside TRL's DPOTrainer and
# RewardTrainer on the same data, from the same weights, in the same run. Prints a markdown
# table, and each side's first-batch figures (they must agree to 1e-4). TRL runs twice: with its
# defaults (bf16 autocast and gradient checkpointing) and in f32 without checkpointing (the
# arithmetic Pairwise uses on CPU).
#
# Env: THREADS (2), STEPS (6), PAIRS (64), SKIP_TRL=1 to skip the peer.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"; STEPS="${STEPS:-6}"; PAIRS="${PAIRS:-64}"
export LIBTORCH="${LIBTORCH:-$(scripts/libtorch.sh | tail -1)}"
MODEL="${PAIRWISE_DEFAULT_MODEL:-$(scripts/fetch-model.sh | tail -1)}"
log() { echo "[bench] $*" >&2; }

log "building the training bench (release)"
cargo build --release -p engine --example bench_train >&2
BIN=target/release/examples/bench_train

if [[ "${SKIP_TRL:-0}" != 1 ]]; then VENV="$(bench/venv.sh)"; fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# Conversational pairs whose prompt + response fill most of the 128 tokens.
python3 - "$WORK/train.jsonl" "$PAIRS" <<'PY'
import json, sys
topics = ["the tides", "bread", "volcanoes", "chess", "rain", "bees", "glass", "comets"]
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        t = topics[i % len(topics)]
        prompt = [{"role": "user", "content": f"Question {i}: explain {t} to a curious child in two or three sentences."}]
        good = (f"Sure! {t.capitalize()} are a wonderful thing to learn about. Scientists study {t} closely, "
                f"and they found simple rules that explain most of what we see. Ask me more any time.")
        bad = f"No. {t} is boring and I will not explain it. Look it up yourself, question {i}."
        f.write(json.dumps({"prompt": prompt, "chosen": [{"role": "assistant", "content": good}],
                            "rejected": [{"role": "assistant", "content": bad}]}) + "\n")
PY

results=()
for kind in dpo reward; do
  for precision in "" --bf16; do
    log "Pairwise $kind $precision"
    results+=("$("$BIN" --kind "$kind" --data "$WORK/train.jsonl" --peer-dir "$WORK" --model "$MODEL" \
      --steps "$STEPS" --threads "$THREADS" $precision)")
  done
  if [[ "${SKIP_TRL:-0}" != 1 ]]; then
    for precision in "" --f32; do
      log "TRL $kind $precision"
      results+=("$("$VENV/bin/python" bench/trl_train.py --kind "$kind" --data "$WORK/train.jsonl" \
        --peer-dir "$WORK" --steps "$STEPS" --threads "$THREADS" $precision 2>/dev/null | tail -1)")
    done
  fi
done

LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$LOAD" "${results[@]}" <<'PY'
import json, sys
load = sys.argv[1]
rows = [json.loads(r) for r in sys.argv[2:]]
r0 = rows[0]
print(f"SmolLM2-135M-Instruct (Q4_1 GGUF dequantised to f32), CPU, {r0['threads']} threads, batch {r0['batch']}, "
      f"max length {r0['max_length']}, {r0['steps']} optimizer steps, AdamW, DPO with precomputed reference "
      f"log-probs; load average at the end {load}\n")
print("| trainer | implementation | pairs/s | loss of step 1 | peak RSS (MB) |")
print("|---|---|---|---|---|")
for r in rows:
    print(f"| {r['kind']} | {r['impl']} | {r['pairs_per_s']:.3f} | {r['first_loss']:.6f} | {r['peak_rss_mb']:.0f} |")
for kind in ("dpo", "reward"):
    ours = [r for r in rows if r["kind"] == kind and "tch" in r["impl"]]
    peers = [r for r in rows if r["kind"] == kind and "TRL" in r["impl"]]
    if ours and peers:
        for mine in ours:
            ratios = ", ".join(f"{mine['pairs_per_s'] / q['pairs_per_s']:.2f}x vs TRL {q['impl'][10:]}" for q in peers)
            print(f"\n{kind}, {mine['impl'][15:-1]}: {ratios}", end="")
        o, p = ours[0], peers[0]
        print(f"\n{kind} first batch", end="")
        if kind == "dpo":
            for k in ("first_logps_chosen", "first_logps_rejected"):
                print(f"; {k[6:]}: {o[k]:.5f} vs {p[k]:.5f} (diff {abs(o[k] - p[k]):.1e})", end="")
        else:
            print(f"; loss {o['first_batch_loss']:.6f} vs {p['first_batch_loss']:.6f} "
                  f"(diff {abs(o['first_batch_loss'] - p['first_batch_loss']):.1e})", end="")
print()
PY

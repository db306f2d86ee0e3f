#!/usr/bin/env bash
# Generation benchmark: SmolLM2-135M (Q4_1 GGUF) on CPU, 2 threads, ~30-token
# chat prompt, 128 new tokens, K=1 and K=2; Pairwise's engine beside HF
# transformers generate() on the same GGUF. Prints a markdown table.
#
# Env: THREADS (2), NEW (128), RUNS (3), KS ("1 2"), SKIP_HF=1 to skip the peer.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"; NEW="${NEW:-128}"; RUNS="${RUNS:-3}"; KS="${KS:-1 2}"
export LIBTORCH="${LIBTORCH:-$(scripts/libtorch.sh | tail -1)}"
MODEL="${PAIRWISE_DEFAULT_MODEL:-$(scripts/fetch-model.sh | tail -1)}"
log() { echo "[bench] $*" >&2; }

log "building the engine bench (release)"
cargo build --release -p engine --example bench_generate >&2
BIN=target/release/examples/bench_generate

if [[ "${SKIP_HF:-0}" != 1 ]]; then VENV="$(bench/venv.sh)"; fi

results=()
for k in $KS; do
  log "engine K=$k"
  results+=("$("$BIN" --model "$MODEL" --k "$k" --new "$NEW" --threads "$THREADS" --runs "$RUNS")")
  if [[ "${SKIP_HF:-0}" != 1 ]]; then
    log "transformers K=$k"
    results+=("$("$VENV/bin/python" bench/hf_generate.py --model "$MODEL" --k "$k" --new "$NEW" \
      --threads "$THREADS" --runs "$RUNS" 2>/dev/null | tail -1)")
  fi
done

LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$LOAD" "${OMP_WAIT_POLICY:-default}" "$RUNS" "${results[@]}" <<'PY'
import json, sys
load, omp, runs = sys.argv[1:4]
rows = [json.loads(r) for r in sys.argv[4:]]
print(f"SmolLM2-135M-Instruct Q4_1 GGUF, CPU, {rows[0]['threads']} threads, "
      f"{rows[0]['prompt_tokens']}-token prompt, {rows[0]['new_tokens']} new tokens, sampling (T=0.7, top-p 0.9); "
      f"median of {runs} run(s); OMP_WAIT_POLICY={omp}; load average at the end {load}\n")
print("| implementation | K | tokens/s | time to first token (ms) | peak RSS (MB) |")
print("|---|---|---|---|---|")
for r in rows:
    print(f"| {r['impl']} | {r['k']} | {r['tokens_per_s']} | {r['ttft_ms']} | {r['peak_rss_mb']} |")
by = {(('engine' in r['impl']), r['k']): r['tokens_per_s'] for r in rows}
for k in sorted({r['k'] for r in rows}):
    if (True, k) in by and (False, k) in by:
        print(f"\nK={k}: engine / transformers = {by[(True, k)] / by[(False, k)]:.2f}x", end="")
print()
PY

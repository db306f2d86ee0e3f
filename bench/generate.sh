#!/usr/bin/env bash
# Generation benchmark: SmolLM2-135M (Q4_1 GGUF) on CPU, 2 threads, ~30-token
# chat prompt, 128 new tokens, K=1 and K=2; Pairwise's engine beside HF
# transformers generate() on the same GGUF. Prints a markdown table.
#
# Env: THREADS (2), NEW (128), RUNS (3), KS ("1 2"), SKIP_HF=1 to skip the peer.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"; NEW="${NEW:-128}"; RUNS="${RUNS:-3}"; KS="${KS:-1 2}"
CACHE="${PAIRWISE_CACHE:-$HOME/.cache/pairwise}"
export LIBTORCH="${LIBTORCH:-$(scripts/libtorch.sh | tail -1)}"
MODEL="${PAIRWISE_DEFAULT_MODEL:-$(scripts/fetch-model.sh | tail -1)}"
log() { echo "[bench] $*" >&2; }

log "building the engine bench (release)"
cargo build --release -p engine --example bench_generate >&2
BIN=target/release/examples/bench_generate

VENV="$CACHE/bench-venv"
if [[ "${SKIP_HF:-0}" != 1 && ! -f "$VENV/.complete" ]]; then
  log "creating $VENV (torch 2.13.0 + transformers 5.24.0 + gguf)"
  python3 -m venv "$VENV" || { log "python3 -m venv failed: apt-get install python3-venv"; exit 1; }
  # torch's Python module links libtorch_cuda (cudnn, cublas, nccl, ...) even on CPU, so the
  # wheel goes in with its full dependency set (~4 GB); the torch wheel itself comes from the cache.
  "$VENV/bin/pip" download -q --no-deps -d "$CACHE/wheels" torch==2.13.0 >&2
  "$VENV/bin/pip" install -q "$CACHE"/wheels/torch-2.13.0-cp311-*.whl >&2
  "$VENV/bin/pip" install -q "transformers==5.24.0" gguf numpy accelerate >&2
  touch "$VENV/.complete"
fi

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

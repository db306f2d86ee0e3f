#!/usr/bin/env bash
# The Python peers' venv for the benchmarks (created once, shared by bench/generate.sh and
# bench/train.sh): torch 2.13.0 + transformers 5.24.0 + TRL 1.16.0. Prints its path.
set -euo pipefail
CACHE="${PAIRWISE_CACHE:-$HOME/.cache/pairwise}"
VENV="$CACHE/bench-venv"
log() { echo "[bench] $*" >&2; }
if [[ ! -f "$VENV/.ready" ]]; then
  log "creating $VENV (torch 2.13.0 + transformers 5.24.0 + trl 1.16.0)"
  python3 -m venv "$VENV" || { log "python3 -m venv failed: apt-get install python3-venv"; exit 1; }
  # torch's Python module links libtorch_cuda (cudnn, cublas, nccl, ...) even on CPU, so the
  # wheel goes in with its full dependency set (~4 GB); the torch wheel itself comes from the cache.
  "$VENV/bin/pip" download -q --no-deps -d "$CACHE/wheels" torch==2.13.0 >&2
  "$VENV/bin/pip" install -q "$CACHE"/wheels/torch-2.13.0-cp311-*.whl >&2
  "$VENV/bin/pip" install -q "transformers==5.24.0" "trl==1.16.0" datasets gguf numpy accelerate >&2
  touch "$VENV/.ready"
fi
echo "$VENV"

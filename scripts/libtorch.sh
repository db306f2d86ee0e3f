#!/usr/bin/env bash
# Install libtorch 2.13 (for tch 0.26) from the PyPI torch wheel, idempotently.
# Usage: scripts/libtorch.sh [--cuda]
# Progress goes to stderr; the last stdout line is the LIBTORCH path, so
#   LIBTORCH=$(scripts/libtorch.sh)
set -euo pipefail

TORCH_VERSION=2.13.0
CUDART_VERSION=13.0.96
CUPTI_VERSION=13.0.85
MODE=cpu
for arg in "$@"; do
  case "$arg" in
    --cuda) MODE=cuda ;;
    --cpu) MODE=cpu ;;
    -h|--help) echo "usage: $0 [--cuda]" >&2; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

CACHE="${PAIRWISE_CACHE:-$HOME/.cache/pairwise}"
WHEELS="$CACHE/wheels"
DEST="$CACHE/libtorch-$TORCH_VERSION-$MODE"
STAMP="$DEST/.complete"
log() { echo "[libtorch.sh] $*" >&2; }

if [[ -f "$STAMP" && -f "$DEST/torch/lib/libtorch_cpu.so" ]]; then
  log "already installed in $DEST"
  echo "$DEST/torch"
  exit 0
fi

PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null || { log "python3 is required"; exit 1; }
mkdir -p "$WHEELS"

pip_download() {
  # Reuse a wheel already in the cache: pip download skips files it finds in -d.
  "$PY" -m pip download --disable-pip-version-check --only-binary=:all: \
    --python-version 3.11 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_25_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform linux_x86_64 -d "$WHEELS" "$@" >&2
}

if [[ "$MODE" == cpu ]]; then
  pip_download --no-deps "torch==$TORCH_VERSION" \
    "nvidia-cuda-runtime==$CUDART_VERSION" "nvidia-cuda-cupti==$CUPTI_VERSION"
else
  # Full CUDA dependency set of the wheel (cudnn, cublas, nccl, ...): several GB.
  pip_download "torch==$TORCH_VERSION"
fi

TMP="$DEST.partial"
rm -rf "$TMP"
mkdir -p "$TMP"

# Extract selected prefixes of a wheel with Python's zipfile (unzip may be absent).
extract() {
  local whl="$1"; shift
  "$PY" - "$whl" "$TMP" "$@" <<'PYEOF'
import sys, zipfile, os, stat
whl, dest, prefixes = sys.argv[1], sys.argv[2], tuple(sys.argv[3:])
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefixes) or info.is_dir():
            continue
        out = z.extract(info, dest)
        mode = (info.external_attr >> 16) & 0o777
        if mode:
            os.chmod(out, mode)
PYEOF
}

shopt -s nullglob
torch_whl=("$WHEELS"/torch-"$TORCH_VERSION"-cp311-*.whl)
[[ ${#torch_whl[@]} -ge 1 ]] || { log "torch wheel not found in $WHEELS"; exit 1; }
log "extracting ${torch_whl[0]##*/}"
extract "${torch_whl[0]}" torch/lib/ torch/include/ torch/share/

if [[ "$MODE" == cpu ]]; then
  for whl in "$WHEELS"/nvidia_cuda_runtime-"$CUDART_VERSION"-*.whl "$WHEELS"/nvidia_cuda_cupti-"$CUPTI_VERSION"-*.whl; do
    log "extracting ${whl##*/}"
    extract "$whl" nvidia/
  done
  rm -f "$TMP"/torch/lib/libtorch_cuda*.so "$TMP"/torch/lib/libc10_cuda.so \
        "$TMP"/torch/lib/libtorch_nvshmem.so "$TMP"/torch/lib/libcaffe2_nvrtc.so \
        "$TMP"/torch/lib/libtorch_python.so
else
  for whl in "$WHEELS"/nvidia_*.whl; do
    log "extracting ${whl##*/}"
    extract "$whl" nvidia/
  done
  rm -f "$TMP"/torch/lib/libtorch_python.so
fi

rm -rf "$DEST"
mv "$TMP" "$DEST"
echo "$TORCH_VERSION $MODE" > "$STAMP"
log "installed in $DEST"
echo "$DEST/torch"

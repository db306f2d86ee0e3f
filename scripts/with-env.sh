#!/usr/bin/env bash
# Runs a command with what builds and tests need in the environment: LIBTORCH (installed by
# scripts/libtorch.sh on first use) and PAIRWISE_DEFAULT_MODEL (fetched by
# scripts/fetch-model.sh). Set PAIRWISE_CUDA=1 for the CUDA build of libtorch.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ "${PAIRWISE_CUDA:-0}" = 1 ]; then
  LIBTORCH="$("$here/libtorch.sh" --cuda | tail -n 1)"
else
  LIBTORCH="$("$here/libtorch.sh" | tail -n 1)"
fi
export LIBTORCH
: "${PAIRWISE_DEFAULT_MODEL:=$("$here/fetch-model.sh" | tail -n 1)}"
export PAIRWISE_DEFAULT_MODEL
exec "$@"

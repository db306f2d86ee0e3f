#!/usr/bin/env bash
# Prints a PostgreSQL server URL (without a database name) that Pairwise can use:
#   1. PAIRWISE_PG_URL when set;
#   2. a server already listening on 127.0.0.1:5432 that accepts the postgres user;
#   3. otherwise a private cluster under ./.data/postgres on port 5439, created and started
#      by scripts/private-cluster.sh (password-protected; installs PostgreSQL if needed).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${PAIRWISE_PG_URL:-}" ]; then
  echo "$PAIRWISE_PG_URL"
  exit 0
fi
if command -v psql >/dev/null && psql "postgres://postgres@127.0.0.1:5432/postgres" -qAtc 'select 1' >/dev/null 2>&1; then
  echo "postgres://postgres@127.0.0.1:5432"
  exit 0
fi

mkdir -p .data
exec scripts/private-cluster.sh "$PWD/.data/postgres" 5439

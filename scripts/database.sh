#!/usr/bin/env bash
# Prints a PostgreSQL server URL (without a database name) that Pairwise can use:
#   1. PAIRWISE_PG_URL when set;
#   2. a server already listening on 127.0.0.1:5432 that accepts the postgres user;
#   3. otherwise a private cluster under ./.data/postgres on port 5439, created and started
#      here (installing Debian's postgresql package first if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "database: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ -n "${PAIRWISE_PG_URL:-}" ]; then
  echo "$PAIRWISE_PG_URL"
  exit 0
fi
if command -v psql >/dev/null && psql "postgres://postgres@127.0.0.1:5432/postgres" -qAtc 'select 1' >/dev/null 2>&1; then
  echo "postgres://postgres@127.0.0.1:5432"
  exit 0
fi

port=5439
data="$PWD/.data/postgres"
url="postgres://postgres@127.0.0.1:$port"
if psql "$url/postgres" -qAtc 'select 1' >/dev/null 2>&1; then
  echo "$url"
  exit 0
fi
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ]; then
  log "installing PostgreSQL from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
# PostgreSQL refuses to run as root: the cluster belongs to the postgres account then.
run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$data"
[ "$(id -u)" = 0 ] && chown postgres "$data" "$PWD/.data"
if [ ! -f "$data/PG_VERSION" ]; then
  log "creating a private cluster in $data"
  run_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
fi
log "starting the private cluster on port $port"
run_pg "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w \
  -o "-p $port -k $data -c listen_addresses=127.0.0.1" start >/dev/null
echo "$url"

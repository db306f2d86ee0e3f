#!/usr/bin/env bash
# Creates (once) and starts a private PostgreSQL cluster in DIR on 127.0.0.1:PORT, and prints
# its server URL. The cluster asks for a password on every connection, socket included:
# a random one, generated at creation and kept in DIR.password (readable by its owner only),
# so other local users cannot reach the data. Installs Debian's postgresql package if needed.
#   scripts/private-cluster.sh DIR PORT
set -euo pipefail
data="$1"
port="$2"
log() { echo "database: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ]; then
  log "installing PostgreSQL from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
# PostgreSQL refuses to run as root: the cluster belongs to the postgres account then.
run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
secret="$data.password"
new_secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
pg_opts="-p $port -k '$data' -c listen_addresses=127.0.0.1"
mkdir -p "$data"
if [ "$(id -u)" = 0 ]; then chown postgres "$data"; fi
if [ ! -f "$data/PG_VERSION" ]; then
  log "creating a private cluster in $data"
  password=$(new_secret)
  pwfile=$(mktemp)
  trap 'rm -f "$pwfile"' EXIT
  printf '%s' "$password" > "$pwfile"
  if [ "$(id -u)" = 0 ]; then chown postgres "$pwfile"; fi
  run_pg "$bindir/initdb" -D "$data" -U postgres --auth=scram-sha-256 --pwfile="$pwfile" -E UTF8 >/dev/null
  (umask 077; printf '%s' "$password" > "$secret")
elif [ ! -f "$secret" ]; then
  # A cluster made before passwords were required: give it one, then stop trusting. The
  # secret is kept only once the cluster has it.
  log "securing the private cluster in $data with a password"
  password=$(new_secret)
  if ! run_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    run_pg "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -o "$pg_opts" start >/dev/null
  fi
  run_pg "$bindir/psql" -h "$data" -p "$port" -U postgres -d postgres -qAtc \
    "ALTER USER postgres PASSWORD '$password'" >/dev/null
  run_pg sed -i -E 's/(trust)$/scram-sha-256/' "$data/pg_hba.conf"
  run_pg "$bindir/pg_ctl" -D "$data" reload >/dev/null
  (umask 077; printf '%s' "$password" > "$secret")
fi
url="postgres://postgres:$(cat "$secret")@127.0.0.1:$port"
if ! psql "$url/postgres" -qAtc 'select 1' >/dev/null 2>&1; then
  log "starting the private cluster on port $port"
  run_pg "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -o "$pg_opts" start >/dev/null
fi
echo "$url"

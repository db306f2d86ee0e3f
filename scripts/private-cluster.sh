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
mkdir -p "$data"
[ "$(id -u)" = 0 ] && chown postgres "$data"
if [ ! -f "$data/PG_VERSION" ]; then
  log "creating a private cluster in $data"
  (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$secret")
  pwfile=$(mktemp)
  cp "$secret" "$pwfile"
  [ "$(id -u)" = 0 ] && chown postgres "$pwfile"
  run_pg "$bindir/initdb" -D "$data" -U postgres --auth=scram-sha-256 --pwfile="$pwfile" -E UTF8 >/dev/null
  rm -f "$pwfile"
elif [ ! -f "$secret" ]; then
  # A cluster made before passwords were required: give it one and stop trusting.
  log "securing the private cluster in $data with a password"
  (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$secret")
  run_pg "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $port -k $data -c listen_addresses=''" start >/dev/null
  run_pg "$bindir/psql" -h "$data" -p "$port" -U postgres -d postgres -qAtc \
    "ALTER USER postgres PASSWORD '$(cat "$secret")'" >/dev/null
  run_pg "$bindir/pg_ctl" -D "$data" -w stop >/dev/null
  run_pg sed -i -E 's/(trust)$/scram-sha-256/' "$data/pg_hba.conf"
fi
url="postgres://postgres:$(cat "$secret")@127.0.0.1:$port"
if ! psql "$url/postgres" -qAtc 'select 1' >/dev/null 2>&1; then
  log "starting the private cluster on port $port"
  run_pg "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1" start >/dev/null
fi
echo "$url"

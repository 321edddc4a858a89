#!/usr/bin/env bash
# A private PostgreSQL server for the tests, from the Debian package's binaries: in DIR, on a
# free loopback port, trust authentication, stopped once the process OWNER_PID is gone.
# Prints the port when the server takes connections. Used by the relay's audit-store tests and
# by the end-to-end tests of relays sharing one database.
#
# Usage: scripts/test-postgres.sh DIR OWNER_PID
set -euo pipefail
dir=$1 owner=$2
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bin/initdb" ] || { echo "PostgreSQL not installed (Debian package postgresql)" >&2; exit 2; }
# initdb and postgres refuse to run as root.
as_server() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
rm -rf "$dir"
mkdir -p "$dir"
[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
as_server "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The watcher checks /proc: the server's user may not signal a root owner to see it live.
as_server sh -c "$bin/postgres -D $dir/data -p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off > $dir/log 2>&1 & pg=\$!; \
  while [ -d /proc/$owner ]; do sleep 1; done; kill \$pg" </dev/null >/dev/null 2>&1 &
for _ in $(seq 300); do
  if as_server "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
    echo "$port"
    exit 0
  fi
  sleep 0.1
done
echo "postgres did not start:" >&2
cat "$dir/log" >&2
exit 1

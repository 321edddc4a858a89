#!/usr/bin/env bash
# Assembles the relay container's whole file system in OUT_DIR/rootfs, for the Dockerfile
# next to this script (FROM scratch, COPY rootfs /): the relay binary, the few shared
# libraries it links (glibc, libgcc_s, libm: found with ldd, nothing else), the CA roots
# for HTTPS to a ticket system, and an /etc/passwd that knows its user 10001. No shell, no
# package manager. (A fully static musl build would need the musl target, which this build
# machine cannot fetch; a static glibc build would lose DNS, whose modules glibc loads at run
# time; the libraries are what a static binary would carry anyway.)
#
# Usage: packaging/container/rootfs.sh OUT_DIR [RELAY_BINARY]   (default target/release/fernhilfe-relay)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
relay=${2:-$root/target/release/fernhilfe-relay}
# Never a build with test or benchmark aids.
"$root/scripts/check-no-aids.sh" "$relay"
fs=$out/rootfs
rm -rf "$fs"
mkdir -p "$fs"/{etc/ssl/certs,state,tmp}
chmod 1777 "$fs/tmp"
install -m 0755 "$relay" "$fs/fernhilfe-relay"
# Each library at the path the binary's loader looks for it.
for lib in $(ldd "$relay" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}'); do
  install -D -m 0755 "$(readlink -f "$lib")" "$fs$lib"
done
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$fs/etc/ssl/certs/ca-certificates.crt"
echo 'fernhilfe:x:10001:10001:Fernhilfe relay:/state:/nonexistent' > "$fs/etc/passwd"
echo 'fernhilfe:x:10001:' > "$fs/etc/group"
# The state lives on a volume mounted here; owned by the relay's user, 0700.
chown 10001:10001 "$fs/state"
chmod 0700 "$fs/state"
cp "$root/packaging/container/Dockerfile" "$out/Dockerfile"
echo "$fs"

#!/usr/bin/env bash
# Builds the Debian packages fernhilfe-relay and fernhilfe-viewer from the release binaries,
# with dpkg-deb alone (no debhelper, no cargo-deb: nothing beyond what Debian has).
#
# Usage: packaging/deb/build.sh OUT_DIR [BIN_DIR [WINDOWS_BIN_DIR]]
#   BIN_DIR default: target/release; WINDOWS_BIN_DIR default: target/x86_64-pc-windows-gnu/release
# Writes OUT_DIR/fernhilfe-relay_VERSION_amd64.deb and OUT_DIR/fernhilfe-viewer_VERSION_amd64.deb.
# The relay package carries the agent and the viewer for Linux and Windows in
# /usr/lib/fernhilfe, for `fernhilfe-relay agent-bundle` and `viewer-bundle`; without the
# Windows builds it is built without them (and says so), and the bundles then need --windows.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
bin=$(cd "${2:-$root/target/release}" && pwd)
win=${3:-$root/target/x86_64-pc-windows-gnu/release}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
arch=$(dpkg --print-architecture)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Never a build with test or benchmark aids (bench scripts build into target/bench, but a
# binary directory given by hand could hold anything).
shipped=("$bin/fernhilfe-relay" "$bin/fernhilfe-agent" "$bin/fernhilfe-viewer")
for program in fernhilfe-agent fernhilfe-viewer; do
  [ -f "$win/$program.exe" ] && shipped+=("$win/$program.exe")
done
if [ "${FERNHILFE_PACKAGE_TEST_BUILD:-}" = "1" ]; then
  # Only the packaging test sets this: it packages the debug builds the tests run, which carry
  # the aids, and checks separately that without it they are refused.
  echo "WARNING: FERNHILFE_PACKAGE_TEST_BUILD=1: packaging without the test-aid check; never ship this" >&2
else
  "$root/scripts/check-no-aids.sh" "${shipped[@]}"
fi

# Files owned by root, mode as given: a package must not depend on the builder's umask.
put() { install -D -m "$1" "$2" "$3"; }

control() {
  local pkg=$1 depends=$2 description=$3 dir=$4
  mkdir -p "$dir/DEBIAN"
  cat > "$dir/DEBIAN/control" <<CONTROL
Package: $pkg
Version: $version
Architecture: $arch
Maintainer: Fernhilfe <ops@fernhilfe.invalid>
Section: net
Priority: optional
Depends: $depends
Installed-Size: $(du -sk --exclude=DEBIAN "$dir" | cut -f1)
Homepage: https://fernhilfe.invalid
Description: $description
CONTROL
}

# --- fernhilfe-relay ---------------------------------------------------------------------
r=$work/relay
put 0755 "$bin/fernhilfe-relay" "$r/usr/bin/fernhilfe-relay"
put 0644 "$root/packaging/systemd/fernhilfe-relay.service" "$r/lib/systemd/system/fernhilfe-relay.service"
# The installed config is the example with every setting commented out: each key explained,
# the built-in defaults in force (the example's ticket system would need credentials).
mkdir -p "$r/etc/fernhilfe"
{
  echo "# fernhilfe-relay reads this file (systemd unit: --config /etc/fernhilfe/relay.toml)."
  echo "# Every setting below is commented out: the relay runs with its defaults. Uncomment and"
  echo "# change what you need, then: systemctl restart fernhilfe-relay"
  echo
  sed -E 's/^([^#[:space:]].*)$/# \1/' "$root/relay/relay.toml.example"
} > "$r/etc/fernhilfe/relay.toml"
chmod 0640 "$r/etc/fernhilfe/relay.toml"
put 0644 "$root/relay/relay.toml.example" "$r/usr/share/doc/fernhilfe-relay/relay.toml.example"
put 0644 "$root/docs/operations.md" "$r/usr/share/doc/fernhilfe-relay/operations.md"
put 0644 "$root/packaging/grafana/fernhilfe-relay.json" "$r/usr/share/doc/fernhilfe-relay/grafana-dashboard.json"
put 0644 "$root/packaging/deb/copyright" "$r/usr/share/doc/fernhilfe-relay/copyright"
for program in fernhilfe-agent fernhilfe-viewer; do
  put 0755 "$bin/$program" "$r/usr/lib/fernhilfe/$program"
  if [ -f "$win/$program.exe" ]; then
    put 0755 "$win/$program.exe" "$r/usr/lib/fernhilfe/$program.exe"
  else
    echo "note: no $win/$program.exe; the relay package carries no Windows $program" >&2
  fi
done
control fernhilfe-relay "libc6 (>= 2.34), passwd" "Fernhilfe relay: remote support for school IT
 Pairs school PCs and support staff by ticket number, helps them find a direct path,
 forwards their end-to-end encrypted packets where it must, keeps the signed audit record
 and reports each session to the ticket system. Runs as the hardened systemd service
 fernhilfe-relay under its own system user." "$r"
echo /etc/fernhilfe/relay.toml > "$r/DEBIAN/conffiles"
install -m 0755 "$root/packaging/deb/relay.postinst" "$r/DEBIAN/postinst"
install -m 0755 "$root/packaging/deb/relay.prerm" "$r/DEBIAN/prerm"
install -m 0755 "$root/packaging/deb/relay.postrm" "$r/DEBIAN/postrm"
dpkg-deb --root-owner-group -Zxz --build "$r" "$out/fernhilfe-relay_${version}_${arch}.deb" >/dev/null

# --- fernhilfe-viewer --------------------------------------------------------------------
v=$work/viewer
put 0755 "$bin/fernhilfe-viewer" "$v/usr/bin/fernhilfe-viewer"
put 0644 "$root/packaging/desktop/fernhilfe-viewer.desktop" "$v/usr/share/applications/fernhilfe-viewer.desktop"
put 0644 "$root/packaging/deb/copyright" "$v/usr/share/doc/fernhilfe-viewer/copyright"
control fernhilfe-viewer "libc6 (>= 2.34), libx11-6, libxcursor1" "Fernhilfe viewer: the support technician's window
 Shows a school PC's screen after the person there consented, and takes over when they
 allowed it. Opens fernhilfe: links from the ticket system (relay and ticket; the session
 code is typed, never carried in a link)." "$v"
install -m 0755 "$root/packaging/deb/viewer.postinst" "$v/DEBIAN/postinst"
dpkg-deb --root-owner-group -Zxz --build "$v" "$out/fernhilfe-viewer_${version}_${arch}.deb" >/dev/null
ls "$out"/*.deb

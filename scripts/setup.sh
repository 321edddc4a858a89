#!/usr/bin/env bash
# Installs what building, running and testing Fernhilfe needs on Debian: X11 libraries for
# capture and windows, Xvfb and xdotool for virtual displays, tcpdump and iproute2/iptables for
# the network tests, MinGW for the Windows build, and Wine to run the Windows build in tests.
# Installs only what is missing. Benchmarks name the extra packages they need as arguments.
#
# Usage: scripts/setup.sh [EXTRA_PACKAGE...]
set -euo pipefail

packages=(
  build-essential pkg-config
  libxcb1-dev libxcb-shm0-dev libxcb-randr0-dev
  libx11-6 libxcursor1 libxrandr2 libxi6 libxkbcommon0
  xvfb xdotool xterm x11-utils openbox
  tcpdump iproute2 iptables
  sqlite3
  gcc-mingw-w64-x86-64 wine wine64
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # RT asks for its database and root password: answered here, so the install runs
  # unattended. The tests set their own root password and run RT on loopback only.
  printf '%s\n' \
    "request-tracker5 request-tracker5/dbconfig-install boolean true" \
    "request-tracker5 request-tracker5/database-type select sqlite3" \
    "request-tracker5 request-tracker5/initial-root-password password fernhilfe-test-only" \
    "request-tracker5 request-tracker5/install-cronjobs boolean false" \
    "request-tracker5 request-tracker5/handle-siteconfig-permissions boolean true" \
    "request-tracker5 request-tracker5/rtname string fernhilfe-test" \
    | $sudo debconf-set-selections
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi
if command -v rustup >/dev/null && ! rustup target list --installed | grep -q x86_64-pc-windows-gnu; then
  echo "setup: adding the Rust target x86_64-pc-windows-gnu"
  rustup target add x86_64-pc-windows-gnu || echo "setup: could not add the Windows target; the Windows build will be skipped" >&2
fi
echo "setup: ok"

#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and property tests, end-to-end tests with real
# processes on Xvfb displays (tcpdump capture as root), and the Windows release build of agent and
# viewer, which the Wine tests run against the Linux relay and peers.
#
# scripts/test.sh --quick: formatting, lints and the tests that need no display, no root and no
# built binaries (every crate's own tests: the session machines, the codecs, the pairing, the
# audit store, the ticket connectors), in a few minutes; before a commit.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--quick" ]; then
  # What the quick run needs: a compiler and linker for the bundled SQLite and zstd.
  scripts/setup.sh
  FEATURES="agent/test-aids,viewer/test-aids"
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets --features "$FEATURES" -- -D warnings
  # Everything but the e2e crate, whose tests start processes on X displays.
  cargo test --workspace --exclude e2e --features "$FEATURES"
  echo "quick checks passed (scripts/test.sh runs everything)"
  exit 0
fi

# Besides what everything needs: a real Request Tracker 5 for the ticket-report tests
# (SQLite, its own web server on loopback), and PostgreSQL, whose binaries the audit-store
# tests start a private server from. debootstrap for the packaging test, which installs the
# Debian packages into a fresh Debian (from the Debian mirror, the only network it needs), and
# QEMU, which boots that Debian so its systemd starts the relay's hardened unit; Podman, which
# builds and runs the container image without a daemon.
scripts/setup.sh request-tracker5 rt5-db-sqlite rt5-standalone postgresql debootstrap qemu-system-x86 \
  podman runc slirp4netns
step() { printf '\n== %s\n' "$*"; }

# The end-to-end tests drive binaries built with their test aids (a misbehaving viewer,
# shorter waits after wrong codes); release builds never have them.
FEATURES="agent/test-aids,viewer/test-aids"

step "format"
cargo fmt --all -- --check
step "clippy"
cargo clippy --workspace --all-targets --features "$FEATURES" -- -D warnings
step "build"
cargo build --workspace --bins --features "$FEATURES"
# The Windows binaries in release, as shipped (debug builds of this dependency tree come close
# to mingw's export-ordinal limit), before the tests: the Wine tests run them.
step "windows build (x86_64-pc-windows-gnu, release)"
WINDOWS_BIN=target/x86_64-pc-windows-gnu/release
# grep without -q: under pipefail, rustup could die of a closed pipe and fail the check.
if rustup target list --installed 2>/dev/null | grep x86_64-pc-windows-gnu >/dev/null; then
  cargo build --release --target x86_64-pc-windows-gnu -p agent -p viewer
  ls -l "$WINDOWS_BIN/fernhilfe-agent.exe" "$WINDOWS_BIN/fernhilfe-viewer.exe"
  # Built without the test-aids feature, as releases are: none of the test aids may be in them.
  scripts/check-no-aids.sh "$WINDOWS_BIN/fernhilfe-agent.exe" "$WINDOWS_BIN/fernhilfe-viewer.exe"
  # ... and the check itself finds them where they are (the debug builds above have them).
  if scripts/check-no-aids.sh target/debug/fernhilfe-viewer 2>/dev/null; then
    echo "scripts/check-no-aids.sh missed the test aids of target/debug/fernhilfe-viewer" >&2
    exit 1
  fi
  echo "no test aids in the builds without the feature"
elif [ "${CI:-}" = "true" ]; then
  echo "windows target missing in CI" >&2
  exit 1
else
  echo "SKIPPED windows build: rustup target x86_64-pc-windows-gnu not installed (the Wine tests will skip too)"
fi
step "tests (the Wine tests run the Windows builds above)"
cargo test --workspace --features "$FEATURES"
step "fuzz (a short run of every target; scripts/fuzz.sh for the long one)"
scripts/fuzz.sh 100000
echo "all checks passed"

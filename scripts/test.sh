#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and property tests, end-to-end tests with real
# processes on Xvfb displays (tcpdump capture as root), and the Windows build of agent and viewer.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
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
step "tests"
cargo test --workspace --features "$FEATURES"
step "fuzz (a short run of every target; scripts/fuzz.sh for the long one)"
scripts/fuzz.sh 100000
step "windows build (x86_64-pc-windows-gnu)"
if rustup target list --installed 2>/dev/null | grep -q x86_64-pc-windows-gnu; then
  cargo build --target x86_64-pc-windows-gnu -p agent -p viewer
  ls -l target/x86_64-pc-windows-gnu/debug/fernhilfe-agent.exe target/x86_64-pc-windows-gnu/debug/fernhilfe-viewer.exe
  # Built without the test-aids feature, as releases are: none of the test aids may be in them.
  if grep -q -a -e FERNHILFE_TEST_DELAY_SCALE target/x86_64-pc-windows-gnu/debug/fernhilfe-agent.exe \
    || grep -q -a -e record-plaintext -e "misbehaving viewer" target/x86_64-pc-windows-gnu/debug/fernhilfe-viewer.exe; then
    echo "test aids found in a build without the test-aids feature" >&2
    exit 1
  fi
  echo "no test aids in the builds without the feature"
elif [ "${CI:-}" = "true" ]; then
  echo "windows target missing in CI" >&2
  exit 1
else
  echo "SKIPPED windows build: rustup target x86_64-pc-windows-gnu not installed"
fi
echo "all checks passed"

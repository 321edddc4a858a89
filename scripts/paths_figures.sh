#!/usr/bin/env bash
# The figures of docs/paths.md: runs the network-lab tests one at a time (so the rows do not
# compete for the 2 cores) and prints their `netlab row:` lines as a table. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh >/dev/null
FEATURES="agent/test-aids,viewer/test-aids"
cargo build --workspace --bins --features "$FEATURES"
log=$(mktemp)
rc=0
cargo test --workspace --features "$FEATURES" --test netlab -- --nocapture --test-threads=1 \
  >"$log" 2>&1 || rc=$?
grep -E '^test |netlab row|panicked' "$log" || true
echo
echo "| row | figures |"
echo "|---|---|"
sed -n 's/^.*netlab row: \([^|]*\) | \(.*\)$/| \1 | \2 |/p' "$log"
rm -f "$log"
exit "$rc"

#!/usr/bin/env bash
# Runs one end-to-end test file N times in a row, as the issues ask of flaky tests ("run the
# Wine tests 20 times"), and says how many runs passed. Builds first (with the test aids, as
# scripts/test.sh does); each run's output is kept in DIR/run-K.log.
#
# Usage: [CI=true] scripts/repeat-test.sh TEST [N] [DIR]   e.g. CI=true scripts/repeat-test.sh wine 20
# (CI=true: a test whose tools are missing fails instead of skipping, so a skip is no pass)
set -euo pipefail
cd "$(dirname "$0")/.."
test=$1 runs=${2:-20} dir=${3:-$(mktemp -d "/tmp/fernhilfe-repeat-$1.XXXX")}
features="agent/test-aids,viewer/test-aids"
cargo build --workspace --bins --features "$features" >/dev/null
bin=$(cargo test --workspace --features "$features" --test "$test" --no-run 2>&1 \
  | grep -o "target/debug/deps/$test-[a-z0-9]*" | head -1)
mkdir -p "$dir"
passed=0
for i in $(seq "$runs"); do
  start=$(date +%s)
  if (cd tests && "../$bin" > "$dir/run-$i.log" 2>&1); then r=pass; passed=$((passed + 1)); else r=FAIL; fi
  echo "run $i $r $(( $(date +%s) - start )) s"
done
echo "$test: $passed of $runs runs passed (logs in $dir)"

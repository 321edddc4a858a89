#!/usr/bin/env bash
# Refuses binaries that carry test or benchmark aids: a build with the test-aids or bench-aids
# feature (a misbehaving viewer, shortened waits after wrong codes, the relay without its audit
# store) must never be shipped. Each aid's switch is a string the binary contains only when the
# feature is on; this looks for all of them.
#
# Usage: scripts/check-no-aids.sh BINARY...   (exit 1 naming the binary and the aid found)
set -euo pipefail
markers=(
  FERNHILFE_TEST_DELAY_SCALE FERNHILFE_TEST_RECORD_FRAMES FERNHILFE_TEST_RELAY_ONLY
  FERNHILFE_BENCH_AUDIT_OFF record-plaintext "misbehaving viewer"
)
bad=0
for bin in "$@"; do
  for m in "${markers[@]}"; do
    # grep without -q: under pipefail a closed pipe could fail the check for the wrong reason.
    if grep -a -F -e "$m" "$bin" >/dev/null; then
      echo "refused: $bin carries a test or benchmark aid ($m); build it without --features test-aids/bench-aids" >&2
      bad=1
    fi
  done
done
exit $bad

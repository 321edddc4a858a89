#!/usr/bin/env bash
# Runs every fuzz target of the protocol's decoders and pairing state machine with cargo-fuzz
# (libFuzzer). Usage:
#   scripts/fuzz.sh              each target for 10,000,000 executions (the goal: 0 crashes)
#   scripts/fuzz.sh RUNS         each target for RUNS executions (CI runs a short one)
#   scripts/fuzz.sh RUNS T...    only targets T (frames signaling session screen pairing)
# Installs cargo-fuzz if missing. Works on the stable toolchain: RUSTC_BOOTSTRAP lets it take
# the sanitizer-coverage flags cargo-fuzz passes; no sanitizer is used (safe Rust only).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10000000}
shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
targets=(frames signaling session screen pairing)
[ $# -gt 0 ] && targets=("$@")
cd fuzz
cargo fuzz build --sanitizer none -O 2>&1 | tail -1
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  out=$(cargo fuzz run --sanitizer none -O "$t" "corpus/$t" -- -runs="$runs" -max_len=4096 -print_final_stats=1 2>&1) || {
    echo "$out" | tail -40
    echo "fuzz: target $t FAILED" >&2
    exit 1
  }
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' <<<"$out" | grep -oE '[0-9]+$' || echo "?")
  secs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' <<<"$out" | grep -oE 'in [0-9]+' | grep -oE '[0-9]+' || echo "?")
  echo "fuzz: $t: $execs executions, 0 crashes (${secs} s)"
done

#!/usr/bin/env bash
# What one relay holds on this machine, part one: idle waiting agents per GiB of RAM. The load
# is `flood` (tests/src/bin/flood.rs) registering AGENTS agents from 127.0.0.2, 50 at a time,
# each a real QUIC connection with a real registration, all held until the last one is in;
# the relay's limits are raised to take them all. Loopback only, bounded in count and time.
#
# Usage: bench/relay_load.sh [AGENTS [RUNS]]   (default 5000 agents, 3 runs)
# Prints the relay's memory before and at its peak, per agent, and agents per GiB, per run.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}
runs=${2:-3}
cargo build --release -p relay -p e2e --bins 2>&1 | tail -1
bin=$PWD/target/release
work=$(mktemp -d /tmp/fernhilfe-load.XXXX)
echo "work directory: $work"
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
printf '%-5s %10s %10s %12s %14s %14s\n' run agents "base KiB" "peak KiB" "KiB per agent" "agents per GiB"
for run in $(seq "$runs"); do
  state=$work/state-$run
  "$bin/fernhilfe-relay" --state-dir "$state" staff add Bench >/dev/null 2>&1
  cat > "$state/relay.toml" <<TOML
[limits]
max_agents = $((n + 100))
max_agents_per_ticket = 16
max_connections_per_address = $((n + 100))
max_connections = $((n + 1000))
max_registrations_per_address = $((n + 100))
TOML
  "$bin/fernhilfe-relay" --state-dir "$state" serve --listen 127.0.0.1:0 > "$work/relay-$run.out" 2>/dev/null &
  relay=$!
  for _ in $(seq 100); do grep -q 'listening on udp' "$work/relay-$run.out" && break; sleep 0.1; done
  addr=$(grep -m1 'listening on udp' "$work/relay-$run.out" | awk '{print $NF}')
  fp=$("$bin/fernhilfe-relay" --state-dir "$state" fingerprint)
  sleep 1
  base=$(kib $relay VmRSS)
  "$bin/flood" "$addr" "$fp" 127.0.0.2 mixed 0 0 "$n" 0 > "$work/flood-$run.out" 2>&1
  peak=$(kib $relay VmHWM)
  accepted=$(awk -F': ' '/registration: accepted/ {print $NF}' "$work/flood-$run.out")
  kill $relay; wait $relay 2>/dev/null || true
  awk -v r="$run" -v a="${accepted:-0}" -v b="$base" -v p="$peak" 'BEGIN {
    per = a > 0 ? (p - b) / a : 0
    printf "%-5s %10d %10d %12d %14.1f %14.0f\n", r, a, b, p, per, (per > 0 ? 1048576 / per : 0) }'
done

#!/usr/bin/env bash
# Benchmark: what the audit store costs. Two parts, release builds, loopback only.
#  1. The store's write cost on this disk (`fernhilfe-relay audit bench`, a fresh store in a
#     temp dir): µs per record written one transaction each and in the writer thread's
#     batches, per signed checkpoint, and per record verified.
#  2. The relay's throughput with auditing on against the same relay with auditing off
#     (a benchmark-only build, feature bench-aids, FERNHILFE_BENCH_AUDIT_OFF=1), same run,
#     same load: `flood` registers N agents from 127.0.0.2 (50 at a time, each writes two
#     records) against limits raised for the test. Reported: registrations per second
#     (wall) and the relay's CPU time per registration (/proc/PID/stat), RUNS times each,
#     medians.
#
# Usage: bench/audit.sh [REGISTRATIONS] [RUNS]   (defaults 2000, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
runs=${2:-3}
scripts/setup.sh >/dev/null
# Builds with benchmark aids go to a target directory of their own, never where packages come
# from.
export CARGO_TARGET_DIR=$PWD/target/bench
cargo build --release -p relay --features bench-aids 2>&1 | tail -1
cargo build --release -p e2e --bin flood 2>&1 | tail -1
bin=$CARGO_TARGET_DIR/release
work=$(mktemp -d /tmp/fernhilfe-auditbench.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

echo "== 1. store write cost (20,000 records)"
store_line=$($bin/fernhilfe-relay audit bench "$work/store" --records 20000)
echo "$store_line"

ticks=$(getconf CLK_TCK)
cpu_s() { awk -v t="$ticks" '{print ($14+$15)/t}' "/proc/$1/stat"; }

# One relay, one flood of registrations; prints "registrations_per_s cpu_us_per_registration accepted".
run() {
  local mode=$1 i=$2 state="$work/relay-$1-$2"
  mkdir -p "$state"
  printf '[limits]\nmax_registrations_per_address = 100000\nmax_connections_per_address = 100000\nmax_agents = 100000\nmax_connections = 100000\n' > "$state/relay.toml"
  local fp; fp=$($bin/fernhilfe-relay --state-dir "$state" fingerprint)
  if [ "$mode" = off ]; then export FERNHILFE_BENCH_AUDIT_OFF=1; else unset FERNHILFE_BENCH_AUDIT_OFF; fi
  RUST_LOG=warn $bin/fernhilfe-relay --state-dir "$state" serve --listen 127.0.0.1:0 > "$state/out" 2>"$state/log" & local rp=$!; pids+=($rp)
  unset FERNHILFE_BENCH_AUDIT_OFF
  for _ in $(seq 100); do grep -q "listening on udp" "$state/out" && break; sleep 0.1; done
  local addr; addr=$(grep "listening on udp" "$state/out" | awk '{print $NF}')
  local c0 t0 t1 c1
  c0=$(cpu_s $rp); t0=$(date +%s.%N)
  $bin/flood "$addr" "$fp" 127.0.0.2 mixed 0 0 "$n" 0 > "$state/flood.out" 2>&1
  t1=$(date +%s.%N); c1=$(cpu_s $rp)
  local ok; ok=$(awk -F': ' '/registration: accepted/ {print $NF}' "$state/flood.out"); ok=${ok:-0}
  kill $rp; wait $rp 2>/dev/null || true
  local recs=0
  [ "$mode" = on ] && recs=$($bin/fernhilfe-relay --state-dir "$state" audit export | wc -l)
  awk -v ok="$ok" -v a="$t0" -v b="$t1" -v c0="$c0" -v c1="$c1" -v r="$recs" 'BEGIN{ printf "%.0f %.0f %d %d\n", ok/(b-a), (c1-c0)*1e6/(ok>0?ok:1), ok, r }'
}

echo "== 2. relay throughput, auditing on vs off ($n registrations, $runs runs each)"
on=(); off=()
for i in $(seq "$runs"); do
  off+=("$(run off "$i")"); on+=("$(run on "$i")")
  echo "run $i: off=[${off[-1]}] on=[${on[-1]}]   (reg/s, relay CPU µs/registration, accepted, records)"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{if(NR%2){print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
col() { local k=$1; shift; for x in "$@"; do echo "$x" | awk -v k="$k" '{print $k}'; done; }
rate_on=$(median $(col 1 "${on[@]}")); rate_off=$(median $(col 1 "${off[@]}"))
cpu_on=$(median $(col 2 "${on[@]}")); cpu_off=$(median $(col 2 "${off[@]}"))
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ printf "%.2f", a/b }'; }
echo
echo "Audit store cost (release build, $(date -u +%Y-%m-%dT%H:%MZ))"
printf '%-48s %12s %12s %8s\n' "measure" "audit on" "audit off" "on/off"
printf '%-48s %12s %12s %8s\n' "registrations per second (wall, median)" "$rate_on" "$rate_off" "$(ratio "$rate_on" "$rate_off")"
printf '%-48s %12s %12s %8s\n' "relay CPU µs per registration (median)" "$cpu_on" "$cpu_off" "$(ratio "$cpu_on" "$cpu_off")"
echo "$store_line" | tr ' ' '\n' | awk -F= 'NR>1 {printf "%-48s %12s\n", "store: " $1, $2}'

#!/usr/bin/env bash
# Benchmark for the question whether signaling should move onto the iroh endpoint: how long
# an agent takes from its start to showing the code, with signaling over QUIC (UDP) and over
# TLS on TCP (the path where UDP is blocked), against one relay on loopback, RUNS times each;
# and the size of the code that carries signaling today. Debug builds unless RELEASE=1.
#
# Usage: bench/code_shown.sh [RUNS]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
if [ "${RELEASE:-}" = 1 ]; then profile=release; flag=--release; else profile=debug; flag=; fi
cargo build $flag -p relay -p agent 2>&1 | tail -1
bin=target/$profile
work=$(mktemp -d /tmp/fernhilfe-code-shown.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
disp=:89
Xvfb $disp -screen 0 1280x800x24 -noreset -nolisten tcp >/dev/null 2>&1 & pids+=($!)
for _ in $(seq 50); do [ -e /tmp/.X11-unix/X89 ] && break; sleep 0.1; done
state="$work/relay"
fp=$($bin/fernhilfe-relay --state-dir "$state" fingerprint)
$bin/fernhilfe-relay --state-dir "$state" serve --listen 127.0.0.1:0 > "$work/relay.out" 2>/dev/null & pids+=($!)
for _ in $(seq 50); do grep -q "listening on udp" "$work/relay.out" && break; sleep 0.1; done
addr=$(grep -m1 "listening on udp" "$work/relay.out" | awk '{print $NF}')
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
base=4700
for transport in quic tcp; do
  : > "$work/$transport.ms"
  # A ticket and host name of its own per run: an agent killed a moment ago still holds its
  # registration until the relay expires it.
  base=$((base + 100))
  for i in $(seq "$runs"); do
    start=$(date +%s%N)
    DISPLAY=$disp $bin/fernhilfe-agent --ticket $((base + i)) --relay "$addr" --relay-fingerprint "$fp" \
      --relay-transport $transport --host-name "PC-$i" > "$work/agent.out" 2>/dev/null & a=$!
    while ! grep -q "^code " "$work/agent.out" 2>/dev/null; do sleep 0.002; done
    echo $(( ($(date +%s%N) - start) / 1000000 )) >> "$work/$transport.ms"
    kill $a; wait $a 2>/dev/null || true
  done
done
printf '\n| signaling over | start → code shown, median ms (%s runs, %s build) | all |\n|---|---:|---|\n' "$runs" "$profile"
for transport in quic tcp; do
  printf '| %s | %s | %s |\n' "$transport" "$(median < "$work/$transport.ms")" "$(paste -sd' ' "$work/$transport.ms")"
done
printf '\n| code that carries signaling today | lines |\n|---|---:|\n'
for f in transport/src/plain_udp.rs transport/src/signal_tcp.rs transport/src/relay_client.rs transport/src/config.rs relay/src/path_service.rs; do
  printf '| `%s` | %s |\n' "$f" "$(wc -l < "$f")"
done
ls -l $bin/fernhilfe-agent $bin/fernhilfe-relay | awk '{printf "%s: %.1f MiB\n", $NF, $5/1048576}'

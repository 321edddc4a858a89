#!/usr/bin/env bash
# What one relay holds on this machine, part two: concurrent relayed sessions and relayed
# throughput per core (part one, idle waiting agents per GiB, is bench/relay_load.sh).
#
# SESSIONS real sessions (a real agent and a headless viewer each, paired by ticket number,
# code and consent clicked in the agent's real dialog) share one Xvfb display (1280x800), so
# every session carries the same picture. They are forced onto the relay path: the viewers are
# test builds started with FERNHILFE_TEST_RELAY_ONLY=1, which gives their endpoint no UDP
# socket, so no direct path can form; the relay path is iroh's over HTTPS/TCP, as where a
# school blocks UDP. The relay's /metrics must count every session as `relayed` before
# anything is measured. Then a slideshow of 1280x800 photos (a new one every 1.5 s) runs for
# SECONDS, and the relay's CPU (/proc), memory (/proc) and relayed bytes (its /metrics) are
# read before and after. Loopback only, bounded in count and time.
#
# Usage: bench/relay_sessions.sh [SESSIONS [SECONDS]]   (default 20 sessions, 30 s)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
secs=${2:-30}
scripts/setup.sh xdotool imagemagick >/dev/null
# Builds with test aids go to a target directory of their own, never where packages come from.
export CARGO_TARGET_DIR=$PWD/target/bench
cargo build --release -p relay -p agent -p viewer -p e2e --bins \
  --features agent/test-aids,viewer/test-aids 2>&1 | tail -1
bin=$CARGO_TARGET_DIR/release
work=$(mktemp -d /tmp/fernhilfe-sessions.XXXX)
echo "work directory: $work"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
pc=:$((200 + RANDOM % 500))
Xvfb $pc -screen 0 1280x800x24 -noreset -nolisten tcp >/dev/null 2>&1 & pids+=($!)
for i in $(seq 8); do convert -seed $((i * 11)) -size 1280x800 plasma:fractal -blur 0x2 "$work/photo$i.png"; done
sleep 1

state=$work/relay
$bin/fernhilfe-relay --state-dir "$state" staff add Bench > "$work/token" 2>/dev/null
cat > "$state/relay.toml" <<TOML
[limits]
max_agents = $((n + 10))
max_agents_per_ticket = 2
max_connections_per_address = $((4 * n + 20))
max_connections = $((4 * n + 100))
max_registrations_per_address = $((n + 10))
TOML
$bin/fernhilfe-relay --state-dir "$state" serve --listen 127.0.0.1:0 > "$work/relay.out" 2>"$work/relay.err" &
relay=$!; pids+=($relay)
for _ in $(seq 100); do grep -q 'listening on udp' "$work/relay.out" && break; sleep 0.1; done
addr=$(grep -m1 'listening on udp' "$work/relay.out" | awk '{print $NF}')
ops=$(grep -m1 'ops http on' "$work/relay.out" | awk '{print $5}')
fp=$($bin/fernhilfe-relay --state-dir "$state" fingerprint)
metric() { curl -s "http://$ops/metrics" | awk -v m="$1" '$1 == m {print $2; exit}'; }
relayed() { metric 'fernhilfe_relay_sessions_running{path="relayed"}'; }
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
sleep 1
rss_idle=$(kib $relay VmRSS)

start=$(date +%s.%N)
for i in $(seq "$n"); do
  t=$((4700 + i))
  DISPLAY=$pc $bin/fernhilfe-agent --ticket $t --relay "$addr" --relay-fingerprint "$fp" \
    --host-name "pc-$i" > "$work/agent-$i.out" 2>"$work/agent-$i.err" & pids+=($!)
  for _ in $(seq 200); do grep -q '^code ' "$work/agent-$i.out" && break; sleep 0.05; done
  code=$(grep -m1 '^code ' "$work/agent-$i.out" | cut -d' ' -f2)
  FERNHILFE_TEST_RELAY_ONLY=1 FERNHILFE_STAFF_TOKEN=$(cat "$work/token") $bin/fernhilfe-viewer \
    --relay "$addr" --relay-fingerprint "$fp" --ticket $t --code "$code" --headless \
    > "$work/viewer-$i.out" 2>"$work/viewer-$i.err" & pids+=($!)
  for _ in $(seq 400); do grep -q '^ui button consent View ' "$work/agent-$i.out" && break; sleep 0.05; done
  set -- $(grep -m1 '^ui button consent View ' "$work/agent-$i.out")
  [ -n "${6:-}" ] || { echo "session $i: no consent dialog (see $work)" >&2; exit 1; }
  sleep 0.2
  DISPLAY=$pc xdotool mousemove "$5" "$6" mousedown 1 sleep 0.1 mouseup 1 mousemove 1279 799
  for _ in $(seq 400); do grep -q '^grant View' "$work/viewer-$i.out" && break; sleep 0.05; done
  grep -q '^grant View' "$work/viewer-$i.out" || { echo "session $i: no grant (see $work)" >&2; exit 1; }
done
for _ in $(seq 300); do [ "$(relayed)" = "$n" ] && break; sleep 0.1; done
setup_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')
got=$(relayed)
[ "$got" = "$n" ] || { echo "only ${got:-0} of $n sessions run relayed (see $work)" >&2; exit 1; }
sleep 2
rss_sessions=$(kib $relay VmRSS)

photos=()
for _ in $(seq $(((secs * 2 + 2) / 3))); do photos+=("$work/photo$((${#photos[@]} % 8 + 1)).png"); done
bytes0=$(metric iroh_relayserver_bytes_sent_total)
cpu0=$(ticks $relay)
t0=$(date +%s.%N)
$bin/screenbench slideshow $pc 1.5 "${photos[@]}"
sleep 2
t1=$(date +%s.%N)
cpu1=$(ticks $relay)
bytes1=$(metric iroh_relayserver_bytes_sent_total)
still=$(relayed)
hwm=$(kib $relay VmHWM)

frames=0
for i in $(seq "$n"); do frames=$((frames + $(grep -c '^frame ' "$work/viewer-$i.out" || true))); done
awk -v n="$n" -v still="$still" -v setup="$setup_s" -v ri="$rss_idle" -v rs="$rss_sessions" -v hwm="$hwm" \
    -v b0="$bytes0" -v b1="$bytes1" -v c0="$cpu0" -v c1="$cpu1" -v t0="$t0" -v t1="$t1" -v hz="$hz" \
    -v frames="$frames" 'BEGIN {
  secs = t1 - t0; bytes = b1 - b0; cpu = (c1 - c0) / hz
  printf "%d sessions paired and relayed in %.1f s; %d still relayed at the end; %d updates reached the viewers\n", n, setup, still, frames
  printf "%-52s %14s\n", "measure", "value"
  printf "%-52s %14d\n", "relay memory, idle (VmRSS), KiB", ri
  printf "%-52s %14d\n", "relay memory, sessions running (VmRSS), KiB", rs
  printf "%-52s %14.0f\n", "relay memory per relayed session, KiB", (rs - ri) / n
  printf "%-52s %14d\n", "relay memory peak under load (VmHWM), KiB", hwm
  printf "%-52s %14.1f\n", "load, seconds", secs
  printf "%-52s %14.1f\n", "bytes relayed to the endpoints, MB", bytes / 1e6
  printf "%-52s %14.2f\n", "relayed throughput, MB/s", bytes / 1e6 / secs
  printf "%-52s %14.1f\n", "relay CPU, % of one core", 100 * cpu / secs
  printf "%-52s %14.1f\n", "relayed MB per CPU-second (throughput per core)", (cpu > 0 ? bytes / 1e6 / cpu : 0)
  printf "%-52s %14.2f\n", "relay CPU per relayed session at this load, % of a core", 100 * cpu / secs / n
}'

#!/usr/bin/env bash
# Benchmark: the relay under abuse. `flood` (tests/src/bin/flood.rs) sends, from 127.0.0.2,
# 10,000 random UDP datagrams, 500 half-open QUIC handshakes, 2,000 unauthenticated agent
# registrations (kept open) and 200 bad staff tokens, while a real session (agent on an Xvfb
# display, headless viewer, both from 127.0.0.1) pairs and streams through the same relay.
# The peer is the same relay, quiet, measured in the same run: the session's time from the
# consent click to the first complete frame, quiet and under the flood, and the relay's
# resident memory (VmRSS after the quiet runs, peak VmHWM after the flood). Loopback only;
# every loop is bounded, and the flood stops by itself.
#
# Usage: bench/flood.sh [RUNS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
scripts/setup.sh >/dev/null
cargo build --release --workspace --bins 2>&1 | tail -1
bin=target/release
work=$(mktemp -d /tmp/fernhilfe-flood.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

disp=:89
Xvfb $disp -screen 0 1280x800x24 -noreset -nolisten tcp >/dev/null 2>&1 & pids+=($!)
for _ in $(seq 50); do [ -e /tmp/.X11-unix/X89 ] && break; sleep 0.1; done
DISPLAY=$disp xterm -geometry 100x40+20+20 -e sh -c 'ls -l /usr/bin | head -38; sleep 100000' & pids+=($!)
sleep 1

state="$work/relay"
$bin/fernhilfe-relay --state-dir "$state" staff add "Bench" > "$work/token"
fp=$($bin/fernhilfe-relay --state-dir "$state" fingerprint)
$bin/fernhilfe-relay --state-dir "$state" serve --listen 127.0.0.1:0 > "$work/relay.out" 2>"$work/relay.log" & relay_pid=$!; pids+=($relay_pid)
for _ in $(seq 50); do grep -q listening "$work/relay.out" && break; sleep 0.1; done
addr=$(grep listening "$work/relay.out" | awk '{print $NF}')
export FERNHILFE_STAFF_TOKEN; FERNHILFE_STAFF_TOKEN=$(cat "$work/token")
mem() { awk -v k="$1:" '$1==k {print $2}' "/proc/$relay_pid/status"; }

# One session: agent registers, viewer pairs, the person clicks "Nur ansehen"; prints the
# first-frame time in ms.
session() {
  local i=$1 out="$work/agent$1.out"
  DISPLAY=$disp $bin/fernhilfe-agent --ticket 4711 --relay "$addr" --relay-fingerprint "$fp" --host-name bench > "$out" 2>/dev/null &
  local agent_pid=$!; pids+=($agent_pid)
  for _ in $(seq 200); do grep -q '^code ' "$out" && break; sleep 0.05; done
  local code; code=$(grep '^code ' "$out" | head -1 | cut -d' ' -f2)
  coproc V { exec $bin/fernhilfe-viewer --headless --relay "$addr" --relay-fingerprint "$fp" --ticket 4711 --code "$code" 2>"$work/viewer$i.err"; }
  local vpid=$V_PID; pids+=($vpid)
  for _ in $(seq 400); do grep -q '^ui button consent View ' "$out" && break; sleep 0.05; done
  set -- $(grep '^ui button consent View ' "$out")
  sleep 0.3
  DISPLAY=$disp xdotool mousemove "$5" "$6" mousedown 1 sleep 0.1 mouseup 1 mousemove 1270 790
  local line=""
  while read -r -t 30 -u "${V[0]}" line; do
    case "$line" in first-frame*) break ;; esac
  done
  echo end >&"${V[1]}" || true
  wait "$vpid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true
  sed -E 's/.*ms=([0-9.]+).*/\1/' <<<"$line"
}

quiet=(); flood=()
for i in $(seq "$runs"); do quiet+=("$(session "q$i")"); done
rss_quiet=$(mem VmRSS); hwm_quiet=$(mem VmHWM)
for i in $(seq "$runs"); do
  target/release/flood "$addr" "$fp" 127.0.0.2 > "$work/flood$i.out" 2>&1 & fpid=$!; pids+=($fpid)
  sleep 1
  flood+=("$(session "f$i")")
  wait "$fpid" || true
done
hwm_flood=$(mem VmHWM); rss_after=$(mem VmRSS)

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{if(NR==0){print "n/a"} else if(NR%2){print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0>0) printf "%.2f", a/b; else print "n/a" }'; }
mq=$(median "${quiet[@]}"); mf=$(median "${flood[@]}")
echo
echo "Relay under a flood from one address, $runs sessions each, medians (release build)"
echo "all runs: quiet ms=[${quiet[*]}] flood ms=[${flood[*]}]"
echo "last flood's tally:"; cat "$work/flood$runs.out"
printf '%-52s %12s %12s %8s\n' "measure" "quiet" "flood" "ratio"
printf '%-52s %12s %12s %8s\n' "session first frame, ms (consent click -> frame)" "$mq" "$mf" "$(ratio "$mf" "$mq")"
printf '%-52s %12s %12s %8s\n' "relay memory, KiB (quiet: VmRSS; flood: peak VmHWM)" "$rss_quiet" "$hwm_flood" "$(ratio "$hwm_flood" "$rss_quiet")"
printf '%-52s %12s\n' "relay VmRSS after the floods, KiB" "$rss_after"
printf '%-52s %12s\n' "relay peak before the floods (VmHWM), KiB" "$hwm_quiet"

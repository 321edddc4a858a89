#!/usr/bin/env bash
# Benchmark: the relay under abuse, phase by phase. `flood` (tests/src/bin/flood.rs) attacks from
# 127.0.0.2 while a real session (agent on an Xvfb display, headless viewer, both from
# 127.0.0.1) pairs through the same relay:
#   mixed                  10,000 random UDP datagrams, 500 half-open QUIC handshakes, 2,000
#                          unauthenticated agent registrations (kept open), 200 bad staff tokens
#   registration-messages  20 registered agents, each flooding its stream with 10,000 renewals
#   join-messages          20 joins with bad tokens, each followed by 10,000 pairing messages
#   tiny-frames            20 streams, each one buffer of 100,000 one-byte frames
#   bad-tokens             500 joins with bad staff tokens, one after another
# The peer is the same relay, quiet, in the same run. Per phase: what the attacker wrote
# (messages, MB), the relay's CPU time (utime+stime from /proc) in all and per MB received,
# audit rows written besides the session's own (the quiet phase's count) in all and per 1,000
# attacker messages, and the session's time from the consent click to the first complete
# frame. "Written" is what the flood handed its sockets: on a stream the relay has ended, part
# of it never leaves the attacker's buffers, so CPU per MB is a lower bound there. Then the relay's memory. Loopback only; every
# loop is bounded, and the flood stops by itself.
#
# Usage: bench/flood.sh
set -euo pipefail
cd "$(dirname "$0")/.."
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
addr=$(grep 'listening on udp' "$work/relay.out" | awk '{print $NF}')
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

hz=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$relay_pid/stat"; }
rows() { sqlite3 "$state/audit.sqlite" 'SELECT count(*) FROM audit_record'; }
table="$work/table"
printf '%-22s %10s %8s %9s %9s %7s %11s %9s\n' phase "att. msgs" "att. MB" "relay cpu" "cpu s/MB" "audit" "rows/1k msg" "1st frame" > "$table"
printf '%-22s %10s %8s %9s %9s %7s %11s %9s\n' "" "written" "written" "s" "" "rows" "" "ms" >> "$table"
# One phase: the flood (none for "quiet") with a session pairing in the middle of it.
phase() {
  local name=$1; shift
  local c0 r0 ms msgs=0 bytes=0
  c0=$(cpu); r0=$(rows)
  if [[ $name == quiet* ]]; then
    ms=$(session "$name")
  else
    target/release/flood "$addr" "$fp" 127.0.0.2 "$@" > "$work/$name.out" 2>&1 & local fpid=$!; pids+=($fpid)
    sleep 1
    ms=$(session "$name")
    wait "$fpid" || true
    msgs=$(awk '/^attacker messages/ {print $3}' "$work/$name.out")
    bytes=$(awk '/^attacker bytes/ {print $3}' "$work/$name.out")
  fi
  # The audit writer batches: give it its moment before counting.
  sleep 2
  local c1 r1; c1=$(cpu); r1=$(rows)
  # The session's own rows (the first quiet phase's count) are not the attacker's.
  if [ "$name" = quiet ]; then session_rows=$((r1 - r0)); fi
  awk -v n="$name" -v m="$msgs" -v b="$bytes" -v c="$((c1 - c0))" -v hz="$hz" -v r="$((r1 - r0 - session_rows))" -v ms="$ms" 'BEGIN {
    mb = b / 1e6; s = c / hz
    printf "%-22s %10d %8.2f %9.2f %9s %7d %11s %9s\n", n, m, mb, s,
      (mb > 0 ? sprintf("%.3f", s / mb) : "-"), r, (m > 0 ? sprintf("%.2f", r * 1000 / m) : "-"), ms
  }' >> "$table"
  if [ -f "$work/$name.out" ]; then echo "== $name"; cat "$work/$name.out"; fi
}
phase quiet
rss_quiet=$(mem VmRSS)
phase mixed mixed
phase registration-messages registration-messages 20
phase join-messages join-messages 20
phase tiny-frames tiny-frames 20
phase bad-tokens bad-tokens 500
phase quiet-after
hwm_flood=$(mem VmHWM); rss_after=$(mem VmRSS)

echo
echo "Relay under floods from one address, phase by phase (release build, one session each)"
cat "$table"
echo
printf '%-52s %12s\n' "relay VmRSS after the quiet session, KiB" "$rss_quiet"
printf '%-52s %12s\n' "relay peak over all phases (VmHWM), KiB" "$hwm_flood"
printf '%-52s %12s\n' "relay VmRSS after the floods, KiB" "$rss_after"

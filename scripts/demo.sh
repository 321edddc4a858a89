#!/usr/bin/env bash
# One complete local session: relay, agent and viewer on this machine.
#
# The "school PC" is a virtual display (Xvfb :77) with an xterm on it. The script plays the
# person at that PC and clicks "Ansehen und steuern" in the agent's real consent dialog.
# - With a screen ($DISPLAY works): the viewer opens a window on it; you control the virtual
#   PC (type into its xterm). Close the viewer window to end.
# - Without a screen: the viewer runs headless, moves the pointer, types into the xterm, saves
#   what it sees to demo-state/viewer.png, and ends the session.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --workspace --bins
bin=target/debug
state=demo-state
mkdir -p "$state"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

pc=:77
if [ ! -e /tmp/.X11-unix/X77 ]; then
  Xvfb $pc -screen 0 1280x800x24 -noreset -nolisten tcp >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do [ -e /tmp/.X11-unix/X77 ] && break; sleep 0.1; done
fi
DISPLAY=$pc xterm -geometry 90x24+40+120 -fa Monospace -fs 12 -T "Schul-PC" -e bash --norc &
pids+=($!)

relay_state="$state/relay"
# A fresh token every run: a demo-state from before tokens named their holder would hold one
# the viewer refuses.
if $bin/fernhilfe-relay --state-dir "$relay_state" staff list | grep -q "^Demo Support"; then
  $bin/fernhilfe-relay --state-dir "$relay_state" staff remove "Demo Support" >/dev/null
fi
$bin/fernhilfe-relay --state-dir "$relay_state" staff add "Demo Support" > "$state/token"
fp=$($bin/fernhilfe-relay --state-dir "$relay_state" fingerprint)
$bin/fernhilfe-relay --state-dir "$relay_state" serve --listen 127.0.0.1:4433 > "$state/relay.out" 2> "$state/relay.log" &
pids+=($!)
for _ in $(seq 50); do grep -q 'listening' "$state/relay.out" 2>/dev/null && break; sleep 0.1; done
if ! grep -q 'listening' "$state/relay.out"; then
  echo "the relay did not start:" >&2; cat "$state/relay.log" >&2; exit 1
fi
echo "relay:  127.0.0.1:4433, fingerprint $fp"

DISPLAY=$pc $bin/fernhilfe-agent --ticket 4711 --relay 127.0.0.1:4433 --relay-fingerprint "$fp" --host-name Schul-PC > "$state/agent.out" 2> "$state/agent.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^code ' "$state/agent.out" 2>/dev/null && break; sleep 0.1; done
if ! grep -q '^code ' "$state/agent.out"; then
  echo "the agent did not start:" >&2; cat "$state/agent.log" >&2; exit 1
fi
code=$(grep '^code ' "$state/agent.out" | tail -1 | cut -d' ' -f2)
echo "agent:  ticket #4711, shows code $code on the school PC's screen ($pc)"

# The person at the PC answers the consent dialog once it is up.
consent_click() {
  for _ in $(seq 300); do
    line=$(grep '^ui button consent Control ' "$state/agent.out" 2>/dev/null | tail -1 || true)
    if [ -n "$line" ]; then
      set -- $line
      sleep 0.5
      DISPLAY=$pc xdotool mousemove "$5" "$6" mousedown 1 sleep 0.15 mouseup 1
      echo "person at the PC: clicked 'Ansehen und steuern'"
      return
    fi
    sleep 0.1
  done
}
consent_click &
pids+=($!)

export FERNHILFE_STAFF_TOKEN
FERNHILFE_STAFF_TOKEN=$(cat "$state/token")
if [ -n "${DISPLAY:-}" ] && xdpyinfo >/dev/null 2>&1; then
  echo "viewer: window on your screen; close it to end the session"
  $bin/fernhilfe-viewer --relay 127.0.0.1:4433 --relay-fingerprint "$fp" --ticket 4711 --code "$code" || true
else
  echo "viewer: headless (no screen here)"
  coproc VIEWER { $bin/fernhilfe-viewer --headless --relay 127.0.0.1:4433 --relay-fingerprint "$fp" --ticket 4711 --code "$code" 2>"$state/viewer.log"; }
  while read -r -u "${VIEWER[0]}" line; do
    echo "viewer: $line"
    case "$line" in
      "status control")
        sleep 1
        printf 'move 300 300\ndown left\nup left\ntype echo Grüße aus der Ferne\nkey Return down\nkey Return up\n' >&"${VIEWER[1]}"
        sleep 1.5
        echo "snapshot $PWD/$state/viewer.png" >&"${VIEWER[1]}" ;;
      snapshot*)
        echo "end" >&"${VIEWER[1]}" ;;
      ended*) break ;;
    esac
  done
  echo "the viewer's picture of the school PC: $state/viewer.png"
fi
sleep 1
echo "audit record of ticket 4711 (fernhilfe-relay audit show 4711):"
"$bin/fernhilfe-relay" --state-dir "$relay_state" audit show 4711
"$bin/fernhilfe-relay" --state-dir "$relay_state" audit verify

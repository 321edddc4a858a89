#!/usr/bin/env bash
# Benchmark: a typical 1920x1080 desktop (photo-like background, an xterm full of text, a
# window) shared over a local relay. Measures, over RUNS sessions, the time from the consent
# click to the first complete frame in the viewer and that frame's size; then the agent's CPU
# while the screen is static, and the release binary sizes. The peer, measured in the same run
# on the same desktop: x11vnc, read by bench/rfb_first_frame.py (ZRLE, lossless): time from the
# full-screen request to the complete update, and the bytes of that update.
#
# Usage: bench/first_frame.sh [RUNS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
scripts/setup.sh x11vnc imagemagick x11-apps >/dev/null
cargo build --release --workspace --bins 2>&1 | tail -1
bin=target/release
work=$(mktemp -d /tmp/fernhilfe-bench.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

disp=:88
Xvfb $disp -screen 0 1920x1080x24 -noreset -nolisten tcp >/dev/null 2>&1 & pids+=($!)
for _ in $(seq 50); do [ -e /tmp/.X11-unix/X88 ] && break; sleep 0.1; done
# A photo-like wallpaper (fractal plasma, softened), shown as a full-screen window at the
# bottom of the stack: with no window manager, `display -window root` is not reliable.
convert -seed 42 -size 1920x1080 plasma:fractal -blur 0x4 "$work/bg.png"
DISPLAY=$disp display -geometry +0+0 "$work/bg.png" & pids+=($!)
sleep 1
DISPLAY=$disp xterm -geometry 110x45+60+60 -e sh -c 'ls -l /usr/bin | head -44; sleep 100000' & pids+=($!)
DISPLAY=$disp xlogo -geometry 420x420+1350+520 & pids+=($!)
sleep 1.5

state="$work/relay"
$bin/fernhilfe-relay --state-dir "$state" staff add "Bench" > "$work/token"
fp=$($bin/fernhilfe-relay --state-dir "$state" fingerprint)
$bin/fernhilfe-relay --state-dir "$state" serve --listen 127.0.0.1:0 > "$work/relay.out" 2>/dev/null & pids+=($!)
for _ in $(seq 50); do grep -q listening "$work/relay.out" && break; sleep 0.1; done
addr=$(grep -m1 listening "$work/relay.out" | awk '{print $NF}')
export FERNHILFE_STAFF_TOKEN; FERNHILFE_STAFF_TOKEN=$(cat "$work/token")

ms_list=(); bytes_list=()
agent_pid=""
for i in $(seq "$runs"); do
  DISPLAY=$disp $bin/fernhilfe-agent --ticket 4711 --relay "$addr" --relay-fingerprint "$fp" --host-name bench > "$work/agent$i.out" 2>/dev/null &
  agent_pid=$!; pids+=($agent_pid)
  for _ in $(seq 100); do grep -q '^code ' "$work/agent$i.out" && break; sleep 0.05; done
  code=$(grep '^code ' "$work/agent$i.out" | cut -d' ' -f2)
  coproc V { exec $bin/fernhilfe-viewer --headless --relay "$addr" --relay-fingerprint "$fp" --ticket 4711 --code "$code" 2>/dev/null; }
  vpid=$V_PID; pids+=($vpid)
  for _ in $(seq 200); do grep -q '^ui button consent View ' "$work/agent$i.out" && break; sleep 0.05; done
  set -- $(grep '^ui button consent View ' "$work/agent$i.out")
  sleep 0.3
  # The dialog goes away with the click, so the first frame shows the desktop, not the dialog.
  DISPLAY=$disp xdotool mousemove "$5" "$6" mousedown 1 sleep 0.1 mouseup 1 mousemove 1900 1060
  while read -r -u "${V[0]}" line; do
    case "$line" in first-frame*) break ;; esac
  done
  ms=$(sed -E 's/.*ms=([0-9.]+).*/\1/' <<<"$line"); bytes=$(sed -E 's/.*bytes=([0-9]+).*/\1/' <<<"$line")
  ms_list+=("$ms"); bytes_list+=("$bytes")
  if [ "$i" -lt "$runs" ]; then
    echo end >&"${V[1]}"; wait "$vpid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true
  fi
done

# Agent CPU on a static screen, session running, over 10 s.
sleep 3
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
c0=$(cpu "$agent_pid"); sleep 10; c1=$(cpu "$agent_pid")
agent_cpu=$(awk -v a="$c0" -v b="$c1" -v t="$tck" 'BEGIN{printf "%.2f", (b-a)/t/10*100}')
echo end >&"${V[1]}" || true
sleep 1

# The peer: x11vnc on the same desktop, read by a minimal RFB client (bench/rfb_first_frame.py)
# asking for the whole screen in ZRLE; its time runs from the request to the complete update.
x11vnc -display $disp -rfbport 5988 -localhost -forever -shared -nopw -quiet > /dev/null 2>&1 & x11pid=$!; pids+=($x11pid)
sleep 2
vnc_ms_list=(); vnc_bytes_list=()
for i in $(seq "$runs"); do
  out=$(python3 bench/rfb_first_frame.py 127.0.0.1 5988)
  vnc_ms_list+=("$(sed -E 's/.*ms=([0-9.]+) .*/\1/' <<<"$out")")
  vnc_bytes_list+=("$(sed -E 's/.*bytes=([0-9]+).*/\1/' <<<"$out")")
done
# x11vnc's CPU on the static screen with a viewer connected (asking for incremental updates).
python3 bench/rfb_first_frame.py 127.0.0.1 5988 14 > /dev/null & holder=$!; pids+=($holder)
sleep 3
c0=$(cpu "$x11pid"); sleep 10; c1=$(cpu "$x11pid")
vnc_cpu=$(awk -v a="$c0" -v b="$c1" -v t="$tck" 'BEGIN{printf "%.2f", (b-a)/t/10*100}')
wait "$holder" 2>/dev/null || true

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{if(NR==0){print "n/a"} else if(NR%2){print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
ms=$(median "${ms_list[@]}"); bytes=$(median "${bytes_list[@]}")
vms=$(median "${vnc_ms_list[@]}"); vbytes=$(median "${vnc_bytes_list[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0>0) printf "%.2f", a/b; else print "n/a" }'; }
size() { stat -c %s "$1" | awk '{printf "%.1f MiB", $1/1048576}'; }

echo
echo "Fernhilfe first-frame benchmark, 1920x1080 typical desktop, $runs runs each, medians"
echo "all runs: fernhilfe ms=[${ms_list[*]}] bytes=[${bytes_list[*]}]; x11vnc ms=[${vnc_ms_list[*]}] bytes=[${vnc_bytes_list[*]}]"
printf '%-44s %14s %14s %8s\n' "measure" "fernhilfe" "x11vnc" "ratio"
printf '%-44s %14s %14s %8s\n' "first frame, ms (consent / request -> complete)" "$ms" "$vms" "$(ratio "$ms" "$vms")"
printf '%-44s %14s %14s %8s\n' "first frame, bytes (encoded update)" "$bytes" "$vbytes" "$(ratio "$bytes" "$vbytes")"
printf '%-44s %14s %14s %8s\n' "CPU, static screen, viewer connected, %core" "$agent_cpu" "$vnc_cpu" "$(ratio "$agent_cpu" "$vnc_cpu")"
printf '%-44s %14s\n' "agent binary (release, stripped)" "$(size $bin/fernhilfe-agent)"
printf '%-44s %14s\n' "viewer binary (release, stripped)" "$(size $bin/fernhilfe-viewer)"
printf '%-44s %14s\n' "relay binary (release, stripped)" "$(size $bin/fernhilfe-relay)"

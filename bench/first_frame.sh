#!/usr/bin/env bash
# Benchmark: a typical 1920x1080 desktop (photo-like background, an xterm full of text, a
# window) shared over a local relay. Measures, over RUNS sessions, the time from the consent
# click to the first complete frame in the viewer and that frame's size; then the agent's CPU
# while the screen is static, and the release binary sizes. The peer, measured in the same run
# on the same desktop: x11vnc with a vncsnapshot client (tight encoding, lossless), whose full
# first frame is timed from connect to picture and counted in bytes on the wire.
#
# Usage: bench/first_frame.sh [RUNS]   (default 5; needs root for the x11vnc byte count)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
scripts/setup.sh >/dev/null
pkgs=(x11vnc vncsnapshot imagemagick x11-apps)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
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
addr=$(grep listening "$work/relay.out" | awk '{print $NF}')
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

# The peer: x11vnc on the same desktop.
x11vnc -display $disp -rfbport 5988 -localhost -forever -shared -nopw -noxdamage -quiet > /dev/null 2>&1 & x11pid=$!; pids+=($x11pid)
sleep 2
vnc_ms_list=(); vnc_bytes_list=()
for i in $(seq "$runs"); do
  if [ "$(id -u)" -eq 0 ] && command -v tcpdump >/dev/null; then
    tcpdump -i lo -n -U -w "$work/vnc$i.pcap" tcp src port 5988 >/dev/null 2>&1 & tpid=$!
    sleep 0.7
  fi
  t0=$(date +%s.%N)
  vncsnapshot -quiet -encodings "tight" -compresslevel 9 -allowblank localhost:5988 "$work/vnc$i.jpg" >/dev/null 2>&1 || true
  t1=$(date +%s.%N)
  vnc_ms_list+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", (b-a)*1000}')")
  if [ -n "${tpid:-}" ]; then
    sleep 0.5; kill -INT "$tpid"; wait "$tpid" 2>/dev/null || true
    vnc_bytes_list+=("$(tcpdump -r "$work/vnc$i.pcap" -n -q 2>/dev/null | awk '{for(i=1;i<=NF;i++) if($i=="tcp") s+=$(i+1)} END{print s+0}')")
  fi
done
c0=$(cpu "$x11pid"); sleep 10; c1=$(cpu "$x11pid")
vnc_cpu=$(awk -v a="$c0" -v b="$c1" -v t="$tck" 'BEGIN{printf "%.2f", (b-a)/t/10*100}')

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{if(NR==0){print "n/a"} else if(NR%2){print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
ms=$(median "${ms_list[@]}"); bytes=$(median "${bytes_list[@]}")
vms=$(median "${vnc_ms_list[@]}"); vbytes=$(median "${vnc_bytes_list[@]:-}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0>0) printf "%.2f", a/b; else print "n/a" }'; }
size() { stat -c %s "$1" | awk '{printf "%.1f MiB", $1/1048576}'; }

echo
echo "Fernhilfe first-frame benchmark, 1920x1080 typical desktop, $runs runs each, medians"
echo "all runs: fernhilfe ms=[${ms_list[*]}] bytes=[${bytes_list[*]}]; x11vnc ms=[${vnc_ms_list[*]}] bytes=[${vnc_bytes_list[*]:-}]"
printf '%-44s %14s %14s %8s\n' "measure" "fernhilfe" "x11vnc" "ratio"
printf '%-44s %14s %14s %8s\n' "first complete frame, ms (fh: from consent)" "$ms" "$vms" "$(ratio "$ms" "$vms")"
printf '%-44s %14s %14s %8s\n' "first frame, bytes (fh: encoded update)" "$bytes" "$vbytes" "$(ratio "$bytes" "$vbytes")"
printf '%-44s %14s %14s %8s\n' "CPU while static, % of one core (10 s)" "$agent_cpu" "$vnc_cpu" "$(ratio "$agent_cpu" "$vnc_cpu")"
printf '%-44s %14s\n' "agent binary (release, stripped)" "$(size $bin/fernhilfe-agent)"
printf '%-44s %14s\n' "viewer binary (release, stripped)" "$(size $bin/fernhilfe-viewer)"
printf '%-44s %14s\n' "relay binary (release, stripped)" "$(size $bin/fernhilfe-relay)"
echo "x11vnc's CPU is idle with no client connected after the snapshots; its first frame includes the RFB handshake."

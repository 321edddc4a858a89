#!/usr/bin/env bash
# The screen benchmark: the same scripted workloads on a 1920x1080 desktop, viewed through
# Fernhilfe and through TigerVNC's x0vncserver and x11vnc (each viewed by TigerVNC's vncviewer
# full-screen, Tight encoding, lossless with -NoJPEG and with its default JPEG), all in one run,
# each viewer in a real window on a second Xvfb display, everything on loopback.
#
# For each system and workload: bytes from the server to the viewer, counted the same way for
# every system, on the wire: a packet capture of everything addressed to the viewer's sockets,
# summing the UDP and TCP payloads (for Fernhilfe the direct path and the relay path; for VNC the
# RFB connection), and the same packets with their IP/UDP/TCP headers. Fernhilfe's control
# traffic with the relay (signaling, address discovery) is counted apart. Also the server's CPU,
# and for the video workload the distinct frames that reached the viewer's screen. Then change-to-pixels latency screen to screen: a square painted on the
# PC's display, timed until the viewer's display shows it (tests/src/bin/screenbench.rs).
#
# Usage: bench/screen.sh [LATENCY_SAMPLES]   (default 100)
# Writes the table to docs/benchmarks.md (between the screen-bench markers) and the latency
# plot to docs/screen-latency.png; raw figures stay in the printed work directory.
#
# For a quick A/B of one change: SYSTEMS="fernhilfe" WORKLOADS="scrolling" bench/screen.sh 0
# runs only those (0 latency samples: none) and prints the raw rows; docs stay untouched.
# RECORD=DIR also writes every frame the agent captures, with its damage, to DIR (a test build
# of the agent; about 8 MB a frame), for protocol/examples/replay_frames.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-100}
scripts/setup.sh tigervnc-scraping-server tigervnc-viewer x11vnc imagemagick >/dev/null
features=()
[ -n "${RECORD:-}" ] && features=(--features agent/test-aids)
# Builds with test aids go to a target directory of their own, never where packages come from.
export CARGO_TARGET_DIR=$PWD/target/bench
cargo build --release --workspace --bins "${features[@]}" 2>&1 | tail -1
bin=$CARGO_TARGET_DIR/release
sb=$bin/screenbench
work=$(mktemp -d /tmp/fernhilfe-screen.XXXX)
echo "work directory: $work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
export LC_ALL=C

pc=:91; vd=:92
Xvfb $pc -screen 0 1920x1080x24 -noreset -nolisten tcp >/dev/null 2>&1 & pids+=($!)
Xvfb $vd -screen 0 1920x1200x24 -noreset -nolisten tcp >/dev/null 2>&1 & pids+=($!)
for d in 91 92; do for _ in $(seq 50); do [ -e /tmp/.X11-unix/X$d ] && break; sleep 0.1; done; done

# The desktop: a photo-like wallpaper, a terminal for typing and scrolling, a window to drag.
convert -seed 42 -size 1920x1080 plasma:fractal -blur 0x4 "$work/bg.png"
for i in 1 2 3 4 5; do convert -seed $((i * 7)) -size 1280x800 plasma:fractal -blur 0x2 "$work/photo$i.png"; done
convert -seed 99 -size 1920x1080 plasma:fractal -blur 0x3 "$work/video.png"
DISPLAY=$pc display -geometry +0+0 "$work/bg.png" & pids+=($!)
sleep 1
mkfifo "$work/term.fifo"
DISPLAY=$pc xterm -geometry 110x45+60+60 -title bench-term -e sh -c "exec cat $work/term.fifo" & pids+=($!)
exec 7>"$work/term.fifo"
DISPLAY=$pc xterm -geometry 80x24+1000+560 -title bench-drag -e sh -c 'ls -l /usr/bin | head -22; exec sleep 100000' & pids+=($!)
sleep 1.5
drag_win=$(DISPLAY=$pc xdotool search --name bench-drag | head -1)
# Something to scroll from the start: the terminal is full before the scrolling workload.
sed -n 1,45p /usr/share/common-licenses/GPL-3 >&7

tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# Captures everything addressed to the viewer's sockets (UDP and TCP) while a system runs.
# QUIC's own counters are no measure: noq's udp_rx counted ~35 bytes more per datagram than
# arrived (12.6 kB against 7.8 kB on the wire for the same 133 datagrams of typing).
start_capture() {
  local ports filter=""
  ports=$(ss -tuanpH | grep "pid=$viewer_pid," | awk '{print $5}' | sed 's/.*://' | sort -u)
  [ -n "$ports" ] || { echo "$sys: found no socket of the viewer to capture" >&2; exit 1; }
  for p in $ports; do filter="${filter:+$filter or }dst port $p"; done
  echo "$sys: counting what arrives at the viewer's ports" $ports
  tcpdump -i lo -nn -s 96 -B 16384 -w "$work/$sys.pcap" "$filter" 2>"$work/$sys.tcpdump" &
  capture_pid=$!; pids+=($capture_pid)
  for _ in $(seq 50); do grep -q listening "$work/$sys.tcpdump" && break; sleep 0.1; done
}

# What the viewer received between two times: payload bytes (UDP length or TCP segment
# length), the same packets with IP and UDP/TCP headers (frame length less the 14-byte link
# header of lo), and (Fernhilfe) the payload of control traffic from the relay's UDP ports.
bytes_between() {
  local session="" control="udp and src port 0"
  if [ "$sys" = fernhilfe ]; then
    control="udp and (src port $relay_port or src port $qad_port)"
    session="not ($control)"
  fi
  count() {
    tcpdump -r "$work/$sys.pcap" -nn -tt -q -e $1 2>/dev/null | awk -v a="$2" -v b="$3" '
      $1 >= a && $1 < b { for (i = 1; i < NF; i++) if ($i == "length") { f = $(i + 1); break }
                          sub(":", "", f); p += $NF; ip += f - 14 }
      END { printf "%d %d", p, ip }'
  }
  read -r p ip < <(count "$session" "$1" "$2")
  read -r cp _ < <(count "$control" "$1" "$2")
  echo "$p $ip $cp"
}

type_text="Sehr geehrte Damen und Herren, der Drucker in Raum 204 meldet seit heute Morgen Fehler E-52."
workload() {
  case "$1" in
    static) sleep 20 ;;
    typing) python3 -c '
import os, sys, time
t0 = time.monotonic()
for i, c in enumerate(sys.argv[1]):
    os.write(7, c.encode())
    time.sleep(max(0, t0 + (i + 1) * 0.1 - time.monotonic()))
' "$type_text" ;;
    scrolling) python3 -c '
import os, time
lines = open("/usr/share/common-licenses/GPL-3", "rb").read().split(b"\n")[45:495]
t0 = time.monotonic()
for i, l in enumerate(lines):
    os.write(7, l + b"\n")
    time.sleep(max(0, t0 + (i + 1) * 0.0433 - time.monotonic()))
' ;;
    drag) $sb drag $pc "$drag_win" 8 >/dev/null ;;
    slideshow) $sb slideshow $pc 2.6 "$work"/photo{1,2,3,4,5}.png ;;
    video) $sb video $pc $vd "$ox" "$oy" 10 30 "$work/video.png" > "$work/$sys.video" ;;
  esac
}
all_workloads=(static typing scrolling drag slideshow video)
read -ra workloads <<< "${WORKLOADS:-${all_workloads[*]}}"

start_system() {
  sys=$1
  case "$sys" in
    fernhilfe)
      state="$work/relay"
      $bin/fernhilfe-relay --state-dir "$state" staff add "Bench" > "$work/token" 2>/dev/null
      fp=$($bin/fernhilfe-relay --state-dir "$state" fingerprint)
      $bin/fernhilfe-relay --state-dir "$state" serve --listen 127.0.0.1:0 > "$work/relay.out" 2>/dev/null & pids+=($!)
      for _ in $(seq 50); do grep -q listening "$work/relay.out" && break; sleep 0.1; done
      addr=$(grep -m1 listening "$work/relay.out" | awk '{print $NF}')
      relay_port=${addr##*:}
      qad_port=$(grep -m1 'address discovery on udp port' "$work/relay.out" | awk '{print $NF}')
      DISPLAY=$pc FERNHILFE_TEST_RECORD_FRAMES=${RECORD:-} $bin/fernhilfe-agent --ticket 4711 --relay "$addr" --relay-fingerprint "$fp" --host-name bench > "$work/agent.out" 2>"$work/agent.err" &
      server_pid=$!; pids+=($server_pid)
      for _ in $(seq 100); do grep -q '^code ' "$work/agent.out" && break; sleep 0.05; done
      code=$(grep '^code ' "$work/agent.out" | cut -d' ' -f2)
      DISPLAY=$vd FERNHILFE_STAFF_TOKEN=$(cat "$work/token") $bin/fernhilfe-viewer --relay "$addr" --relay-fingerprint "$fp" \
        --ticket 4711 --code "$code" --window-size 1920x1080 --stats > "$work/viewer.out" 2>"$work/viewer.err" &
      viewer_pid=$!; pids+=($viewer_pid)
      for _ in $(seq 200); do grep -q '^ui button consent View ' "$work/agent.out" && break; sleep 0.05; done
      set -- $(grep '^ui button consent View ' "$work/agent.out")
      sleep 0.3
      DISPLAY=$pc xdotool mousemove "$5" "$6" mousedown 1 sleep 0.1 mouseup 1 mousemove 1910 1070
      port=0 ;;
    x0vnc-lossless|x0vnc-jpeg)
      port=5901
      X0tigervnc -display $pc -rfbport $port -SecurityTypes None -localhost >/dev/null 2>&1 &
      server_pid=$!; pids+=($server_pid); sleep 1 ;;
    x11vnc-lossless)
      port=5902
      x11vnc -display $pc -rfbport $port -localhost -forever -shared -nopw -quiet >/dev/null 2>&1 &
      server_pid=$!; pids+=($server_pid); sleep 2 ;;
  esac
  case "$sys" in
    *-lossless) DISPLAY=$vd vncviewer -FullScreen -SecurityTypes None -PreferredEncoding Tight -NoJPEG "127.0.0.1::$port" >/dev/null 2>&1 & viewer_pid=$!; pids+=($viewer_pid) ;;
    *-jpeg) DISPLAY=$vd vncviewer -FullScreen -SecurityTypes None -PreferredEncoding Tight "127.0.0.1::$port" >/dev/null 2>&1 & viewer_pid=$!; pids+=($viewer_pid) ;;
  esac
  read -r _ ox oy < <($sb calibrate $pc $vd) || true
  [ -n "${oy:-}" ] || { echo "$sys: its viewer never showed the PC's screen" >&2; exit 1; }
  echo "$sys: the PC's screen shows at $ox,$oy on the viewer's display"
}

stop_system() {
  kill "$viewer_pid" "$server_pid" 2>/dev/null || true
  # x11vnc was once seen to outlive SIGTERM, and the run waited for it forever: 5 s, then KILL.
  for _ in $(seq 50); do
    kill -0 "$viewer_pid" 2>/dev/null || kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$viewer_pid" "$server_pid" 2>/dev/null || true
  wait "$viewer_pid" "$server_pid" 2>/dev/null || true
  pkill -f "fernhilfe-relay --state-dir $work" 2>/dev/null || true
  sleep 1
}

all_systems=(fernhilfe x0vnc-lossless x0vnc-jpeg x11vnc-lossless)
read -ra systems <<< "${SYSTEMS:-${all_systems[*]}}"
partial=$([ "${systems[*]}" = "${all_systems[*]}" ] && [ "${workloads[*]}" = "${all_workloads[*]}" ] && [ "$samples" -gt 0 ] && [ -z "${RECORD:-}" ] && echo no || echo yes)
for sys in "${systems[@]}"; do
  start_system "$sys"
  start_capture
  # Path probing and MTU discovery happen once, in a session's first seconds; they are counted
  # in a row of their own, not as the static desktop's.
  ts=$(date +%s.%N); sleep 8; echo "settle $ts $(date +%s.%N) 0" >> "$work/$sys.windows"
  for w in "${workloads[@]}"; do
    sleep 2
    c0=$(cpu_ticks "$server_pid"); t0=$(date +%s.%N)
    workload "$w"
    sleep 1.5
    c1=$(cpu_ticks "$server_pid"); t1=$(date +%s.%N)
    cpu=$(awk -v a="$c0" -v b="$c1" -v t="$tck" -v s="$t0" -v e="$t1" 'BEGIN{printf "%.1f", (b-a)/t/(e-s)*100}')
    echo "$w $t0 $t1 $cpu" >> "$work/$sys.windows"
  done
  [ "$samples" -gt 0 ] && $sb latency $pc $vd "$ox" "$oy" "$samples" "$work/$sys.latency"
  stop_system
  kill "$capture_pid" 2>/dev/null || true; wait "$capture_pid" 2>/dev/null || true
  while read -r w t0 t1 cpu; do
    echo "$sys $w $cpu $(bytes_between "$t0" "$t1")" | tee -a "$work/results"
  done < "$work/$sys.windows"
done

if [ "$partial" = yes ]; then
  echo "a partial run (SYSTEMS, WORKLOADS, RECORD or no latency samples): rows above, docs untouched"
  exit 0
fi

# The table: bytes per workload, ours against the best lossless peer.
python3 - "$work" "${systems[@]}" <<'EOF' > "$work/table.md"
import sys, statistics
work, systems = sys.argv[1], sys.argv[2:]
res = {}
wire, control = {}, {}
for line in open(f"{work}/results"):
    s, w, c, b, ip, cb = line.split()
    res[(s, w)] = (int(b), float(c))
    wire[(s, w)] = int(ip)
    control[(s, w)] = int(cb)
def q(v, p):
    v = sorted(v)
    return v[round((len(v) - 1) * p)] if v else float("nan")
lat = {}
for s in systems:
    try:
        lat[s] = [float(x) for x in open(f"{work}/{s}.latency")]
    except OSError:
        lat[s] = []
video = {}
for s in systems:
    try:
        parts = open(f"{work}/{s}.video").read().split()
        video[s] = (int(parts[2]), int(parts[4]), float(parts[6]))
    except (OSError, IndexError, ValueError):
        video[s] = None
lossless = [s for s in systems if s != "fernhilfe" and "lossless" in s]
def kb(b):
    if b < 100_000:
        return f"{b/1000:.1f} kB"
    return f"{b/1000:,.0f} kB" if b < 10_000_000 else f"{b/1e6:,.1f} MB"
names = {"fernhilfe": "Fernhilfe", "x0vnc-lossless": "x0vncserver lossless", "x0vnc-jpeg": "x0vncserver JPEG", "x11vnc-lossless": "x11vnc lossless"}
print("| workload | " + " | ".join(names[s] for s in systems) + " | Fernhilfe / best lossless |")
print("|---|" + "---:|" * (len(systems) + 1))
workloads = ["static", "typing", "scrolling", "drag", "slideshow", "video"]
labels = {"settle": "first 8 s after the picture appeared", "static": "static desktop, 20 s", "typing": "typing 92 characters, 10 per second", "scrolling": "scrolling 450 lines, 19.5 s", "drag": "dragging a window, 8 s", "slideshow": "photo slideshow, 13 s", "video": "full-screen video-like, 10 s at 30 fps"}
for w in ["settle"] + workloads:
    row = [kb(res[(s, w)][0]) for s in systems]
    best = min(res[(s, w)][0] for s in lossless)
    ours = res[("fernhilfe", w)][0]
    ratio = f"{ours / best:.2f}×" if best > 0 else ("0 / 0" if ours == 0 else "∞")
    print(f"| {labels[w]}: bytes | " + " | ".join(row) + f" | {ratio} |")
print("| | | | | | |")
for w in ["settle"] + workloads:
    row = [kb(wire[(s, w)]) for s in systems]
    best = min(wire[(s, w)] for s in lossless)
    ours = wire[("fernhilfe", w)]
    ratio = f"{ours / best:.2f}×" if best > 0 else ("0 / 0" if ours == 0 else "∞")
    print(f"| {labels[w]}: on the wire, with IP/UDP/TCP headers | " + " | ".join(row) + f" | {ratio} |")
print("| Fernhilfe's control traffic from the relay (signaling, address discovery), all workloads | "
      + kb(sum(control[("fernhilfe", w)] for w in ["settle"] + workloads)) + " |" + " |" * len(systems))
for w in workloads:
    print(f"| {w}: server CPU, % of a core | " + " | ".join(f"{res[(s, w)][1]:.1f}" for s in systems) + " | |")
def vid(s):
    v = video[s]
    return f"{v[1] / v[2]:.1f}" if v else "n/a"
print("| video: frames/s shown on the viewer | " + " | ".join(vid(s) for s in systems) + " | |")
best50 = min(q(lat[s], .5) for s in lossless)
best99 = min(q(lat[s], .99) for s in lossless)
print("| change → pixels, p50 / p99 ms | " + " | ".join(f"{q(lat[s], .5):.1f} / {q(lat[s], .99):.1f}" for s in systems)
      + f" | {q(lat['fernhilfe'], .5) / best50:.2f}× / {q(lat['fernhilfe'], .99) / best99:.2f}× |")
EOF
args=()
for s in "${systems[@]}"; do args+=("$s=$work/$s.latency"); done
$sb plot docs/screen-latency.png "${args[@]}"
cat "$work/table.md"
python3 - "$work/table.md" <<'EOF'
import sys, datetime, re
table = open(sys.argv[1]).read()
doc = open("docs/benchmarks.md").read()
start, end = "<!-- screen-bench start -->", "<!-- screen-bench end -->"
stamp = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
block = f"{start}\nLatest run: {stamp}, `bench/screen.sh`, release builds, this 2-core machine.\n\n{table}\n![latency](screen-latency.png)\n{end}"
if start in doc:
    doc = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, doc, flags=re.S)
else:
    doc = doc.rstrip() + "\n\n## Screen pipeline against VNC (`bench/screen.sh`)\n\n" + block + "\n"
open("docs/benchmarks.md", "w").write(doc)
EOF
echo "written to docs/benchmarks.md and docs/screen-latency.png"

#!/usr/bin/env bash
# Benchmark: one full-screen capture with the agent's own capture code, GDI BitBlt of the
# Windows build under Wine against XShm of the Linux build (the peer, in the same run, on the
# same Xvfb display with the same xterm full of text), at 1280x800 and 1920x1080.
#
# Usage: bench/wine_capture.sh [FRAMES]   (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
frames=${1:-200}
scripts/setup.sh >/dev/null
cargo build --release --example capture_bench -p agent 2>&1 | tail -1
cargo build --release --target x86_64-pc-windows-gnu --example capture_bench -p agent 2>&1 | tail -1
linux=target/release/examples/capture_bench
windows=target/x86_64-pc-windows-gnu/release/examples/capture_bench.exe
work=$(mktemp -d /tmp/fernhilfe-wine-capture.XXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  WINEPREFIX="$work/prefix" wineserver -k 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export WINEPREFIX="$work/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
x86_64-w64-mingw32-gcc -shared -O2 -s -o "$work/bcryptprimitives.dll" tests/wine/bcryptprimitives.c -ladvapi32

printf '\n| screen | Linux XShm p50 / p99 | Wine GDI p50 / p99 | GDI / XShm (p50) |\n|---|---:|---:|---:|\n' > "$work/table"
n=0
for size in 1280x800 1920x1080; do
  n=$((n + 1)); disp=":$((90 + n))"
  Xvfb $disp -screen 0 "${size}x24" -noreset -nolisten tcp >/dev/null 2>&1 & xvfb=$!; pids+=($xvfb)
  for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$((90 + n))" ] && break; sleep 0.1; done
  sleep 0.3
  # A display already taken makes our Xvfb exit; do not measure someone else's screen.
  kill -0 "$xvfb" 2>/dev/null || { echo "Xvfb $disp did not start (display taken?)" >&2; exit 1; }
  export DISPLAY=$disp
  xterm -geometry 100x40+40+40 -e sh -c 'ls -l /usr/bin | head -38; sleep 100000' & pids+=($!)
  if [ ! -d "$WINEPREFIX" ]; then
    wineboot --init >/dev/null 2>&1
    cp "$work/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"
  fi
  sleep 1
  l=$($linux "$frames")
  w=$(wine "$windows" "$frames" 2>/dev/null | tr -d '\r')
  echo "linux: $l"
  echo "wine:  $w"
  get() { echo "$1" | tr ' ' '\n' | grep "^$2=" | cut -d= -f2; }
  printf '| %s | %s / %s ms | %s / %s ms | %s× |\n' "$size" \
    "$(get "$l" p50_ms)" "$(get "$l" p99_ms)" "$(get "$w" p50_ms)" "$(get "$w" p99_ms)" \
    "$(awk -v w="$(get "$w" p50_ms)" -v l="$(get "$l" p50_ms)" 'BEGIN { printf "%.1f", w / l }')" >> "$work/table"
  WINEPREFIX="$work/prefix" wineserver -k 2>/dev/null || true
done
cat "$work/table"

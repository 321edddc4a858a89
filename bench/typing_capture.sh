#!/usr/bin/env bash
# Diagnostic, not a comparison (the peers' side by side figures are bench/screen.sh): where the
# bytes of typing go. A session on loopback with a headless viewer, 92 characters at 10 a second
# written into an xterm on the PC, a tcpdump capture of all UDP and TCP on lo, then the packets
# per source > destination port and their bytes during the typing window. Needs root (tcpdump).
#
# Usage: bench/typing_capture.sh        (STATIC=1 adds 20 s of a still screen after typing)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
cargo build --release --workspace --bins 2>&1 | tail -1
bin=$PWD/target/release
work=$(mktemp -d /tmp/typ.XXXX); echo "work $work"
pids=(); cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }; trap cleanup EXIT
pc=:61
Xvfb $pc -screen 0 1920x1080x24 -noreset -nolisten tcp >/dev/null 2>&1 & pids+=($!)
sleep 1
mkfifo "$work/term.fifo"
DISPLAY=$pc xterm -geometry 110x45+60+60 -e sh -c "exec cat $work/term.fifo" & pids+=($!)
exec 7>"$work/term.fifo"; sleep 1
state=$work/relay
$bin/fernhilfe-relay --state-dir $state staff add Bench > $work/token 2>/dev/null
fp=$($bin/fernhilfe-relay --state-dir $state fingerprint)
$bin/fernhilfe-relay --state-dir $state serve --listen 127.0.0.1:0 > $work/relay.out 2>/dev/null & pids+=($!)
for _ in $(seq 50); do grep -q listening $work/relay.out && break; sleep 0.1; done
addr=$(grep -m1 listening $work/relay.out | awk '{print $NF}')
DISPLAY=$pc RUST_LOG=${AGENT_LOG:-warn} $bin/fernhilfe-agent --ticket 4711 --relay $addr --relay-fingerprint $fp --host-name bench > $work/agent.out 2>$work/agent.err & pids+=($!)
for _ in $(seq 100); do grep -q '^code ' $work/agent.out && break; sleep 0.05; done
code=$(grep '^code ' $work/agent.out | cut -d' ' -f2)
mkfifo $work/vin; exec 8<>$work/vin
FERNHILFE_STAFF_TOKEN=$(cat $work/token) $bin/fernhilfe-viewer --relay $addr --relay-fingerprint $fp --ticket 4711 --code $code --headless --stats <&8 > $work/viewer.out 2>$work/viewer.err & pids+=($!)
for _ in $(seq 200); do grep -q '^ui button consent View ' $work/agent.out && break; sleep 0.05; done
set -- $(grep '^ui button consent View ' $work/agent.out)
sleep 0.3
DISPLAY=$pc xdotool mousemove "$5" "$6" mousedown 1 sleep 0.1 mouseup 1 mousemove 1910 1070
sleep 4
tcpdump -i lo -w $work/cap.pcap -s 200 'udp or tcp' 2>/dev/null & tp=$!; pids+=($tp)
sleep 1
b0=$(grep '^stats ' $work/viewer.out | tail -1)
date +%s.%N > $work/t0
python3 -c '
import os, sys, time
t0 = time.monotonic()
for i, c in enumerate(sys.argv[1]):
    os.write(7, c.encode())
    time.sleep(max(0, t0 + (i + 1) * 0.1 - time.monotonic()))
' "Sehr geehrte Damen und Herren, der Drucker in Raum 204 meldet seit heute Morgen Fehler E-52."
sleep 1.5
date +%s.%N > $work/t1
b1=$(grep '^stats ' $work/viewer.out | tail -1)
echo "before: $b0"; echo "after: $b1"
${STATIC:+sleep 20}
b2=$(grep '^stats ' $work/viewer.out | tail -1); echo "after static: $b2"
sleep 0.5; kill $tp; sleep 0.5
grep -E '^path' $work/viewer.out | tail -3
tcpdump -r $work/cap.pcap -nn -tt 2>/dev/null > $work/cap.txt
echo "pcap lines $(wc -l < $work/cap.txt)"
t0=$(head -1 "$work/cap.txt" | cut -d' ' -f1)
echo "packets and bytes per source>destination port, typing window (capture start + 1 s .. + 11.7 s):"
awk -v t0="$t0" '{split($3,a,"."); split($5,b,"."); d=$1-t0; if (d>=1 && d<11.7) {k=a[length(a)]">"b[length(b)]; n[k]++; s[k]+=$NF}} END{for(k in n) print k, n[k], s[k]}' "$work/cap.txt" | sort -k3 -n -r

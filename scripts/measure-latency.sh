#!/usr/bin/env bash
# Detection latency on real veth floods (§9): flood onset -> incident_open written.
# Two network namespaces joined by a veth pair (10.88.0.0/24, removed at exit); the release agent
# watches the veth at default settings except a 5 s grace period. Floods of 2 s each: N times
# at a steady 20,000 pps (4x the 5000 pps floor) from a paced UDP sender (a batch every
# millisecond; hping3's own pacing does not reach the rate, trafgen's -b sends each second's
# packets in one burst), and N times as fast as hping3 goes (>= 10x); each run prints the ratio
# the opening sample saw. Prints each run and the medians.
# Needs root, iproute2, hping3, python3, jq. Usage: scripts/measure-latency.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5}
cargo build --release --quiet
bin=$PWD/target/release/ftagent
tmp=$(mktemp -d)
a=ftlat-a; b=ftlat-b
cleanup() { kill "$pid" 2>/dev/null || true; ip netns del $a 2>/dev/null || true; ip netns del $b 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
ip netns add $a; ip netns add $b
ip link add ftlat0 netns $a type veth peer name ftlat1 netns $b
ip -n $a addr add 10.88.0.1/24 dev ftlat0; ip -n $b addr add 10.88.0.2/24 dev ftlat1
ip -n $a link set ftlat0 up; ip -n $b link set ftlat1 up
printf '{"state_dir": "%s", "log_file": "", "auto_update": false, "interface": "ftlat0", "grace_period_s": 5}\n' "$tmp" > "$tmp/config.json"
cat >"$tmp/paced.py" <<'EOF'
import socket, sys, time
pps, secs, dst = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start, sent, payload = time.monotonic(), 0, b"A" * 18
while (now := time.monotonic() - start) < secs:
    while sent < int(now * pps):
        s.sendto(payload, (dst, 9))
        sent += 1
    time.sleep(0.001)
EOF
ip netns exec $a "$bin" --config "$tmp/config.json" --no-update-check 2>"$tmp/stderr" &
pid=$!
sleep 7
events=$tmp/events.jsonl
opens() { grep -c '"event":"incident_open"' "$events" || true; }
resolves() { grep -c '"event":"incident_resolve"' "$events" || true; }

run() { # $1 = label, rest = the sender's command line (run in namespace b for 2 s)
  local label=$1; shift
  local before; before=$(opens)
  local t0; t0=$(date +%s.%N)
  timeout 2 ip netns exec $b "$@" >/dev/null 2>&1 || true
  local want=$((before + 1))
  for _ in $(seq 100); do [ "$(opens)" -ge $want ] && break; sleep 0.1; done
  local line; line=$(grep '"event":"incident_open"' "$events" | sed -n "${want}p")
  if [ -z "$line" ]; then echo "$label: no incident opened"; return; fi
  local ts; ts=$(jq -r .ts <<<"$line")
  local t1; t1=$(date -d "$ts" +%s.%N)
  local ratio; ratio=$(jq -r '(.pps / .threshold_pps * 10 | round) / 10' <<<"$line")
  local lat; lat=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
  echo "$label: latency ${lat} s, opening sample at ${ratio}x threshold"
  echo "$lat" >>"$tmp/$label"
  # Wait for the resolve (10 s hold-down) before the next flood.
  for _ in $(seq 200); do [ "$(resolves)" -ge "$(opens)" ] && break; sleep 0.1; done
  sleep 1
}

for i in $(seq "$n"); do run x4 python3 "$tmp/paced.py" 20000 2 10.88.0.1; done
for i in $(seq "$n"); do run x10 hping3 --udp -q -p 9 --flood 10.88.0.1; done
for l in x4 x10; do
  [ -f "$tmp/$l" ] && sort -n "$tmp/$l" | awk -v l=$l '{v[NR]=$1} END {printf "median %s: %.3f s over %d floods\n", l, (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2), NR}'
done

#!/usr/bin/env bash
# CPU of the agent (capture-scapy, release) during a veth SYN flood (§9): two network namespaces,
# the agent in one, hping3 --flood from the other for 10 s. Needs root, iproute2, hping3.
# Usage: scripts/capture-cpu.sh [path/to/ftagent]   (default target/release/ftagent)
set -euo pipefail
bin=$(realpath "${1:-target/release/ftagent}")
id=$$; a=ftcpu$id-a; b=ftcpu$id-b; va=fc${id}a; vb=fc${id}b
work=$(mktemp -d)
cleanup() { [ -n "${agent:-}" ] && kill "$agent" 2>/dev/null; sleep 1; ip netns del "$a" 2>/dev/null; ip netns del "$b" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
ip netns add "$a"; ip netns add "$b"
ip link add "$va" netns "$a" type veth peer name "$vb" netns "$b"
ip -n "$a" addr add 10.78.0.1/24 dev "$va"; ip -n "$b" addr add 10.78.0.2/24 dev "$vb"
ip -n "$a" link set "$va" up; ip -n "$b" link set "$vb" up
cat > "$work/c.json" <<JSON
{"interface": "$va", "state_dir": "$work/state", "log_file": "", "auto_update": false,
 "grace_period_s": 3, "baseline_window_s": 10, "pcap_dir": "$work/pcaps"}
JSON
ip netns exec "$a" "$bin" --no-update-check --config "$work/c.json" 2>"$work/err" &
agent=$!
sleep 4
pid=$(pgrep -P "$agent" ftagent || echo "$agent")
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks "$pid"); s0=$(date +%s.%N)
rx0=$(ip netns exec "$a" awk -v i="$va:" '$1==i {print $3}' /proc/net/dev)
timeout 10 ip netns exec "$b" hping3 -S --flood -q -p 80 10.78.0.1 >/dev/null 2>&1 || true
t1=$(ticks "$pid"); s1=$(date +%s.%N)
rx1=$(ip netns exec "$a" awk -v i="$va:" '$1==i {print $3}' /proc/net/dev)
awk -v t="$((t1 - t0))" -v hz="$hz" -v s0="$s0" -v s1="$s1" -v p="$((rx1 - rx0))" 'BEGIN {
  d = s1 - s0; printf "flood: %.0f packets/s received for %.1f s; agent CPU %.1f %% of one core\n", p / d, d, 100 * t / hz / d }'
sleep 12
grep -o '"event":"incident_[a-z]*"[^}]*"attack_family":"[a-z_]*"' "$work/state/events.jsonl" | cut -c1-60 | sort | uniq -c || true
grep -o '"dropped_packets":[0-9]*' "$work/state/events.jsonl" | tail -1 || true

#!/usr/bin/env bash
# CPU share of the ftagent process itself (all its threads) during a veth SYN flood in tcpdump
# mode, next to the supervised tcpdump's own share and the packet rate the interface received.
#
# Needs root, iproute2, hping3, tcpdump (and mergecap for the evidence merge). Creates two network
# namespaces joined by a veth pair (10.79.0.0/24), floods from one into the other for a bounded
# time, and removes everything on exit.
#
#   sudo scripts/tcpdump_cpu.sh                # default: 10 s measured, 2 hping3 flooders
#   sudo MEASURE_S=20 FLOODERS=1 scripts/tcpdump_cpu.sh
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${FTAGENT_BIN:-target/release/ftagent}
MEASURE_S=${MEASURE_S:-10}
FLOODERS=${FLOODERS:-2}
NS_A=ftabench-a NS_B=ftabench-b VETH_A=ftabenchA VETH_B=ftabenchB
ADDR_A=10.79.0.1 ADDR_B=10.79.0.2

[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, capture)" >&2; exit 1; }
for t in ip hping3 tcpdump; do command -v $t >/dev/null || { echo "missing: $t" >&2; exit 1; }; done
[ -x "$BIN" ] || cargo build --release --features capture-tcpdump

WORK=$(mktemp -d)
AGENT=""
cleanup() {
    pkill -f "hping3 -S --flood -q -p 80 $ADDR_A" 2>/dev/null || true
    if [ -n "$AGENT" ]; then kill -TERM "$AGENT" 2>/dev/null || true; wait "$AGENT" 2>/dev/null || true; fi
    ip netns del $NS_A 2>/dev/null || true
    ip netns del $NS_B 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add $NS_A
ip netns add $NS_B
ip link add $VETH_A netns $NS_A type veth peer name $VETH_B netns $NS_B
ip -n $NS_A addr add $ADDR_A/24 dev $VETH_A
ip -n $NS_B addr add $ADDR_B/24 dev $VETH_B
ip -n $NS_A link set $VETH_A up
ip -n $NS_B link set $VETH_B up
ip -n $NS_A link set lo up

cat > "$WORK/config.json" <<EOF
{"interface": "$VETH_A", "pcap_mode": "tcpdump", "state_dir": "$WORK/state", "log_file": "$WORK/agent.log",
 "auto_update": false, "baseline_window_s": 10, "grace_period_s": 3}
EOF
ip netns exec $NS_A "$BIN" --no-update-check --config "$WORK/config.json" 2>/dev/null &
AGENT=$!
sleep 5

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rx_packets() { ip netns exec $NS_A awk -v i="$VETH_A:" '$1 == i {print $3}' /proc/net/dev; }
ring_pid() { pgrep -f "tcpdump .*-w $WORK/state/pcaps/ring/" | head -1; }

for _ in $(seq "$FLOODERS"); do
    timeout $((MEASURE_S + 8)) ip netns exec $NS_B hping3 -S --flood -q -p 80 $ADDR_A >/dev/null 2>&1 &
done
sleep 3 # the incident opens, its capture fills, the flood settles

TCPDUMP=$(ring_pid)
a0=$(ticks "$AGENT"); t0=$(ticks "$TCPDUMP"); p0=$(rx_packets); s0=$(date +%s.%N)
sleep "$MEASURE_S"
a1=$(ticks "$AGENT"); t1=$(ticks "$TCPDUMP"); p1=$(rx_packets); s1=$(date +%s.%N)

HZ=$(getconf CLK_TCK)
awk -v a=$((a1 - a0)) -v t=$((t1 - t0)) -v p=$((p1 - p0)) -v s0="$s0" -v s1="$s1" -v hz="$HZ" 'BEGIN {
    s = s1 - s0
    printf "interval            %.1f s\n", s
    printf "received            %.0f packets/s\n", p / s
    printf "ftagent CPU         %.2f %% of one core\n", 100 * a / hz / s
    printf "tcpdump (ring) CPU  %.2f %% of one core\n", 100 * t / hz / s
}'
grep -c incident_open "$WORK/state/events.jsonl" | sed 's/^/incidents opened    /'

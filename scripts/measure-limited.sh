#!/usr/bin/env bash
# Measure the limited agent's steady state at default settings: CPU share of one core and RSS
# over a window (default 60 s). Usage: scripts/measure-limited.sh [seconds]
# FTAGENT_BIN=path measures that binary instead of building this tree (A/B runs of two builds).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
if [ -n "${FTAGENT_BIN:-}" ]; then
  bin=$FTAGENT_BIN
else
  cargo build --release --quiet
  bin=${CARGO_TARGET_DIR:-target}/release/ftagent
fi
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
# Defaults everywhere except where files go (kept out of the user's real state dir).
printf '{"state_dir": "%s", "log_file": "", "auto_update": false}\n' "$tmp" > "$tmp/config.json"
"$bin" --config "$tmp/config.json" --no-update-check 2>"$tmp/stderr" &
pid=$!
sleep 2 # start-up is not steady state
# Nanoseconds on CPU summed over the process's threads (schedstat), finer than the 10 ms clock
# ticks of /proc/PID/stat. The agent's threads live as long as it does, so none is missed.
ticks() { cat "/proc/$pid"/task/*/schedstat | awk '{s += $1} END {printf "%d", s}'; }
t0=$(ticks); s0=$(date +%s.%N); max_rss=0
for _ in $(seq "$secs"); do
  sleep 1
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  [ "$rss" -gt "$max_rss" ] && max_rss=$rss
done
t1=$(ticks); s1=$(date +%s.%N)
kill -TERM "$pid"; wait "$pid" || true
awk -v t="$((t1 - t0))" -v s0="$s0" -v s1="$s1" -v rss="$max_rss" -v n="$(nproc)" 'BEGIN {
  wall = s1 - s0; cpu = t / 1e9;
  printf "window: %.1f s  cpu: %.4f s  share of one core: %.3f %%  max RSS: %.2f MiB  (%d cores)\n",
    wall, cpu, 100 * cpu / wall, rss / 1024, n
}'

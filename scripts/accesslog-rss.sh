#!/usr/bin/env bash
# Peak RSS of the real agent following an access log that gains 1 M lines from 1 M distinct
# client IPs at once (§9: < 64 MiB), read from its VmHWM, and of `--analyze` on the same log,
# measured by /usr/bin/time -v. Usage: scripts/accesslog-rss.sh [lines]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
cargo build --release --quiet
bin=$PWD/target/release/ftagent
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$n" >"$tmp/flood.log" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(n):
    ip = (i * 2654435761) % (1 << 32) ^ 0x0a000000
    out.write('%d.%d.%d.%d - - [01/Dec/2026:07:50:%02d +0000] "GET /p/%d?x=%d HTTP/1.1" 200 612 "-" "Mozilla/5.0 (X11; Linux x86_64) bot/%d"\n'
              % (ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255, i % 60, i % 1000, i, i % 100))
PY
: >"$tmp/access.log"
cat >"$tmp/config.json" <<JSON
{"state_dir": "$tmp/state", "log_file": "", "auto_update": false, "limited": true,
 "metrics_interval": 1, "prometheus_textfile": "$tmp/metrics.prom",
 "access_logs": [{"path": "$tmp/access.log", "format": "combined"}]}
JSON
"$bin" --config "$tmp/config.json" --no-update-check 2>"$tmp/stderr" &
pid=$!
sleep 2
cat "$tmp/flood.log" >>"$tmp/access.log"
read_total() { awk '/^ftagent_http_requests_total/ {print $2}' "$tmp/metrics.prom" 2>/dev/null || true; }
for _ in $(seq 120); do
  [ "$(read_total)" = "$n" ] && break
  sleep 1
done
got=$(read_total)
agent_rss=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
kill -TERM "$pid"; wait "$pid" || true; pid=
/usr/bin/time -v -o "$tmp/time2.txt" "$bin" --analyze "$tmp/flood.log" --json >"$tmp/summary.json"
analyze_rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$tmp/time2.txt")
distinct=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["distinct_clients"])' "$tmp/summary.json")
awk -v n="$n" -v got="$got" -v a="$agent_rss" -v b="$analyze_rss" -v d="$distinct" 'BEGIN {
  printf "agent following the log: %s of %d lines read, max RSS %.1f MiB (bar < 64 MiB)\n", got, n, a / 1024
  printf "--analyze on the log: max RSS %.1f MiB, distinct clients ~%d of %d\n", b / 1024, d, n
  exit (got != n || a >= 65536 || b >= 65536)
}'

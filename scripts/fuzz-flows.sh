#!/bin/bash
# Fuzz every flow decoder (NetFlow v5, v9, IPFIX, sFlow) on stable Rust for MINUTES each, in
# parallel at the lowest CPU priority: a mutation loop over the datagrams recorded from real
# exporters (tests/data/flows). Exits non-zero on a finding (written to fuzz-findings/).
# Usage: scripts/fuzz-flows.sh MINUTES [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
MIN=${1:?usage: scripts/fuzz-flows.sh MINUTES [SEED]}
SEED=${2:-$(date +%s)}
# Debug build on purpose: integer overflow panics there, so it is a finding too.
cargo build -q --example fuzz_flows
BIN=${CARGO_TARGET_DIR:-target}/debug/examples/fuzz_flows
pids=()
for d in v5 v9 ipfix sflow; do
  nice -n 19 "$BIN" "$d" $((MIN * 60)) "$SEED" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc

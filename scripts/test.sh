#!/usr/bin/env bash
# Run the whole test suite: the default build (no libpcap) and the build with both capture
# features. As root on Debian/Ubuntu it first installs the system packages the tests use;
# otherwise it names the missing ones.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(libpcap-dev libssl-dev pkg-config openssl strace iputils-ping tcpdump wireshark-common hping3 iproute2 util-linux prometheus libcap2-bin netsniff-ng tmux logrotate nftables tcpreplay exabgp gobgpd nginx wrk)
TOOLS=(openssl strace ping tcpdump mergecap capinfos hping3 ip setpriv promtool prometheus setcap trafgen tmux logrotate nft tcpreplay-edit exabgp gobgpd gobgp nginx wrk)

missing=()
for t in "${TOOLS[@]}"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
[ -e /usr/include/pcap.h ] || missing+=("pcap.h")
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing test dependencies: ${PKGS[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${PKGS[@]}"
  else
    echo "missing: ${missing[*]} — install with: sudo apt-get install ${PKGS[*]}" >&2
    exit 1
  fi
fi

# Every test that cannot run here appends one line to this file (tests/it/util.rs `skip`); the
# summary is the last line of the run. Under CI=true such a skip fails the test instead.
export FTAGENT_SKIP_LOG="${TMPDIR:-/tmp}/ftagent-test-skips.$$"
: >"$FTAGENT_SKIP_LOG"
summarise_skips() {
  if [ -s "$FTAGENT_SKIP_LOG" ]; then
    echo "skipped $(wc -l <"$FTAGENT_SKIP_LOG") test run(s): $(sort "$FTAGENT_SKIP_LOG" | uniq -c \
      | awk '{ n = $1; $1 = ""; sub(/^ /, ""); printf "%s%s%s", sep, $0, (n > 1 ? " (x" n ")" : ""); sep = "; " }')"
  else
    echo "skipped: none"
  fi
  rm -f "$FTAGENT_SKIP_LOG"
}
trap summarise_skips EXIT

echo "== layout (scripts/check-layout.sh)"
bash scripts/check-layout.sh

echo "== default build (limited mode only, no libpcap)"
cargo build --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/ftagent"
if [ ! -x "$bin" ]; then
  echo "no binary at $bin: cannot check that the default build does not link libpcap" >&2
  exit 1
fi
libs=$(ldd "$bin") || { echo "ldd failed on $bin" >&2; exit 1; }
if grep -q libpcap <<<"$libs"; then
  echo "the default build links libpcap; it must not" >&2
  exit 1
fi
cargo test
echo "== each capture feature alone: its disabled stubs and the capture front door"
cargo test --features capture-scapy --lib capture
cargo test --features capture-tcpdump --lib capture
echo "== capture builds (capture-scapy + capture-tcpdump)"
cargo test --all-features

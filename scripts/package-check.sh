#!/usr/bin/env bash
# Build the .deb and the .rpm from this checkout and check them as an administrator would meet
# them: dpkg -i, the binary, both units (systemd-analyze verify), man page, completions, the
# `ftagent` account, nothing enabled or started; an unprivileged throw-away user runs
# `ftagent --setup --limited --non-interactive` and then the agent, which writes its event log;
# root setup hands /etc/ftagent/config.json to `ftagent`; dpkg -r then --purge leave nothing
# behind. The .rpm is checked with rpm -qlp / rpm -qp --scripts; lintian must report no error.
#
# Needs root and: debhelper dpkg-dev lintian rpm systemd man-db passwd adduser libpcap-dev, and
# cargo (found as debian/rules and the spec say). Build outputs go to a temp dir; the repository
# tree is left as it was (cargo's target/ is a cache and stays).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
T0=$SECONDS

[ "$(id -u)" = 0 ] || { echo "package-check: needs root (dpkg -i, useradd)"; exit 1; }
for tool in dpkg-buildpackage rpmbuild lintian systemd-analyze setpriv useradd; do
    command -v "$tool" >/dev/null || { echo "package-check: $tool is missing"; exit 1; }
done

WORK=$(mktemp -d /tmp/ftagent-pkg.XXXXXX)
TESTUSER=ftpkgcheck$$
USERHOME=/tmp/$TESTUSER
cleanup() {
    set +e
    getent passwd "$TESTUSER" >/dev/null && userdel "$TESTUSER" 2>/dev/null
    rm -rf "$WORK" "$USERHOME"
    if dpkg-query -W -f='${Status}' ftagent 2>/dev/null | grep installed >/dev/null; then dpkg_w --purge ftagent >/dev/null; fi
    (cd "$REPO" && debian/rules clean >/dev/null 2>&1)
}
trap cleanup EXIT

# dpkg with a wait for its lock (another apt/dpkg run on the machine holds it for a while).
dpkg_w() {
    local out
    for _ in $(seq 150); do
        if out=$(dpkg "$@" 2>&1); then [ -z "$out" ] || echo "$out"; return 0; fi
        case $out in *"lock"*) sleep 2 ;; *) echo "$out" >&2; return 1 ;; esac
    done
    echo "$out" >&2; return 1
}
fail() { echo "package-check: FAILED: $*"; exit 1; }
ok() { echo "  ok: $*"; }
step() { echo "== package-check: $* ($((SECONDS - T0)) s)"; }

VERSION=$(dpkg-parsechangelog -S Version)
ARCH=$(dpkg --print-architecture)
CARGO_VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
[ "$VERSION" = "$CARGO_VERSION" ] || fail "debian/changelog $VERSION != Cargo.toml $CARGO_VERSION"
grep -q "^Version: *$CARGO_VERSION\$" rpm/ftagent.spec || fail "rpm/ftagent.spec Version != Cargo.toml $CARGO_VERSION"
if dpkg-query -W -f='${Status}' ftagent 2>/dev/null | grep installed >/dev/null; then dpkg_w --purge ftagent >/dev/null; fi

step "dpkg-buildpackage -b -us -uc"
dpkg-buildpackage -b -us -uc >"$WORK/deb-build.log" 2>&1 || { tail -40 "$WORK/deb-build.log"; fail "dpkg-buildpackage"; }
for f in "../ftagent_${VERSION}_${ARCH}.deb" "../ftagent_${VERSION}_${ARCH}.buildinfo" "../ftagent_${VERSION}_${ARCH}.changes"; do
    [ -e "$f" ] && mv "$f" "$WORK/"
done
DEB="$WORK/ftagent_${VERSION}_${ARCH}.deb"
[ -f "$DEB" ] || fail "no $DEB"
debian/rules clean >/dev/null 2>&1
ok "built $(basename "$DEB")"

step "lintian"
lintian --fail-on error --tag-display-limit 0 "$DEB" | tee "$WORK/lintian.txt" || fail "lintian reports errors"
ok "lintian: no errors ($(grep -c '^W:' "$WORK/lintian.txt" || true) warnings)"

step "dpkg -i"
dpkg_w -i "$DEB" >/dev/null
[ "$(/usr/bin/ftagent --version)" = "ftagent $VERSION" ] || fail "/usr/bin/ftagent --version: $(/usr/bin/ftagent --version)"
ok "/usr/bin/ftagent --version = ftagent $VERSION"
for f in /usr/lib/systemd/system/ftagent.service /usr/lib/systemd/user/ftagent.service \
         /usr/share/bash-completion/completions/ftagent /usr/share/zsh/vendor-completions/_ftagent \
         /usr/share/fish/vendor_completions.d/ftagent.fish; do
    [ -f "$f" ] || fail "missing $f"
done
ok "units and completions installed"
dpkg -c "$DEB" >"$WORK/deb-files.txt"
grep -q './usr/share/man/man1/ftagent.1.gz' "$WORK/deb-files.txt" || fail "no man page in the package"
if [ -f /usr/share/man/man1/ftagent.1.gz ]; then
    zcat /usr/share/man/man1/ftagent.1.gz | grep 'install\\-service' >/dev/null || fail "man page lacks --install-service"
    ok "man page /usr/share/man/man1/ftagent.1.gz"
else
    ok "man page in the package (this host's dpkg excludes /usr/share/man)"
fi
grep -q '^User=ftagent$' /usr/lib/systemd/system/ftagent.service || fail "system unit does not run as ftagent"
grep -q '^AmbientCapabilities=CAP_NET_RAW$' /usr/lib/systemd/system/ftagent.service \
    || fail "system unit lacks the capture capabilities"
{ systemd-analyze verify /usr/lib/systemd/system/ftagent.service 2>&1 || true; } | { grep -v 'man ftagent(1)' || true; } \
    | tee "$WORK/verify.txt"
[ ! -s "$WORK/verify.txt" ] || fail "systemd-analyze verify (system unit)"
mkdir -p -m 0700 "$WORK/xdg-runtime"
{ XDG_RUNTIME_DIR=$WORK/xdg-runtime systemd-analyze --user verify /usr/lib/systemd/user/ftagent.service 2>&1 || true; } \
    | { grep -v 'man ftagent(1)' || true; } | tee "$WORK/verify-user.txt"
[ ! -s "$WORK/verify-user.txt" ] || fail "systemd-analyze verify (user unit)"
ok "installed units pass systemd-analyze verify"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd ftagent) || fail "no ftagent user"
[ "$uid" -lt 1000 ] && [ "$shell" = /usr/sbin/nologin ] || fail "ftagent is not a system account ($uid, $shell)"
ok "system user ftagent (uid $uid, home $home, shell $shell)"
if ls /etc/systemd/system/*.wants/ftagent.service >/dev/null 2>&1; then fail "the package enabled the unit"; fi
for pid in $(pgrep -x ftagent || true); do
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" != /usr/bin/ftagent ] || fail "the package started ftagent (pid $pid)"
done
ok "nothing enabled or started"

step "unprivileged limited setup and run as a throw-away user"
useradd --create-home --home-dir "$USERHOME" --shell /bin/sh "$TESTUSER"
as_user() { env -i PATH=/usr/bin:/bin HOME="$USERHOME" USER="$TESTUSER" \
    setpriv --reuid "$TESTUSER" --regid "$TESTUSER" --init-groups -- "$@"; }
as_user /usr/bin/ftagent --setup --limited --non-interactive >"$WORK/setup.txt" 2>&1 || { cat "$WORK/setup.txt"; fail "limited setup"; }
CFG=$USERHOME/.config/ftagent/config.json
[ "$(stat -c '%a %U' "$CFG")" = "600 $TESTUSER" ] || fail "user config is $(stat -c '%a %U' "$CFG")"
grep -q '"limited": true' "$CFG" || fail "user config is not limited"
ok "setup wrote $CFG (0600, limited)"
# Started directly (not through the function) so $! is the agent itself.
env -i PATH=/usr/bin:/bin HOME="$USERHOME" USER="$TESTUSER" setpriv --reuid "$TESTUSER" --regid "$TESTUSER" \
    --init-groups -- /usr/bin/ftagent --no-update-check --config "$CFG" >"$WORK/run.txt" 2>&1 &
AGENT=$!
EVENTS=$USERHOME/.local/state/ftagent/events.jsonl
for _ in $(seq 100); do grep -q '"agent_start"' "$EVENTS" 2>/dev/null && break; sleep 0.1; done
kill -TERM "$AGENT"
wait "$AGENT" || { cat "$WORK/run.txt"; fail "the agent did not exit 0 on SIGTERM"; }
grep -q '"agent_start"' "$EVENTS" && grep -q '"agent_stop"' "$EVENTS" || { cat "$WORK/run.txt"; fail "no event log at $EVENTS"; }
ok "the agent ran as $TESTUSER and wrote $EVENTS"
userdel --remove "$TESTUSER" 2>/dev/null || userdel "$TESTUSER"

step "root setup hands the config to ftagent"
env -u FTAGENT_API_KEY /usr/bin/ftagent --setup --non-interactive >"$WORK/root-setup.txt" 2>&1 \
    || { cat "$WORK/root-setup.txt"; fail "root setup"; }
[ "$(stat -c '%a %U' /etc/ftagent/config.json)" = "600 ftagent" ] || fail "/etc/ftagent/config.json is $(stat -c '%a %U' /etc/ftagent/config.json)"
ok "/etc/ftagent/config.json 0600 owned by ftagent"

step "dpkg -r, then --purge"
dpkg_w -r ftagent >/dev/null
for f in /usr/bin/ftagent /usr/lib/systemd/system/ftagent.service /usr/lib/systemd/user/ftagent.service; do
    [ ! -e "$f" ] || fail "$f left after dpkg -r"
done
ok "dpkg -r removed the files (config kept until purge)"
dpkg_w --purge ftagent >/dev/null
left=$(dpkg -c "$DEB" | awk '{print $6}' | sed 's#^\.##' | grep -E 'ftagent' | while read -r p; do [ -e "$p" ] && echo "$p"; done || true)
[ -z "$left" ] || fail "left after purge: $left"
[ ! -e /etc/ftagent ] && [ ! -e /var/lib/ftagent ] && [ ! -e /var/log/ftagent ] || fail "state or config left after purge"
! getent passwd ftagent >/dev/null || fail "ftagent user left after purge"
! dpkg-query -W ftagent >/dev/null 2>&1 || fail "dpkg still knows ftagent"
ok "purge left nothing behind"

step "rpmbuild -bb --build-in-place rpm/ftagent.spec"
rpmbuild -bb --build-in-place --define "_topdir $WORK/rpmbuild" rpm/ftagent.spec >"$WORK/rpm-build.log" 2>&1 \
    || { tail -40 "$WORK/rpm-build.log"; fail "rpmbuild"; }
RPM=$(ls "$WORK"/rpmbuild/RPMS/*/ftagent-"$VERSION"-1*.rpm)
rpm -qlp "$RPM" >"$WORK/rpm-files.txt" 2>/dev/null
for f in /usr/bin/ftagent /usr/lib/systemd/system/ftagent.service /usr/lib/systemd/user/ftagent.service \
         /usr/share/bash-completion/completions/ftagent; do
    grep -qx "$f" "$WORK/rpm-files.txt" || fail "$f not in the rpm"
done
grep -q '^/usr/share/man/man1/ftagent.1' "$WORK/rpm-files.txt" || fail "no man page in the rpm"
ok "rpm -qlp: binary, both units, man page, completions"
rpm -qp --scripts "$RPM" >"$WORK/rpm-scripts.txt" 2>/dev/null
grep -q 'useradd -r -g ftagent' "$WORK/rpm-scripts.txt" || fail "the rpm does not create the ftagent user"
if grep -Eq 'systemctl( [^ ]+)* (enable|start)( |$)' "$WORK/rpm-scripts.txt"; then fail "the rpm enables or starts the service"; fi
ok "rpm -qp --scripts: creates ftagent, starts nothing"

step "repository tree unchanged"
git -C "$REPO" status --porcelain | grep . && fail "build artefacts left in the repository (see above)"
for d in debian/ftagent debian/.debhelper debian/files; do [ ! -e "$d" ] || fail "$d left in the repository"; done
ok "clean"
echo "package-check: all passed in $((SECONDS - T0)) s"

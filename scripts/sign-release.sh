#!/bin/sh
# Sign a release's binaries for `ftagent --update` (SPEC §8.4, §13).
#
# The updater installs an asset only when `<asset>.sig` — a raw 64-byte ed25519 signature over
# the asset's bytes — verifies under the public key built into the binary
# (keys/release-ed25519.pub, or the hex key in FTAGENT_UPDATE_PUBKEY at build time). It also
# checks the asset's SHA-256 against the release's SHA256SUMS. Upload, next to each binary,
# its .sig, and SHA256SUMS.
#
#   scripts/sign-release.sh --new-key KEYFILE     make a key pair: KEYFILE (private, keep it
#                                                 offline) and print the public key's hex for
#                                                 keys/release-ed25519.pub
#   scripts/sign-release.sh KEYFILE ASSET...      write ASSET.sig for each ASSET, check each
#                                                 signature, and write SHA256SUMS beside them
#
# Needs OpenSSL 1.1.1 or later (ed25519 with -rawin).
set -eu

pubhex() { openssl pkey -in "$1" -pubout -outform DER | tail -c 32 | od -An -tx1 | tr -d ' \n'; echo; }

if [ "${1:-}" = "--new-key" ]; then
    [ $# -eq 2 ] || { echo "usage: $0 --new-key KEYFILE" >&2; exit 2; }
    [ ! -e "$2" ] || { echo "$2 exists; not overwriting a key" >&2; exit 1; }
    (umask 077; openssl genpkey -algorithm ed25519 -out "$2")
    echo "private key: $2 (never commit it)"
    printf 'public key (hex) for keys/release-ed25519.pub:\n'
    pubhex "$2"
    exit 0
fi

[ $# -ge 2 ] || { echo "usage: $0 KEYFILE ASSET... | $0 --new-key KEYFILE" >&2; exit 2; }
key=$1
shift
pub=$(mktemp)
trap 'rm -f "$pub"' EXIT
openssl pkey -in "$key" -pubout -out "$pub"
echo "signing with key $(pubhex "$key")"
for asset in "$@"; do
    openssl pkeyutl -sign -inkey "$key" -rawin -in "$asset" -out "$asset.sig"
    openssl pkeyutl -verify -pubin -inkey "$pub" -rawin -in "$asset" -sigfile "$asset.sig" >/dev/null
    echo "signed $asset -> $asset.sig"
done
dir=$(dirname "$1")
(cd "$dir" && for asset in "$@"; do sha256sum "$(basename "$asset")"; done) > "$dir/SHA256SUMS"
echo "wrote $dir/SHA256SUMS"

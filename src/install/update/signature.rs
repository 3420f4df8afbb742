//! Release authenticity (§8.4, §13): an asset is installed only when `<asset>.sig`, a raw
//! 64-byte ed25519 signature over the asset's bytes (or those bytes in hex), verifies under the
//! public key built into this binary. A checksum from the same release proves only that the
//! download is whole, not who made it.
//!
//! The key is `keys/release-ed25519.pub` of the source tree, or the hex key in the build-time
//! environment variable `FTAGENT_UPDATE_PUBKEY` (for forks that sign their own releases). Debug
//! builds (the test suite's) also honour `FTAGENT_TEST_UPDATE_PUBKEY` at run time, so tests can
//! sign with a throw-away key; release builds ignore it. Nothing a config file says changes it.
//! `scripts/sign-release.sh` signs a release.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::error::{Error, Result};

const BUILT_IN: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/keys/release-ed25519.pub"));

/// The key text this binary trusts (hex, `#` comment lines allowed).
fn trusted_text() -> String {
    #[cfg(debug_assertions)]
    if let Ok(k) = std::env::var("FTAGENT_TEST_UPDATE_PUBKEY") {
        return k;
    }
    option_env!("FTAGENT_UPDATE_PUBKEY").unwrap_or(BUILT_IN).to_string()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

/// An ed25519 public key from its hex text.
pub fn parse_key(text: &str) -> Result<VerifyingKey> {
    let hex: String = text.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    let bytes: [u8; 32] = unhex(&hex).and_then(|b| b.try_into().ok()).ok_or_else(|| Error::Invalid {
        what: "release key",
        why: "the release key built in is not 32 bytes of hex".into(),
    })?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| Error::Invalid {
        what: "release key",
        why: format!("the release key built in is not an ed25519 key: {e}"),
    })
}

/// The key this binary trusts.
pub fn trusted_key() -> Result<VerifyingKey> {
    parse_key(&trusted_text())
}

/// A short fingerprint of a key for messages: the first 8 bytes in hex.
pub fn fingerprint(k: &VerifyingKey) -> String {
    k.as_bytes()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A signature file's bytes: raw 64 bytes, or 128 hex characters (whitespace ignored).
pub fn parse_signature(file: &str, bytes: &[u8]) -> Result<Signature> {
    let raw: Option<[u8; 64]> = if bytes.len() == 64 {
        bytes.try_into().ok()
    } else {
        let text: String = String::from_utf8_lossy(bytes).split_whitespace().collect();
        unhex(&text).and_then(|b| b.try_into().ok())
    };
    raw.map(|b| Signature::from_bytes(&b)).ok_or_else(|| {
        Error::Refused {
            what: "update",
            why: format!(
                "{file} is not an ed25519 signature (64 raw bytes or 128 hex characters, {} bytes found); refusing to install",
                bytes.len()
            ),
        }
    })
}

/// Check `asset` against `sig` under `key`. `sha_matches`: whether the asset's SHA-256 is the
/// release's own, which only sharpens the message.
pub fn verify(name: &str, asset: &[u8], sig: &Signature, key: &VerifyingKey, sha_matches: bool) -> Result<()> {
    if key.verify_strict(asset, sig).is_ok() {
        return Ok(());
    }
    let why = if sha_matches {
        "it is not signed by the release key this binary trusts (signed by another key?)"
    } else {
        "the asset was changed after it was signed (its SHA-256 is not the release's either)"
    };
    Err(Error::Refused {
        what: "update",
        why: format!(
            "signature check failed for {name}: {why}; trusted key {}…; the binary was not changed",
            fingerprint(key)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_key_parses() {
        let k = parse_key(BUILT_IN).unwrap();
        assert_eq!(fingerprint(&k).len(), 16);
    }

    #[test]
    fn rfc8032_test_vector_verifies_and_a_flipped_bit_does_not() {
        // RFC 8032 §7.1, TEST 2 (one-byte message 0x72).
        let key = parse_key("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c").unwrap();
        let sig = parse_signature(
            "t.sig",
            b"92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
              085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        )
        .unwrap();
        verify("t", &[0x72], &sig, &key, true).unwrap();
        let e = verify("t", &[0x73], &sig, &key, false).unwrap_err().to_string();
        assert!(e.contains("changed after it was signed"), "{e}");
        let e = verify("t", &[0x73], &sig, &key, true).unwrap_err().to_string();
        assert!(e.contains("another key"), "{e}");
        assert!(parse_signature("t.sig", b"short").unwrap_err().to_string().contains("not an ed25519 signature"));
    }
}

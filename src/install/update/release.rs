//! Pure parts of updating (§8.4): the GitHub-style "latest release" JSON, the choice of the asset
//! for this architecture and of the checksum file, checksum-file parsing and the version
//! comparison. No network and no files here.

use semver::Version;
use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Asset {
    pub name: String,
    pub browser_download_url: String,
}

/// The fields of a release we read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Release {
    pub tag_name: String,
    #[serde(default)]
    pub html_url: String,
    #[serde(default)]
    pub assets: Vec<Asset>,
}

impl Release {
    pub fn parse(body: &[u8]) -> Result<Self> {
        serde_json::from_slice(body).map_err(|e| Error::Invalid {
            what: "release",
            why: format!("the release answer is not a GitHub-style release object: {e}"),
        })
    }

    /// The release's version: the tag without a leading `v`.
    pub fn version(&self) -> Result<Version> {
        parse_version(&self.tag_name)
    }

    /// The raw binary for `arch` (`x86_64`, `aarch64`, ...): its name carries the architecture
    /// (or its Debian name) and it is not a package, signature or checksum file.
    pub fn binary_asset(&self, arch: &str) -> Option<&Asset> {
        let alias = match arch {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let skip = [".deb", ".rpm", ".sha256", ".asc", ".sig", ".txt", ".tar.gz", ".tgz", ".zip", ".json"];
        let mut candidates: Vec<&Asset> = self
            .assets
            .iter()
            .filter(|a| a.name.contains(arch) || a.name.contains(alias))
            .filter(|a| !skip.iter().any(|s| a.name.ends_with(s)) && !is_checksum_name(&a.name))
            .collect();
        candidates.sort_by_key(|a| !a.name.contains("linux"));
        candidates.first().copied()
    }

    /// The checksum file covering `asset`: `<asset>.sha256`, else a `SHA256SUMS`-style list.
    pub fn checksum_asset(&self, asset: &str) -> Option<&Asset> {
        let own = format!("{asset}.sha256");
        self.assets.iter().find(|a| a.name == own).or_else(|| self.assets.iter().find(|a| is_checksum_name(&a.name)))
    }
}

fn is_checksum_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "sha256sums" || n == "sha256sums.txt" || n == "checksums.txt" || n.ends_with("_checksums.txt")
}

pub fn parse_version(tag: &str) -> Result<Version> {
    let t = tag.trim();
    let t = t.strip_prefix('v').unwrap_or(t);
    Version::parse(t).map_err(|e| Error::Invalid {
        what: "release tag",
        why: format!("release tag `{tag}` is not a semantic version: {e}"),
    })
}

/// The expected SHA-256 (lower-case hex) of `asset` in a checksum file: `sha256sum` lines
/// (`HEX  name` or `HEX *name`), or a single hash for a per-asset `.sha256` file.
pub fn expected_sha256(text: &str, asset: &str) -> Option<String> {
    let is_hex = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    for line in &lines {
        let mut parts = line.split_whitespace();
        let (Some(hash), name) = (parts.next(), parts.next()) else { continue };
        let name = name.map(|n| n.trim_start_matches('*'));
        if is_hex(hash) && (name == Some(asset) || (name.is_none() && lines.len() == 1)) {
            return Some(hash.to_ascii_lowercase());
        }
    }
    None
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(names: &[&str]) -> Release {
        Release {
            tag_name: "v1.2.3".into(),
            html_url: String::new(),
            assets: names
                .iter()
                .map(|n| Asset { name: n.to_string(), browser_download_url: format!("http://h/{n}") })
                .collect(),
        }
    }

    #[test]
    fn parses_a_github_latest_release_answer() {
        let body = br#"{"tag_name":"v0.3.0","html_url":"https://x/r","draft":false,
            "assets":[{"name":"SHA256SUMS","browser_download_url":"https://x/SHA256SUMS","size":1}]}"#;
        let r = Release::parse(body).unwrap();
        assert_eq!(r.version().unwrap(), Version::new(0, 3, 0));
        assert_eq!(r.assets.len(), 1);
        assert!(Release::parse(b"<html>").unwrap_err().to_string().contains("GitHub-style"));
    }

    #[test]
    fn picks_the_raw_binary_for_this_architecture() {
        let r = release(&[
            "ftagent_1.2.3_amd64.deb",
            "ftagent-1.2.3-1.x86_64.rpm",
            "ftagent-1.2.3-aarch64-linux",
            "ftagent-1.2.3-x86_64-linux",
            "ftagent-1.2.3-x86_64-linux.sha256",
            "SHA256SUMS",
        ]);
        assert_eq!(r.binary_asset("x86_64").unwrap().name, "ftagent-1.2.3-x86_64-linux");
        assert_eq!(r.binary_asset("aarch64").unwrap().name, "ftagent-1.2.3-aarch64-linux");
        assert!(r.binary_asset("riscv64").is_none());
        assert_eq!(r.checksum_asset("ftagent-1.2.3-x86_64-linux").unwrap().name, "ftagent-1.2.3-x86_64-linux.sha256");
        assert_eq!(r.checksum_asset("ftagent-1.2.3-aarch64-linux").unwrap().name, "SHA256SUMS");
    }

    #[test]
    fn reads_sha256sum_lines_and_single_hash_files() {
        let h = "a".repeat(64);
        let other = "b".repeat(64);
        let list = format!("{other}  ftagent-x86_64\n{h} *ftagent-aarch64\n");
        assert_eq!(expected_sha256(&list, "ftagent-aarch64"), Some(h.clone()));
        assert_eq!(expected_sha256(&list, "missing"), None);
        assert_eq!(expected_sha256(&format!("{}\n", h.to_uppercase()), "anything"), Some(h.clone()));
        assert_eq!(expected_sha256("nothex  ftagent-x86_64", "ftagent-x86_64"), None);
    }

    #[test]
    fn sha256_matches_the_known_vector() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn versions_compare_as_semver() {
        assert!(parse_version("v0.10.0").unwrap() > parse_version("0.9.9").unwrap());
        assert!(parse_version("1.0.0-rc.1").unwrap() < parse_version("1.0.0").unwrap());
        assert!(parse_version("latest").unwrap_err().to_string().contains("`latest`"));
    }
}

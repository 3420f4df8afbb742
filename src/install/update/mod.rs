//! `--update` (§8.4): ask `update_url` for the latest release, show `current → latest`, and
//! either print the package manager's command (installed from a .deb/.rpm: never touch files a
//! package owns) or, for a standalone binary, download the asset for this architecture, verify
//! its SHA-256 against the release's checksum file and replace the binary atomically, keeping the
//! previous one as `<binary>.old`. The daily start-up check lives in [`check`].
//!
//! The only HTTP here is [`get`]; it never sends the API key.

pub mod check;
pub mod release;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use semver::Version;

use crate::config::paths::Env;
use crate::error::{Error, Result};
use crate::event::AGENT_VERSION;
use crate::install::setup::Prompter;
use crate::util::fs as fsutil;
pub use release::Release;

/// Per-call limit for `--update` downloads.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// GET `url`; anything but 200 is an error naming the URL.
pub fn get(url: &str, timeout: Duration) -> Result<Vec<u8>> {
    let resp = minreq::get(url)
        .with_header("User-Agent", format!("ftagent/{AGENT_VERSION}"))
        .with_header("Accept", "application/vnd.github+json, application/octet-stream;q=0.9, */*;q=0.8")
        .with_timeout(timeout.as_secs().max(1))
        .send()
        .map_err(|e| Error::Http { url: url.to_string(), status: None, why: format!("{url}: {e}") })?;
    if resp.status_code != 200 {
        return Err(Error::Http {
            url: url.to_string(),
            status: Some(resp.status_code),
            why: format!("{url}: HTTP {} {}", resp.status_code, resp.reason_phrase),
        });
    }
    Ok(resp.into_bytes())
}

/// The latest release and whether it is newer than this binary.
pub fn latest(url: &str, timeout: Duration) -> Result<(Release, Version, bool)> {
    let release = Release::parse(&get(url, timeout)?)?;
    let latest = release.version()?;
    let current = release::parse_version(AGENT_VERSION)?;
    let newer = latest > current;
    Ok((release, latest, newer))
}

/// The package manager that owns `exe`, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packaged {
    Deb,
    Rpm,
}

impl Packaged {
    pub fn command(self, latest: &Version) -> String {
        let arch = std::env::consts::ARCH;
        match self {
            Packaged::Deb => {
                let deb_arch = match arch {
                    "x86_64" => "amd64",
                    "aarch64" => "arm64",
                    other => other,
                };
                format!(
                    "sudo apt-get update && sudo apt-get install --only-upgrade ftagent\n  \
                     (or, with the file from the release page: sudo apt install ./ftagent_{latest}_{deb_arch}.deb)"
                )
            }
            Packaged::Rpm => format!(
                "sudo dnf upgrade ftagent\n  \
                 (or, with the file from the release page: sudo dnf install ./ftagent-{latest}-1.{arch}.rpm)"
            ),
        }
    }
}

/// dpkg's file list under the (injected) root, else `rpm -qf` on the real root.
pub fn packaged(env: &Env, exe: &Path) -> Option<Packaged> {
    let inside = exe.strip_prefix(&env.root).ok().map(|p| Path::new("/").join(p))?;
    let list = env.root.join("var/lib/dpkg/info/ftagent.list");
    if let Ok(text) = std::fs::read_to_string(list) {
        if text.lines().any(|l| Path::new(l.trim()) == inside) {
            return Some(Packaged::Deb);
        }
    }
    if env.root == Path::new("/") && crate::install::service::on_path("rpm") {
        let owned = Command::new("rpm")
            .args(["-qf", "--quiet"])
            .arg(exe)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if owned.is_ok_and(|s| s.success()) {
            return Some(Packaged::Rpm);
        }
    }
    None
}

/// `--update`, interactive. Returns the exit code.
pub fn run(url: &str, env: &Env, exe: &Path, p: &mut Prompter) -> Result<u8> {
    let (release, latest, newer) = latest(url, Duration::from_secs(10))?;
    if !newer {
        p.say(&format!("ftagent {AGENT_VERSION} is up to date (latest release: {latest})"));
        return Ok(0);
    }
    p.say(&format!("ftagent {AGENT_VERSION} → {latest} is available"));
    if !release.html_url.is_empty() {
        p.say(&format!("release notes: {}", release.html_url));
    }
    if let Some(pkg) = packaged(env, exe) {
        p.say(&format!("{} belongs to a package; update it with:\n  {}", exe.display(), pkg.command(&latest)));
        return Ok(0);
    }
    if !p.yes_no(&format!("Replace {} with {latest}?", exe.display()), false)? {
        p.say("not updated");
        return Ok(0);
    }
    let bytes = download_verified(&release)?;
    let old = replace(exe, &bytes)?;
    p.say(&format!("updated {} to {latest}; the previous binary is kept as {}", exe.display(), old.display()));
    Ok(0)
}

/// Download this architecture's asset and check it against the release's checksum file.
pub fn download_verified(release: &Release) -> Result<Vec<u8>> {
    let arch = std::env::consts::ARCH;
    let asset = release.binary_asset(arch).ok_or_else(|| Error::Refused {
        what: "update",
        why: format!("release {} has no binary for {arch}", release.tag_name),
    })?;
    let sums = release.checksum_asset(&asset.name).ok_or_else(|| Error::Refused {
        what: "update",
        why: format!("release {} has no checksum file (SHA256SUMS); refusing to install", release.tag_name),
    })?;
    let sums_text = String::from_utf8_lossy(&get(&sums.browser_download_url, DOWNLOAD_TIMEOUT)?).into_owned();
    let expected = release::expected_sha256(&sums_text, &asset.name).ok_or_else(|| Error::Refused {
        what: "update",
        why: format!("{} lists no SHA-256 for {}; refusing to install", sums.name, asset.name),
    })?;
    let bytes = get(&asset.browser_download_url, DOWNLOAD_TIMEOUT)?;
    let actual = release::sha256_hex(&bytes);
    if actual != expected {
        return Err(Error::Refused {
            what: "update",
            why: format!(
                "checksum mismatch for {}: expected {expected}, got {actual}; the binary was not changed",
                asset.name
            ),
        });
    }
    Ok(bytes)
}

/// Keep `exe` as `exe.old` (hard link, else copy), then rename the new binary over `exe`: at
/// every moment `exe` is either the old or the new file, never a partial one.
pub fn replace(exe: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let name = exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "ftagent".into());
    let old = exe.with_file_name(format!("{name}.old"));
    match std::fs::remove_file(&old) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&old, e)),
    }
    if std::fs::hard_link(exe, &old).is_err() {
        std::fs::copy(exe, &old).map_err(|e| Error::io(&old, e))?;
    }
    fsutil::write_atomic(exe, bytes, 0o755)?;
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replace_keeps_the_old_binary_and_sets_mode_0755() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("ftagent");
        std::fs::write(&exe, b"old").unwrap();
        std::fs::write(dir.path().join("ftagent.old"), b"older").unwrap();
        let old = replace(&exe, b"new").unwrap();
        assert_eq!(std::fs::read(&exe).unwrap(), b"new");
        assert_eq!(std::fs::read(&old).unwrap(), b"old");
        assert_eq!(std::fs::metadata(&exe).unwrap().permissions().mode() & 0o777, 0o755);
    }

    #[test]
    fn dpkg_file_list_marks_a_packaged_binary() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env { root: dir.path().into(), ..Env::default() };
        let exe = dir.path().join("usr/bin/ftagent");
        assert_eq!(packaged(&env, &exe), None);
        let info = dir.path().join("var/lib/dpkg/info");
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(info.join("ftagent.list"), "/.\n/usr\n/usr/bin\n/usr/bin/ftagent\n").unwrap();
        assert_eq!(packaged(&env, &exe), Some(Packaged::Deb));
        assert_eq!(packaged(&env, &dir.path().join("opt/ftagent")), None);
    }
}

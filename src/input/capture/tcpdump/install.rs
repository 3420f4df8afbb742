//! Finding `tcpdump` and `mergecap`, and installing them with the host's package manager when
//! tcpdump is missing and the agent is root (§7.5). Never installs anything as another user.
//!
//! The package choice is pure ([`PackageManager::install_args`]); the one side effect is running
//! the package manager found on `PATH`, bounded in time.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use log::{info, warn};

use super::command::find_in_path;
use crate::error::{Error, Result};

/// A package install gets this long before it is killed.
const INSTALL_LIMIT: Duration = Duration::from_secs(600);

/// The capture tools found on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub tcpdump: PathBuf,
    /// None: incident files are merged by the agent's own time-ordered merge.
    pub mergecap: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageManager {
    Apt,
    Dnf,
    Yum,
}

impl PackageManager {
    /// In order of preference when several exist.
    pub const ALL: [PackageManager; 3] = [PackageManager::Apt, PackageManager::Dnf, PackageManager::Yum];

    pub fn program(self) -> &'static str {
        match self {
            PackageManager::Apt => "apt-get",
            PackageManager::Dnf => "dnf",
            PackageManager::Yum => "yum",
        }
    }

    /// tcpdump plus the package that ships mergecap on that family of distributions.
    pub fn install_args(self) -> Vec<&'static str> {
        match self {
            PackageManager::Apt => vec!["install", "-y", "-q", "tcpdump", "wireshark-common"],
            PackageManager::Dnf | PackageManager::Yum => vec!["install", "-y", "-q", "tcpdump", "wireshark-cli"],
        }
    }
}

/// Find the tools on `path_var`; when tcpdump is missing and `is_root`, install it first.
/// `Err` carries the reason for the one log line that announces the fallback.
pub fn ensure_tools(path_var: Option<&OsStr>, is_root: bool) -> Result<Tools> {
    let found = |name: &str| find_in_path(name, path_var);
    if found("tcpdump").is_none() {
        if !is_root {
            return Err(off(
                "tcpdump is not installed (install the tcpdump package, or run the agent as root to let it \
                 install tcpdump itself)",
            ));
        }
        let Some((pm, program)) = PackageManager::ALL.iter().find_map(|pm| found(pm.program()).map(|p| (*pm, p)))
        else {
            return Err(off("tcpdump is not installed and no apt-get, dnf or yum was found to install it"));
        };
        install(pm, &program)?;
    }
    let tcpdump = found("tcpdump").ok_or_else(|| off("tcpdump is still missing after the package install"))?;
    let mergecap = found("mergecap");
    if mergecap.is_none() {
        info!(
            "mergecap not found (package wireshark-common or wireshark-cli); incident files will be merged by the \
             agent itself"
        );
    }
    Ok(Tools { tcpdump, mergecap })
}

fn install(pm: PackageManager, program: &Path) -> Result<()> {
    info!("tcpdump is missing; installing it with `{} {}`", pm.program(), pm.install_args().join(" "));
    let mut ok = run(program, &pm.install_args())?;
    if !ok && pm == PackageManager::Apt {
        // A fresh host may have no package lists yet.
        ok = run(program, &["update", "-q"])? && run(program, &pm.install_args())?;
    }
    if ok {
        Ok(())
    } else {
        Err(program_error(program, format!("installing tcpdump with {} failed", pm.program())))
    }
}

/// Run the package manager with its output in our log; false when it fails or takes too long.
fn run(program: &Path, args: &[&str]) -> Result<bool> {
    let mut child = Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| program_error(program, format!("cannot run {}: {e}", program.display())))?;
    let deadline = Instant::now() + INSTALL_LIMIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                warn!("{} {} did not finish within {} s", program.display(), args.join(" "), INSTALL_LIMIT.as_secs());
                return Ok(false);
            }
        }
    };
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        warn!("{} {}: {status}: {last}", program.display(), args.join(" "));
    }
    Ok(status.success())
}

/// Why tcpdump mode cannot run, for the front door's one log line.
fn off(why: &str) -> Error {
    Error::CaptureOff { mode: "capture-tcpdump", why: why.into() }
}

/// The package manager failed.
fn program_error(path: &Path, why: String) -> Error {
    Error::Program { program: path.display().to_string(), why }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) {
        let p = dir.join(name);
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn packages_per_distribution_family() {
        assert_eq!(PackageManager::Apt.install_args()[3..], ["tcpdump", "wireshark-common"]);
        assert_eq!(PackageManager::Dnf.install_args()[3..], ["tcpdump", "wireshark-cli"]);
        assert_eq!(PackageManager::Yum.program(), "yum");
    }

    #[test]
    fn root_installs_with_the_package_manager_found() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("calls");
        // A fake dnf that records its arguments and "installs" a tcpdump.
        script(
            d.path(),
            "dnf",
            &format!(
                "echo \"$@\" >> {log}\nprintf '#!/bin/sh\\n' > {dir}/tcpdump\nchmod 755 {dir}/tcpdump",
                log = log.display(),
                dir = d.path().display()
            ),
        );
        let tools = ensure_tools(Some(d.path().as_os_str()), true).unwrap();
        assert_eq!(tools.tcpdump, d.path().join("tcpdump"));
        assert_eq!(tools.mergecap, None);
        assert_eq!(fs::read_to_string(&log).unwrap(), "install -y -q tcpdump wireshark-cli\n");
    }

    #[test]
    fn a_failing_apt_get_refreshes_lists_retries_and_reports() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("calls");
        script(
            d.path(),
            "apt-get",
            &format!("echo \"$@\" >> {}\necho 'E: Unable to locate' >&2\nexit 100", log.display()),
        );
        let err = ensure_tools(Some(d.path().as_os_str()), true).unwrap_err().to_string();
        assert!(err.contains("apt-get failed"), "{err}");
        let calls = fs::read_to_string(&log).unwrap();
        assert_eq!(calls, "install -y -q tcpdump wireshark-common\nupdate -q\n");
    }

    #[test]
    fn non_root_never_installs() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("calls");
        script(d.path(), "apt-get", &format!("echo \"$@\" >> {}", log.display()));
        let err = ensure_tools(Some(d.path().as_os_str()), false).unwrap_err().to_string();
        assert!(err.contains("not installed"), "{err}");
        assert!(!log.exists(), "the package manager was called");
    }

    #[test]
    fn no_package_manager_is_a_clear_reason() {
        let d = tempfile::tempdir().unwrap();
        let err = ensure_tools(Some(d.path().as_os_str()), true).unwrap_err().to_string();
        assert!(err.contains("no apt-get, dnf or yum"), "{err}");
    }

    #[test]
    fn present_tools_are_used_as_found() {
        let d = tempfile::tempdir().unwrap();
        script(d.path(), "tcpdump", "");
        script(d.path(), "mergecap", "");
        let tools = ensure_tools(Some(d.path().as_os_str()), false).unwrap();
        assert_eq!(tools.mergecap, Some(d.path().join("mergecap")));
    }
}

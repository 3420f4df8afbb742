//! `--install-service` with a recording `systemctl` on PATH (systemd is not PID 1 in tests), and
//! the generated units checked by the real `systemd-analyze verify` and `security --offline`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{self, Home};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A directory holding a `systemctl` that appends its arguments to `<dir>/calls`.
fn fake_systemctl(dir: &Path) -> PathBuf {
    let bin = dir.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("systemctl");
    std::fs::write(&script, "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/calls\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn calls(bin: &Path) -> Vec<String> {
    std::fs::read_to_string(bin.join("calls")).unwrap_or_default().lines().map(String::from).collect()
}

fn path_with(bin: &Path) -> String {
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

#[test]
fn user_install_writes_the_user_unit_and_enables_it() {
    let home = Home::new();
    let bin = fake_systemctl(home.path());
    let out = home.unprivileged().arg("--install-service").env("PATH", path_with(&bin)).output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let unit = std::fs::read_to_string(home.path().join(".config/systemd/user/ftagent.service")).unwrap();
    assert!(unit.contains(&format!("ExecStart={} --limited\n", util::bin().display())), "{unit}");
    assert!(unit.contains("WantedBy=default.target"));
    assert_eq!(calls(&bin), vec!["--user daemon-reload", "--user enable --now ftagent"]);
    assert!(t.contains("loginctl enable-linger"), "{t}");
}

#[test]
fn without_systemctl_the_commands_are_printed() {
    let home = Home::new();
    let empty = home.path().join("emptybin");
    std::fs::create_dir_all(&empty).unwrap();
    let out = home.command().args(["--install-service", "--limited"]).env("PATH", &empty).output().unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("systemctl --user daemon-reload") && t.contains("systemctl --user enable --now ftagent"), "{t}");
    assert!(home.path().join(".config/systemd/user/ftagent.service").exists());
}

#[test]
fn failing_systemctl_is_reported_with_the_remaining_commands() {
    let home = Home::new();
    let bin = home.path().join("failbin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("systemctl"), "#!/bin/sh\necho 'Failed to connect to bus' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(bin.join("systemctl"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = home.command().args(["--install-service", "--limited"]).env("PATH", path_with(&bin)).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("systemctl --user enable --now ftagent"), "{}", text(&out));
}

#[test]
fn root_install_writes_the_hardened_system_unit() {
    if !is_root() {
        util::skip("the system unit is installed as root (CI runs as root)");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let bin = fake_systemctl(root.path());
    let home = Home::new();
    let out = home
        .command()
        .arg("--install-service")
        .env("FTAGENT_ROOT", root.path())
        .env("PATH", path_with(&bin))
        .output()
        .unwrap();
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let unit_path = root.path().join("etc/systemd/system/ftagent.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    assert!(unit.contains("User=ftagent\n") && unit.contains("NoNewPrivileges=yes\n"), "{unit}");
    assert_eq!(calls(&bin), vec!["daemon-reload", "enable --now ftagent"]);
    assert!(t.contains("useradd --system"), "missing service user explained: {t}");
    assert!(!home.path().join(".config/systemd").exists());
    verify(&unit_path, false);
}

#[test]
fn root_install_hands_an_earlier_config_to_the_service_user() {
    if !is_root() {
        util::skip("the system unit is installed as root (CI runs as root)");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let bin = fake_systemctl(root.path());
    std::fs::create_dir_all(root.path().join("etc/ftagent")).unwrap();
    std::fs::write(root.path().join("etc/passwd"), "ftagent:x:4300:4301::/var/lib/ftagent:/usr/sbin/nologin\n")
        .unwrap();
    let cfg = root.path().join("etc/ftagent/config.json");
    std::fs::write(&cfg, "{}").unwrap();
    let out = Home::new()
        .command()
        .arg("--install-service")
        .env("FTAGENT_ROOT", root.path())
        .env("PATH", path_with(&bin))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&cfg).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4300, 4301));
}

/// Directory holding `man1/ftagent.1`, so `Documentation=man:ftagent(1)` resolves.
fn man_dir(dir: &Path) -> PathBuf {
    let man = dir.join("man");
    std::fs::create_dir_all(man.join("man1")).unwrap();
    let page = Command::new(util::bin()).args(["--generate", "man"]).output().unwrap();
    assert!(page.status.success());
    std::fs::write(man.join("man1/ftagent.1"), page.stdout).unwrap();
    man
}

fn verify(unit: &Path, user: bool) {
    if !util::have("systemd-analyze") {
        util::skip("systemd-analyze is not installed (apt-get install systemd)");
        return;
    }
    let dir = unit.parent().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("systemd-analyze");
    if user {
        cmd.arg("--user");
    }
    let out = cmd
        .arg("verify")
        .arg(unit)
        .env("MANPATH", man_dir(dir))
        .env("XDG_RUNTIME_DIR", runtime.path())
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "systemd-analyze verify {}: {}", unit.display(), text(&out));
}

/// A unit generated by the binary with `ExecStart` pointed at the test binary.
fn generated(kind: &str, dir: &Path) -> PathBuf {
    let out = Command::new(util::bin()).args(["--generate", "unit", kind]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let unit = String::from_utf8(out.stdout).unwrap().replace("/usr/bin/ftagent", &util::bin().display().to_string());
    let sub = dir.join(kind);
    std::fs::create_dir_all(&sub).unwrap();
    let path = sub.join("ftagent.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn generated_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    verify(&generated("system", dir.path()), false);
    verify(&generated("user", dir.path()), true);
}

/// The reference agent's unit: root, NoNewPrivileges=false, no sandboxing.
pub const REFERENCE_UNIT: &str = "[Unit]\nDescription=Flowtriq DDoS Detection Agent\nAfter=network.target\n\n\
[Service]\nType=simple\nUser=root\nExecStart=@EXE@\nRestart=always\nRestartSec=5\nNoNewPrivileges=false\n\n\
[Install]\nWantedBy=multi-user.target\n";

fn exposure(unit: &Path) -> f64 {
    let out = Command::new("systemd-analyze").args(["security", "--offline=true"]).arg(unit).output().unwrap();
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = t.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("no score: {t}"));
    let score = line.rsplit(':').next().unwrap().split_whitespace().next().unwrap();
    score.parse().unwrap_or_else(|_| panic!("score in {line}"))
}

#[test]
fn system_unit_scores_better_than_the_reference_unit() {
    if !util::have("systemd-analyze") {
        util::skip("systemd-analyze is not installed (apt-get install systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ours = exposure(&generated("system", dir.path()));
    let ref_dir = dir.path().join("reference");
    std::fs::create_dir_all(&ref_dir).unwrap();
    let reference = ref_dir.join("ftagent.service");
    std::fs::write(&reference, REFERENCE_UNIT.replace("@EXE@", &util::bin().display().to_string())).unwrap();
    let theirs = exposure(&reference);
    eprintln!("systemd-analyze security: ours {ours}, reference {theirs}");
    assert!(ours < theirs && ours < 3.0, "ours {ours} vs reference {theirs}");
}

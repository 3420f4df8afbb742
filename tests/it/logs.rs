//! Logs for operators (§6.6): with stderr redirected to a file there are no escape codes; the
//! start-up says how long the baseline learns and then when detection is active; real
//! `logrotate -f` with the shipped stanza (its file list pointed at a temp dir) rotates the log
//! file and the event log, its postrotate `systemctl kill --signal=HUP` (a recording fake that
//! delivers the HUP) makes the agent reopen both, and the agent keeps writing to the new files.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, Home, Reap};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn wait_file(path: &Path, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if pred(&text) || Instant::now() >= deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The shipped service stanza (the first) with its file list replaced by `files`, and its `su`
/// user by the one running the test (the files are in the test's temp home).
fn stanza_for(files: &[&Path]) -> String {
    let shipped = std::fs::read_to_string(repo("debian/ftagent.logrotate")).unwrap();
    let list: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    // SAFETY: geteuid/getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut out = String::new();
    for l in shipped.lines() {
        if l.ends_with('{') && !l.starts_with('#') {
            out += &format!("{} {{\n", list.join(" "));
        } else if l.trim().starts_with("su ") {
            out += &format!("    su {uid} {gid}\n");
        } else {
            out += l;
            out += "\n";
        }
        if l.trim() == "}" {
            break;
        }
    }
    out
}

/// A `systemctl` that records its arguments and sends SIGHUP to `pid`.
fn fake_systemctl(dir: &Path, pid: u32, record: &Path) -> PathBuf {
    let bin = dir.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!("#!/bin/sh\necho \"$*\" >> {}\nkill -HUP {pid}\n", record.display());
    let path = bin.join("systemctl");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn the_rpm_and_deb_logrotate_files_are_the_same() {
    let deb = std::fs::read(repo("debian/ftagent.logrotate")).unwrap();
    assert_eq!(deb, std::fs::read(repo("rpm/ftagent.logrotate")).unwrap());
    let text = String::from_utf8_lossy(&deb);
    let directives: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    assert!(!directives.contains(&"copytruncate"), "the event log must not be copied and truncated");
    assert!(directives.contains(&"nocreate"), "the agent creates the new files with its own owner and mode");
    // §13: in the service user's directories logrotate works as that user.
    let stanzas: Vec<&str> = text.split('}').filter(|s| s.contains('{')).collect();
    for s in &stanzas {
        let owned_by_service = s.contains("/var/lib/ftagent/") || s.contains("/var/log/ftagent/");
        let su = s.lines().any(|l| l.trim() == "su ftagent ftagent");
        assert_eq!(su, owned_by_service, "`su ftagent ftagent` exactly where the service owns the directory:\n{s}");
    }
    assert!(stanzas.iter().any(|s| s.contains("/var/lib/ftagent/events.jsonl")));
}

#[test]
fn logrotate_rotates_both_files_and_the_agent_writes_to_the_new_ones() {
    assert!(util::have("logrotate"), "logrotate is needed (apt-get install logrotate)");
    let home = Home::new();
    let log = home.path().join("log/ftagent.log");
    let events = home.events_file();
    let cfg = home.write_config(serde_json::json!({
        "interface": "lo", "limited": true, "log_file": log, "grace_period_s": 1,
        // Fixed thresholds: other tests share the loopback, and its traffic must not move them.
        "dynamic_threshold": false,
    }));
    let stderr = std::fs::File::create(home.path().join("stderr.txt")).unwrap();
    let mut agent = Reap(
        home.command()
            .args(["--no-update-check", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    );
    let before = wait_file(&log, Duration::from_secs(10), |t| t.contains("detection active"));
    assert!(before.contains("detection starts after the 1 s grace period"), "{before}");
    assert!(before.contains("detection active on lo: thresholds 5000 pps / 50.0 Mbit/s"), "{before}");
    assert!(util::wait_for_event(&events, "agent_start", Duration::from_secs(5)).is_some());

    let record = home.path().join("systemctl-calls");
    let bin = fake_systemctl(home.path(), agent.0.id(), &record);
    let conf = home.path().join("logrotate.conf");
    std::fs::write(&conf, stanza_for(&[&log, &events])).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(home.path().join("logrotate.state"))
        .arg(&conf)
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(out.status.success(), "logrotate: {}", String::from_utf8_lossy(&out.stderr));
    let calls = std::fs::read_to_string(&record).unwrap_or_default();
    assert_eq!(calls.trim(), "kill --signal=HUP --kill-whom=main ftagent.service", "postrotate ran once");

    let new_log = wait_file(&log, Duration::from_secs(5), |t| t.contains("SIGHUP"));
    assert!(new_log.contains("reopening the log file and the event log"), "new log file: {new_log:?}");
    let new_events = wait_file(&events, Duration::from_secs(3), |_| events.exists());
    assert!(events.exists() && new_events.is_empty(), "the event log is recreated empty: {new_events:?}");
    assert_eq!(std::fs::metadata(&events).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(util::terminate(&mut agent.0, Duration::from_secs(5)).is_some_and(|s| s.success()));

    let rotated_log = std::fs::read_to_string(log.with_extension("log.1")).unwrap();
    assert!(rotated_log.contains("started: interface lo") && !rotated_log.contains("SIGHUP"), "{rotated_log}");
    let rotated_events = util::read_events(&events.with_extension("jsonl.1"));
    assert!(rotated_events.iter().any(|e| e["event"] == "agent_start"), "{rotated_events:?}");
    assert!(!rotated_events.iter().any(|e| e["event"] == "agent_stop"), "agent_stop went to the rotated file");
    let after = util::read_events(&events);
    assert!(after.iter().any(|e| e["event"] == "agent_stop"), "agent_stop in the new event log: {after:?}");
    assert!(std::fs::read_to_string(&log).unwrap().contains("received signal 15"));

    let err = std::fs::read(home.path().join("stderr.txt")).unwrap();
    let text = String::from_utf8_lossy(&err);
    assert!(text.contains("[INFO]") && text.contains("detection active"), "stderr: {text}");
    assert!(!err.contains(&0x1b), "escape codes in stderr redirected to a file: {text:?}");
}

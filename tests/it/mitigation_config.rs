//! The `mitigation` object in every build: a bad value exits 78 naming the key; a process that
//! may not change nftables (an ordinary user, or limited mode) says so in one log line and runs.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::util::{self, Home};

#[test]
fn bad_mitigation_values_exit_78_naming_the_key() {
    for (m, key, hint) in [
        (json!({"mode": "always"}), "mitigation.mode", "dry_run"),
        (json!({"ttl_s": 0}), "mitigation.ttl_s", "1..=86400"),
        (json!({"allowlist": ["10.0.0.0/40"]}), "mitigation.allowlist", "CIDR"),
        (json!({"hook": {"argv": "/bin/sh -c 'x'"}}), "mitigation.hook.argv", "no shell"),
        (json!({"bgp": {"engine": "exabgp", "community": "64512:1"}}), "mitigation.bgp.engine", "gobgp"),
        (json!({"bgp": {"engine": "gobgp"}}), "mitigation.bgp.community", "required"),
        (json!({"bgp": {"community": "64512:1", "networks": ["0.0.0.0/0"]}}), "mitigation.bgp.networks", "/0"),
    ] {
        let home = Home::new();
        let cfg = home.write_config(json!({"mitigation": m}));
        let out = util::run(home.command().arg("--config").arg(&cfg));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{err}");
        assert!(err.contains(key) && err.contains(hint) && err.contains("config.json"), "{key}: {err}");
        assert!(err.contains("line "), "located in the file: {err}");
    }
}

/// Run the agent briefly with enforce mode; its stderr.
fn run_briefly(home: &Home, mut cmd: std::process::Command) -> String {
    let log = home.path().join("stderr.log");
    let mut child = cmd.stderr(std::fs::File::create(&log).unwrap()).stdout(Stdio::null()).spawn().unwrap();
    let start = util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let status = util::terminate(&mut child, Duration::from_secs(5));
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(start.is_some(), "the agent runs: {stderr}");
    assert!(status.is_some_and(|s| s.success()), "{stderr}");
    stderr
}

#[test]
fn without_cap_net_admin_one_line_says_mitigation_is_off_and_the_agent_runs() {
    let home = Home::new();
    let cfg = home.write_config(json!({"mitigation": {"mode": "enforce"}}));
    std::fs::create_dir_all(home.state()).unwrap();
    let mut cmd = home.unprivileged();
    cmd.args(["--no-update-check", "--config"]).arg(&cfg);
    let stderr = run_briefly(&home, cmd);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("mitigation off")).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    if cfg!(feature = "capture-scapy") || cfg!(feature = "capture-tcpdump") {
        assert!(
            lines[0].contains("CAP_NET_ADMIN")
                && lines[0].contains("AmbientCapabilities")
                && !lines[0].contains("setcap"),
            "{}",
            lines[0]
        );
    } else {
        assert!(lines[0].contains("no packet capture"), "{}", lines[0]);
    }
}

#[test]
fn limited_mode_turns_mitigation_off_with_one_line() {
    let home = Home::new();
    let cfg = home.write_config(json!({"limited": true, "mitigation": {"mode": "dry_run"}}));
    let mut cmd = home.command();
    cmd.args(["--no-update-check", "--config"]).arg(&cfg);
    let stderr = run_briefly(&home, cmd);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("mitigation off")).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].contains("limited") || lines[0].contains("no packet capture"), "{}", lines[0]);
}

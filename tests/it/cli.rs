//! The binary's command-line contract (§2, §3): version, exit codes, config errors, defaults.

use std::time::Duration;

use crate::util::{self, Home};

#[test]
fn version_prints_name_and_semver() {
    let out = util::run(Home::new().command().arg("--version"));
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("ftagent {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_flag_is_a_usage_error() {
    let out = util::run(Home::new().command().arg("--no-such-flag"));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn two_actions_are_a_usage_error() {
    let out = util::run(Home::new().command().args(["--test", "--update"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--test and --update"));
}

#[test]
fn broken_config_exits_78_naming_file_line_and_column() {
    let home = Home::new();
    std::fs::write(home.config_path(), "{\n  \"interface\": \"eth0\",\n  \"confirm_ticks\": 2,,\n}\n").unwrap();
    let out = util::run(home.command().arg("--config").arg(home.config_path()));
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&home.config_path().display().to_string()), "{err}");
    assert!(err.contains("line 3, column 22"), "{err}");
}

#[test]
fn out_of_range_value_exits_78_naming_key_and_range() {
    let home = Home::new();
    let cfg = home.write_config(serde_json::json!({"sample_interval_ms": 5}));
    let out = util::run(home.command().arg("--config").arg(cfg));
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sample_interval_ms") && err.contains("100..=10000"), "{err}");
}

#[test]
fn missing_explicit_config_exits_78() {
    let home = Home::new();
    let out = util::run(home.command().arg("--config").arg(home.path().join("absent.json")));
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.json"));
}

#[test]
fn no_config_at_all_runs_limited_and_writes_the_default_event_log() {
    let home = Home::new();
    let mut child = home.unprivileged().arg("--no-update-check").stderr(std::process::Stdio::null()).spawn().unwrap();
    let log = home.path().join(".local/state/ftagent/events.jsonl");
    let start = util::wait_for_event(&log, "agent_start", Duration::from_secs(10));
    let status = util::terminate(&mut child, Duration::from_secs(5)).expect("exits within 5 s of SIGTERM");
    assert!(status.success(), "{status:?}");
    let start = start.expect("agent_start in the default event log");
    assert_eq!(start["mode"], "limited");
    assert!(start["capture_reason"].as_str().is_some());
    let events = util::read_events(&log);
    assert_eq!(events.last().unwrap()["event"], "agent_stop");
    assert!(home.path().join(".local/state/ftagent/baseline.json").exists(), "baseline saved at exit");
}

#[test]
fn unknown_keys_are_warned_about_not_fatal() {
    let home = Home::new();
    let cfg = home.write_config(serde_json::json!({"pcap_filter": "udp", "events_file": ""}));
    let out = util::run(home.command().arg("--config").arg(cfg).arg("--test"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown config keys: pcap_filter"), "{err}");
    // Not fatal: the run goes on and `--test` succeeds (events_file "" leaves no sink, so the
    // event log is kept on for this check).
    let cfg = home.write_config(serde_json::json!({"pcap_filter": "udp"}));
    let out = util::run(home.command().arg("--config").arg(cfg).arg("--test"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown config keys: pcap_filter"), "{err}");
    assert_eq!(out.status.code(), Some(0), "an unknown key must not fail the run: {err}");
}

#[test]
fn test_flag_reports_the_event_log_sink() {
    let home = Home::new();
    let cfg = home.write_config(serde_json::json!({}));
    let out = util::run(home.command().arg("--config").arg(cfg).arg("--test"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("event log") && stdout.contains("OK"), "{stdout}");
    let names: Vec<String> = home.events().iter().map(|e| e["event"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, vec!["incident_open", "incident_resolve"]);
    assert!(home.events().iter().all(|e| e["test"] == true));
}

#[test]
fn test_flag_fails_when_the_event_log_cannot_be_written() {
    let home = Home::new();
    let cfg = home.write_config(serde_json::json!({"events_file": "/dev/full"}));
    let out = util::run(home.command().arg("--config").arg(cfg).arg("--test"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAILED"));
}

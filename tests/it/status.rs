//! `--status` (§6.6) against a real agent: the agent runs in namespace `a` of a veth pair and
//! reads its real `/proc/net/dev`; `--status --json` is the real binary reading the state file.
//! Without an agent (never started, stopped, or a stale file of a dead pid) the exit code is 3.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{self, Home, NetnsPair, Reap};

fn status_json(home: &Home, cfg: &Path) -> (Option<i32>, Value) {
    let out = util::run(home.command().args(["--status", "--json", "--config"]).arg(cfg));
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), v)
}

/// Poll `--status --json` until `pred` holds on a running agent's answer.
fn wait_status(home: &Home, cfg: &Path, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (code, v) = status_json(home, cfg);
        if code == Some(0) && pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "--status never showed what was expected; last (exit {code:?}): {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn status_json_of_an_agent_in_a_namespace_shows_mode_interface_thresholds_and_the_incident() {
    let _flood = util::flood_lock();
    let Some(pair) = NetnsPair::create() else { return };
    assert!(util::have("hping3"), "hping3 is needed for the flood (apt-get install hping3)");
    let home = Home::new();
    let cfg = home.write_config(serde_json::json!({
        "interface": pair.veth_a,
        "baseline_window_s": 10,
        "grace_period_s": 4,
        "min_pps_threshold": 3000,
        "limited": true,
    }));
    let mut agent = Reap(pair.spawn_agent(&home, &cfg));
    let first = wait_status(&home, &cfg, Duration::from_secs(10), |_| true);
    assert_eq!(first["running"], true);
    assert_eq!(first["mode"], "limited");
    assert_eq!(first["interface"], pair.veth_a.as_str());
    assert_eq!(first["thresholds"]["pps"], 3000.0, "{first}");
    assert_eq!(first["thresholds"]["bps"], 50e6, "{first}");
    assert_eq!(first["baseline"]["detection_active"], false, "{first}");
    let grace = first["baseline"]["grace_left_s"].as_f64().unwrap();
    assert!(grace > 0.0 && grace <= 4.0, "grace left {grace}");
    assert_eq!(first["mitigations"], serde_json::json!([]));
    assert_eq!(first["pid"], agent.0.id());
    let file = home.state().join("status.json");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    wait_status(&home, &cfg, Duration::from_secs(8), |v| v["baseline"]["detection_active"] == true);
    let mut flood = pair.udp_flood(4, 9);
    let during = wait_status(&home, &cfg, Duration::from_secs(6), |v| v["incident"]["label"] == "udp_flood");
    let _ = flood.wait();
    let rx = during["rates"]["rx_pps"].as_f64().unwrap();
    let inc = &during["incident"];
    assert!(inc["id"].as_str().is_some_and(|id| id.len() == 36), "{inc}");
    assert!(inc["duration_s"].as_f64().is_some(), "{inc}");
    let text = util::run(home.command().args(["--status", "--config"]).arg(&cfg));
    assert_eq!(text.status.code(), Some(0));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("interface   {}", pair.veth_a)), "{text}");

    assert!(util::terminate(&mut agent.0, Duration::from_secs(5)).is_some_and(|s| s.success()));
    let (code, after) = status_json(&home, &cfg);
    assert_eq!(code, Some(3), "{after}");
    assert_eq!(after["running"], false);
    eprintln!("--status during a veth flood: rx {rx:.0} pps, incident {}", inc["id"]);
}

#[test]
fn status_without_an_agent_exits_3_and_says_why() {
    let home = Home::new();
    let cfg = home.write_config(serde_json::json!({}));
    let out = util::run(home.command().args(["--status", "--config"]).arg(&cfg));
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no agent is running") && err.contains("no state file"), "{err}");
    let out = util::run(home.command().args(["--top", "--config"]).arg(&cfg));
    assert_eq!(out.status.code(), Some(3), "--top without an agent");
}

#[test]
fn a_fresh_state_file_of_a_dead_pid_is_not_a_running_agent() {
    let home = Home::new();
    let cfg = home.write_config(serde_json::json!({}));
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    std::fs::create_dir_all(home.state()).unwrap();
    let snap = serde_json::json!({ "pid": pid, "updated_unix_ms": now_ms, "mode": "limited" });
    std::fs::write(home.state().join("status.json"), snap.to_string()).unwrap();
    let (code, v) = status_json(&home, &cfg);
    assert_eq!(code, Some(3), "{v}");
    assert!(v["reason"].as_str().unwrap_or_default().contains("no longer running"), "{v}");
}

#[test]
fn a_stopped_agent_whose_file_goes_stale_is_not_running() {
    let home = Home::new();
    let cfg = home.write_config(serde_json::json!({ "interface": "lo", "limited": true }));
    let mut agent = home.spawn_agent(&cfg);
    wait_status(&home, &cfg, Duration::from_secs(10), |v| v["interface"] == "lo");
    // SAFETY: kill(2) on our own child with valid signals.
    unsafe { libc::kill(agent.0.id() as i32, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_secs(6));
    let (code, v) = status_json(&home, &cfg);
    // SAFETY: as above.
    unsafe { libc::kill(agent.0.id() as i32, libc::SIGCONT) };
    assert_eq!(code, Some(3), "{v}");
    assert!(v["reason"].as_str().unwrap_or_default().contains("not responding"), "{v}");
    wait_status(&home, &cfg, Duration::from_secs(5), |_| true);
    assert!(util::terminate(&mut agent.0, Duration::from_secs(5)).is_some_and(|s| s.success()));
}

#[test]
fn a_state_file_this_user_cannot_read_is_an_error_not_no_agent() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        util::skip("needs root to make a file another user cannot read (CI runs as root)");
        return;
    }
    let home = Home::new();
    let cfg = home.write_config(serde_json::json!({}));
    std::fs::create_dir_all(home.state()).unwrap();
    let file = home.state().join("status.json");
    std::fs::write(&file, "{}").unwrap();
    let mut cmd = home.unprivileged(); // hands the tree to nobody
    std::os::unix::fs::chown(&file, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = util::run(cmd.args(["--status", "--config"]).arg(&cfg));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("status.json") && err.contains("as root or as the agent's user"), "{err}");
}

/// Capture builds: while an incident is open, the state file (and so `--top`) carries the
/// incident's top sources and ports from its packet evidence.
#[cfg(feature = "capture-scapy")]
#[test]
fn capture_build_status_shows_the_incidents_top_sources_and_ports() {
    let _flood = util::flood_lock();
    let Some(pair) = NetnsPair::create() else { return };
    assert!(util::have("hping3"), "hping3 is needed for the flood (apt-get install hping3)");
    let home = Home::new();
    let cfg = home.write_config(serde_json::json!({
        "interface": pair.veth_a, "baseline_window_s": 10, "grace_period_s": 2,
    }));
    let mut agent = Reap(pair.spawn_agent(&home, &cfg));
    wait_status(&home, &cfg, Duration::from_secs(10), |v| v["baseline"]["detection_active"] == true);
    let mut flood = pair.syn_flood(6, 8080);
    let during =
        wait_status(&home, &cfg, Duration::from_secs(8), |v| v["incident"]["top"]["top_src_ips"][0]["ip"].is_string());
    let _ = flood.wait();
    assert_eq!(during["mode"], "capture-scapy", "{during}");
    let top = &during["incident"]["top"];
    assert_eq!(top["top_src_ips"][0]["ip"], pair.addr_b.as_str(), "{top}");
    assert_eq!(top["top_dst_ports"][0]["port"], 8080, "{top}");
    assert!(util::terminate(&mut agent.0, Duration::from_secs(5)).is_some_and(|s| s.success()));
}

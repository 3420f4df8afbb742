//! Step definitions for `features/limited.feature`: the real binary, a temp home, a fake /proc.

use std::path::PathBuf;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use cucumber::{given, then, when, World};
use serde_json::{json, Value};

use super::fakeproc::FakeProc;
use crate::util::{self, Home};

#[derive(Debug, Default, World)]
pub struct AgentWorld {
    home: Option<Home>,
    proc_: Option<FakeProc>,
    child: Option<Child>,
    output: Option<Output>,
    events_file: Option<PathBuf>,
}

impl Drop for AgentWorld {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            util::terminate(c, Duration::from_secs(5));
        }
    }
}

impl AgentWorld {
    fn home(&mut self) -> &Home {
        self.home.get_or_insert_with(Home::new)
    }

    fn events(&self) -> Vec<Value> {
        util::read_events(self.events_file.as_ref().expect("agent started"))
    }

    fn wait(&self, name: &str, secs: u64) -> Option<Value> {
        util::wait_for_event(self.events_file.as_ref().expect("agent started"), name, Duration::from_secs(secs))
    }

    /// Wait until the event log holds `n` events named `name`; return the last.
    fn wait_nth(&self, name: &str, n: usize, secs: u64) -> Option<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let found: Vec<Value> = self.events().into_iter().filter(|e| e["event"] == name).collect();
            if found.len() >= n {
                return found.last().cloned();
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start the agent on the fake /proc with the given grace period.
    fn start_on_fake_proc(&mut self, grace_s: u64) {
        let root = self.proc_.as_ref().expect("fake proc").root.clone();
        let home = self.home();
        let cfg = home.write_config(json!({
            "procfs_root": root,
            "limited": true,
            "interface": "eth0",
            "sample_interval_ms": 100,
            "grace_period_s": grace_s,
            "baseline_window_s": 5,
            "holddown_ticks": 10,
            "cooldown_s": 0,
        }));
        let events = home.events_file();
        let child = home
            .command()
            .args(["--no-update-check", "--config"])
            .arg(cfg)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ftagent");
        self.child = Some(child);
        self.events_file = Some(events);
    }

    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take().expect("running agent");
        util::terminate(&mut c, Duration::from_secs(5))
    }
}

#[given("an ordinary user with no ftagent config at all")]
async fn no_config(w: &mut AgentWorld) {
    w.home();
}

#[when("the user starts ftagent")]
async fn user_starts(w: &mut AgentWorld) {
    let home = w.home();
    let events = home.path().join(".local/state/ftagent/events.jsonl");
    let child = home.unprivileged().arg("--no-update-check").stderr(Stdio::null()).spawn().expect("spawn");
    w.child = Some(child);
    w.events_file = Some(events);
}

#[then(expr = "the event log in the user's state directory records {string}")]
async fn records(w: &mut AgentWorld, name: String) {
    assert!(w.wait(&name, 10).is_some(), "no {name} in {:?}", w.events_file);
}

#[then(expr = "the agent runs in {string} mode and says why capture is off")]
async fn runs_in_mode(w: &mut AgentWorld, mode: String) {
    let start = w.wait("agent_start", 10).expect("agent_start");
    assert_eq!(start["mode"], mode.as_str());
    assert!(start["capture_reason"].as_str().is_some_and(|r| !r.is_empty()), "{start}");
}

#[then(expr = "on SIGTERM the agent records {string} and exits with status 0 within 5 seconds")]
async fn sigterm(w: &mut AgentWorld, name: String) {
    let status = w.stop().expect("exited within 5 s");
    assert!(status.success(), "{status:?}");
    assert_eq!(w.events().last().map(|e| e["event"].clone()), Some(json!(name)));
}

#[given(expr = "a host whose counters show {int} packets per second of normal traffic")]
async fn normal_traffic(w: &mut AgentWorld, pps: u64) {
    let root = w.home().path().join("proc");
    w.proc_ = Some(FakeProc::start(root, pps));
}

#[given(expr = "ftagent watches that host with a {int} second grace period")]
async fn watches(w: &mut AgentWorld, grace_s: u64) {
    w.start_on_fake_proc(grace_s);
    assert!(w.wait("agent_start", 10).is_some(), "agent did not start");
    // Learn past the grace period.
    std::thread::sleep(Duration::from_millis(grace_s * 1000 + 1000));
}

fn flood(w: &AgentWorld, pps: u64) {
    let p = w.proc_.as_ref().expect("fake proc");
    let normal = p.pps.load(std::sync::atomic::Ordering::Relaxed);
    p.set(normal + pps, pps);
}

#[when(expr = "a UDP flood of {int} packets per second to a closed port arrives")]
async fn flood_arrives(w: &mut AgentWorld, pps: u64) {
    flood(w, pps);
}

#[given(expr = "a UDP flood of {int} packets per second to a closed port has been detected")]
async fn flood_detected(w: &mut AgentWorld, pps: u64) {
    flood(w, pps);
    assert!(w.wait("incident_open", 5).is_some(), "flood not detected");
}

#[then(expr = "an {string} event is recorded within {int} seconds")]
async fn recorded_within(w: &mut AgentWorld, name: String, secs: u64) {
    assert!(w.wait(&name, secs).is_some(), "no {name} within {secs} s: {:?}", w.events());
}

#[then(expr = "the incident is labelled {string} from {string}")]
async fn labelled(w: &mut AgentWorld, family: String, by: String) {
    let open = w.wait("incident_open", 5).expect("incident_open");
    assert_eq!(open["attack_family"], family.as_str(), "{open}");
    assert_eq!(open["classified_by"], by.as_str(), "{open}");
}

#[when(expr = "the traffic goes back to {int} packets per second")]
async fn calms(w: &mut AgentWorld, pps: u64) {
    w.proc_.as_ref().expect("fake proc").set(pps, 0);
}

#[then(expr = "an {string} event is recorded with reason {string}")]
async fn recorded_with_reason(w: &mut AgentWorld, name: String, reason: String) {
    let e = w.wait(&name, 10).unwrap_or_else(|| panic!("no {name}: {:?}", w.events()));
    assert_eq!(e["reason"], reason.as_str());
}

#[then(expr = "it names the same incident as the {string} event")]
async fn same_incident(w: &mut AgentWorld, other: String) {
    let resolve = w.wait("incident_resolve", 1).expect("resolve");
    let open = w.wait(&other, 1).expect("open");
    assert_eq!(resolve["incident_id"], open["incident_id"]);
}

#[given("ftagent has learned that host's traffic and was stopped with SIGTERM")]
async fn learned_and_stopped(w: &mut AgentWorld) {
    w.start_on_fake_proc(1);
    assert!(w.wait("agent_start", 10).is_some());
    std::thread::sleep(Duration::from_millis(2500));
    assert!(w.stop().is_some_and(|s| s.success()));
    assert!(w.home().state().join("baseline.json").exists(), "baseline saved at exit");
}

#[when(expr = "ftagent starts again with a {int} second grace period")]
async fn starts_again(w: &mut AgentWorld, grace_s: u64) {
    w.start_on_fake_proc(grace_s);
    assert!(w.wait_nth("agent_start", 2, 10).is_some(), "second start not recorded");
}

#[then(expr = "the {string} event says the saved baseline was restored")]
async fn restored(w: &mut AgentWorld, name: String) {
    let start = w.wait_nth(&name, 2, 1).expect("second agent_start");
    assert_eq!(start["baseline_restored"], true, "{start}");
}

#[then(expr = "a UDP flood of {int} packets per second is detected without waiting for the grace period")]
async fn detected_without_grace(w: &mut AgentWorld, pps: u64) {
    std::thread::sleep(Duration::from_millis(300));
    flood(w, pps);
    assert!(w.wait("incident_open", 3).is_some(), "not detected within 3 s of a 600 s grace period");
}

#[given(expr = "a config file with a JSON syntax error on line {int}")]
async fn broken_config(w: &mut AgentWorld, line: usize) {
    let mut text = String::from("{\n");
    for _ in 2..line {
        text.push_str("  \"interface\": \"eth0\",\n");
    }
    text.push_str("  \"limited\": yes\n}\n");
    std::fs::write(w.home().config_path(), text).unwrap();
}

#[when("ftagent is started with that config")]
async fn started_with_config(w: &mut AgentWorld) {
    let home = w.home();
    let out = home.command().arg("--config").arg(home.config_path()).output().expect("run");
    w.output = Some(out);
}

#[then(expr = "it exits with status {int}")]
async fn exits_with(w: &mut AgentWorld, code: i32) {
    assert_eq!(w.output.as_ref().expect("ran").status.code(), Some(code));
}

#[then(expr = "the error names the file, line {int} and the column")]
async fn error_names(w: &mut AgentWorld, line: usize) {
    let home_cfg = w.home().config_path().display().to_string();
    let err = String::from_utf8_lossy(&w.output.as_ref().expect("ran").stderr).into_owned();
    assert!(err.contains(&home_cfg), "{err}");
    assert!(err.contains(&format!("line {line}, column ")), "{err}");
}

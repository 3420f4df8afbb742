//! Delivery with real processes against a loopback API (§6.2–§6.4): the outage test (SIGKILL,
//! restart, SIGTERM, restart, then the API comes up), config from the API applied and cached,
//! webhook + Prometheus textfile, and shutdown with a hung API.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::apiserver::{self, Action, Recorded, Server};
use crate::fakeproc::{self, FakeProc};
use crate::util::{self, Home};

pub fn start_agent(home: &Home, cfg: &Path) -> Child {
    let log = OpenOptions::new().create(true).append(true).open(home.path().join("agent.log")).unwrap();
    home.command()
        .args(["--no-update-check", "-v", "--config"])
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn agent")
}

pub fn agent_log(home: &Home) -> String {
    std::fs::read_to_string(home.path().join("agent.log")).unwrap_or_default()
}

/// Wait until the event log holds `n` events named `name`.
pub fn wait_events(home: &Home, name: &str, n: usize, limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let found: Vec<Value> = home.events().into_iter().filter(|e| e["event"] == name).collect();
        if found.len() >= n || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn api_keys(base: &str) -> Value {
    json!({ "api_key": "ftk_test_0123456789abcdef", "node_uuid": "node-it-1", "api_base": format!("{base}/api/v1") })
}

pub fn merge(mut a: Value, b: Value) -> Value {
    if let (Value::Object(x), Value::Object(y)) = (&mut a, b) {
        x.extend(y);
    }
    a
}

/// A flood on the fake tree: high rate until `incident_open` number `n`, hold, then back to
/// normal until its resolve.
pub fn flood(home: &Home, fake: &FakeProc, n: usize, hold: Duration) -> Value {
    fake.set_pps(20_000);
    let opens = wait_events(home, "incident_open", n, Duration::from_secs(10));
    assert_eq!(opens.len(), n, "incident_open #{n}; agent log:\n{}", agent_log(home));
    std::thread::sleep(hold);
    fake.set_pps(100);
    let resolves = wait_events(home, "incident_resolve", n, Duration::from_secs(10));
    assert_eq!(resolves.len(), n, "incident_resolve #{n}");
    opens[n - 1].clone()
}

#[test]
fn outage_with_kill_and_restarts_delivers_each_incident_event_once_in_order() {
    let home = Home::new();
    let fake = FakeProc::start(home.path(), 100);
    let port = free_port();
    let cfg = home.write_config(merge(fakeproc::agent_config(&fake), api_keys(&format!("http://127.0.0.1:{port}"))));

    let mut a1 = start_agent(&home, &cfg);
    assert_eq!(wait_events(&home, "agent_start", 1, Duration::from_secs(10)).len(), 1);
    std::thread::sleep(Duration::from_millis(800));
    let open = flood(&home, &fake, 1, Duration::from_millis(5600));
    let id = open["incident_id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(300));
    a1.kill().unwrap(); // SIGKILL: nothing gets to flush
    a1.wait().unwrap();
    let spooled = std::fs::read_dir(home.state().join("spool")).unwrap().count();
    assert!(spooled > 3, "items spooled on disk while the API is down: {spooled}");

    let mut a2 = start_agent(&home, &cfg);
    assert_eq!(wait_events(&home, "agent_start", 2, Duration::from_secs(10)).len(), 2);
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    let st = util::terminate(&mut a2, Duration::from_secs(8));
    assert!(
        st.is_some_and(|s| s.success()) && t.elapsed() < Duration::from_secs(5),
        "SIGTERM exit in {:?}",
        t.elapsed()
    );

    let mut a3 = start_agent(&home, &cfg);
    assert_eq!(wait_events(&home, "agent_start", 3, Duration::from_secs(10)).len(), 3);
    std::thread::sleep(Duration::from_millis(500));
    let server = Server::http(port, apiserver::flowtriq(json!({})));
    let done = server.wait_until(Duration::from_secs(40), |r| r.iter().any(|r| r.path.ends_with("/resolve")));
    assert!(done, "resolve delivered after the API came up; log:\n{}", agent_log(&home));
    std::thread::sleep(Duration::from_millis(1500));
    util::terminate(&mut a3, Duration::from_secs(5));

    let reqs = server.requests();
    let incident: Vec<&Recorded> = reqs.iter().filter(|r| r.path.contains("/agent/incidents")).collect();
    let opens: Vec<_> = incident.iter().filter(|r| r.path.ends_with("/agent/incidents")).collect();
    assert_eq!(opens.len(), 1, "one open");
    assert_eq!(opens[0].header("idempotency-key"), Some(id.as_str()));
    assert_eq!(opens[0].json()["client_incident_id"], json!(id));
    let uuid = "srv-0001";
    let updates_logged = home.events().into_iter().filter(|e| e["event"] == "incident_update").count();
    assert!(updates_logged >= 1, "the flood lasted long enough for an update");
    let kinds: Vec<&str> = incident
        .iter()
        .map(|r| {
            if r.path.ends_with("/agent/incidents") {
                "open"
            } else if r.path == format!("/api/v1/agent/incidents/{uuid}/resolve") {
                "resolve"
            } else if r.path == format!("/api/v1/agent/incidents/{uuid}") {
                "update"
            } else {
                "other"
            }
        })
        .collect();
    let mut expected = vec!["open"];
    expected.extend(std::iter::repeat_n("update", updates_logged));
    expected.push("resolve");
    assert_eq!(kinds, expected, "open, every update, resolve: once each, in order, to the server's uuid");
    let keys: std::collections::HashSet<_> = incident.iter().map(|r| r.header("idempotency-key")).collect();
    assert_eq!(keys.len(), incident.len(), "no request was sent twice");

    // Heartbeats and metrics: none lost across the kill and restarts, sent in order.
    for path in ["/api/v1/agent/heartbeat", "/api/v1/agent/metrics"] {
        let ts: Vec<std::time::SystemTime> =
            reqs.iter().filter(|r| r.path == path).map(|r| util::event_time(&r.json())).collect();
        assert!(ts.len() >= 8, "{path}: {} received", ts.len());
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{path} in order");
        let gap = ts.windows(2).map(|w| w[1].duration_since(w[0]).unwrap_or_default()).max().unwrap();
        assert!(gap < Duration::from_secs(3), "{path}: largest gap {gap:?}");
    }
    let spool_left = std::fs::read_dir(home.state().join("spool"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json") && e.file_name() != "incidents.json")
        .count();
    assert!(spool_left <= 3, "spool drained: {spool_left} left");
}

#[test]
fn api_config_changes_the_running_agent_survives_restart_and_runs_no_command() {
    let home = Home::new();
    let fake = FakeProc::start(home.path(), 100);
    let pwned = home.path().join("pwned");
    let remote = json!({
        "pps_threshold": 1500, "dynamic_threshold": false, "confirm_ticks": 1, "attack_holddown": 1,
        "attack_cooldown": 0, "pcap_enabled": false,
        "ioc_patterns": [{"pattern": "deadbeef", "attack_name": "mirai_botnet", "attack_family": "udp_flood"}],
        "pending_commands": [{"id": 1, "command": format!("touch {}", pwned.display())}, format!("touch {}", pwned.display())]
    });
    let server = Server::http(0, apiserver::flowtriq(remote));
    // The API raises the local floor (1000) to 1500; it could not lower it (§10.1).
    let local = merge(fakeproc::agent_config(&fake), json!({ "min_pps_threshold": 1000 }));
    let cfg = home.write_config(merge(local, api_keys(&server.base)));
    let mut agent = start_agent(&home, &cfg);
    assert!(server.wait_until(Duration::from_secs(10), |r| r.iter().any(|r| r.path.ends_with("/agent/config"))));
    std::thread::sleep(Duration::from_millis(500));
    let open = flood(&home, &fake, 1, Duration::from_millis(200));
    assert_eq!(open["threshold_pps"], 1500.0, "{open}");
    assert!(home.state().join("agent_config.json").exists(), "answer cached");
    util::terminate(&mut agent, Duration::from_secs(5));
    drop(server);

    // API down now: the cached answer still applies at start.
    let mut agent = start_agent(&home, &cfg);
    assert_eq!(wait_events(&home, "agent_start", 2, Duration::from_secs(10)).len(), 2);
    std::thread::sleep(Duration::from_millis(500));
    let open = flood(&home, &fake, 2, Duration::from_millis(200));
    assert_eq!(open["threshold_pps"], 1500.0, "{open}");
    util::terminate(&mut agent, Duration::from_secs(5));
    assert!(!pwned.exists(), "a server command was executed");
    assert!(agent_log(&home).contains("never executes server commands"), "{}", agent_log(&home));
}

#[test]
fn webhook_gets_open_and_resolve_with_text_and_textfile_passes_promtool() {
    let home = Home::new();
    let fake = FakeProc::start(home.path(), 100);
    let hook = Server::http(0, Box::new(|_r: &Recorded| apiserver::ok("ok")));
    let prom = home.path().join("ftagent.prom");
    let extra = json!({ "webhook_url": format!("{}/hooks/T000/secret", hook.base), "prometheus_textfile": prom });
    let cfg = home.write_config(merge(fakeproc::agent_config(&fake), extra));
    let mut agent = start_agent(&home, &cfg);
    assert_eq!(wait_events(&home, "agent_start", 1, Duration::from_secs(10)).len(), 1);
    std::thread::sleep(Duration::from_millis(500));
    flood(&home, &fake, 1, Duration::from_millis(1200));
    assert!(hook.wait_until(Duration::from_secs(10), |r| r.len() >= 2));
    std::thread::sleep(Duration::from_millis(1200)); // one more metrics interval after the resolve
    util::terminate(&mut agent, Duration::from_secs(5));

    let bodies: Vec<Value> = hook.requests().iter().map(Recorded::json).collect();
    let names: Vec<&str> = bodies.iter().map(|b| b["event"].as_str().unwrap_or("")).collect();
    assert_eq!(names, ["incident_open", "incident_resolve"]);
    assert!(bodies[0]["text"].as_str().unwrap().contains("incident opened"), "{}", bodies[0]);
    assert!(bodies[1]["text"].as_str().unwrap().contains("resolved"), "{}", bodies[1]);
    assert_eq!(bodies[0]["incident_id"], bodies[1]["incident_id"]);
    assert!(!agent_log(&home).contains("secret"), "the webhook path is not logged");

    let text = std::fs::read_to_string(&prom).expect("textfile written");
    assert!(text.contains(&format!("ftagent_incidents_total{{interface=\"{}\"}} 1", fakeproc::IFACE)), "{text}");
    if !util::have("promtool") {
        panic!("promtool is needed (apt-get install prometheus)");
    }
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", prom.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigterm_with_a_hung_api_exits_within_5s_and_keeps_the_resolve_spooled() {
    let home = Home::new();
    let fake = FakeProc::start(home.path(), 100);
    let server = Server::http(0, Box::new(|_r: &Recorded| Action::Hang));
    let cfg = home.write_config(merge(fakeproc::agent_config(&fake), api_keys(&server.base)));
    let mut agent = start_agent(&home, &cfg);
    assert_eq!(wait_events(&home, "agent_start", 1, Duration::from_secs(10)).len(), 1);
    fake.set_pps(20_000);
    assert_eq!(wait_events(&home, "incident_open", 1, Duration::from_secs(5)).len(), 1);
    let t = Instant::now();
    let st = util::terminate(&mut agent, Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(5), "exit took {:?}", t.elapsed());
    assert!(st.is_some_and(|s| s.success()));
    let resolve = wait_events(&home, "incident_resolve", 1, Duration::ZERO);
    assert_eq!(resolve[0]["reason"], "agent_stopped");
    let spooled: Vec<Value> = std::fs::read_dir(home.state().join("spool"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('0'))
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
        .collect();
    assert!(spooled.iter().any(|i| i["kind"] == "resolve"), "the stop's resolve is on disk");
}

/// A hostile API (§10.1): a 50 MB IOC list, thresholds 0, `confirm_ticks` 0. Each is refused with
/// one log line, the last good answer stays cached and is what the next start applies, and an
/// oversized cache file does not stop the agent from starting (no crash loop).
#[test]
fn a_hostile_api_is_bounded_refused_with_one_line_each_and_the_last_good_config_kept() {
    let home = Home::new();
    let fake = FakeProc::start(home.path(), 100);
    let good = json!({"pps_threshold": 1500, "ioc_patterns": [{"pattern": "deadbeef", "attack_name": "isakmp_amplification"}]});
    // One server whose config answer each run sets.
    let answer = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let shared = answer.clone();
    let server = Server::http(
        0,
        Box::new(move |r: &Recorded| {
            if r.path.ends_with("/agent/config") {
                apiserver::ok(&shared.lock().unwrap())
            } else {
                apiserver::ok("{}")
            }
        }),
    );
    let cfg = home.write_config(merge(fakeproc::agent_config(&fake), api_keys(&server.base)));
    let run = |body: String| {
        *answer.lock().unwrap() = body;
        let asked = server.requests().iter().filter(|r| r.path.ends_with("/agent/config")).count();
        let starts = home.events().iter().filter(|e| e["event"] == "agent_start").count();
        let mut agent = start_agent(&home, &cfg);
        assert_eq!(wait_events(&home, "agent_start", starts + 1, Duration::from_secs(10)).len(), starts + 1);
        let polled = |r: &[Recorded]| r.iter().filter(|r| r.path.ends_with("/agent/config")).count() > asked;
        assert!(server.wait_until(Duration::from_secs(10), polled));
        std::thread::sleep(Duration::from_millis(700));
        let st = util::terminate(&mut agent, Duration::from_secs(5));
        assert!(st.is_some_and(|s| s.success()), "agent exits 0: {}", agent_log(&home));
    };
    run(good.to_string());
    let cached = || std::fs::read_to_string(home.state().join("agent_config.json")).unwrap_or_default();
    assert!(cached().contains("deadbeef"), "the good answer is cached");
    // 50 MB of IOC patterns.
    let big: Vec<Value> = (0..700_000).map(|i| json!({"pattern": format!("{i:0>60}"), "attack_name": "x"})).collect();
    let big = json!({"ioc_patterns": big}).to_string();
    assert!(big.len() > 50_000_000, "{}", big.len());
    run(big);
    run(json!({"pps_threshold": 0, "confirm_ticks": 0}).to_string());
    let log = agent_log(&home);
    let count = |needle: &str| log.matches(needle).count();
    assert_eq!(count("refused whole"), 1, "the 50 MB answer, one line:\n{log}");
    assert_eq!(count("under the local floor"), 1, "thresholds 0, one line:\n{log}");
    assert_eq!(count("ignoring `confirm_ticks` 0"), 1, "confirm_ticks 0, one line:\n{log}");
    assert!(cached().contains("deadbeef") && !cached().contains("confirm_ticks"), "the last good answer stays cached");
    // An oversized cache (written by anything) is set aside at start, not a crash loop.
    let huge = json!({"ioc_patterns": [{"pattern": "y".repeat(2 * 1024 * 1024)}]}).to_string();
    std::fs::write(home.state().join("agent_config.json"), huge).unwrap();
    let starts = home.events().iter().filter(|e| e["event"] == "agent_start").count();
    let mut agent = start_agent(&home, &cfg);
    let started = wait_events(&home, "agent_start", starts + 1, Duration::from_secs(10)).len();
    assert_eq!(started, starts + 1, "{}", agent_log(&home));
    assert!(agent_log(&home).contains("refusing an answer of"), "{}", agent_log(&home));
    util::terminate(&mut agent, Duration::from_secs(5));
}

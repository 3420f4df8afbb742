//! Access-log detection (§11) against a real nginx: the agent runs as an ordinary user in
//! limited mode inside namespace `a` beside nginx and follows its access log; load comes from
//! namespace `b`. Plus `--analyze` on access logs (every build, no root).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::nginx::{self, Nginx};
use crate::util::{self, Home, NetnsPair};

fn agent_config(home: &Home, pair: &NetnsPair, log: &Path) -> std::path::PathBuf {
    home.write_config(json!({
        "limited": true,
        "interface": pair.veth_a,
        "grace_period_s": 5,
        "baseline_window_s": 60,
        "sample_interval_ms": 200,
        "holddown_ticks": 10,
        "cooldown_s": 0,
        "metrics_interval": 1,
        "prometheus_textfile": home.path().join("metrics.prom"),
        "access_logs": [{"path": log, "format": "combined"}],
    }))
}

/// The running agent, stopped on drop (also when an assertion fails first).
struct Agent(Child);

impl Agent {
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        util::terminate(&mut self.0, Duration::from_secs(5))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            util::terminate(&mut self.0, Duration::from_secs(5));
        }
    }
}

/// The agent as `nobody` inside namespace `a`; its stderr goes to `agent.err` in the home.
fn spawn_unprivileged(pair: &NetnsPair, home: &Home, cfg: &Path) -> Agent {
    let err = std::fs::File::create(home.path().join("agent.err")).unwrap();
    util::chown_tree(home.path(), util::NOBODY);
    let child = Command::new("ip")
        .args(["netns", "exec", &pair.ns_a, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--"])
        .arg(util::bin())
        .args(["--no-update-check", "--config"])
        .arg(cfg)
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawn agent");
    let child = Agent(child);
    let started = util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(10));
    assert!(started.is_some(), "agent_start: {}", agent_err(home));
    child
}

fn agent_err(home: &Home) -> String {
    std::fs::read_to_string(home.path().join("agent.err")).unwrap_or_default()
}

/// The `n`th http_flood event named `name` (1-based), waiting up to `limit`.
fn wait_http(home: &Home, name: &str, n: usize, limit: Duration) -> Option<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let found: Vec<Value> =
            home.events().into_iter().filter(|e| e["event"] == name && e["attack_family"] == "http_flood").collect();
        if found.len() >= n {
            return Some(found[n - 1].clone());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn latency(open: &Value, onset: SystemTime) -> Duration {
    util::event_time(open).duration_since(onset).unwrap_or_default()
}

#[test]
fn http_floods_against_real_nginx_open_within_two_seconds_with_their_subtype() {
    let _flood = util::flood_lock();
    let Some(pair) = nginx::netns_pair() else { return };
    let web = Nginx::start(&pair);
    let home = Home::new();
    let mut agent = spawn_unprivileged(&pair, &home, &agent_config(&home, &pair, &web.log()));

    // 20 s of light traffic, then a keep-alive flood of ~1,500 requests/s from one address.
    let light = nginx::paced(&pair, std::slice::from_ref(&pair.addr_b), 20.0, 20.0, "/");
    assert!(nginx::paced_requests(light) > 300, "light traffic did not get through");
    assert!(wait_http(&home, "incident_open", 1, Duration::ZERO).is_none(), "light traffic opened an incident");
    let onset = SystemTime::now();
    let flood = nginx::wrk(&pair, &web, 5, "/");
    let open = wait_http(&home, "incident_open", 1, Duration::from_secs(6));
    let sent = nginx::wrk_requests(flood);
    let open = open.unwrap_or_else(|| panic!("no http_flood incident ({sent} requests sent): {}", agent_err(&home)));
    let single = latency(&open, onset);
    assert_eq!(open["layer"], 7);
    assert_eq!(open["classified_by"], "access_log");
    assert_eq!(open["direction"], "inbound");
    assert_eq!(open["attack_subtype"], "single_source", "{open}");
    assert_eq!(open["top_client_ips"][0]["ip"], pair.addr_b.as_str(), "{open}");
    assert!(single <= Duration::from_secs(2), "incident_open {single:?} after onset");
    let resolve = wait_http(&home, "incident_resolve", 1, Duration::from_secs(10)).expect("resolves after the flood");
    assert_eq!(resolve["incident_id"], open["incident_id"]);

    // ~1,500 requests/s from 20 addresses, all at one path.
    let sources = nginx::add_sources(&pair, 20);
    let onset = SystemTime::now();
    let flood = nginx::paced(&pair, &sources, 1500.0, 5.0, "/search");
    let open2 = wait_http(&home, "incident_open", 2, Duration::from_secs(6));
    let sent2 = nginx::paced_requests(flood);
    let open2 = open2.unwrap_or_else(|| panic!("no second incident ({sent2} requests sent): {}", agent_err(&home)));
    let path = latency(&open2, onset);
    assert_eq!(open2["attack_subtype"], "path_flood", "{open2}");
    assert_eq!(open2["top_paths"][0]["path"], "/search");
    let clients = open2["top_client_ips"].as_array().unwrap();
    assert!(clients.len() >= 10 && clients[0]["share"].as_f64().unwrap() < 0.2, "{open2}");
    assert!(path <= Duration::from_secs(2), "path flood incident_open {path:?} after onset");
    assert!(agent.stop().is_some_and(|s| s.success()));
    eprintln!(
        "http floods: single_source ({sent} req, {} req/s) opened {single:?} after onset; \
         path_flood from 20 sources ({sent2} req, {} req/s) opened {path:?} after onset",
        open["requests_per_second"], open2["requests_per_second"]
    );
}

/// `ftagent_http_requests_total` from the textfile.
fn requests_total(home: &Home) -> Option<u64> {
    let text = std::fs::read_to_string(home.path().join("metrics.prom")).ok()?;
    text.lines().find(|l| l.starts_with("ftagent_http_requests_total{"))?.rsplit_once(' ')?.1.parse().ok()
}

/// The total once it stops moving.
fn settled_total(home: &Home) -> u64 {
    let mut last = None;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(1100));
        let now = requests_total(home);
        if let Some(n) = now.filter(|_| now == last) {
            return n;
        }
        last = now;
    }
    panic!("ftagent_http_requests_total never settled: {last:?}");
}

#[test]
fn rotation_by_rename_and_copytruncate_loses_at_most_a_second_and_rereads_nothing() {
    let _flood = util::flood_lock();
    let Some(pair) = nginx::netns_pair() else { return };
    let web = Nginx::start(&pair);
    // History the agent must never read.
    let history = nginx::paced_requests(nginx::paced(&pair, std::slice::from_ref(&pair.addr_b), 400.0, 1.0, "/old"));
    assert!(history > 200);
    let home = Home::new();
    let mut agent = spawn_unprivileged(&pair, &home, &agent_config(&home, &pair, &web.log()));
    let log = web.log();
    let dir = web.dir.path();

    let t0 = Instant::now();
    let flood = nginx::wrk(&pair, &web, 12, "/");
    std::thread::sleep(Duration::from_secs(4));
    // logrotate's default: rename, then tell the server to reopen.
    std::fs::rename(&log, dir.join("access.log.1")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    web.reopen_logs();
    std::thread::sleep(Duration::from_secs(8).saturating_sub(t0.elapsed()));
    // copytruncate: copy, then truncate in place while nginx keeps appending.
    std::fs::copy(&log, dir.join("access.log.2")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
    let sent = nginx::wrk_requests(flood);
    let read = settled_total(&home);
    assert!(agent.stop().is_some_and(|s| s.success()));

    let (l1, l2, l3) = (
        nginx::count_lines(&dir.join("access.log.1")),
        nginx::count_lines(&dir.join("access.log.2")),
        nginx::count_lines(&log),
    );
    assert!(l1 > history && l2 > 0 && l3 > 0, "rotations did not happen: {l1} {l2} {l3}");
    let rate = sent / 12;
    eprintln!(
        "rotation: wrk sent {sent} (~{rate}/s), agent read {read}; files {l1} + {l2} + {l3} lines, {history} history"
    );
    // wrk may leave up to one request per connection uncounted at its end.
    assert!(read <= sent + 8, "lines read twice (or history read): read {read}, sent {sent}");
    assert!(read + rate >= sent, "more than one second of lines lost: read {read}, sent {sent}");
}

const COMBINED_LOG: &str = "\
10.0.0.1 - - [01/Dec/2026:07:50:01 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"Mozilla/5.0\"
10.0.0.2 - - [01/Dec/2026:07:50:01 +0000] \"GET /search?q=1 HTTP/1.1\" 200 5 \"-\" \"bot/1\"
10.0.0.2 - - [01/Dec/2026:07:50:02 +0000] \"GET /search?q=2 HTTP/1.1\" 503 5 \"-\" \"bot/1\"
10.0.0.2 - - [01/Dec/2026:07:50:02 +0000] \"GET /search?q=3 HTTP/1.1\" 503 5 \"-\" \"bot/1\"
\\x16\\x03\\x01 garbage
";

#[test]
fn analyze_summarises_an_access_log_in_every_build() {
    let home = Home::new();
    let log = home.path().join("access.log");
    std::fs::write(&log, COMBINED_LOG).unwrap();
    let out = util::run(home.command().arg("--analyze").arg(&log).arg("--json"));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["kind"], "access_log");
    assert_eq!(v["format"], "combined");
    assert_eq!(
        (v["lines"].as_u64(), v["requests"].as_u64(), v["malformed_lines"].as_u64()),
        (Some(5), Some(4), Some(1))
    );
    assert_eq!((v["seconds"].as_u64(), v["peak_requests_per_second"].as_u64()), (Some(2), Some(2)));
    assert_eq!(v["attack_subtype"], "single_source");
    assert_eq!(v["top_client_ips"][0], json!({"ip": "10.0.0.2", "count": 3, "share": 0.75}));
    assert_eq!(v["top_paths"][0]["path"], "/search");
    assert_eq!(v["status_mix"], json!({"2xx": 2, "5xx": 2}));
    let out = util::run(home.command().arg("--analyze").arg(&log));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("access log, combined format"), "{text}");
    assert!(text.contains("top clients: 10.0.0.2 (3, 75 %)"), "{text}");

    let caddy = home.path().join("caddy.log");
    std::fs::write(
        &caddy,
        r#"{"level":"info","ts":1764575401.5,"msg":"handled request","request":{"client_ip":"10.9.9.9","uri":"/wp-login.php","headers":{"User-Agent":["x"]}},"status":404}
"#,
    )
    .unwrap();
    let out = util::run(home.command().arg("--analyze").arg(&caddy).arg("--json"));
    let v: Value = serde_json::from_slice(&out.stdout).expect("caddy summary");
    assert_eq!((v["format"].as_str(), v["requests"].as_u64()), (Some("caddy"), Some(1)));
    assert_eq!(v["top_paths"][0]["path"], "/wp-login.php");
}

/// Capture builds: the access-log thread runs beside in-process capture, as root.
#[cfg(feature = "capture-scapy")]
#[test]
fn http_flood_is_detected_beside_packet_capture() {
    let _flood = util::flood_lock();
    let Some(pair) = nginx::netns_pair() else { return };
    let web = Nginx::start(&pair);
    let home = Home::new();
    let cfg = home.write_config(json!({
        "interface": pair.veth_a,
        "grace_period_s": 2,
        "baseline_window_s": 60,
        "holddown_ticks": 10,
        "pcap_dir": home.path().join("pcaps"),
        "access_logs": [{"path": web.log(), "format": "combined"}],
    }));
    let err = std::fs::File::create(home.path().join("agent.err")).unwrap();
    let child = NetnsPair::exec(&pair.ns_a, &util::bin())
        .args(["--no-update-check", "--config"])
        .arg(&cfg)
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawn agent");
    let mut agent = Agent(child);
    let start = util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(10)).expect("agent_start");
    assert_eq!(start["mode"], "capture-scapy", "{start}: {}", agent_err(&home));
    std::thread::sleep(Duration::from_secs(3)); // past the grace period
    let onset = SystemTime::now();
    let flood = nginx::wrk(&pair, &web, 4, "/");
    let open = wait_http(&home, "incident_open", 1, Duration::from_secs(5));
    let _ = nginx::wrk_requests(flood);
    let open = open.unwrap_or_else(|| panic!("no http_flood beside capture: {}", agent_err(&home)));
    assert_eq!((open["layer"].as_u64(), open["attack_subtype"].as_str()), (Some(7), Some("single_source")));
    assert!(latency(&open, onset) <= Duration::from_secs(2), "{:?}", latency(&open, onset));
    assert!(agent.stop().is_some_and(|s| s.success()));
}

/// Builds without capture still tell a capture file from a log, and say why they cannot read it.
#[cfg(not(any(feature = "capture-scapy", feature = "capture-tcpdump")))]
#[test]
fn analyze_of_a_capture_file_in_a_build_without_capture_says_so() {
    let home = Home::new();
    let pcap = home.path().join("x.pcap");
    std::fs::write(&pcap, [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]).unwrap();
    let out = util::run(home.command().arg("--analyze").arg(&pcap));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("this build has no packet capture"), "{err}");
}

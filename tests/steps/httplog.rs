//! Step definitions for `features/http_flood.feature`: the real binary as an ordinary user,
//! following an access log that a writer thread fills with nginx `combined` lines at a set rate
//! (the web server), like nginx would write them on a shared host.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cucumber::{given, then, when, World};
use serde_json::{json, Value};

use crate::util::{self, Home};

/// What the web server is being sent: requests/s, from which clients, to which path.
#[derive(Debug, Clone)]
struct Load {
    rps: u64,
    clients: Vec<String>,
    path: String,
}

/// A writer thread appending combined lines to the log, reopening it by path after a rename.
#[derive(Debug)]
struct WebServer {
    log: PathBuf,
    load: Arc<Mutex<Load>>,
    written: Arc<AtomicU64>,
    reopen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl WebServer {
    fn start(log: PathBuf) -> Self {
        let normal = Load { rps: 0, clients: vec!["192.0.2.10".into()], path: "/".into() };
        let s = WebServer {
            log,
            load: Arc::new(Mutex::new(normal)),
            written: Arc::default(),
            reopen: Arc::default(),
            stop: Arc::default(),
        };
        let (log, load, written, reopen, stop) =
            (s.log.clone(), s.load.clone(), s.written.clone(), s.reopen.clone(), s.stop.clone());
        std::thread::spawn(move || {
            let open = || std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("open log");
            let mut f = open();
            let t0 = Instant::now();
            let mut owed = 0f64;
            let mut last = t0;
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
                if reopen.swap(false, Ordering::SeqCst) {
                    f = open();
                }
                let l = load.lock().unwrap().clone();
                let now = Instant::now();
                owed += l.rps as f64 * now.duration_since(last).as_secs_f64();
                last = now;
                let mut batch = Vec::new();
                while owed >= 1.0 {
                    owed -= 1.0;
                    let ip = &l.clients[(n % l.clients.len() as u64) as usize];
                    let _ = writeln!(
                        batch,
                        "{ip} - - [01/Dec/2026:07:50:01 +0000] \"GET {}?n={n} HTTP/1.1\" 200 612 \"-\" \"Mozilla/5.0\"",
                        l.path
                    );
                    n += 1;
                }
                f.write_all(&batch).expect("write log");
                written.store(n, Ordering::SeqCst);
            }
        });
        s
    }

    fn set(&self, rps: u64, clients: Vec<String>, path: &str) {
        *self.load.lock().unwrap() = Load { rps, clients, path: path.into() };
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[derive(Debug, Default, World)]
pub struct HttpWorld {
    home: Option<Home>,
    web: Option<WebServer>,
    child: Option<Child>,
    onset: Option<Instant>,
    written_at_start: u64,
    flood_client: String,
}

impl Drop for HttpWorld {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            util::terminate(c, Duration::from_secs(5));
        }
    }
}

impl HttpWorld {
    fn home(&self) -> &Home {
        self.home.as_ref().expect("home")
    }

    fn web(&self) -> &WebServer {
        self.web.as_ref().expect("web server")
    }

    fn http_events(&self, name: &str) -> Vec<Value> {
        self.home().events().into_iter().filter(|e| e["event"] == name && e["attack_family"] == "http_flood").collect()
    }

    fn wait_http(&self, name: &str, limit: Duration) -> Option<Value> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(e) = self.http_events(name).into_iter().next() {
                return Some(e);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn metrics(&self) -> String {
        std::fs::read_to_string(self.home().path().join("metrics.prom")).unwrap_or_default()
    }

    fn requests_total(&self) -> Option<u64> {
        let text = self.metrics();
        text.lines().find(|l| l.starts_with("ftagent_http_requests_total{"))?.rsplit_once(' ')?.1.parse().ok()
    }
}

#[given("an ordinary user whose web server writes a combined-format access log")]
async fn web_server(w: &mut HttpWorld) {
    let home = Home::new();
    let log = home.path().join("access.log");
    w.web = Some(WebServer::start(log));
    w.home = Some(home);
}

#[given(expr = "ftagent follows that log with a {int} second grace period")]
async fn follows(w: &mut HttpWorld, grace_s: u64) {
    let home = w.home();
    let cfg = home.write_config(json!({
        "interface": "lo",
        "grace_period_s": grace_s,
        "baseline_window_s": 60,
        "sample_interval_ms": 200,
        "holddown_ticks": 10,
        "metrics_interval": 1,
        "prometheus_textfile": home.path().join("metrics.prom"),
        "access_logs": [{"path": w.web().log, "format": "combined"}],
    }));
    let child = home.unprivileged().args(["--no-update-check", "--config"]).arg(cfg).stderr(Stdio::null()).spawn();
    w.child = Some(child.expect("spawn ftagent"));
    let start = util::wait_for_event(&w.home().events_file(), "agent_start", Duration::from_secs(10));
    assert_eq!(start.expect("agent_start")["mode"], "limited");
    w.written_at_start = w.web().written.load(Ordering::SeqCst);
}

#[given(expr = "the site serves {int} requests per second of normal traffic for {int} seconds")]
async fn normal(w: &mut HttpWorld, rps: u64, secs: u64) {
    let clients = (1..=20).map(|i| format!("198.51.100.{i}")).collect();
    w.web().set(rps, clients, "/");
    std::thread::sleep(Duration::from_secs(secs));
}

#[given(expr = "one client sends {int} requests per second to {string}")]
#[when(expr = "one client sends {int} requests per second to {string}")]
async fn one_client(w: &mut HttpWorld, rps: u64, path: String) {
    w.flood_client = "203.0.113.7".into();
    w.onset = Some(Instant::now());
    w.web().set(rps, vec![w.flood_client.clone()], &path);
}

#[when(expr = "{int} clients send {int} requests per second in total to {string}")]
async fn many_clients(w: &mut HttpWorld, n: u32, rps: u64, path: String) {
    let clients = (1..=n).map(|i| format!("203.0.113.{i}")).collect();
    w.onset = Some(Instant::now());
    w.web().set(rps, clients, &path);
}

#[then(expr = "an {string} incident opens within {int} seconds")]
async fn opens_within(w: &mut HttpWorld, family: String, secs: u64) {
    assert_eq!(family, "http_flood");
    let onset = w.onset.expect("a flood started");
    let open = w.wait_http("incident_open", Duration::from_secs(secs + 3)).expect("an http_flood incident opened");
    let took =
        util::event_time(&open).duration_since(std::time::SystemTime::now() - onset.elapsed()).unwrap_or_default();
    assert!(took <= Duration::from_secs(secs), "incident_open {took:?} after onset");
}

#[given(expr = "an {string} incident has opened")]
async fn has_opened(w: &mut HttpWorld, family: String) {
    assert_eq!(family, "http_flood");
    assert!(w.wait_http("incident_open", Duration::from_secs(5)).is_some(), "no http_flood incident");
}

#[then(expr = "the incident is labelled {string} from {string} at layer {int}")]
async fn labelled(w: &mut HttpWorld, subtype: String, by: String, layer: u64) {
    let open = w.wait_http("incident_open", Duration::from_secs(1)).expect("incident_open");
    assert_eq!(open["attack_subtype"], subtype.as_str(), "{open}");
    assert_eq!(open["classified_by"], by.as_str(), "{open}");
    assert_eq!(open["layer"], layer, "{open}");
    assert_eq!(open["direction"], "inbound", "{open}");
}

#[then("that client is the top client of the incident")]
async fn top_client(w: &mut HttpWorld) {
    let open = w.wait_http("incident_open", Duration::from_secs(1)).expect("incident_open");
    assert_eq!(open["top_client_ips"][0]["ip"], w.flood_client.as_str(), "{open}");
}

#[then(expr = "{string} is the top path of the incident")]
async fn top_path(w: &mut HttpWorld, path: String) {
    let open = w.wait_http("incident_open", Duration::from_secs(1)).expect("incident_open");
    assert_eq!(open["top_paths"][0]["path"], path.as_str(), "{open}");
}

#[then("the Prometheus textfile shows the requests per second of the log")]
async fn textfile(w: &mut HttpWorld) {
    std::thread::sleep(Duration::from_millis(2200));
    let text = w.metrics();
    let rps: f64 = text
        .lines()
        .find(|l| l.starts_with("ftagent_http_requests_per_second{"))
        .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
        .unwrap_or_else(|| panic!("no ftagent_http_requests_per_second: {text}"));
    assert!(rps > 1000.0, "{text}");
}

#[when("the log is renamed and the web server starts a new one")]
async fn rotated(w: &mut HttpWorld) {
    std::thread::sleep(Duration::from_secs(2));
    let log = &w.web().log;
    std::fs::rename(log, log.with_extension("log.1")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    w.web().reopen.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(2));
}

#[when("the flood stops")]
async fn flood_stops(w: &mut HttpWorld) {
    w.web().set(20, vec!["198.51.100.1".into()], "/");
}

#[then(expr = "the incident resolves with reason {string}")]
async fn resolves(w: &mut HttpWorld, reason: String) {
    let r = w.wait_http("incident_resolve", Duration::from_secs(10)).expect("incident_resolve");
    assert_eq!(r["reason"], reason.as_str());
}

#[then("every request written after ftagent started was read once, give or take one second of them")]
async fn read_once(w: &mut HttpWorld) {
    w.web().set(0, vec!["198.51.100.1".into()], "/");
    std::thread::sleep(Duration::from_millis(500));
    let written = w.web().written.load(Ordering::SeqCst) - w.written_at_start;
    let mut read = None;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(1100));
        let now = w.requests_total();
        if now.is_some() && now == read {
            break;
        }
        read = now;
    }
    let read = read.expect("ftagent_http_requests_total");
    assert!(read <= written, "read {read} > written {written}: lines read twice");
    assert!(read + 1500 >= written, "read {read} of {written}: more than a second lost");
}

#[then(expr = "no {string} incident has opened")]
async fn none_opened(w: &mut HttpWorld, family: String) {
    assert_eq!(family, "http_flood");
    assert!(w.http_events("incident_open").is_empty(), "{:?}", w.home().events());
}

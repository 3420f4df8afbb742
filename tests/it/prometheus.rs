//! `metrics_listen` against a real Prometheus (§6.6): the test starts the agent with `/metrics`
//! on a loopback port and a Prometheus (Debian package `prometheus`) on another, scraping it
//! every second with the shipped alert rules loaded. Its query API must return
//! `ftagent_threshold_pps`; `promtool check metrics` must pass on the scrape; every PromQL
//! expression of the rules and the Grafana dashboard must evaluate without error (the
//! dashboard's with data); the rules must be healthy; `promtool test rules` must pass.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{self, Home, Reap};

fn contrib(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib").join(rel)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn get(url: &str) -> Option<(u16, String)> {
    let r = minreq::get(url).with_timeout(5).send().ok()?;
    Some((r.status_code, r.as_str().unwrap_or_default().to_string()))
}

fn query(prom: &str, expr: &str) -> Value {
    let (_, body) = get(&format!("{prom}/api/v1/query?query={}", encode(expr))).unwrap_or_default();
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every `expr:` of the rules file (one line each, as written there).
fn rule_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(contrib("prometheus/ftagent.rules.yml")).unwrap();
    text.lines().filter_map(|l| l.trim().strip_prefix("expr:")).map(|e| e.trim().to_string()).collect()
}

/// Every panel target's expression, with Grafana's variables as a query over all nodes.
fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(contrib("grafana/ftagent-dashboard.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            let e = t["expr"].as_str().expect("expr");
            let e = e.replace("$instance", ".*").replace("$interface", ".*");
            out.push(e.replace("$__rate_interval", "1m").replace("$__range", "1h"));
        }
    }
    // Template variables: `label_values(SELECTOR, label)` is Grafana's; SELECTOR is PromQL.
    for v in dash["templating"]["list"].as_array().expect("templating") {
        if let Some(def) = v["definition"].as_str() {
            let inner = def.strip_prefix("label_values(").and_then(|d| d.rsplit_once(',')).map(|(sel, _)| sel);
            out.push(inner.expect("label_values(selector, label)").replace("$instance", ".*"));
        }
    }
    out
}

fn prometheus_config(dir: &Path, agent_port: u16) -> PathBuf {
    let rules = contrib("prometheus/ftagent.rules.yml");
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: ftagent\n    static_configs:\n      - targets: ['127.0.0.1:{agent_port}']\n",
        rules.display()
    );
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, cfg).unwrap();
    path
}

#[test]
fn real_prometheus_scrapes_metrics_listen_and_evaluates_every_rule_and_panel() {
    assert!(
        util::have("prometheus") && util::have("promtool"),
        "prometheus/promtool needed (apt-get install prometheus)"
    );
    let home = Home::new();
    let agent_port = free_port();
    let cfg = home.write_config(serde_json::json!({
        "interface": "lo", "limited": true, "metrics_listen": format!("127.0.0.1:{agent_port}"),
        // Fixed thresholds: other tests share the loopback, and its traffic must not move them.
        "dynamic_threshold": false,
    }));
    let _agent = home.spawn_agent(&cfg);
    let metrics_url = format!("http://127.0.0.1:{agent_port}/metrics");
    let scrape = poll(Duration::from_secs(10), || get(&metrics_url).filter(|(s, _)| *s == 200).map(|(_, b)| b))
        .expect("the agent serves /metrics");

    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(check.stdin.as_mut().unwrap(), scrape.as_bytes()).unwrap();
    let checked = check.wait_with_output().unwrap();
    let lint = String::from_utf8_lossy(&checked.stdout).to_string() + &String::from_utf8_lossy(&checked.stderr);
    assert!(checked.status.success() && lint.trim().is_empty(), "promtool check metrics: {lint}\n{scrape}");

    let prom_port = free_port();
    let prom_cfg = prometheus_config(home.path(), agent_port);
    let _prom = Reap(
        Command::new("prometheus")
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!("--storage.tsdb.path={}", home.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let prom = format!("http://127.0.0.1:{prom_port}");
    let thr = poll(Duration::from_secs(30), || {
        let v = query(&prom, "ftagent_threshold_pps");
        v["data"]["result"][0]["value"][1].as_str().map(str::to_string)
    });
    assert_eq!(thr.as_deref(), Some("5000"), "Prometheus never had ftagent_threshold_pps from the agent");
    let r = query(&prom, "ftagent_threshold_pps");
    assert_eq!(r["data"]["result"][0]["metric"]["interface"], "lo", "{r}");

    // Two scrapes at least, so rate() over the dashboard's window has data.
    std::thread::sleep(Duration::from_secs(3));
    let rules = rule_exprs();
    assert_eq!(rules.len(), 4, "{rules:?}");
    for e in &rules {
        let v = query(&prom, e);
        assert_eq!(v["status"], "success", "rule expression {e}: {v}");
    }
    let panels = dashboard_exprs();
    assert!(panels.len() >= 12, "{panels:?}");
    for e in &panels {
        let v = query(&prom, e);
        assert_eq!(v["status"], "success", "dashboard expression {e}: {v}");
        assert!(
            v["data"]["result"].as_array().is_some_and(|r| !r.is_empty()),
            "dashboard expression {e} has no data: {v}"
        );
    }
    let healthy = poll(Duration::from_secs(10), || {
        let (_, body) = get(&format!("{prom}/api/v1/rules"))?;
        let v: Value = serde_json::from_str(&body).ok()?;
        let rules = v["data"]["groups"][0]["rules"].as_array()?.clone();
        (rules.len() == 4 && rules.iter().all(|r| r["health"] == "ok")).then_some(rules.len())
    });
    assert_eq!(healthy, Some(4), "Prometheus did not evaluate all four rules healthily");
    eprintln!(
        "prometheus: scraped ftagent_threshold_pps = 5000; {} rule and {} panel expressions evaluated",
        rules.len(),
        panels.len()
    );
}

#[test]
fn promtool_test_rules_passes_on_the_shipped_rules() {
    assert!(util::have("promtool"), "promtool needed (apt-get install prometheus)");
    let out = Command::new("promtool")
        .args(["test", "rules"])
        .arg(contrib("prometheus/ftagent.rules.test.yml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("SUCCESS"), "promtool test rules:\n{text}");
}

/// §11 through `/metrics`: a followed access log's request counters are served too.
#[test]
fn metrics_listen_serves_the_access_log_figures() {
    let home = Home::new();
    let agent_port = free_port();
    let log = home.path().join("access.log");
    std::fs::write(&log, "").unwrap();
    let cfg = home.write_config(serde_json::json!({
        "interface": "lo", "limited": true, "metrics_listen": format!("127.0.0.1:{agent_port}"),
        "dynamic_threshold": false,
        "access_logs": [{"path": log, "format": "combined"}],
    }));
    let _agent = home.spawn_agent(&cfg);
    let metrics_url = format!("http://127.0.0.1:{agent_port}/metrics");
    let line = "10.1.2.3 - - [01/Dec/2026:08:00:00 +0000] \"GET / HTTP/1.1\" 200 12 \"-\" \"curl/8\"\n";
    let served = poll(Duration::from_secs(15), || {
        // The follower starts at the end of the file: keep appending until lines are counted.
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut f, line.repeat(5).as_bytes()).unwrap();
        let (_, body) = get(&metrics_url)?;
        let counted = body.lines().any(|l| l.starts_with("ftagent_http_requests_total{") && !l.ends_with(" 0"));
        counted.then_some(body)
    });
    let body = served.expect("/metrics counts the access log's requests");
    assert!(body.contains("# TYPE ftagent_http_requests_per_second gauge"), "{body}");
}

//! The agent's own doors under attack (§13), with the real binary: `/metrics` under idle and
//! never-reading clients, redirects and huge bodies from the API, signed updates, hooks that
//! leave grandchildren behind, and paths without `HOME`.

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::apiserver::{self, Server};
use crate::fakeproc::{self, FakeProc};
use crate::reporting::{agent_log, merge, wait_events};
use crate::util::Home;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The test process may hold many sockets; the agent keeps the usual 1,024 descriptors.
fn raise_nofile(want: u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write/read the struct we pass.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        if r.rlim_cur < want {
            r.rlim_cur = want.min(r.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn start_agent_1024(home: &Home, cfg: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(home.path().join("agent.log")).unwrap();
    let mut c = home.command();
    c.args(["--no-update-check", "-v", "--config"]).arg(cfg).stdout(Stdio::null()).stderr(log);
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        c.pre_exec(|| {
            let r = libc::rlimit { rlim_cur: 1024, rlim_max: 1024 };
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
            Ok(())
        });
    }
    c.spawn().expect("spawn agent")
}

/// One GET of /metrics with a 1 s budget: the status line.
fn scrape(port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    if text.starts_with("HTTP/1.1 200") && text.contains("ftagent_threshold_pps") {
        Ok(text)
    } else {
        Err(format!("answer: {:?}", text.lines().next()))
    }
}

#[test]
fn metrics_answers_and_incidents_are_reported_with_1100_idle_sockets_and_a_never_reading_client() {
    raise_nofile(4096);
    let home = Home::new();
    let fake = FakeProc::start(home.path(), 100);
    let server = Server::http(0, apiserver::flowtriq(json!({})));
    let mport = free_port();
    let cfg = home.write_config(merge(
        fakeproc::agent_config(&fake),
        json!({
            "api_key": "ftk_test_0123456789abcdef", "node_uuid": "node-it-1",
            "api_base": format!("{}/api/v1", server.base),
            "metrics_listen": format!("127.0.0.1:{mport}"),
        }),
    ));
    let mut agent = crate::util::Reap(start_agent_1024(&home, &cfg));
    assert_eq!(wait_events(&home, "agent_start", 1, Duration::from_secs(10)).len(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while scrape(mport).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    scrape(mport).expect("/metrics serves before the attack");

    // A client that pipelines requests and never reads its answers.
    let mut hog = TcpStream::connect(("127.0.0.1", mport)).unwrap();
    hog.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
    let req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
    let _ = hog.write_all(req.as_bytes());
    // 1,100 idle sockets held open: more than the agent's 1,024 descriptors.
    let idle: Vec<TcpStream> = (0..1100)
        .filter_map(|_| TcpStream::connect_timeout(&([127, 0, 0, 1], mport).into(), Duration::from_secs(1)).ok())
        .collect();
    assert!(idle.len() >= 1000, "{} idle sockets connected", idle.len());
    std::thread::sleep(Duration::from_millis(500));

    let t = Instant::now();
    let got = scrape(mport);
    let took = t.elapsed();
    assert!(
        got.is_ok() && took < Duration::from_secs(1),
        "/metrics under attack: {got:?} in {took:?}; log:\n{}",
        agent_log(&home)
    );

    // An incident opened meanwhile reaches the event log and the API.
    fake.set_pps(20_000);
    let opens = wait_events(&home, "incident_open", 1, Duration::from_secs(10));
    assert_eq!(opens.len(), 1, "incident_open under attack; log:\n{}", agent_log(&home));
    let id = opens[0]["incident_id"].as_str().unwrap().to_string();
    let sent = server.wait_until(Duration::from_secs(10), |r| {
        r.iter().any(|r| r.path.ends_with("/agent/incidents") && r.header("idempotency-key") == Some(id.as_str()))
    });
    assert!(sent, "the open reached the API; log:\n{}", agent_log(&home));
    // And a second scrape still answers while everything is held.
    let t = Instant::now();
    assert!(scrape(mport).is_ok() && t.elapsed() < Duration::from_secs(1), "second scrape in {:?}", t.elapsed());
    drop(idle);
    drop(hog);
    crate::util::terminate(&mut agent.0, Duration::from_secs(5));
}

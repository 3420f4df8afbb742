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
    start_agent_nofile(home, cfg, 1024)
}

/// The agent with at most `nofile` open descriptors.
fn start_agent_nofile(home: &Home, cfg: &Path, nofile: u64) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(home.path().join("agent.log")).unwrap();
    let mut c = home.command();
    c.args(["--no-update-check", "-v", "--config"]).arg(cfg).stdout(Stdio::null()).stderr(log);
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        c.pre_exec(move || {
            let r = libc::rlimit { rlim_cur: nofile, rlim_max: nofile };
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

/// Out of descriptors: with the agent limited to 48, idle sockets past that make `accept` fail
/// with EMFILE; serving goes on (a back-off, one idle connection let go), and a scrape is
/// answered within 1 s.
#[test]
fn metrics_keeps_serving_when_accept_fails_with_emfile() {
    raise_nofile(4096);
    let home = Home::new();
    let mport = free_port();
    let cfg = home.write_config(json!({
        "interface": "lo", "limited": true, "dynamic_threshold": false,
        "metrics_listen": format!("127.0.0.1:{mport}"),
    }));
    let mut agent = crate::util::Reap(start_agent_nofile(&home, &cfg, 48));
    let deadline = Instant::now() + Duration::from_secs(10);
    while scrape(mport).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    scrape(mport).unwrap_or_else(|e| panic!("/metrics serves with 48 descriptors: {e}; log:\n{}", agent_log(&home)));
    let idle: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect_timeout(&([127, 0, 0, 1], mport).into(), Duration::from_secs(1)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let log = agent_log(&home);
    assert!(log.contains("accept failed"), "accept ran out of descriptors: {log}");
    let t = Instant::now();
    let got = scrape(mport);
    assert!(got.is_ok() && t.elapsed() < Duration::from_secs(1), "{got:?} in {:?}; log:\n{log}", t.elapsed());
    assert!(agent.0.try_wait().unwrap().is_none(), "the agent is still running");
    drop(idle);
    crate::util::terminate(&mut agent.0, Duration::from_secs(5));
}

fn self_test(home: &Home, extra: serde_json::Value, ca: Option<&Path>) -> (std::process::Output, String) {
    let cfg = home.write_config(extra);
    let mut c = home.command();
    c.args(["--test", "--config"]).arg(cfg).env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    if let Some(ca) = ca {
        c.env("SSL_CERT_FILE", ca);
    }
    let out = crate::util::run(&mut c);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

fn redirect_to(to: String) -> apiserver::Handler {
    Box::new(move |_r: &apiserver::Recorded| apiserver::Action::Respond {
        status: 302,
        body: String::new(),
        headers: vec![("Location".into(), to.clone())],
    })
}

#[test]
fn credentials_never_follow_a_redirect_to_another_port_or_from_https_to_http() {
    let home = Home::new();
    let elsewhere = Server::http(0, apiserver::flowtriq(json!({})));
    // http → http on another port, for the API (Authorization) and the webhook (its signature).
    let api = Server::http(0, redirect_to(format!("{}/api/v1/agent/incidents", elsewhere.base)));
    let extra = json!({
        "api_key": "ftk_test_0123456789abcdef", "node_uuid": "node-it-1",
        "api_base": format!("{}/api/v1", api.base),
        "webhook_url": format!("{}/hook", api.base), "webhook_secret": "s3cret",
    });
    let (out, stdout) = self_test(&home, extra, None);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("Flowtriq API")).expect("API line");
    assert!(line.contains("HTTP 302") && line.contains("redirects are not followed"), "{line}");
    assert!(stdout.lines().any(|l| l.starts_with("webhook") && l.contains("redirects are not followed")), "{stdout}");
    assert!(!api.requests().is_empty(), "the first server was asked");

    // https → http.
    assert!(crate::util::have("openssl"), "the openssl CLI is needed to make test certificates");
    let (cert, key, ca) = crate::selftest_sinks::make_pki(home.path(), "pki");
    let tls = Server::https(cert, key, redirect_to(format!("{}/api/v1/agent/incidents", elsewhere.base)));
    let extra = json!({
        "api_key": "ftk_test_0123456789abcdef", "node_uuid": "node-it-1",
        "api_base": format!("{}/api/v1", tls.base),
    });
    let (out, stdout) = self_test(&home, extra, Some(&ca));
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("redirects are not followed"), "{stdout}");
    assert!(!tls.requests().is_empty(), "the TLS server was asked");

    let seen = elsewhere.requests();
    assert!(
        seen.iter().all(|r| r.header("authorization").is_none() && r.header("x-ftagent-signature").is_none()),
        "credentials reached the redirect target: {seen:?}"
    );
    assert!(seen.is_empty(), "nothing follows a redirect: {seen:?}");
}

/// A raw server that answers every connection with 200 and `total` bytes of body, without a
/// Content-Length (the body ends at close). Returns its base URL and the bytes it got out.
fn endless_body(total: usize) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let sent = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for s in l.incoming().take(8) {
            let Ok(mut s) = s else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut head = [0u8; 4096];
                let _ = s.read(&mut head);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n");
                let chunk = vec![b' '; 64 * 1024];
                let mut n = 0;
                while n < total {
                    match s.write(&chunk) {
                        Ok(k) => n += k,
                        Err(_) => break,
                    }
                }
                counter.fetch_max(n, Ordering::Relaxed);
            });
        }
    });
    (base, sent)
}

#[test]
fn a_100_mb_answer_is_refused_and_the_agent_carries_on() {
    let home = Home::new();
    let (base, sent) = endless_body(100 << 20);
    let extra = json!({
        "api_key": "ftk_test_0123456789abcdef", "node_uuid": "node-it-1",
        "api_base": format!("{base}/api/v1"),
    });
    let t = Instant::now();
    let (out, stdout) = self_test(&home, extra, None);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.starts_with("Flowtriq API")).expect("API line");
    assert!(line.contains("response body over 1048576 bytes; refused"), "{line}");
    assert!(t.elapsed() < Duration::from_secs(20), "took {:?}", t.elapsed());
    std::thread::sleep(Duration::from_millis(300));
    let got_out = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(got_out < 50 << 20, "the agent stopped reading early: {got_out} bytes left the server");
    // The event log still got its lines: the agent went on after the refusal.
    assert!(stdout.lines().any(|l| l.starts_with("event log ") && l.ends_with(": OK")), "{stdout}");
}

/// The agent's peak RSS (VmHWM) in KiB.
#[cfg(feature = "capture-scapy")]
fn peak_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// README "Security": the capture build's memory under a flood of 64 KiB frames stays under
/// this: ~31 MiB at rest (its 16 MiB kernel ring included) + the 16 MiB pre-attack ring + the
/// 32 MiB writer queue, at most. Before the byte caps the same flood reached 112 MiB.
#[cfg(feature = "capture-scapy")]
const CAPTURE_RSS_BOUND_MIB: u64 = 100;

#[cfg(feature = "capture-scapy")]
const BIG_UDP: &str = r#"
import socket, sys, time
host, secs = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
d = b'x' * 60000
t0 = time.monotonic(); n = 0
while time.monotonic() - t0 < secs:
    try:
        s.sendto(d, (host, 9999)); n += 1
    except OSError:
        pass
print(n)
"#;

/// A flood of ~60 KB frames (MTU 65000 on the veth pair, one IP packet each) against the
/// capture build with incident files on: peak RSS under the documented bound.
#[cfg(feature = "capture-scapy")]
#[test]
fn capture_memory_stays_bounded_under_a_flood_of_64k_frames() {
    use crate::util::NetnsPair;
    let _flood = crate::util::flood_lock();
    let Some(pair) = NetnsPair::create() else { return };
    for (ns, dev) in [(&pair.ns_a, &pair.veth_a), (&pair.ns_b, &pair.veth_b)] {
        let ok = std::process::Command::new("ip").args(["-n", ns, "link", "set", dev, "mtu", "65000"]).status();
        assert!(ok.is_ok_and(|s| s.success()), "mtu 65000 on {dev}");
    }
    let home = Home::new();
    let cfg = home.write_config(json!({
        "interface": pair.veth_a, "grace_period_s": 2, "baseline_window_s": 10, "holddown_ticks": 10,
        "cooldown_s": 0, "pcap_enabled": true, "pcap_dir": home.path().join("pcaps"),
        "pcap_max_packets": 4000, "pcap_ring_packets": 1000,
    }));
    let mut agent = crate::util::Reap(pair.spawn_agent(&home, &cfg));
    assert!(crate::util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(10)).is_some());
    std::thread::sleep(Duration::from_secs(3));
    let before = peak_rss_kib(agent.0.id());
    let sender = NetnsPair::exec(&pair.ns_b, Path::new("/usr/bin/python3"))
        .args(["-c", BIG_UDP, &pair.addr_a, "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let out = sender.wait_with_output().unwrap();
    let sent: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    let open = crate::util::wait_for_event(&home.events_file(), "incident_open", Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(500));
    let peak = peak_rss_kib(agent.0.id());
    crate::util::terminate(&mut agent.0, Duration::from_secs(5));
    eprintln!(
        "64 KiB-frame flood: {sent} datagrams of 60000 B; agent peak RSS {} MiB (before the flood {} MiB)",
        peak / 1024,
        before / 1024
    );
    assert!(sent > 10_000, "the flood got out: {sent}");
    assert!(open.is_some(), "the flood opened an incident (so the writer queue was in use)");
    assert!(peak > 0 && peak / 1024 < CAPTURE_RSS_BOUND_MIB, "peak RSS {} MiB", peak / 1024);
}

/// No `HOME` and an ordinary user whose passwd home is `/nonexistent` (nobody): a clear error,
/// and nothing created under `/tmp/.config` or `/tmp/.local`.
#[test]
fn without_home_an_ordinary_user_gets_a_clear_error_not_tmp() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        crate::util::skip("needs root to run the binary as nobody");
        return;
    }
    let before = (Path::new("/tmp/.config/ftagent").exists(), Path::new("/tmp/.local/state/ftagent").exists());
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "--"])
        .arg(crate::util::bin())
        .args(["--no-update-check"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("HOME is not set") && err.contains("set HOME"), "{err}");
    let after = (Path::new("/tmp/.config/ftagent").exists(), Path::new("/tmp/.local/state/ftagent").exists());
    assert_eq!(after, before, "nothing of ours appeared under /tmp");
}

/// `state_dir` and `pcap_dir` as symlinks to shared directories: the agent runs, and the
/// targets' modes are not changed through the links.
#[test]
fn permission_changes_never_follow_a_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    let shared = home.path().join("shared");
    let shared_pcap = home.path().join("shared-pcap");
    for d in [&shared, &shared_pcap] {
        std::fs::create_dir(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o1777)).unwrap();
    }
    let state = home.path().join("state-link");
    let pcaps = home.path().join("pcap-link");
    std::os::unix::fs::symlink(&shared, &state).unwrap();
    std::os::unix::fs::symlink(&shared_pcap, &pcaps).unwrap();
    let cfg = home.write_config(json!({
        "interface": "lo", "limited": true, "state_dir": state, "pcap_dir": pcaps, "dynamic_threshold": false,
    }));
    let mut agent = crate::util::Reap(start_agent_1024(&home, &cfg));
    let started = crate::util::wait_for_event(&state.join("events.jsonl"), "agent_start", Duration::from_secs(10));
    assert!(started.is_some(), "the agent runs on a symlinked state dir; log:\n{}", agent_log(&home));
    std::thread::sleep(Duration::from_millis(500));
    crate::util::terminate(&mut agent.0, Duration::from_secs(5));
    for d in [&shared, &shared_pcap] {
        let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o1777, "{} changed through its link", d.display());
    }
    assert!(agent_log(&home).contains("is a symbolic link"), "the link is named in a warning");
}

//! The drain against a real loopback HTTP server: ordering, idempotent opens, the retry rules
//! of §6.3 (401, 404/422, 429/503 + Retry-After, garbage 2xx, slow server, half-open breaker),
//! PCAP chunk resume. Virtual time for the breaker; real sockets for HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::report::api::spool::Spool;
use crate::report::api::testserver::{self as ts, Action, Recorded, Server};

fn setup(handler: ts::Handler) -> (Server, Drain, tempfile::TempDir) {
    let server = Server::http(0, handler);
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(&dir.path().join("spool"), 1 << 20).unwrap());
    let mut client = ApiClient::new(&format!("{}/api/v1", server.base), "key-123456789012", "node-1");
    client.timeout_s = 1;
    (server, Drain::new(spool, Dest::Api(client), "API test".into()), dir)
}

fn push(d: &Drain, kind: Kind, incident: Option<&str>, key: &str) {
    d.spool.push(kind, incident.map(str::to_string), key.into(), json!({ "n": key })).unwrap();
}

/// Step until idle, advancing virtual time past every wait; returns the outcomes.
fn drain_all(d: &mut Drain, mut now: Instant) -> Vec<Outcome> {
    let mut out = Vec::new();
    for _ in 0..50 {
        match d.step(now) {
            Outcome::Idle => break,
            Outcome::Waiting(t) => now = t.unwrap_or(now) + Duration::from_millis(1),
            o => {
                if let Outcome::Retry { delay, .. } | Outcome::Deferred(delay) = &o {
                    now += *delay;
                }
                out.push(o)
            }
        }
    }
    out
}

#[test]
fn sends_in_order_with_headers_and_addresses_updates_to_the_server_uuid() {
    let (server, mut d, _dir) = setup(ts::flowtriq(json!({})));
    push(&d, Kind::Heartbeat, None, "hb-1");
    push(&d, Kind::Open, Some("inc-1"), "inc-1");
    push(&d, Kind::Update, Some("inc-1"), "up-1");
    push(&d, Kind::Resolve, Some("inc-1"), "res-1");
    drain_all(&mut d, Instant::now());
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/agent/heartbeat",
            "/api/v1/agent/incidents",
            "/api/v1/agent/incidents/srv-0001",
            "/api/v1/agent/incidents/srv-0001/resolve"
        ]
    );
    let hb = &server.requests()[0];
    assert_eq!(hb.header("authorization"), Some("Bearer key-123456789012"));
    assert_eq!(hb.header("x-node-uuid"), Some("node-1"));
    assert_eq!(hb.header("user-agent"), Some(&*format!("ftagent/{}", crate::event::AGENT_VERSION)));
    assert_eq!(hb.header("content-type"), Some("application/json"));
    assert_eq!(hb.json()["retry_queue_size"], 4, "the spool size when it was sent");
    assert_eq!(server.requests()[1].header("idempotency-key"), Some("inc-1"));
    assert!(d.spool.is_empty());
}

#[test]
fn retried_open_whose_reply_was_lost_does_not_create_a_second_incident() {
    let mut opens = 0;
    let mut inner = ts::flowtriq(json!({}));
    let handler: ts::Handler = Box::new(move |r: &Recorded| {
        let a = inner(r);
        if r.path.ends_with("/agent/incidents") {
            opens += 1;
            if opens == 1 {
                // The server commits the open, but the answer arrives after the client gave up.
                return Action::Late(Duration::from_millis(1500), 200, "{\"uuid\":\"srv-0001\"}".into());
            }
        }
        a
    });
    let (server, mut d, _dir) = setup(handler);
    push(&d, Kind::Open, Some("inc-1"), "inc-1");
    push(&d, Kind::Resolve, Some("inc-1"), "res-1");
    let out = drain_all(&mut d, Instant::now());
    assert!(matches!(out[0], Outcome::Retry { .. }), "{out:?}");
    let opens = server.to("/api/v1/agent/incidents");
    let keys: Vec<_> = opens
        .iter()
        .filter(|r| r.path.ends_with("incidents"))
        .map(|r| r.header("idempotency-key").unwrap().to_string())
        .collect();
    assert_eq!(keys, ["inc-1", "inc-1"], "the retry carries the same Idempotency-Key");
    let resolves: Vec<_> = server.requests().into_iter().filter(|r| r.path.ends_with("/resolve")).collect();
    assert_eq!(resolves.len(), 1);
    assert_eq!(resolves[0].path, "/api/v1/agent/incidents/srv-0001/resolve", "one incident on the server");
}

#[test]
fn unauthorised_keeps_the_item_and_retries_slowly() {
    let (server, mut d, _dir) = setup(Box::new(|_r: &Recorded| ts::status(401, "{\"error\":\"bad key\"}")));
    push(&d, Kind::Metrics, None, "m-1");
    let t0 = Instant::now();
    assert_eq!(d.step(t0), Outcome::AuthRejected(401));
    assert_eq!(d.spool.len(), 1, "still spooled");
    assert_eq!(d.step(t0 + Duration::from_secs(59)), Outcome::Waiting(Some(t0 + RETRY_CAP)));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn other_4xx_moves_the_item_to_rejected_and_goes_on() {
    let mut n = 0;
    let (server, mut d, dir) = setup(Box::new(move |r: &Recorded| {
        n += 1;
        match (n, r.path.as_str()) {
            (1, _) => ts::status(422, "{\"error\":\"peak_pps missing\"}"),
            (2, _) => ts::status(404, "no such endpoint"),
            _ => ts::ok("{}"),
        }
    }));
    push(&d, Kind::Open, Some("inc-1"), "inc-1");
    push(&d, Kind::Resolve, Some("inc-1"), "res-1");
    push(&d, Kind::Metrics, None, "m-1");
    push(&d, Kind::Metrics, None, "m-2");
    let out = drain_all(&mut d, Instant::now());
    assert_eq!(
        out,
        [Outcome::Rejected(422), Outcome::Rejected(0), Outcome::Rejected(404), Outcome::Delivered(Kind::Metrics)]
    );
    assert_eq!(server.requests().len(), 3, "the resolve of a rejected open is not sent");
    let rejected: Vec<_> = std::fs::read_dir(dir.path().join("spool/rejected")).unwrap().flatten().collect();
    assert_eq!(rejected.len(), 3);
    let first: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rejected.iter().map(|e| e.path()).min().unwrap()).unwrap()).unwrap();
    assert_eq!(first["status"], 422);
    assert!(first["response"].as_str().unwrap().contains("peak_pps missing"));
}

#[test]
fn retry_after_on_429_and_503_is_honoured_up_to_the_cap() {
    let mut n = 0;
    let (_server, mut d, _dir) = setup(Box::new(move |_r: &Recorded| {
        n += 1;
        let (code, after) = if n == 1 { (429, "7") } else { (503, "3600") };
        Action::Respond { status: code, body: "busy".into(), headers: vec![("Retry-After".into(), after.into())] }
    }));
    push(&d, Kind::Metrics, None, "m-1");
    let t0 = Instant::now();
    let Outcome::Retry { delay, reason } = d.step(t0) else { panic!() };
    assert!(reason.contains("429"), "{reason}");
    assert!(delay >= Duration::from_secs(7) && delay < Duration::from_secs(8), "{delay:?}");
    assert!(matches!(d.step(t0 + Duration::from_secs(6)), Outcome::Waiting(_)));
    let Outcome::Retry { delay, .. } = d.step(t0 + Duration::from_secs(7)) else { panic!() };
    assert_eq!(delay, RETRY_CAP);
}

#[test]
fn garbage_2xx_retries_an_open_but_completes_a_heartbeat() {
    let (_server, mut d, _dir) = setup(Box::new(|_r: &Recorded| ts::ok("<html>oops</html>")));
    push(&d, Kind::Open, Some("inc-1"), "inc-1");
    let Outcome::Retry { reason, .. } = d.step(Instant::now()) else { panic!() };
    assert!(reason.contains("unreadable answer"), "{reason}");
    assert_eq!(d.spool.len(), 1);
    let (_server, mut d, _dir) = setup(Box::new(|_r: &Recorded| ts::ok("<html>oops</html>")));
    push(&d, Kind::Heartbeat, None, "hb");
    assert_eq!(d.step(Instant::now()), Outcome::Delivered(Kind::Heartbeat));
}

#[test]
fn slow_server_hits_the_timeout() {
    let (_server, mut d, _dir) =
        setup(Box::new(|_r: &Recorded| Action::Late(Duration::from_secs(4), 200, "{}".into())));
    push(&d, Kind::Metrics, None, "m-1");
    let started = Instant::now();
    let Outcome::Retry { reason, .. } = d.step(Instant::now()) else { panic!() };
    assert!(started.elapsed() < Duration::from_secs(3), "bounded by the 1 s timeout: {:?}", started.elapsed());
    assert!(reason.contains("127.0.0.1"), "{reason}");
    assert_eq!(d.spool.len(), 1);
}

#[test]
fn half_open_breaker_that_fails_again_reopens_for_longer() {
    let (server, mut d, _dir) = setup(Box::new(|_r: &Recorded| ts::status(503, "down")));
    push(&d, Kind::Metrics, None, "m-1");
    let mut now = Instant::now();
    for _ in 0..retry::OPEN_AFTER {
        let Outcome::Retry { delay, .. } = d.step(now) else { panic!() };
        now += delay;
    }
    let retry::State::Open { until } = d.breaker.state else { panic!("open: {:?}", d.breaker.state) };
    let first_open = until.saturating_duration_since(now);
    assert_eq!(d.step(until - Duration::from_millis(1)), Outcome::Waiting(Some(until)));
    let before = server.requests().len();
    let Outcome::Retry { delay, .. } = d.step(until) else { panic!("the probe") };
    assert_eq!(server.requests().len(), before + 1, "exactly one probe");
    assert!(matches!(d.breaker.state, retry::State::Open { .. }), "a failed probe re-opens");
    assert!(delay > first_open, "{delay:?} > {first_open:?}");
    assert!(matches!(d.step(until + delay - Duration::from_millis(1)), Outcome::Waiting(_)));
}

#[test]
fn large_pcap_resumes_from_the_last_acknowledged_chunk() {
    let mut chunk_calls = 0;
    let mut inner = ts::flowtriq(json!({}));
    let (server, mut d, dir) = setup(Box::new(move |r: &Recorded| {
        if r.path.ends_with("/pcap") {
            chunk_calls += 1;
            if chunk_calls == 2 {
                return ts::status(503, "busy");
            }
        }
        inner(r)
    }));
    let file = dir.path().join("inc-1.pcap");
    let data: Vec<u8> = (0..(api::PCAP_CHUNK * 2 + 100)).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    push(&d, Kind::Open, Some("inc-1"), "inc-1");
    d.spool.push(Kind::Pcap, Some("inc-1".into()), "up-1".into(), json!({ "path": file })).unwrap();
    drain_all(&mut d, Instant::now());
    let chunks: Vec<Recorded> = server.to("/api/v1/agent/incidents/srv-0001/pcap");
    let idx: Vec<&str> = chunks.iter().map(|r| r.header("x-chunk-index").unwrap()).collect();
    assert_eq!(idx, ["0", "1", "1", "2"], "chunk 0 is not sent again after the failure");
    assert!(chunks.iter().all(|r| r.header("x-chunk-total") == Some("3") && r.header("x-upload-id") == Some("up-1")));
    let mut got = chunks[0].body.clone();
    got.extend_from_slice(&chunks[2].body);
    got.extend_from_slice(&chunks[3].body);
    assert_eq!(got, data);
    assert!(d.spool.is_empty());
}

#[test]
fn pcap_upload_waits_for_a_file_still_being_written() {
    let (server, mut d, dir) = setup(ts::flowtriq(json!({})));
    let file = dir.path().join("inc-1.pcap");
    push(&d, Kind::Open, Some("inc-1"), "inc-1");
    let queued_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    d.spool
        .push(Kind::Pcap, Some("inc-1".into()), "up-1".into(), json!({ "path": file, "queued_at": queued_at }))
        .unwrap();
    let now = Instant::now();
    assert!(matches!(d.step(now), Outcome::Delivered(Kind::Open)));
    // The file is not there yet: the upload is retried later, not thrown away.
    assert!(matches!(d.step(now), Outcome::Deferred(_)));
    assert!(!d.spool.is_empty(), "the PCAP item must stay queued while its file is being written");
    assert!(server.to("/api/v1/agent/incidents/srv-0001/pcap").is_empty());
    std::fs::write(&file, b"pcap bytes").unwrap();
    drain_all(&mut d, now + Duration::from_secs(120));
    assert_eq!(server.to("/api/v1/agent/incidents/srv-0001/pcap").len(), 1);
    assert!(d.spool.is_empty());
}

/// §6.3: a PCAP whose file is not there (still being written, or deleted) waits on its own;
/// a heartbeat and another incident's open queued behind it go out at once, not after a retry.
#[test]
fn a_stuck_pcap_upload_holds_up_neither_heartbeats_nor_another_incidents_open() {
    let (server, mut d, dir) = setup(ts::flowtriq(json!({})));
    let file = dir.path().join("inc-a.pcap");
    push(&d, Kind::Open, Some("inc-a"), "inc-a");
    let queued_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    d.spool
        .push(Kind::Pcap, Some("inc-a".into()), "up-a".into(), json!({ "path": file, "queued_at": queued_at }))
        .unwrap();
    push(&d, Kind::Heartbeat, None, "hb-1");
    push(&d, Kind::Open, Some("inc-b"), "inc-b");
    push(&d, Kind::Resolve, Some("inc-b"), "res-b");
    let now = Instant::now();
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        outcomes.push(d.step(now)); // no time passes: nothing may wait for a retry
    }
    let delivered: Vec<Kind> =
        outcomes.iter().filter_map(|o| if let Outcome::Delivered(k) = o { Some(*k) } else { None }).collect();
    assert_eq!(delivered, [Kind::Open, Kind::Heartbeat, Kind::Open, Kind::Resolve], "{outcomes:?}");
    assert!(matches!(outcomes[1], Outcome::Deferred(_)), "{outcomes:?}");
    assert!(matches!(outcomes.last(), Some(Outcome::Waiting(Some(_)))), "then it waits for the PCAP's retry");
    assert_eq!(d.breaker.failures, 0, "a file not written yet is not the API failing");
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths[1], "/api/v1/agent/heartbeat", "{paths:?}");
    assert_eq!(d.spool.len(), 1, "only the PCAP waits");
    // Order within the incident holds: nothing of inc-a may pass its waiting PCAP.
    push(&d, Kind::Update, Some("inc-a"), "late-a");
    assert!(matches!(d.step(now), Outcome::Waiting(_)));
    std::fs::write(&file, b"pcap bytes").unwrap();
    drain_all(&mut d, now + Duration::from_secs(1));
    assert!(d.spool.is_empty());
    let tail: Vec<String> = server.requests().iter().rev().take(2).map(|r| r.path.clone()).collect();
    assert_eq!(tail, ["/api/v1/agent/incidents/srv-0001", "/api/v1/agent/incidents/srv-0001/pcap"]);
}

#[test]
fn every_status_class_has_its_verdict() {
    for (status, want) in [
        (200, Verdict::Ok),
        (204, Verdict::Ok),
        (401, Verdict::Auth),
        (403, Verdict::Auth),
        (301, Verdict::Retry),
        (408, Verdict::Retry),
        (425, Verdict::Retry),
        (429, Verdict::Retry),
        (503, Verdict::Retry),
        (400, Verdict::Reject),
        (404, Verdict::Reject),
        (422, Verdict::Reject),
    ] {
        assert_eq!(verdict(status), want, "HTTP {status}");
    }
}

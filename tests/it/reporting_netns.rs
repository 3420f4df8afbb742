//! A dead API must not delay detection (§4, acceptance of the reporting issue): the agent runs
//! in namespace `a` of a veth pair with its API pointed at a server on `a`'s own loopback that
//! accepts connections and never answers; a veth flood from `b` must still produce
//! `incident_open` within 1 s of onset, and SIGTERM must still exit within 5 s.
//!
//! The never-answering server is a thread of this test process that joined namespace `a` with
//! setns(2), so all traffic stays inside the namespaces.

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

use crate::util::{self, Home, NetnsPair};

/// Listen on 127.0.0.1 inside namespace `ns`; accept and never answer. Returns the port and a
/// count of accepted connections; the thread ends when `stop` is set.
fn hung_server_in(ns: &str, stop: Arc<AtomicBool>) -> (u16, Arc<AtomicUsize>) {
    let path = format!("/run/netns/{ns}");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).expect("open netns");
        // SAFETY: setns with a valid namespace fd; it affects only this thread.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns into {path}");
        let l = TcpListener::bind("127.0.0.1:0").expect("bind in namespace");
        l.set_nonblocking(true).unwrap();
        tx.send(l.local_addr().unwrap().port()).unwrap();
        let mut held = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            match l.accept() {
                Ok((s, _)) => {
                    count.fetch_add(1, Ordering::SeqCst);
                    held.push(s);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (rx.recv().unwrap(), accepted)
}

#[test]
fn never_answering_api_does_not_delay_detection_or_shutdown() {
    let _flood = util::flood_lock();
    let Some(pair) = NetnsPair::create() else { return };
    assert!(util::have("hping3"), "hping3 is needed for the flood (apt-get install hping3)");
    let stop = Arc::new(AtomicBool::new(false));
    let (port, accepted) = hung_server_in(&pair.ns_a, stop.clone());
    let home = Home::new();
    let cfg = home.write_config(serde_json::json!({
        "interface": pair.veth_a,
        "sample_interval_ms": 200,
        "baseline_window_s": 10,
        "grace_period_s": 3,
        "heartbeat_interval": 1,
        "metrics_interval": 1,
        "api_key": "ftk_test_0123456789abcdef",
        "node_uuid": "node-netns",
        "api_base": format!("http://127.0.0.1:{port}/api/v1"),
    }));
    let mut agent = pair.spawn_agent(&home, &cfg);
    assert!(util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(10)).is_some());
    std::thread::sleep(Duration::from_millis(3500)); // past the grace period
    assert!(accepted.load(Ordering::SeqCst) >= 1, "the agent is stuck on the hung API");

    let onset = SystemTime::now();
    let mut flood = pair.udp_flood(3, 9);
    let open = util::wait_for_event(&home.events_file(), "incident_open", Duration::from_secs(5));
    let _ = flood.wait();
    let t = Instant::now();
    let status = util::terminate(&mut agent, Duration::from_secs(10));
    let stop_took = t.elapsed();
    stop.store(true, Ordering::SeqCst);

    let open = open.expect("incident_open while the API hangs");
    // An open stamped before the onset is a false incident, not a zero latency.
    let latency = util::event_time(&open)
        .duration_since(onset)
        .unwrap_or_else(|e| panic!("incident_open {:?} before the flood began: {open}", e.duration()));
    assert!(latency < Duration::from_secs(1), "incident_open {latency:?} after onset");
    assert!(stop_took < Duration::from_secs(5), "SIGTERM exit took {stop_took:?}");
    assert!(status.is_some_and(|s| s.success()), "exit 0 on SIGTERM");
    let spool = std::fs::read_dir(home.state().join("spool")).unwrap().count();
    assert!(spool > 2, "events wait in the spool: {spool}");
    eprintln!("hung API: incident_open {latency:?} after onset; SIGTERM exit in {stop_took:?}");
}

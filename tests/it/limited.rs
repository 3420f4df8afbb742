//! Limited mode against real traffic: a UDP flood across a veth pair between two network
//! namespaces, the agent reading the real `/proc/net/dev` of its namespace.

use std::time::{Duration, SystemTime};

use crate::util::{self, Home, NetnsPair};

#[test]
fn veth_udp_flood_opens_within_one_second_and_resolves() {
    let _flood = util::flood_lock();
    let Some(pair) = NetnsPair::create() else { return };
    assert!(util::have("hping3"), "hping3 is needed for the flood (apt-get install hping3)");
    let home = Home::new();
    let cfg = home.write_config(serde_json::json!({
        "interface": pair.veth_a,
        "sample_interval_ms": 200,
        "baseline_window_s": 10,
        "grace_period_s": 3,
        // Capture builds run as root would classify from packets; this test is about counters.
        "limited": true,
    }));
    let mut agent = pair.spawn_agent(&home, &cfg);
    let started = util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(10));
    assert_eq!(started.as_ref().map(|e| e["interface"].clone()), Some(serde_json::json!(pair.veth_a)));
    std::thread::sleep(Duration::from_millis(3500)); // past the grace period

    let onset = SystemTime::now();
    let mut flood = pair.udp_flood(3, 9);
    let open = util::wait_for_event(&home.events_file(), "incident_open", Duration::from_secs(5));
    let resolve = util::wait_for_event(&home.events_file(), "incident_resolve", Duration::from_secs(25));
    let _ = flood.wait();
    let status = util::terminate(&mut agent, Duration::from_secs(5));

    let open = open.expect("incident_open after the flood started");
    // An open stamped before the onset is a false incident, not a zero latency.
    let latency = util::event_time(&open)
        .duration_since(onset)
        .unwrap_or_else(|e| panic!("incident_open {:?} before the flood began: {open}", e.duration()));
    assert!(latency < Duration::from_secs(1), "incident_open {latency:?} after onset");
    assert_eq!(open["attack_family"], "udp_flood", "{open}");
    assert_eq!(open["classified_by"], "counters");
    let resolve = resolve.expect("incident_resolve after the flood stopped");
    assert_eq!(resolve["reason"], "traffic_normal");
    assert_eq!(resolve["incident_id"], open["incident_id"]);
    assert!(status.is_some_and(|s| s.success()), "agent exits 0 on SIGTERM");
    eprintln!("veth flood: incident_open {latency:?} after onset, peak {} pps", resolve["peak_pps"]);
}

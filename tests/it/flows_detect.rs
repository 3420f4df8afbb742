//! Per-address flow detection end to end (§12): softflowd (NetFlow v9, 1 s active and expiry
//! timeouts) watches the agent's veth in a namespace and exports to the agent's collector on
//! loopback; hping3 floods an address inside `flows.networks` that is not the agent's own.
//! The agent must open a host incident for that address within 1 s of the first datagram
//! carrying the flood reaching the collector, with the flow facts in the event.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::util::{self, Home, NetnsPair};

/// softflowd in namespace `ns` on `iface`, NetFlow v9 to 127.0.0.1:`port`; killed on drop.
pub fn softflowd(ns: &str, iface: &str, port: u16, ctl: &Path) -> Child {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "softflowd",
            "-d",
            "-D",
            "-v",
            "9",
            "-t",
            "maxlife=1",
            "-t",
            "expint=1",
            "-i",
            iface,
        ])
        .args(["-n", &format!("127.0.0.1:{port}"), "-c"])
        .arg(ctl)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn softflowd")
}

pub fn mac_of(ns: &str, iface: &str) -> Option<String> {
    let out = Command::new("ip").args(["-n", ns, "-j", "link", "show", iface]).output().ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v[0]["address"].as_str().map(str::to_string)
}

#[test]
fn softflowd_v9_flood_on_another_address_opens_a_host_incident_within_a_second() {
    if !util::have("softflowd") || !util::have("hping3") {
        util::skip("softflowd and hping3 are needed (Debian packages softflowd, hping3)");
        return;
    }
    let _flood = util::flood_lock();
    let Some(pair) = NetnsPair::create() else { return };
    // The target: .50 of the pair's /24, owned by nobody; b reaches it through a static
    // neighbour entry, so the packets cross the veth where softflowd sees them.
    let net = pair.addr_a.rsplit_once('.').map(|(n, _)| n.to_string()).expect("dotted");
    let target = format!("{net}.50");
    let mac = mac_of(&pair.ns_a, &pair.veth_a).expect("veth mac");
    assert!(util::run(Command::new("ip").args([
        "-n",
        &pair.ns_b,
        "neigh",
        "replace",
        &target,
        "lladdr",
        &mac,
        "dev",
        &pair.veth_b
    ]))
    .status
    .success());
    let home = Home::new();
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let cfg = home.write_config(json!({
        "interface": pair.veth_a,
        "grace_period_s": 0,
        "flows": {"listen": [format!("127.0.0.1:{port}")], "networks": [format!("{net}.0/24")], "exporters": ["127.0.0.1"]},
    }));
    let mut agent = pair.spawn_agent(&home, &cfg);
    assert!(util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(10)).is_some());
    let ctl = home.path().join("softflowd.ctl");
    let mut sfd = softflowd(&pair.ns_a, &pair.veth_a, port, &ctl);
    std::thread::sleep(Duration::from_secs(2));
    let onset = SystemTime::now();
    let mut flood = Command::new("timeout")
        .args(["4", "ip", "netns", "exec", &pair.ns_b, "hping3", "--udp", "--flood", "-q", "-p", "9", &target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hping3");
    let open = util::wait_for_event(&home.events_file(), "incident_open", Duration::from_secs(8));
    let _ = flood.wait();
    let _ = sfd.kill();
    let _ = sfd.wait();
    util::terminate(&mut agent, Duration::from_secs(5));
    let events = util::read_events(&home.events_file());
    let open = open.unwrap_or_else(|| panic!("no incident: {events:#?}"));
    let flow_open = events
        .iter()
        .find(|e| e["event"] == "incident_open" && e["interface"] == "flows")
        .unwrap_or_else(|| panic!("no flow incident: {events:#?}"));
    assert_eq!(flow_open["scope"], "host", "{flow_open}");
    assert_eq!(flow_open["target_ips"][0], target.as_str(), "{flow_open}");
    assert_eq!(flow_open["source"], "netflow_v9", "{flow_open}");
    assert_eq!(flow_open["exporter"], "127.0.0.1", "{flow_open}");
    assert_eq!(flow_open["sampling_rate"], 1, "{flow_open}");
    assert_eq!(flow_open["attack_family"], "udp_flood", "{flow_open}");
    assert!(flow_open["top_src_ips"][0]["ip"] == pair.addr_b.as_str(), "{flow_open}");
    let first = humantime::parse_rfc3339(flow_open["first_datagram_at"].as_str().expect("first_datagram_at")).unwrap();
    let latency = util::event_time(flow_open).duration_since(first).unwrap_or_default();
    eprintln!(
        "flows e2e: open {:?} after the first flood datagram arrived (exporter delay {} ms), {:?} after the flood began",
        latency,
        flow_open["exporter_delay_ms"],
        util::event_time(flow_open).duration_since(onset).unwrap_or_default()
    );
    assert!(latency <= Duration::from_millis(1000), "latency {latency:?} (bar 1 s): {flow_open}");
    let _ = open;
}

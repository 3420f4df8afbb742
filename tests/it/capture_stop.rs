//! Regression: with in-process capture on an idle interface, libpcap's read timeout never fired
//! and SIGTERM waited for the next packet (minutes on a quiet link). The stop must take < 5 s.

use std::time::{Duration, Instant};

use crate::util::{self, Home, NetnsPair};

#[test]
fn sigterm_with_capture_on_an_idle_interface_exits_within_5_s() {
    let _flood = util::flood_lock();
    let Some(pair) = NetnsPair::create() else { return };
    // No IPv6 autoconfiguration chatter: the link must stay silent.
    for (ns, dev) in [(&pair.ns_a, &pair.veth_a), (&pair.ns_b, &pair.veth_b)] {
        let key = format!("net.ipv6.conf.{dev}.disable_ipv6=1");
        let _ = std::process::Command::new("ip").args(["netns", "exec", ns, "sysctl", "-qw", &key]).status();
    }
    let home = Home::new();
    let cfg = home.write_config(serde_json::json!({ "interface": pair.veth_a, "pcap_mode": "scapy" }));
    let mut agent = pair.spawn_agent(&home, &cfg);
    let start = util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(10)).expect("agent_start");
    assert_ne!(start["mode"], "limited", "capture should be on as root: {start}");
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    let status = util::terminate(&mut agent, Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "no clean exit within 5 s ({:?})", t.elapsed());
}

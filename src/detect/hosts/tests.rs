use std::net::IpAddr;

use super::scenarios::{flows_config, normal, records, run_records};
use super::*;
use crate::event::Event;
use crate::input::flows::FlowSource;

const T0: u64 = 1_767_225_600_000;

fn rec(src: &str, dst: &str, packets: u64, start_ms: u64, end_ms: u64) -> FlowRecord {
    FlowRecord {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        src_port: 123,
        dst_port: 4444,
        proto: 17,
        tcp_flags: 0,
        packets,
        bytes: packets * 468,
        start_ms,
        end_ms,
        fragment: false,
        ttl: None,
        sampling_rate: 1000,
        source: FlowSource::Sflow,
        exporter: "192.0.2.9".parse().unwrap(),
        family: None,
    }
}

#[test]
fn keys_and_prefixes() {
    let v4: IpAddr = "198.51.100.77".parse().unwrap();
    assert_eq!(ip_of(key_of(v4)), v4);
    assert_eq!(prefix_text(prefix_key(key_of(v4))), "198.51.100.0/24");
    let v6: IpAddr = "2001:db8:1:2::5".parse().unwrap();
    assert_eq!(ip_of(key_of(v6)), v6);
    assert_eq!(prefix_text(prefix_key(key_of(v6))), "2001:db8:1::/48");
    // An IPv4-mapped IPv6 address is the IPv4 address.
    assert_eq!(key_of("::ffff:198.51.100.77".parse().unwrap()), key_of(v4));
}

#[test]
fn both_directions_inside_networks_are_tracked_and_others_cost_nothing() {
    let mut d = FlowDetector::new(&DetectConfig::default(), &flows_config(100), T0);
    d.record(&rec("198.51.100.5", "2001:db8::1", 10, T0, T0), T0);
    d.record(&rec("203.0.113.1", "203.0.113.2", 10, T0, T0), T0);
    let s = d.stats();
    assert_eq!((s.records, s.unprotected_records, s.hosts, s.prefixes), (2, 1, 2, 2));
}

#[test]
fn a_long_flow_counts_its_recent_share_and_late_records_are_counted() {
    let mut d = FlowDetector::new(&DetectConfig::default(), &flows_config(100), T0);
    let mut out = Vec::new();
    d.tick(T0 + 10_000, &mut out);
    // A 60 s flow of 60000 packets: 2000 of them (its last 2 s) count now.
    d.record(&rec("203.0.113.1", "198.51.100.5", 60_000, T0 - 50_000, T0 + 10_000), T0 + 10_100);
    // A 1 s flow that ended before the open window: late, counted in full.
    d.record(&rec("203.0.113.1", "198.51.100.5", 500, T0 + 8_000, T0 + 9_000), T0 + 10_200);
    let e = &d.hosts.entries[d.hosts.get(key_of("198.51.100.5".parse().unwrap())).unwrap() as usize];
    assert!((e.acc[0][0] - 2500.0).abs() < 1.0, "{:?}", e.acc[0]);
    assert_eq!(e.acc[0][2], 2.0, "two flows");
    let s = d.stats();
    assert_eq!(s.late_records, 1);
    assert_eq!(s.spread_packets, 58_000);
}

#[test]
fn spoofed_destinations_stay_bounded_and_evictions_are_counted() {
    // 200k distinct destinations in a /32 of IPv6, 100 per record batch, into a table of 1000.
    let mut cfg = flows_config(1000);
    cfg.max_hosts = 1000;
    let mut d = FlowDetector::new(&DetectConfig::default(), &cfg, T0);
    let mut out = Vec::new();
    for n in 0..200_000u64 {
        let dst = IpAddr::from(std::net::Ipv6Addr::from(
            0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | (n as u128 * 0x1_0000_0001),
        ));
        let mut r = rec("203.0.113.1", "198.51.100.1", 1, T0, T0);
        r.dst = dst;
        d.record(&r, T0 + n / 100);
        if n % 10_000 == 0 {
            d.tick(T0 + n / 10, &mut out);
        }
    }
    let s = d.stats();
    assert_eq!(s.hosts, 1000);
    assert!(d.hosts.entries.len() <= 1000 && d.prefixes.entries.len() <= 1000);
    assert!(s.prefixes <= 1000);
    assert_eq!(s.host_evictions, 200_000 - 1000);
    assert!(d.evidence.len() <= MAX_EVIDENCE);
}

#[test]
fn an_address_with_its_baselines_is_small() {
    // Both directions, the compact baselines, the LRU links: the bar is 2 KiB per address
    // including the map and its prefix (measured as RSS by scripts/flows-rss.sh).
    let size = std::mem::size_of::<table::Entry>();
    assert!(size <= 1500, "Entry is {size} bytes");
}

#[test]
fn outbound_floods_open_outbound_incidents_with_the_targets() {
    let cfg = flows_config(100);
    let src: IpAddr = "198.51.100.20".parse().unwrap();
    let out = run_records(&cfg, 160, |n, out| {
        if (120..140).contains(&n) {
            for k in 0..50u8 {
                let mut r = rec("198.51.100.20", "203.0.113.1", 1000, T0 + n * 1000, T0 + n * 1000 + 900);
                r.dst = IpAddr::from([203, 0, 113, k]);
                r.src = src;
                r.proto = 6;
                r.tcp_flags = 0x02;
                r.bytes = 60_000;
                out.push(r);
            }
        }
    });
    let opens = out.opens();
    assert!(!opens.is_empty(), "{:?}", out.summary());
    let o = &opens[0].body;
    assert_eq!(o["direction"], "outbound", "{o}");
    assert_eq!(o["target_ips"][0], "198.51.100.20", "{o}");
    assert_eq!(o["attack_family"], "syn_flood", "{o}");
    assert_eq!(o["sampling_rate"], 1000, "{o}");
    assert_eq!(o["source"], "sflow", "{o}");
}

#[test]
fn incident_carries_the_exporter_delay_and_resolves_on_stop() {
    let mut d = FlowDetector::new(&DetectConfig::default(), &flows_config(100), T0);
    let mut out: Vec<Event> = Vec::new();
    let dst: IpAddr = "198.51.100.10".parse().unwrap();
    // 10x the floor at once: opens even in the grace period.
    let mut recs = Vec::new();
    records(dst, &scenarios::Traffic { pps: 60_000.0, ..normal(0.0) }, 0, &mut recs);
    for r in &recs {
        d.record(r, T0 + 1_300);
    }
    d.tick(T0 + 2_000, &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    let v = serde_json::to_value(&out[0]).unwrap();
    assert_eq!(v["event"], "incident_open");
    assert_eq!(v["exporter_delay_ms"], 1_300, "{v}");
    assert_eq!(v["interface"], "flows");
    out.clear();
    d.stop(T0 + 3_000, &mut out);
    let v = serde_json::to_value(&out[0]).unwrap();
    assert_eq!((v["event"].as_str(), v["reason"].as_str()), (Some("incident_resolve"), Some("agent_stopped")));
    assert_eq!(d.open_incidents().count(), 0);
}

#[test]
fn this_hosts_own_addresses_open_no_flow_incident() {
    let mut d = FlowDetector::new(&DetectConfig::default(), &flows_config(100), T0);
    let dst: IpAddr = "198.51.100.10".parse().unwrap();
    d.set_own(&[dst]);
    let mut out: Vec<Event> = Vec::new();
    for s in 0..5 {
        let mut recs = Vec::new();
        records(dst, &scenarios::Traffic { pps: 60_000.0, ..normal(0.0) }, s, &mut recs);
        for r in &recs {
            d.record(r, T0 + s * 1000 + 1_300);
        }
        d.tick(T0 + s * 1000 + 2_000, &mut out);
    }
    assert!(out.is_empty(), "{out:?}");
    assert!(d.stats().own_incidents >= 1);
    assert_eq!(d.stats().hosts, 1, "still counted");
}

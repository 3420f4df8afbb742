//! The planner against classifications as the real engine produces them.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::config::mitigation::Cidr;
use crate::input::capture::engine::parse::{tcp_flags as f, LinkType};
use crate::input::capture::engine::synth::*;
use crate::input::capture::engine::Engine;

const VICTIM: [u8; 4] = [10, 9, 9, 9];

fn engine(frames: impl IntoIterator<Item = Vec<u8>>) -> Classification {
    let mut e = Engine::new(None::<Arc<_>>);
    for (i, fr) in frames.into_iter().enumerate() {
        e.push(LinkType::Ethernet, i as u64 * 1000, fr.len() as u32, &fr);
    }
    e.classification()
}

fn spoofed(i: u32) -> [u8; 4] {
    let b = (i + 1).to_be_bytes();
    [11, b[1], b[2], b[3]]
}

fn rules(c: &Classification, cfg: &MitigationConfig, allow: &[Cidr]) -> Vec<Rule> {
    plan(c, cfg, allow).into_iter().map(|p| p.rule).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn amplification_drops_the_amplifier_port_to_the_target() {
    let c = engine((0..2000u32).map(|i| eth4(spoofed(i % 300), VICTIM, 17, &udp(161, 40000, &[0; 200]))));
    assert_eq!(c.attack_subtype.as_deref(), Some("snmp_amplification"));
    let r = rules(&c, &MitigationConfig::default(), &[]);
    assert_eq!(r, vec![Rule::DropAmplifier { target: ip("10.9.9.9"), src_port: 161 }]);
}

#[test]
fn isakmp_amplification_covers_both_of_its_ports() {
    let c = engine((0..2000u32).map(|i| eth4(spoofed(i % 300), VICTIM, 17, &udp(500, 40000, &[0; 200]))));
    let r = rules(&c, &MitigationConfig::default(), &[]);
    assert!(r.contains(&Rule::DropAmplifier { target: ip("10.9.9.9"), src_port: 500 }), "{r:?}");
    assert!(r.contains(&Rule::DropAmplifier { target: ip("10.9.9.9"), src_port: 4500 }), "{r:?}");
}

#[test]
fn few_real_sources_go_into_the_timed_set_except_allowlisted_ones() {
    let srcs = [[10, 77, 0, 2], [10, 77, 0, 3]];
    let c = engine((0..2000u32).map(|i| eth4(srcs[i as usize % 2], VICTIM, 17, &udp(1024 + i as u16, 9999, b"x"))));
    let r = rules(&c, &MitigationConfig::default(), &[]);
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r.iter().all(|x| matches!(x, Rule::BlockSource { .. })));
    let allow = [Cidr::parse("10.77.0.3").unwrap()];
    assert_eq!(rules(&c, &MitigationConfig::default(), &allow), vec![Rule::BlockSource { source: ip("10.77.0.2") }]);
    let all = [Cidr::parse("10.77.0.0/16").unwrap()];
    assert!(rules(&c, &MitigationConfig::default(), &all).is_empty());
}

#[test]
fn spoofed_syn_flood_gets_a_rate_limit_on_the_attacked_port() {
    let c = engine((0..3000u32).map(|i| eth4(spoofed(i), VICTIM, 6, &tcp(1024 + i as u16, 80, f::SYN, b""))));
    assert_eq!(c.attack_family, "syn_flood");
    let cfg = MitigationConfig { syn_rate_pps: 77, ..Default::default() };
    assert_eq!(rules(&c, &cfg, &[]), vec![Rule::SynRateLimit { port: Some(80), pps: 77 }]);
}

#[test]
fn icmp_and_fragment_floods() {
    let c = engine((0..2000u32).map(|i| eth4(spoofed(i), VICTIM, 1, &icmp(8, 0, &[0; 56]))));
    assert_eq!(rules(&c, &MitigationConfig::default(), &[]), vec![Rule::IcmpRateLimit { v6: false, pps: 100 }]);
    let c =
        engine((0..2000u32).map(|i| {
            ethernet(0x0800, &[], &ipv4(spoofed(i), VICTIM, 17, 64, frag(1480 * (1 + i % 3), true), &[0; 1480]))
        }));
    assert_eq!(c.attack_family, "fragment_flood");
    assert_eq!(rules(&c, &MitigationConfig::default(), &[]), vec![Rule::DropFragments { target: ip("10.9.9.9") }]);
}

#[test]
fn actions_override_and_counter_incidents_need_an_explicit_rate_limit() {
    let c = engine((0..2000u32).map(|i| eth4(spoofed(i % 300), VICTIM, 17, &udp(161, 40000, &[0; 200]))));
    let none = MitigationConfig { actions: vec![("amplification".into(), Action::None)], ..Default::default() };
    assert!(rules(&c, &none, &[]).is_empty());
    let counters = Classification { attack_family: "tcp_flood".into(), ..Classification::unknown() };
    assert!(rules(&counters, &MitigationConfig::default(), &[]).is_empty(), "counters alone act on nothing");
    let asked = MitigationConfig { actions: vec![("tcp_flood".into(), Action::SynRateLimit)], ..Default::default() };
    assert_eq!(rules(&counters, &asked, &[]), vec![Rule::SynRateLimit { port: None, pps: 1000 }]);
    let drop = MitigationConfig { actions: vec![("tcp_flood".into(), Action::BlockSources)], ..Default::default() };
    assert!(rules(&counters, &drop, &[]).is_empty(), "only rate limits for counter incidents");
}

#[test]
fn multi_vector_plans_each_strong_vector() {
    let mut c = Classification {
        attack_family: "multi_vector".into(),
        classified_by: "packets".into(),
        ..Classification::unknown()
    };
    c.evidence.insert("total_packets".into(), json!(1000));
    c.evidence.insert("source_ip_count".into(), json!(5000));
    c.evidence.insert("target_ips".into(), json!([{"ip": "192.0.2.1", "count": 1000, "share": 1.0}]));
    c.evidence.insert("top_dst_ports".into(), json!([{"port": 443, "count": 500}]));
    c.evidence.insert(
        "vectors".into(),
        json!([{"family": "syn_flood", "subtype": null, "share": 0.5}, {"family": "udp_flood", "subtype": "ntp_amplification", "share": 0.45}, {"family": "icmp_flood", "subtype": null, "share": 0.05}]),
    );
    let r = rules(&c, &MitigationConfig::default(), &[]);
    assert_eq!(
        r,
        vec![
            Rule::SynRateLimit { port: Some(443), pps: 1000 },
            Rule::DropAmplifier { target: ip("192.0.2.1"), src_port: 123 }
        ]
    );
}

#[test]
fn max_rules_keeps_the_widest_rule_only_past_the_cap() {
    let p = |w: f64, last: u8| Planned { rule: Rule::BlockSource { source: IpAddr::from([10, 0, 0, last]) }, width: w };
    let new = vec![p(0.5, 1), p(0.3, 2), p(0.2, 3)];
    assert_eq!(cap(new.clone(), 0, 3).len(), 3);
    assert_eq!(cap(new.clone(), 1, 3), vec![p(0.5, 1)]);
    assert_eq!(cap(new.clone(), 2, 3), vec![p(0.5, 1)]);
    assert!(cap(new, 3, 3).is_empty());
}

#[test]
fn rule_keys_are_stable_and_distinct() {
    let keys: Vec<String> = [
        Rule::DropAmplifier { target: ip("10.0.0.1"), src_port: 53 },
        Rule::BlockSource { source: ip("2001:db8::1") },
        Rule::SynRateLimit { port: Some(80), pps: 1 },
        Rule::SynRateLimit { port: None, pps: 1 },
        Rule::IcmpRateLimit { v6: true, pps: 1 },
        Rule::DropFragments { target: ip("10.0.0.1") },
    ]
    .iter()
    .map(Rule::key)
    .collect();
    assert_eq!(keys, ["amp:10.0.0.1:53", "src:2001:db8::1", "syn:80", "syn:any", "icmp:6", "frag:10.0.0.1"]);
}

#[test]
fn a_neighbour_with_a_few_packets_beside_the_flood_is_not_blocked() {
    let mut c = Classification {
        attack_family: "udp_flood".into(),
        classified_by: "packets".into(),
        ..Classification::unknown()
    };
    c.evidence.insert("total_packets".into(), json!(100_000));
    c.evidence.insert("source_ip_count".into(), json!(4));
    c.evidence.insert(
        "top_src_ips".into(),
        json!([{"ip": "10.77.0.2", "count": 97_000}, {"ip": "10.77.0.3", "count": 2_990},
               {"ip": "fe80::1", "count": 5}, {"ip": "169.254.1.1", "count": 5}]),
    );
    assert_eq!(
        rules(&c, &MitigationConfig::default(), &[]),
        vec![Rule::BlockSource { source: ip("10.77.0.2") }, Rule::BlockSource { source: ip("10.77.0.3") },]
    );
    c.evidence.insert(
        "top_src_ips".into(),
        json!([{"ip": "fe80::1", "count": 60_000}, {"ip": "10.77.0.2", "count": 40_000}]),
    );
    assert_eq!(
        rules(&c, &MitigationConfig::default(), &[]),
        vec![Rule::BlockSource { source: ip("10.77.0.2") }],
        "link-local never"
    );
}

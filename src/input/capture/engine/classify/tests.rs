//! One synthetic flood per family and subtype of §7.3, through the real engine.

use std::sync::Arc;

use crate::config::IocPattern;
use crate::input::capture::engine::ioc::IocMatcher;
use crate::input::capture::engine::parse::{tcp_flags as f, LinkType};
use crate::input::capture::engine::synth::*;
use crate::input::capture::engine::Engine;

use super::*;

const VICTIM: [u8; 4] = [10, 9, 9, 9];

/// Source `i` of a spoofed flood.
fn src(i: u32) -> [u8; 4] {
    let b = (i + 1).to_be_bytes();
    [11, b[1], b[2], b[3]]
}

fn run(frames: impl IntoIterator<Item = Vec<u8>>) -> Verdict {
    run_with(LinkType::Ethernet, None, frames)
}

fn run_with(link: LinkType, ioc: Option<Arc<IocMatcher>>, frames: impl IntoIterator<Item = Vec<u8>>) -> Verdict {
    let mut e = Engine::new(ioc);
    for (i, fr) in frames.into_iter().enumerate() {
        e.push(link, i as u64 * 1000, fr.len() as u32, &fr);
    }
    e.verdict()
}

fn flood(n: u32, mk: impl Fn(u32) -> Vec<u8>) -> Vec<Vec<u8>> {
    (0..n).map(mk).collect()
}

fn check(v: &Verdict, family: &str, subtype: Option<&str>) {
    assert_eq!((v.family, v.subtype.as_deref()), (family, subtype), "{v:?}");
    assert!(v.confidence >= 50, "{v:?}");
}

#[test]
fn syn_flood_from_spoofed_sources() {
    let v = run(flood(2000, |i| eth4(src(i), VICTIM, 6, &tcp(1024 + i as u16, 80, f::SYN, b""))));
    check(&v, "syn_flood", None);
    assert_eq!(v.confidence, 100);
}

#[test]
fn tcp_flag_floods() {
    for (flags, sub) in [
        (f::SYN | f::ACK, "syn_ack_flood"),
        (f::ACK, "ack_flood"),
        (f::RST, "rst_flood"),
        (f::RST | f::ACK, "rst_flood"),
        (f::FIN, "fin_flood"),
        (f::PSH | f::ACK, "psh_ack_flood"),
        (f::FIN | f::PSH | f::URG, "xmas_flood"),
        (0, "null_flood"),
    ] {
        let v = run(flood(1000, |i| eth4(src(i), VICTIM, 6, &tcp(5000, 443, flags, b""))));
        check(&v, "tcp_flood", Some(sub));
    }
}

#[test]
fn every_amplification_source_port() {
    for (port, sub) in crate::input::capture::engine::tally::AMPLIFIERS {
        let v = run(flood(1000, |i| eth4(src(i % 50), VICTIM, 17, &udp(*port, 30000 + i as u16, &[0; 400]))));
        check(&v, "udp_flood", Some(sub));
    }
}

#[test]
fn plain_udp_quic_and_dns_query_floods() {
    let v = run(flood(1000, |i| eth4(src(i), VICTIM, 17, &udp(40000, 1000 + i as u16, b"junk"))));
    check(&v, "udp_flood", None);
    let v = run(flood(1000, |i| eth4(src(i), VICTIM, 17, &udp(40000, 443, &[0xc3; 1200]))));
    check(&v, "udp_flood", Some("quic_flood"));
    let v = run(flood(1000, |i| eth4(src(i), VICTIM, 17, &udp(40000 + i as u16, 53, &dns_query("x.example.com")))));
    check(&v, "dns_flood", Some("dns_query_flood"));
}

#[test]
fn icmp_ping_flood_and_ping_of_death() {
    let v = run(flood(1000, |i| eth4(src(i), VICTIM, 1, &icmp(8, 0, &[0; 56]))));
    check(&v, "icmp_flood", Some("ping_flood"));
    // Oversized echo requests: 45 fragments each, the last reaching past 65,535 bytes.
    let pod = (0..20u32).flat_map(|d| {
        (0..45u32).map(move |k| {
            let off = k * 1480;
            let body = if k == 0 { icmp(8, 0, &[0; 1472]) } else { vec![0; 1480] };
            ethernet(0x0800, &[], &ipv4(src(d), VICTIM, 1, 64, frag(off, k < 44), &body))
        })
    });
    check(&run(pod), "fragment_flood", Some("ping_of_death"));
}

#[test]
fn gre_and_fragment_floods() {
    let v = run(flood(1000, |i| eth4(src(i), VICTIM, 47, &gre(0x0800, &[0; 100]))));
    check(&v, "protocol_flood", Some("gre_flood"));
    let v = run(flood(1000, |i| {
        ethernet(0x0800, &[], &ipv4(src(i), VICTIM, 17, 64, frag(1480 * (1 + i % 3), true), &[0; 1480]))
    }));
    check(&v, "fragment_flood", Some("udp_fragment_flood"));
}

#[test]
fn multi_vector_is_reachable() {
    let mut frames = flood(1000, |i| eth4(src(i), VICTIM, 6, &tcp(1024, 80, f::SYN, b"")));
    frames.extend(flood(900, |i| eth4(src(i), VICTIM, 17, &udp(123, 5555, &[0; 468]))));
    let v = run(frames);
    // The subtype is the largest vector's (here SYN, which has none of its own: its family).
    check(&v, "multi_vector", Some("syn_flood"));
    assert_eq!(v.family, "multi_vector");
    let fams: Vec<&str> = v.vectors.iter().map(|x| x.family).collect();
    assert_eq!(fams, vec!["syn_flood", "udp_flood"]);
    assert_eq!(v.vectors[1].subtype.as_deref(), Some("ntp_amplification"));
    // One vector at 30 % is not enough.
    let mut frames = flood(700, |i| eth4(src(i), VICTIM, 6, &tcp(1024, 80, f::SYN, b"")));
    frames.extend(flood(300, |i| eth4(src(i), VICTIM, 1, &icmp(8, 0, b""))));
    assert_eq!(run(frames).family, "syn_flood");
}

#[test]
fn ipv6_vlan_and_sll_floods_classify_the_same() {
    let s6 = |i: u32| {
        let mut a = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        a[12..].copy_from_slice(&i.to_be_bytes());
        a
    };
    let d6 = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99];
    let v = run(flood(1000, |i| ethernet(0x86dd, &[], &ipv6(s6(i), d6, 6, &[], &tcp(9, 22, f::SYN, b"")))));
    check(&v, "syn_flood", None);
    let v = run(flood(1000, |i| ethernet(0x86dd, &[], &ipv6(s6(i), d6, 58, &[], &icmp(128, 0, b"")))));
    check(&v, "icmp_flood", Some("ping_flood"));
    let v = run(flood(1000, |i| ethernet(0x0800, &[7, 8], &ipv4(src(i), VICTIM, 17, 64, 0, &udp(1900, 80, b"")))));
    check(&v, "udp_flood", Some("ssdp_amplification"));
    let v = run_with(
        LinkType::LinuxSll,
        None,
        flood(1000, |i| sll(0x0800, &ipv4(src(i), VICTIM, 6, 64, 0, &tcp(1, 2, f::SYN, b"")))),
    );
    check(&v, "syn_flood", None);
    let v = run_with(
        LinkType::LinuxSll2,
        None,
        flood(1000, |i| sll2(0x0800, &ipv4(src(i), VICTIM, 6, 64, 0, &tcp(1, 2, f::ACK, b"")))),
    );
    check(&v, "tcp_flood", Some("ack_flood"));
}

#[test]
fn ioc_hits_name_the_tool_and_raise_confidence() {
    let pats = [IocPattern {
        pattern: "\\x00\\x00mirai".into(),
        attack_name: "mirai_botnet".into(),
        attack_family: "udp_flood".into(),
    }];
    let m = Arc::new(IocMatcher::new(&pats).unwrap().unwrap());
    let mk = |i: u32| eth4(src(i), VICTIM, 17, &udp(40000, 1000 + i as u16, b"hdr\x00\x00mirai payload"));
    let with = run_with(LinkType::Ethernet, Some(m), flood(500, mk));
    assert_eq!(
        (with.family, with.subtype.as_deref(), with.attack_tool.as_deref()),
        ("udp_flood", Some("mirai_botnet"), Some("mirai_botnet"))
    );
    let without = run(flood(500, mk));
    assert!(with.confidence > without.confidence, "{with:?} {without:?}");
}

#[test]
fn too_few_packets_is_unknown() {
    let v = run(flood(5, |i| eth4(src(i), VICTIM, 6, &tcp(1, 2, f::SYN, b""))));
    assert_eq!((v.family, v.confidence), ("unknown", 0));
    assert_eq!(run(Vec::<Vec<u8>>::new()).family, "unknown");
}

#[test]
fn target_ips_name_the_attacked_addresses_with_shares() {
    let other = [10, 9, 9, 10];
    let mut e = Engine::new(None);
    for i in 0..1000u32 {
        let dst = if i % 4 == 0 { other } else { VICTIM };
        let fr = eth4(src(i), dst, 17, &udp(161, 40000, &[0; 100]));
        e.push(LinkType::Ethernet, u64::from(i) * 1000, fr.len() as u32, &fr);
    }
    let c = e.classification();
    let t = c.evidence["target_ips"].as_array().expect("target_ips");
    assert_eq!(t[0]["ip"], "10.9.9.9");
    assert_eq!(t[0]["share"], 0.75);
    assert_eq!(t[1]["ip"], "10.9.9.10");
    assert_eq!(t[1]["count"], 250);
}

//! Frame parser tests on synthetic frames of every supported layout, plus property tests over
//! random and mutated bytes (never a panic).

use super::*;
use crate::input::capture::engine::synth::{
    self, dns_query, esp, eth4, ethernet, frag, gre, icmp, sll, sll2, tcp, udp,
};
use synth::{ipv4 as ip4, ipv6 as ip6};

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];

#[test]
fn ethernet_ipv4_tcp_syn() {
    let f = eth4(A, B, 6, &tcp(1234, 80, tcp_flags::SYN, b""));
    let p = parse(LinkType::Ethernet, &f).unwrap();
    assert_eq!(p.src, Some(IpAddr::V4(Ipv4Addr::from(A))));
    assert_eq!(p.dst, Some(IpAddr::V4(Ipv4Addr::from(B))));
    assert_eq!(p.transport, Transport::Tcp { src_port: 1234, dst_port: 80, flags: tcp_flags::SYN });
    assert_eq!((p.ttl, p.ip_proto, p.vlan_tags), (64, 6, 0));
    assert!(!p.fragment.is_fragment);
}

#[test]
fn vlan_and_qinq_tags_are_skipped() {
    let ip = ip4(A, B, 17, 64, 0, &udp(53, 4444, b"x"));
    for tags in [&[10u16][..], &[100, 200]] {
        let f = ethernet(0x0800, tags, &ip);
        let p = parse(LinkType::Ethernet, &f).unwrap();
        assert_eq!(p.vlan_tags as usize, tags.len());
        assert_eq!(p.transport, Transport::Udp { src_port: 53, dst_port: 4444 });
        assert_eq!(p.payload, b"x");
    }
}

#[test]
fn linux_cooked_v1_v2_and_raw_ip() {
    let ip = ip4(A, B, 1, 50, 0, &icmp(8, 0, b"ping"));
    for (link, f) in [
        (LinkType::LinuxSll, sll(0x0800, &ip)),
        (LinkType::LinuxSll2, sll2(0x0800, &ip)),
        (LinkType::RawIp, ip.clone()),
    ] {
        let p = parse(link, &f).unwrap();
        assert_eq!(p.transport, Transport::Icmp { icmp_type: 8, code: 0 }, "{link:?}");
        assert_eq!(p.ttl, 50);
    }
}

#[test]
fn ipv6_with_extension_headers_and_fragments() {
    let s = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let d = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let hop = (0u8, vec![0u8; 8]);
    let dest = (60u8, vec![0u8; 16]);
    let f = ethernet(0x86dd, &[], &ip6(s, d, 6, &[hop, dest], &tcp(5, 443, 0x10, b"")));
    let p = parse(LinkType::Ethernet, &f).unwrap();
    assert_eq!(p.ip_proto, 6);
    assert_eq!(p.transport, Transport::Tcp { src_port: 5, dst_port: 443, flags: 0x10 });
    assert_eq!(p.src.unwrap().to_string(), "2001:db8::1");
    // First fragment: ports visible; a later fragment: none, but the protocol is known.
    let first = ip6(s, d, 17, &[(44, vec![0, 0, 0, 1, 0, 0, 0, 7])], &udp(53, 9, b"abc"));
    let p = parse(LinkType::RawIp, &first).unwrap();
    assert!(p.fragment.is_fragment && p.fragment.more && p.fragment.offset == 0);
    assert_eq!(p.transport, Transport::Udp { src_port: 53, dst_port: 9 });
    let later = ip6(s, d, 17, &[(44, vec![0, 0, 0x05, 0x28, 0, 0, 0, 7])], b"rest of it");
    let p = parse(LinkType::RawIp, &later).unwrap();
    assert_eq!((p.fragment.offset, p.ip_proto, p.transport), (1320, 17, Transport::None));
}

#[test]
fn ipv4_fragments_and_padding() {
    let later = ethernet(0x0800, &[], &ip4(A, B, 17, 64, frag(1480, true), &[0xab; 100]));
    let p = parse(LinkType::Ethernet, &later).unwrap();
    assert!(p.fragment.is_fragment && p.fragment.more);
    assert_eq!((p.fragment.offset, p.transport), (1480, Transport::None));
    // Ethernet padding after a short IP packet is not payload.
    let mut f = eth4(A, B, 17, &udp(1, 2, b"hi"));
    f.extend_from_slice(&[0u8; 20]);
    assert_eq!(parse(LinkType::Ethernet, &f).unwrap().payload, b"hi");
}

#[test]
fn gre_esp_and_non_ip() {
    let g = ip4(A, B, 47, 64, 0, &gre(0x0800, b"inner"));
    let p = parse(LinkType::RawIp, &g).unwrap();
    assert_eq!((p.transport, p.payload), (Transport::Gre { protocol: 0x0800 }, &b"inner"[..]));
    let e = ip4(A, B, 50, 64, 0, &esp(0xdead_beef, b"x"));
    let p = parse(LinkType::RawIp, &e).unwrap();
    assert_eq!(p.transport, Transport::Esp { spi: 0xdead_beef });
    let arp = ethernet(0x0806, &[], &[0u8; 28]);
    let p = parse(LinkType::Ethernet, &arp).unwrap();
    assert!(!p.is_ip());
    assert_eq!(p.ethertype, 0x0806);
}

#[test]
fn truncated_and_invalid_headers_are_errors_at_every_cut() {
    let f = eth4(A, B, 6, &tcp(1, 2, 2, b""));
    for cut in 0..f.len() {
        assert!(parse(LinkType::Ethernet, &f[..cut]).is_err(), "cut at {cut}");
    }
    let mut bad = ip4(A, B, 6, 64, 0, &tcp(1, 2, 2, b""));
    bad[0] = 0x42; // IHL 8 bytes
    assert_eq!(parse(LinkType::RawIp, &bad), Err(Malformed::Invalid("ipv4 header length")));
    assert_eq!(parse(LinkType::RawIp, &[0x50]), Err(Malformed::Invalid("ip version")));
}

#[test]
fn dns_query_names() {
    let mut out = String::new();
    assert!(dns_query_name(&dns_query("WWW.Example.com"), &mut out));
    assert_eq!(out, "www.example.com");
    let mut q = dns_query("a.b");
    q.truncate(14);
    assert!(!dns_query_name(&q, &mut out));
    assert!(!dns_query_name(b"short", &mut out));
}

mod properties {
    use super::*;
    use crate::input::capture::engine::Engine;
    use crate::input::capture::pcapfile::CaptureReader;
    use proptest::prelude::*;

    const LINKS: [LinkType; 5] =
        [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::RawIp, LinkType::Null];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), link in 0usize..5) {
            let mut e = Engine::default();
            e.push(LINKS[link], 0, bytes.len() as u32, &bytes);
            let _ = parse(LINKS[link], &bytes);
            let mut s = String::new();
            let _ = dns_query_name(&bytes, &mut s);
            prop_assert_eq!(e.packets(), 1);
        }

        #[test]
        fn mutated_valid_frames_never_panic(flips in proptest::collection::vec((0usize..80, any::<u8>()), 1..8), cut in 0usize..80) {
            let mut f = ethernet(0x86dd, &[5], &ip6([1; 16], [2; 16], 17, &[(0, vec![0; 8]), (44, vec![0; 8])], &udp(53, 53, &dns_query("a.b.c"))));
            for (at, v) in flips {
                if let Some(b) = f.get_mut(at) { *b = v; }
            }
            f.truncate(cut.max(1));
            let mut e = Engine::default();
            e.push(LinkType::Ethernet, 0, 0, &f);
            let _ = e.classification();
        }

        #[test]
        fn random_capture_files_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400), kind in 0usize..3) {
            let mut file = match kind {
                0 => 0xa1b2_c3d4u32.to_le_bytes().to_vec(),
                1 => 0xa1b2_3c4du32.to_be_bytes().to_vec(),
                _ => 0x0a0d_0d0au32.to_le_bytes().to_vec(),
            };
            file.extend_from_slice(&body);
            if let Ok(mut r) = CaptureReader::new(&file[..]) {
                for _ in 0..1000 {
                    match r.next_frame() {
                        Ok(Some(_)) => {}
                        _ => break,
                    }
                }
            }
        }
    }
}

//! The protected set from real /proc and resolv.conf text (verbatim from a Linux 6.x host).

use std::collections::HashSet;
use std::net::IpAddr;

use super::*;

const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";

const ROUTE6: &str = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

const IF_INET6: &str = "fe8000000000000000fc00fffe000001 04 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
fd000000000000000000000000000002 04 40 00 82     eth0
";

const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1162 1 00000000c4a24239 100 0 0 10 0
   2: 0100007F:A5D8 0200007F:8127 01 00000000:00000000 00:00000000 00000000     0        0 21938 2 00000000d284be2b 20 0 0 10 -1
   3: 0100007F:AF25 0100007F:9CE4 01 00000000:00000000 00:00000000 00000000     0        0 21933 1 00000000c01dd483 20 0 0 10 -1
   5: 0200000A:0016 0900020A:D431 06 00000000:00000000 00:00000000 00000000     0        0 0 3 0000000000000000
";

const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   1: 00000000000000000000000000000000:8127 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21937 1 00000000475f867b 100 0 0 10 0
   2: 00000000000000000000000001000000:A7A0 00000000000000000000000001000000:8EFB 01 00000000:00000000 00:00000000 00000000     0        0 21935 2 000000006f160e40 20 0 0 10 -1
   4: 0000000000000000FFFF00000200007F:8127 0000000000000000FFFF00000100007F:A5D8 01 00000000:00000000 00:00000000 00000000     0        0 21939 1 00000000a6d987d7 20 0 0 10 -1
";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn gateways_v4_and_v6_from_the_route_tables() {
    assert_eq!(gateways_v4(ROUTE), vec![ip("192.0.2.1")]);
    assert_eq!(gateways_v6(ROUTE6), vec![ip("fd00::1")]);
    assert_eq!(gateways_v6("garbage\n00 00"), Vec::<IpAddr>::new());
}

#[test]
fn host_addresses_from_if_inet6() {
    assert_eq!(if_inet6(IF_INET6), vec![ip("fe80::fc:ff:fe00:1"), ip("::1"), ip("fd00::2")]);
}

#[test]
fn resolvers_behind_the_systemd_stub_are_its_upstreams() {
    let stub = "# managed by systemd-resolved\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n";
    let upstream = "nameserver 203.0.113.53\nnameserver 2001:db8::53%eth0\n";
    assert_eq!(resolvers(stub, upstream), vec![ip("127.0.0.53"), ip("203.0.113.53"), ip("2001:db8::53")]);
    // Without the stub the other file is not read: it may be stale.
    assert_eq!(resolvers("nameserver 198.51.100.1\n", upstream), vec![ip("198.51.100.1")]);
}

#[test]
fn established_peers_only_from_established_lines() {
    assert_eq!(parse_established(TCP, false), vec![ip("127.0.0.2"), ip("127.0.0.1")]);
    assert_eq!(parse_established(TCP6, true), vec![ip("::1"), ip("127.0.0.1")]);
    assert_eq!(parse_established("header\n 0: zz:zz yy:yy 01\n", false), Vec::<IpAddr>::new());
}

#[test]
fn url_hosts() {
    assert_eq!(url_host("https://api.flowtriq.com/v1"), "api.flowtriq.com");
    assert_eq!(url_host("http://u:p@10.0.0.1:8080/x?y"), "10.0.0.1");
    assert_eq!(url_host("https://[2001:db8::1]:443/"), "2001:db8::1");
}

fn inputs() -> Inputs {
    Inputs {
        host: vec![ip("198.51.100.7"), ip("2001:db8:1::7")],
        route: ROUTE.into(),
        route6: ROUTE6.into(),
        resolv: "nameserver 127.0.0.53\n".into(),
        resolved: "nameserver 203.0.113.53\n".into(),
        sinks: vec![("api_base (api.example.com)".into(), vec![ip("203.0.113.80")])],
        allowlist: vec![crate::config::mitigation::Cidr::parse("198.18.0.0/15").unwrap()],
        block_private: false,
    }
}

#[test]
fn every_protected_address_says_why() {
    let mut s = ProtectedSet::from_inputs(&inputs());
    s.set_peers(HashSet::from([ip("192.0.2.200")]));
    let why = |a: &str| s.is_protected(ip(a)).map(|r| r.text());
    assert_eq!(why("198.51.100.7").unwrap(), "protected: the host's own address");
    assert_eq!(why("192.0.2.1").unwrap(), "protected: default gateway");
    assert_eq!(why("fd00::1").unwrap(), "protected: default gateway");
    assert_eq!(why("203.0.113.53").unwrap(), "protected: a resolver the host uses");
    assert_eq!(why("203.0.113.80").unwrap(), "protected: address of sink api_base (api.example.com)");
    assert_eq!(why("192.0.2.200").unwrap(), "protected: peer of a TCP connection established before the incident");
    assert_eq!(why("198.19.3.4").unwrap(), "protected: in mitigation.allowlist (198.18.0.0/15)");
    assert_eq!(why("10.1.2.3").unwrap(), "protected: private or CGNAT range (mitigation.block_private is false)");
    assert_eq!(why("100.100.0.1").unwrap(), "protected: private or CGNAT range (mitigation.block_private is false)");
    assert_eq!(why("fd12::1").unwrap(), "protected: private or CGNAT range (mitigation.block_private is false)");
    assert!(why("::ffff:192.0.2.1").is_some(), "v4-mapped is the same address");
    assert!(why("224.0.0.1").unwrap().contains("multicast"));
    assert_eq!(why("192.0.2.99"), None);
    assert_eq!(why("100.128.0.1"), None, "just outside CGNAT");
    let mut i = inputs();
    i.block_private = true;
    s.refresh(&i);
    assert_eq!(s.is_protected(ip("10.1.2.3")), None, "block_private: true makes private ranges blockable");
    assert!(s.is_protected(ip("192.0.2.200")).is_some(), "a refresh keeps the established peers");
}

//! Per-window / per-incident packet statistics (§7.2): one [`Tally::add`] per decoded packet,
//! fixed memory whatever the traffic (counters, fixed histograms, the sketches of
//! [`super::stats`]). This is the engine's hot path: no allocation per packet except a DNS name
//! for a query that is new to the top-N sketch.

use std::net::{IpAddr, Ipv6Addr};

use super::ioc::IocHits;
use super::parse::{tcp_flags as f, Packet, Transport};
use super::stats::{Histogram, HyperLogLog, Moments, SpaceSaving};

/// Amplification vectors by UDP **source** port (§7.3).
pub const AMPLIFIERS: &[(u16, &str)] = &[
    (53, "dns_amplification"),
    (123, "ntp_amplification"),
    (1900, "ssdp_amplification"),
    (11211, "memcached_amplification"),
    (389, "cldap_amplification"),
    (19, "chargen_amplification"),
    (161, "snmp_amplification"),
    (3702, "wsd_amplification"),
    (5353, "mdns_amplification"),
    (1194, "openvpn_amplification"),
    (3283, "apple_remote_amplification"),
    (500, "isakmp_amplification"),
    (4500, "isakmp_amplification"),
    (47808, "bacnet_amplification"),
];

/// TCP flag combinations counted separately; index into [`Tally::tcp_kind`].
pub const TCP_KINDS: &[&str] = &["syn", "syn_ack", "ack", "rst", "fin", "psh_ack", "xmas", "null", "other"];
pub const K_SYN: usize = 0;
pub const K_OTHER: usize = 8;

/// Individual flag names, bit order of the TCP header.
pub const FLAG_NAMES: &[&str] = &["FIN", "SYN", "RST", "PSH", "ACK", "URG"];

const SIZE_BOUNDS: &[u32] = &[64, 128, 256, 512, 1024, 1514, 9000];
const SRC_SKETCH: usize = 64;
const PORT_SKETCH: usize = 32;
const DNS_SKETCH: usize = 16;
/// Destinations tracked for `target_ips` (§5.6): the host's own addresses are few.
const DST_SKETCH: usize = 16;

#[derive(Debug, Clone)]
pub struct Tally {
    pub packets: u64,
    pub bytes: u64,
    pub malformed: u64,
    pub non_ip: u64,
    pub first_ts_ns: Option<u64>,
    pub last_ts_ns: u64,
    pub ipv4: u64,
    pub ipv6: u64,
    pub tcp: u64,
    pub udp: u64,
    pub icmp: u64,
    pub gre: u64,
    pub esp: u64,
    pub other_proto: u64,
    pub fragments: u64,
    pub udp_fragments: u64,
    pub icmp_fragments: u64,
    /// ICMP fragments reaching past 65,535 bytes, or oversized echo requests.
    pub ping_of_death: u64,
    pub icmp_echo_requests: u64,
    pub tcp_kind: [u64; 9],
    pub tcp_flag_bits: [u64; 6],
    /// UDP packets whose ports were seen (unfragmented or first fragment).
    pub udp_with_ports: u64,
    pub amp_src: [u64; 14],
    pub udp_dst_443: u64,
    pub udp_dst_53: u64,
    pub src_ips: SpaceSaving<u128>,
    /// Destination addresses, for `target_ips` (§5.6).
    pub dst_ips: SpaceSaving<u128>,
    pub sources: HyperLogLog,
    pub dst_ports: SpaceSaving<u16>,
    pub src_ports: SpaceSaving<u16>,
    pub sizes: Histogram,
    pub size_moments: Moments,
    pub ttl: Box<[u64; 256]>,
    pub dns_names: SpaceSaving<String>,
    pub ioc: IocHits,
    pub dropped: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            packets: 0,
            bytes: 0,
            malformed: 0,
            non_ip: 0,
            first_ts_ns: None,
            last_ts_ns: 0,
            ipv4: 0,
            ipv6: 0,
            tcp: 0,
            udp: 0,
            icmp: 0,
            gre: 0,
            esp: 0,
            other_proto: 0,
            fragments: 0,
            udp_fragments: 0,
            icmp_fragments: 0,
            ping_of_death: 0,
            icmp_echo_requests: 0,
            tcp_kind: [0; 9],
            tcp_flag_bits: [0; 6],
            udp_with_ports: 0,
            amp_src: [0; 14],
            udp_dst_443: 0,
            udp_dst_53: 0,
            src_ips: SpaceSaving::new(SRC_SKETCH),
            dst_ips: SpaceSaving::new(DST_SKETCH),
            sources: HyperLogLog::default(),
            dst_ports: SpaceSaving::new(PORT_SKETCH),
            src_ports: SpaceSaving::new(PORT_SKETCH),
            sizes: Histogram::new(SIZE_BOUNDS),
            size_moments: Moments::default(),
            ttl: Box::new([0; 256]),
            dns_names: SpaceSaving::new(DNS_SKETCH),
            ioc: IocHits::default(),
            dropped: 0,
        }
    }
}

/// An address as one 128-bit key (IPv4 as v4-mapped IPv6).
#[inline]
pub fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => 0xffff_0000_0000 | u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Back from [`ip_key`] to the address as text.
pub fn key_ip(k: u128) -> String {
    let v6 = Ipv6Addr::from(k);
    match v6.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => v6.to_string(),
    }
}

/// The TCP flag combination a packet belongs to.
#[inline]
pub fn tcp_kind(flags: u8) -> usize {
    let fl = flags & 0x3f;
    match fl {
        x if x == f::SYN => 0,
        x if x == f::SYN | f::ACK => 1,
        x if x == f::ACK => 2,
        x if x & f::RST != 0 => 3,
        x if x == f::FIN || x == f::FIN | f::ACK => 4,
        x if x == f::PSH | f::ACK => 5,
        x if x & (f::FIN | f::PSH | f::URG) == f::FIN | f::PSH | f::URG => 6,
        0 => 7,
        _ => K_OTHER,
    }
}

impl Tally {
    /// Count a frame that did not decode.
    pub fn add_malformed(&mut self, ts_ns: u64, wire_len: u32) {
        self.stamp(ts_ns, wire_len);
        self.malformed += 1;
    }

    #[inline]
    fn stamp(&mut self, ts_ns: u64, wire_len: u32) {
        self.packets += 1;
        self.bytes += u64::from(wire_len);
        if self.first_ts_ns.is_none() {
            self.first_ts_ns = Some(ts_ns);
        }
        self.last_ts_ns = self.last_ts_ns.max(ts_ns);
        self.sizes.add(wire_len);
        self.size_moments.add(f64::from(wire_len));
    }

    /// Count one decoded packet; `dns` is its query name when the caller decoded one.
    #[inline]
    pub fn add(&mut self, ts_ns: u64, wire_len: u32, p: &Packet<'_>) {
        self.stamp(ts_ns, wire_len);
        let Some(src) = p.src else {
            self.non_ip += 1;
            return;
        };
        if src.is_ipv4() {
            self.ipv4 += 1;
        } else {
            self.ipv6 += 1;
        }
        let key = ip_key(src);
        self.src_ips.add(key);
        self.sources.add_u128(key);
        if let Some(dst) = p.dst {
            self.dst_ips.add(ip_key(dst));
        }
        self.ttl[usize::from(p.ttl)] += 1;
        if p.fragment.is_fragment {
            self.fragments += 1;
        }
        match p.ip_proto {
            6 => self.tcp += 1,
            17 => {
                self.udp += 1;
                self.udp_fragments += u64::from(p.fragment.is_fragment);
            }
            1 | 58 => {
                self.icmp += 1;
                if p.fragment.is_fragment {
                    self.icmp_fragments += 1;
                    if p.fragment.offset + p.ip_len > 65_535 {
                        self.ping_of_death += 1;
                    }
                }
            }
            47 => self.gre += 1,
            50 => self.esp += 1,
            _ => self.other_proto += 1,
        }
        match p.transport {
            Transport::Tcp { src_port, dst_port, flags } => {
                self.tcp_kind[tcp_kind(flags)] += 1;
                for (bit, c) in self.tcp_flag_bits.iter_mut().enumerate() {
                    *c += u64::from(flags >> bit & 1);
                }
                self.dst_ports.add(dst_port);
                self.src_ports.add(src_port);
            }
            Transport::Udp { src_port, dst_port } => {
                self.udp_with_ports += 1;
                if let Some(i) = AMPLIFIERS.iter().position(|(port, _)| *port == src_port) {
                    self.amp_src[i] += 1;
                }
                self.udp_dst_443 += u64::from(dst_port == 443);
                self.udp_dst_53 += u64::from(dst_port == 53);
                self.dst_ports.add(dst_port);
                self.src_ports.add(src_port);
            }
            Transport::Icmp { icmp_type, .. } | Transport::Icmpv6 { icmp_type, .. } => {
                let echo = if p.ip_proto == 1 { 8 } else { 128 };
                if icmp_type == echo {
                    self.icmp_echo_requests += 1;
                    if p.ip_len > 65_500 {
                        self.ping_of_death += 1;
                    }
                }
            }
            _ => {}
        }
    }

    /// Packets per class for the per-protocol thresholds (§5.6): SYN (without ACK), UDP, ICMP
    /// (v4 and v6), IP fragments — the order of [`crate::input::protocols::CLASSES`].
    pub fn class_counts(&self) -> crate::input::protocols::ClassTotals {
        [self.tcp_kind[K_SYN], self.udp, self.icmp, self.fragments]
    }

    /// Packets that carried IP.
    pub fn ip_packets(&self) -> u64 {
        self.ipv4 + self.ipv6
    }

    pub fn duration_s(&self) -> f64 {
        match self.first_ts_ns {
            Some(first) => self.last_ts_ns.saturating_sub(first) as f64 / 1e9,
            None => 0.0,
        }
    }

    /// The most common TTL values, (ttl, count), largest first.
    pub fn top_ttls(&self, n: usize) -> Vec<(u8, u64)> {
        let mut v: Vec<(u8, u64)> =
            self.ttl.iter().enumerate().filter(|(_, c)| **c > 0).map(|(t, c)| (t as u8, *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

//! What the flow records of one suspect address or prefix say (§7.3 from flow facts), in
//! bounded memory: protocol and TCP-flag mix, fragments, sizes, top sources, top targets and top
//! ports (space-saving counters), the exporter and sampling rate, the sFlow engine's labels.
//!
//! What each format can tell: sFlow samples packet headers, so its records carry the capture
//! engine's own label (`family`) and every subtype it knows. NetFlow v5/v9 and IPFIX carry no
//! payload: families come from protocol, TCP flags, fragment flags and ports; amplification
//! subtypes from the well-known source port and the mean packet size; no DNS query names, no
//! IOC matches.

use std::net::IpAddr;

use serde_json::{json, Map, Value};

use crate::event::Classification;
use crate::input::flows::{FlowRecord, FlowSource};

/// Amplification by UDP source port (§7.3).
const AMPLIFIERS: &[(u16, &str)] = &[
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
/// Mean packet size (bytes) from which a reply port counts as amplification: requests are small.
pub const AMPLIFIED_MIN_BYTES: f64 = 200.0;
/// A vector's share of packets that makes a flood multi-vector when two reach it.
const MULTI_SHARE: f64 = 0.35;

/// Space-saving top-k counter: bounded, overestimates by at most the evicted minimum.
#[derive(Debug, Clone)]
pub struct TopK<K, const N: usize> {
    items: Vec<(K, f64)>,
}

impl<K, const N: usize> Default for TopK<K, N> {
    fn default() -> Self {
        TopK { items: Vec::new() }
    }
}

impl<K: PartialEq + Copy, const N: usize> TopK<K, N> {
    pub fn add(&mut self, k: K, w: f64) {
        if let Some(e) = self.items.iter_mut().find(|(x, _)| *x == k) {
            e.1 += w;
        } else if self.items.len() < N {
            self.items.push((k, w));
        } else if let Some(min) = self.items.iter_mut().min_by(|a, b| a.1.total_cmp(&b.1)) {
            *min = (k, min.1 + w);
        }
    }

    /// Largest first.
    pub fn top(&self, n: usize) -> Vec<(K, f64)> {
        let mut v = self.items.clone();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v.truncate(n);
        v
    }
}

/// TCP flag patterns counted per packet of a record.
const FLAG_NAMES: [&str; 8] = ["syn", "syn_ack", "ack", "rst", "fin", "psh_ack", "xmas", "null"];

fn flag_class(f: u8) -> usize {
    const FIN: u8 = 0x01;
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const PSH: u8 = 0x08;
    const ACK: u8 = 0x10;
    const URG: u8 = 0x20;
    match f {
        0 => 7,
        _ if f & (FIN | PSH | URG) == FIN | PSH | URG => 6,
        _ if f & SYN != 0 && f & ACK != 0 => 1,
        _ if f & SYN != 0 => 0,
        _ if f & RST != 0 => 3,
        _ if f & FIN != 0 => 4,
        _ if f & PSH != 0 && f & ACK != 0 => 5,
        _ => 2,
    }
}

#[derive(Debug, Clone)]
pub struct Evidence {
    pub packets: f64,
    pub bytes: f64,
    pub records: u64,
    /// TCP, UDP, ICMP (v4 and v6), GRE, other.
    proto: [f64; 5],
    fragments: f64,
    flags: [f64; 8],
    pub sources: TopK<IpAddr, 16>,
    pub targets: TopK<IpAddr, 16>,
    src_ports: TopK<u16, 8>,
    dst_ports: TopK<u16, 8>,
    /// sFlow: the capture engine's labels of the sampled headers.
    labels: TopK<u32, 4>,
    label_names: Vec<String>,
    pub source: FlowSource,
    pub exporter: IpAddr,
    pub sampling_rate: u32,
    /// Arrival of the first record minus that flow's start (ms).
    pub exporter_delay_ms: Option<u64>,
    /// Arrival of the first record (ms since the epoch, the collector's clock).
    pub first_arrival_ms: u64,
}

impl Evidence {
    pub fn new(r: &FlowRecord) -> Self {
        Evidence {
            packets: 0.0,
            bytes: 0.0,
            records: 0,
            proto: [0.0; 5],
            fragments: 0.0,
            flags: [0.0; 8],
            sources: TopK::default(),
            targets: TopK::default(),
            src_ports: TopK::default(),
            dst_ports: TopK::default(),
            labels: TopK::default(),
            label_names: Vec::new(),
            source: r.source,
            exporter: r.exporter,
            sampling_rate: r.sampling_rate,
            exporter_delay_ms: None,
            first_arrival_ms: 0,
        }
    }

    /// Add the share `packets`/`bytes` of record `r`, which arrived at `arrived_ms`.
    pub fn add(&mut self, r: &FlowRecord, packets: f64, bytes: f64, arrived_ms: u64) {
        if self.exporter_delay_ms.is_none() {
            self.exporter_delay_ms = Some(arrived_ms.saturating_sub(r.start_ms));
            self.first_arrival_ms = arrived_ms;
        }
        self.packets += packets;
        self.bytes += bytes;
        self.records += 1;
        self.sampling_rate = self.sampling_rate.max(r.sampling_rate);
        let p = match r.proto {
            6 => 0,
            17 => 1,
            1 | 58 => 2,
            47 => 3,
            _ => 4,
        };
        self.proto[p] += packets;
        if r.proto == 6 {
            self.flags[flag_class(r.tcp_flags)] += packets;
        }
        if r.fragment {
            self.fragments += packets;
        }
        self.sources.add(r.src, packets);
        self.targets.add(r.dst, packets);
        if matches!(r.proto, 6 | 17) {
            self.src_ports.add(r.src_port, packets);
            self.dst_ports.add(r.dst_port, packets);
        }
        if let Some(l) = r.family.as_deref() {
            let i = match self.label_names.iter().position(|n| n == l) {
                Some(i) => Some(i),
                None if self.label_names.len() < 16 && l.len() <= 64 => {
                    self.label_names.push(l.to_string());
                    Some(self.label_names.len() - 1)
                }
                None => None,
            };
            if let Some(i) = i {
                self.labels.add(i as u32, packets);
            }
        }
    }

    fn share(&self, v: f64) -> f64 {
        if self.packets > 0.0 {
            v / self.packets
        } else {
            0.0
        }
    }

    /// The vectors present, each (family, subtype, share of packets), largest first.
    fn vectors(&self) -> Vec<(&'static str, Option<&'static str>, f64)> {
        let mut v = Vec::new();
        let frag = self.share(self.fragments);
        let [tcp, udp, icmp, gre, other] = self.proto.map(|x| self.share(x));
        if frag >= 0.5 {
            let sub = if udp >= tcp { "udp_fragment_flood" } else { "fragment_flood" };
            v.push(("fragment_flood", Some(sub).filter(|s| *s != "fragment_flood"), frag));
        }
        if udp > 0.0 {
            v.push(("udp_flood", self.udp_subtype(), udp));
        }
        if tcp > 0.0 {
            let (i, f) = self.flags.iter().enumerate().fold((0, 0.0), |b, (i, f)| if *f > b.1 { (i, *f) } else { b });
            let family = if i == 0 { "syn_flood" } else { "tcp_flood" };
            let sub = match i {
                0 => None,
                1 => Some("syn_ack_flood"),
                2 => Some("ack_flood"),
                3 => Some("rst_flood"),
                4 => Some("fin_flood"),
                5 => Some("psh_ack_flood"),
                6 => Some("xmas_flood"),
                _ => Some("null_flood"),
            };
            v.push((family, sub.filter(|_| f > 0.0), tcp));
        }
        if icmp > 0.0 {
            v.push(("icmp_flood", Some("ping_flood"), icmp));
        }
        if gre > 0.0 {
            v.push(("protocol_flood", Some("gre_flood"), gre));
        }
        if other > 0.0 {
            v.push(("protocol_flood", None, other));
        }
        v.sort_by(|a, b| b.2.total_cmp(&a.2));
        v
    }

    /// UDP: amplification by the dominant source port and the mean size; QUIC; DNS queries.
    fn udp_subtype(&self) -> Option<&'static str> {
        let mean = if self.packets > 0.0 { self.bytes / self.packets } else { 0.0 };
        let udp = self.proto[1];
        let dominant = |t: &TopK<u16, 8>| t.top(1).first().copied().filter(|(_, w)| *w >= 0.5 * udp).map(|(p, _)| p);
        if let Some(port) = dominant(&self.src_ports) {
            if let Some((_, name)) = AMPLIFIERS.iter().find(|(p, _)| *p == port) {
                if mean >= AMPLIFIED_MIN_BYTES {
                    return Some(name);
                }
            }
        }
        match dominant(&self.dst_ports) {
            Some(443) => Some("quic_flood"),
            Some(53) => Some("dns_query_flood"),
            _ => None,
        }
    }

    /// The §7.3 classification with its evidence.
    pub fn classify(&self) -> Classification {
        let vectors = self.vectors();
        let label = self.labels.top(1).first().and_then(|(i, w)| {
            Some((self.label_names.get(*i as usize)?.clone(), self.share(*w))).filter(|(_, s)| *s >= 0.5)
        });
        let strong: Vec<_> = vectors.iter().filter(|v| v.2 >= MULTI_SHARE).collect();
        let (family, subtype, conf, by) = if strong.len() >= 2 && strong[0].0 != strong[1].0 {
            ("multi_vector".to_string(), None, strong[0].2 + strong[1].2, "flows")
        } else if let Some((l, s)) = label {
            let (f, sub) = l.split_once('/').map(|(f, s)| (f.to_string(), Some(s.to_string()))).unwrap_or((l, None));
            (f, sub, s, "packets")
        } else if let Some(v) = vectors.first() {
            let fam = if v.0 == "udp_flood" && v.1 == Some("dns_query_flood") { "dns_flood" } else { v.0 };
            (fam.to_string(), v.1.map(str::to_string), v.2, "flows")
        } else {
            ("unknown".to_string(), None, 0.0, "flows")
        };
        let mut e = Map::new();
        let top = |t: Vec<(IpAddr, f64)>| -> Value {
            Value::Array(
                t.into_iter().map(|(ip, w)| json!({"ip": ip.to_string(), "share": round3(self.share(w))})).collect(),
            )
        };
        let ports = |t: Vec<(u16, f64)>| -> Value {
            Value::Array(t.into_iter().map(|(p, w)| json!({"port": p, "share": round3(self.share(w))})).collect())
        };
        e.insert("top_src_ips".into(), top(self.sources.top(10)));
        e.insert("top_src_ports".into(), ports(self.src_ports.top(5)));
        e.insert("top_dst_ports".into(), ports(self.dst_ports.top(5)));
        let names = ["tcp", "udp", "icmp", "gre", "other"];
        let breakdown: Map<String, Value> =
            names.iter().zip(self.proto).map(|(n, p)| (n.to_string(), json!(round3(self.share(p))))).collect();
        e.insert("protocol_breakdown".into(), Value::Object(breakdown));
        let flags: Map<String, Value> = FLAG_NAMES
            .iter()
            .zip(self.flags)
            .filter(|(_, f)| *f > 0.0)
            .map(|(n, f)| (n.to_string(), json!(round3(self.share(f)))))
            .collect();
        e.insert("tcp_flags".into(), Value::Object(flags));
        e.insert("fragment_share".into(), json!(round3(self.share(self.fragments))));
        let mean = if self.packets > 0.0 { self.bytes / self.packets } else { 0.0 };
        e.insert("mean_packet_bytes".into(), json!(mean.round()));
        Classification {
            attack_family: family,
            attack_subtype: subtype,
            classified_by: by.into(),
            confidence: Some((conf.clamp(0.0, 1.0) * 100.0).round() as u8),
            evidence: e,
        }
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn rec(src_port: u16, dst_port: u16, proto: u8, flags: u8, bytes_per_packet: u64) -> FlowRecord {
        FlowRecord {
            src: "203.0.113.7".parse().unwrap(),
            dst: "198.51.100.10".parse().unwrap(),
            src_port,
            dst_port,
            proto,
            tcp_flags: flags,
            packets: 100,
            bytes: 100 * bytes_per_packet,
            start_ms: 1000,
            end_ms: 1500,
            fragment: false,
            ttl: None,
            sampling_rate: 1,
            source: FlowSource::NetflowV9,
            exporter: "10.0.0.1".parse().unwrap(),
            family: None,
        }
    }

    fn classify(rs: &[FlowRecord]) -> Classification {
        let mut e = Evidence::new(&rs[0]);
        for r in rs {
            e.add(r, r.packets as f64, r.bytes as f64, 2000);
        }
        e.classify()
    }

    #[test]
    fn families_and_subtypes_from_flow_facts() {
        let c = classify(&[rec(53, 40000, 17, 0, 1400)]);
        assert_eq!((c.attack_family.as_str(), c.attack_subtype.as_deref()), ("udp_flood", Some("dns_amplification")));
        // Small replies from port 53 are not amplification (NetFlow has no payload to say more).
        let c = classify(&[rec(53, 40000, 17, 0, 80)]);
        assert_eq!(c.attack_subtype, None);
        let c = classify(&[rec(40000, 80, 6, 0x02, 60)]);
        assert_eq!((c.attack_family.as_str(), c.attack_subtype), ("syn_flood", None));
        let c = classify(&[rec(40000, 80, 6, 0x10, 60)]);
        assert_eq!((c.attack_family.as_str(), c.attack_subtype.as_deref()), ("tcp_flood", Some("ack_flood")));
        let c = classify(&[rec(0, 0, 1, 0, 84)]);
        assert_eq!(c.attack_family, "icmp_flood");
        let c = classify(&[rec(123, 1, 17, 0, 468), rec(40000, 80, 6, 0x02, 60)]);
        assert_eq!(c.attack_family, "multi_vector");
        assert_eq!(c.evidence["top_src_ips"][0]["ip"], "203.0.113.7");
        assert_eq!(c.classified_by, "flows");
    }

    #[test]
    fn sflow_labels_from_the_capture_engine_win() {
        let mut r = rec(53, 40000, 17, 0, 1400);
        r.family = Some("udp_flood/dns_amplification".into());
        r.source = FlowSource::Sflow;
        let c = classify(&[r]);
        assert_eq!((c.attack_family.as_str(), c.attack_subtype.as_deref()), ("udp_flood", Some("dns_amplification")));
        assert_eq!(c.classified_by, "packets");
    }

    #[test]
    fn top_k_is_bounded_and_keeps_the_heavy() {
        let mut t: TopK<u16, 4> = TopK::default();
        for p in 0..1000u16 {
            t.add(p, 1.0);
        }
        t.add(7, 5000.0);
        assert_eq!(t.items.len(), 4);
        assert_eq!(t.top(1)[0].0, 7);
    }
}

//! Attack classification (§7.3): a [`Tally`] → family, subtype, confidence 0..100 and the vectors
//! behind them. Pure: the same tally always gives the same verdict.
//!
//! Rules, in order:
//! 1. Fragments ≥ 50 % of IP packets → `fragment_flood` (`udp_fragment_flood` when UDP
//!    fragments dominate, `ping_of_death` when oversized ICMP fragments do).
//! 2. Vectors are shares of IP packets: SYN-only TCP → `syn_flood`; other TCP → `tcp_flood`;
//!    UDP → `dns_flood` when ≥ 50 % of it is to port 53, else `udp_flood`; ICMP/ICMPv6 →
//!    `icmp_flood`; GRE, ESP and other protocols → `protocol_flood`. Two or more vectors of
//!    ≥ 35 % each → `multi_vector` (subtype of the largest); else the largest vector.
//!    Exception: an amplification vector of ≥ 20 % beside ACK/PSH-ACK TCP (the server's own
//!    sessions) is the attack, not the TCP.
//! 3. Subtypes: UDP from one amplifier source port ≥ 50 % of port-carrying UDP → that
//!    amplification; UDP/443 ≥ 50 % → `quic_flood`; a TCP flag combination ≥ 50 % of the
//!    non-SYN TCP → `syn_ack_flood`, `ack_flood`, ...; echo requests → `ping_flood`; oversized
//!    echo → `ping_of_death`; GRE → `gre_flood`; DNS to port 53 → `dns_query_flood`.
//! 4. IOC hits on ≥ 1 % of packets name the tool (`attack_tool`); on ≥ 10 % they become the
//!    subtype (e.g. `mirai_botnet`). Either raises confidence.
//!
//! Confidence: 100 × the deciding share, less when the sample is small (under 1,000 packets),
//! plus 10 for an IOC label, capped at 100.

use super::ioc::IocMatcher;
use super::tally::{Tally, AMPLIFIERS, K_OTHER, K_SYN, TCP_KINDS};

/// A vector must reach this share of IP packets to count towards `multi_vector`.
pub const MULTI_VECTOR_SHARE: f64 = 0.35;
/// Below this many IP packets nothing is claimed.
pub const MIN_PACKETS: u64 = 20;

#[derive(Debug, Clone, PartialEq)]
pub struct Vector {
    pub family: &'static str,
    pub subtype: Option<String>,
    /// Share of IP packets, 0..1.
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub family: &'static str,
    pub subtype: Option<String>,
    pub confidence: u8,
    /// Every vector with its share, largest first.
    pub vectors: Vec<Vector>,
    pub attack_tool: Option<String>,
}

fn share(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 / of as f64
    }
}

pub fn classify(t: &Tally, ioc: Option<&IocMatcher>) -> Verdict {
    let ip = t.ip_packets();
    if ip < MIN_PACKETS {
        return Verdict { family: "unknown", subtype: None, confidence: 0, vectors: Vec::new(), attack_tool: None };
    }
    let mut vectors = vectors(t, ip);
    vectors.sort_by(|a, b| b.share.total_cmp(&a.share));
    let frag_share = share(t.fragments, ip);
    let (family, subtype, decisive) = if frag_share >= 0.5 {
        let sub = if t.ping_of_death * 64 >= t.icmp_fragments && t.icmp_fragments * 2 >= t.fragments {
            Some("ping_of_death".to_string())
        } else if t.udp_fragments * 2 >= t.fragments {
            Some("udp_fragment_flood".to_string())
        } else {
            None
        };
        ("fragment_flood", sub, frag_share)
    } else {
        let strong: Vec<&Vector> = vectors.iter().filter(|v| v.share >= MULTI_VECTOR_SHARE).collect();
        let top = &vectors[0];
        let reflection = vectors.iter().find(|v| is_amplification(v) && v.share >= REFLECTION_SHARE);
        if let (Some(amp), true, 1) = (reflection, is_session_tcp(top), strong.len()) {
            // Reflection beside established-looking TCP: the TCP is the server's own traffic.
            let purity = share(t.amp_src.iter().copied().max().unwrap_or(0), t.udp_with_ports);
            (amp.family, amp.subtype.clone(), amp.share.max(0.5 * purity))
        } else if strong.len() >= 2 {
            ("multi_vector", top.subtype.clone().or(Some(top.family.to_string())), strong.iter().map(|v| v.share).sum())
        } else {
            (top.family, top.subtype.clone(), top.share)
        }
    };
    let mut confidence = 100.0 * decisive.min(1.0);
    if ip < 1000 {
        confidence *= 0.5 + 0.5 * ip as f64 / 1000.0;
    }
    let (mut subtype, mut attack_tool) = (subtype, None);
    if let Some(m) = ioc {
        if let Some((name, _, hits)) = t.ioc.by_name(m).into_iter().next() {
            let s = share(hits, t.packets);
            if s >= 0.01 {
                attack_tool = Some(name.clone());
                confidence += 10.0;
            }
            if s >= 0.10 {
                subtype = Some(name);
            }
        }
    }
    Verdict { family, subtype, confidence: confidence.clamp(0.0, 100.0).round() as u8, vectors, attack_tool }
}

/// An amplification vector this large is an attack even beside heavier ordinary TCP.
pub const REFLECTION_SHARE: f64 = 0.20;

fn is_amplification(v: &Vector) -> bool {
    v.subtype.as_deref().is_some_and(|s| s.ends_with("_amplification"))
}

/// ACK / PSH-ACK TCP: what any busy server receives on its established connections.
fn is_session_tcp(v: &Vector) -> bool {
    v.family == "tcp_flood" && matches!(v.subtype.as_deref(), Some("ack_flood" | "psh_ack_flood"))
}

fn vectors(t: &Tally, ip: u64) -> Vec<Vector> {
    let syn = t.tcp_kind[K_SYN];
    let tcp_other = t.tcp.saturating_sub(syn);
    let mut v = vec![
        Vector { family: "syn_flood", subtype: None, share: share(syn, ip) },
        Vector { family: "tcp_flood", subtype: tcp_subtype(t), share: share(tcp_other, ip) },
        udp_vector(t, ip),
        Vector { family: "icmp_flood", subtype: icmp_subtype(t), share: share(t.icmp, ip) },
        Vector {
            family: "protocol_flood",
            subtype: if t.gre * 2 >= t.gre + t.esp + t.other_proto && t.gre > 0 {
                Some("gre_flood".into())
            } else if t.esp * 2 > t.gre + t.esp + t.other_proto {
                Some("esp_flood".into())
            } else {
                None
            },
            share: share(t.gre + t.esp + t.other_proto, ip),
        },
    ];
    v.retain(|x| x.share > 0.0);
    if v.is_empty() {
        v.push(Vector { family: "unknown", subtype: None, share: 0.0 });
    }
    v
}

fn tcp_subtype(t: &Tally) -> Option<String> {
    let non_syn: u64 = t.tcp_kind.iter().skip(1).sum();
    let (i, n) = t.tcp_kind.iter().enumerate().skip(1).take(K_OTHER - 1).max_by_key(|(_, n)| **n)?;
    if *n == 0 || *n * 2 < non_syn {
        return None;
    }
    Some(format!("{}_flood", TCP_KINDS[i]))
}

fn udp_vector(t: &Tally, ip: u64) -> Vector {
    let with_ports = t.udp_with_ports;
    let best_amp = t.amp_src.iter().enumerate().max_by_key(|(_, n)| **n).map(|(i, n)| (i, *n));
    let mut family = "udp_flood";
    let subtype = match best_amp {
        Some((i, n)) if n > 0 && n * 2 >= with_ports => Some(AMPLIFIERS[i].1.to_string()),
        _ if with_ports > 0 && t.udp_dst_53 * 2 >= with_ports => {
            family = "dns_flood";
            Some("dns_query_flood".to_string())
        }
        _ if with_ports > 0 && t.udp_dst_443 * 2 >= with_ports => Some("quic_flood".to_string()),
        _ if t.udp_fragments * 2 >= t.udp && t.udp > 0 => Some("udp_fragment_flood".to_string()),
        _ => None,
    };
    Vector { family, subtype, share: share(t.udp, ip) }
}

fn icmp_subtype(t: &Tally) -> Option<String> {
    if t.icmp == 0 {
        return None;
    }
    // An oversized datagram is ~45 fragments of which only the last reaches past 64 KiB.
    if t.ping_of_death * 64 >= t.icmp {
        Some("ping_of_death".into())
    } else if t.icmp_echo_requests * 2 >= t.icmp {
        Some("ping_flood".into())
    } else {
        None
    }
}

#[cfg(test)]
mod tests;

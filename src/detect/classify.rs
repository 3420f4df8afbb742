//! Coarse classification from host protocol counters (limited mode, §5.1): which protocol the
//! incident's packets were. Pure.

use crate::event::Classification;
use crate::input::counters::ProtoCounters;

/// A protocol holding at least this share of the incident's packets is a vector of it.
pub const VECTOR_SHARE: f64 = 0.35;
/// A single vector needs at least this share to name the incident.
pub const DOMINANT_SHARE: f64 = 0.5;

/// `udp_flood` / `tcp_flood` / `icmp_flood` / `multi_vector` / `unknown`, `classified_by: counters`.
pub fn classify(p: &ProtoCounters) -> Classification {
    let mut c = Classification::unknown();
    let total = p.total() as f64;
    if total == 0.0 {
        return c;
    }
    let shares = [
        ("tcp_flood", p.tcp as f64 / total),
        ("udp_flood", p.udp as f64 / total),
        ("icmp_flood", p.icmp as f64 / total),
    ];
    let vectors = shares.iter().filter(|(_, s)| *s >= VECTOR_SHARE).count();
    let (top, share) = shares.iter().copied().fold(("unknown", 0.0), |a, b| if b.1 > a.1 { b } else { a });
    let (family, confidence) = if vectors >= 2 {
        ("multi_vector", 60.0)
    } else if share >= DOMINANT_SHARE {
        (top, 40.0 + 50.0 * share)
    } else {
        ("unknown", 0.0)
    };
    c.attack_family = family.to_string();
    c.confidence = Some(confidence.round() as u8);
    let pct = |s: f64| serde_json::json!((s * 1000.0).round() / 10.0);
    c.evidence.insert(
        "protocol_breakdown".into(),
        serde_json::json!({ "tcp": pct(shares[0].1), "udp": pct(shares[1].1), "icmp": pct(shares[2].1) }),
    );
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(tcp: u64, udp: u64, icmp: u64) -> ProtoCounters {
        ProtoCounters { tcp, udp, icmp }
    }

    #[test]
    fn udp_flood_to_closed_port_is_udp_not_icmp() {
        // Regression: the reference counted only InDatagrams, so NoPorts floods looked like ICMP.
        // Our udp already includes NoPorts (see snmp.rs); the mix follows it.
        assert_eq!(classify(&p(120, 480_000, 30)).attack_family, "udp_flood");
    }

    #[test]
    fn families_and_multi_vector() {
        assert_eq!(classify(&p(90_000, 10, 10)).attack_family, "tcp_flood");
        assert_eq!(classify(&p(10, 10, 90_000)).attack_family, "icmp_flood");
        assert_eq!(classify(&p(50_000, 45_000, 5_000)).attack_family, "multi_vector");
        assert_eq!(classify(&p(0, 0, 0)).attack_family, "unknown");
        assert_eq!(classify(&p(34, 33, 33)).attack_family, "unknown");
        let c = classify(&p(0, 100, 0));
        assert_eq!(c.classified_by, "counters");
        assert_eq!(c.confidence, Some(90));
        assert_eq!(c.evidence["protocol_breakdown"]["udp"], 100.0);
    }
}

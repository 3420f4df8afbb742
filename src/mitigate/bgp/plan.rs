//! The BGP planner (§10.2): an incident's classification, rates and targets → the routes to
//! announce, most specific first, and the ones refused with their reason. Pure: no speaker, no
//! clock, no I/O; the same input always gives the same plan.
//!
//! The ladder: FlowSpec first (amplification → discard UDP from the amplifier's port to the
//! target; SYN flood → rate-limit SYNs to the attacked port; fragments → discard; ICMP →
//! rate-limit), the blackhole of the target (RTBH) last and only at or over `rtbh_min_pps` /
//! `rtbh_min_bps`. Only single addresses inside the configured networks or the host's own, never
//! a protected one; every route passes [`check_argv`](super::route::check_argv) here and again in the driver.

use std::net::IpAddr;

use serde_json::Value;

use super::route::{argv_problem, Match, Route, Speaker, Then, ICMP_BYTES, SYN_BYTES};
use crate::config::bgp::BgpConfig;
use crate::config::mitigation::{Action, Cidr, MitigationConfig};
use crate::event::Classification;

/// A destination, port or source port with at least this share of the packets is attacked.
pub const TARGET_SHARE: f64 = 0.10;
/// Most targets (and ports per target) one incident produces routes for.
pub const MAX_TARGETS: usize = 8;
/// A vector of a multi-vector attack gets routes when it has at least this share.
pub const VECTOR_SHARE: f64 = 0.35;

/// What the planner knows of one incident.
#[derive(Debug, Clone, Copy)]
pub struct Incident<'a> {
    pub class: &'a Classification,
    pub pps: f64,
    pub bps: f64,
    /// The host's own addresses on the incident's interface: the targets when the evidence names
    /// none (counter-only incidents are about this host).
    pub host_targets: &'a [IpAddr],
}

/// Where announcements may point.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub networks: &'a [Cidr],
    /// Every address of this host.
    pub own: &'a [IpAddr],
    /// The allowlist with the gateway and resolvers (§10.1).
    pub protected: &'a [Cidr],
}

/// A route (or a whole target) not announced, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub target: IpAddr,
    pub route: Option<Route>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Most specific first; blackholes last.
    pub routes: Vec<Route>,
    pub refused: Vec<Refused>,
}

/// Why `ip` must never be announced (§10.1), or None. The protected set: the allowlist, which
/// holds the configured CIDRs, the default gateway and the resolvers.
pub fn protected(ip: IpAddr, allow: &[Cidr]) -> Option<String> {
    allow.iter().find(|c| c.contains(ip)).map(|c| format!("protected: in the allowlist ({c})"))
}

/// Why `ip` is not an address we may announce for, or None.
pub fn out_of_scope(ip: IpAddr, scope: &Scope) -> Option<String> {
    if !unicast(ip) {
        return Some(format!("{ip} is not a unicast host address"));
    }
    if let Some(why) = protected(ip, scope.protected) {
        return Some(why);
    }
    if scope.own.contains(&ip) || scope.networks.iter().any(|c| c.contains(ip)) {
        return None;
    }
    Some("outside the configured networks and not an address of this host".into())
}

/// A single host address a route may name: not loopback, link-local, multicast, broadcast or
/// unspecified.
pub fn unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified() || v4.is_loopback() || v4.is_multicast() || v4.is_broadcast() || v4.is_link_local())
        }
        IpAddr::V6(v6) => {
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            !(v6.is_unspecified() || v6.is_loopback() || v6.is_multicast() || link_local)
        }
    }
}

/// The plan for one incident.
pub fn plan(inc: &Incident, bgp: &BgpConfig, m: &MitigationConfig, scope: &Scope, sp: &Speaker) -> Plan {
    let mut out = Plan::default();
    for target in targets(inc) {
        if let Some(reason) = out_of_scope(target, scope) {
            out.refused.push(Refused { target, route: None, reason });
            continue;
        }
        let mut routes = if bgp.flowspec { flows(inc.class, target, m) } else { Vec::new() };
        if over_floor(inc, bgp) {
            routes.push(Route::Blackhole { target });
        }
        for r in routes {
            if out.routes.contains(&r) {
                continue;
            }
            // The planner's own check of what the driver will send: one address, never 0/0.
            match argv_problem(&r.add_argv(sp)) {
                None => out.routes.push(r),
                Some(reason) => out.refused.push(Refused { target, route: Some(r), reason }),
            }
        }
    }
    out.routes.sort_by_key(|r| (matches!(r, Route::Blackhole { .. }), specificity(r), *r));
    out
}

/// Lower is more specific.
fn specificity(r: &Route) -> u8 {
    match r {
        Route::Flow { what: Match::UdpFrom { .. } | Match::Syn { dst_port: Some(_) }, .. } => 0,
        Route::Flow { what: Match::Syn { dst_port: None }, .. } => 1,
        Route::Flow { what: Match::Fragments, .. } => 2,
        Route::Flow { what: Match::Icmp, .. } => 3,
        Route::Blackhole { .. } => 4,
    }
}

/// The uplink is at risk: at or over a configured floor (none configured: never).
fn over_floor(inc: &Incident, bgp: &BgpConfig) -> bool {
    bgp.rtbh_min_pps.is_some_and(|f| inc.pps >= f) || bgp.rtbh_min_bps.is_some_and(|f| inc.bps >= f)
}

fn total(c: &Classification) -> f64 {
    c.evidence.get("total_packets").and_then(Value::as_f64).unwrap_or(0.0)
}

/// Entries of an evidence list with at least [`TARGET_SHARE`] of the packets (by their `share`,
/// else `count` over `total_packets`; entries with neither count).
fn attacked<T>(c: &Classification, key: &str, field: &str, read: impl Fn(&Value) -> Option<T>) -> Vec<T> {
    let total = total(c);
    let Some(list) = c.evidence.get(key).and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .filter(|e| {
            let share =
                e["share"].as_f64().or_else(|| (total > 0.0).then(|| e["count"].as_f64()).flatten().map(|n| n / total));
            share.is_none_or(|s| s >= TARGET_SHARE)
        })
        .filter_map(|e| read(if e.is_object() { &e[field] } else { e }))
        .take(MAX_TARGETS)
        .collect()
}

/// The attacked addresses: the evidence's `target_ips`, else the host's own on the interface.
fn targets(inc: &Incident) -> Vec<IpAddr> {
    let named = attacked(inc.class, "target_ips", "ip", |v| v.as_str()?.parse().ok());
    // The host's own link-local and loopback addresses are not targets, and not worth a refusal.
    let host = || inc.host_targets.iter().copied().filter(|ip| unicast(*ip)).collect();
    let mut t = if named.is_empty() { host() } else { named };
    t.dedup();
    t.truncate(MAX_TARGETS);
    t
}

fn ports(c: &Classification, key: &str) -> Vec<u16> {
    attacked(c, key, "port", |v| u16::try_from(v.as_u64()?).ok())
}

/// The FlowSpec routes for one target, from the classification (and `actions`).
fn flows(c: &Classification, target: IpAddr, m: &MitigationConfig) -> Vec<Route> {
    let syn = |dst_port| Route::Flow {
        target,
        what: Match::Syn { dst_port },
        then: Then::RateLimit { bytes_per_s: u64::from(m.syn_rate_pps) * SYN_BYTES },
    };
    let icmp = Route::Flow {
        target,
        what: Match::Icmp,
        then: Then::RateLimit { bytes_per_s: u64::from(m.icmp_rate_pps) * ICMP_BYTES },
    };
    if c.classified_by == "counters" {
        // Counters say nothing precise: only a protocol rate limit the operator asked for (§10).
        return match m.actions.iter().find(|(n, _)| *n == c.attack_family).map(|(_, a)| *a) {
            Some(Action::SynRateLimit) => vec![syn(None)],
            Some(Action::IcmpRateLimit) => vec![icmp],
            _ => Vec::new(),
        };
    }
    if c.classified_by == "access_log" {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (family, subtype) in vectors(c) {
        let lookup = |k: &str| m.actions.iter().find(|(n, _)| n == k).map(|(_, a)| *a);
        let amp = subtype.as_deref().is_some_and(|s| s.ends_with("_amplification"));
        let off = subtype
            .as_deref()
            .and_then(lookup)
            .or_else(|| amp.then(|| lookup("amplification")).flatten())
            .or_else(|| lookup(&family))
            == Some(Action::None);
        if off {
            continue;
        }
        match family.as_str() {
            _ if amp => out.extend(ports(c, "top_src_ports").into_iter().map(|p| Route::Flow {
                target,
                what: Match::UdpFrom { src_port: p },
                then: Then::Discard,
            })),
            "syn_flood" => {
                let p = ports(c, "top_dst_ports");
                if p.is_empty() {
                    out.push(syn(None));
                }
                out.extend(p.into_iter().map(|p| syn(Some(p))));
            }
            "icmp_flood" => out.push(icmp),
            "fragment_flood" => out.push(Route::Flow { target, what: Match::Fragments, then: Then::Discard }),
            _ => {}
        }
    }
    out
}

/// The vectors to act on: the label itself, or each strong vector of a multi-vector attack.
fn vectors(c: &Classification) -> Vec<(String, Option<String>)> {
    if c.attack_family != "multi_vector" {
        return vec![(c.attack_family.clone(), c.attack_subtype.clone())];
    }
    let Some(list) = c.evidence.get("vectors").and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .filter(|v| v["share"].as_f64().is_some_and(|s| s >= VECTOR_SHARE))
        .filter_map(|v| Some((v["family"].as_str()?.to_string(), v["subtype"].as_str().map(String::from))))
        .collect()
}

//! The planner (§10): a classification with its evidence → typed rules. Pure: the same input
//! always gives the same rules; no nftables, no clock, no I/O.
//!
//! Per attack vector: amplification → drop UDP from the amplifier's source port to the target
//! addresses; few non-spoofed sources → those sources into a timed set; spoofed SYN flood → a
//! SYN rate limit per attacked port; ICMP flood → an ICMP rate limit; fragment flood → drop
//! fragments to the target. `actions` overrides the choice. The allowlist always wins: no rule
//! ever names an allowlisted source. Counter-only incidents get a protocol rate limit only when
//! `actions` asks for one. [`cap`] applies `max_rules`.

use std::net::IpAddr;

use serde_json::Value;

use crate::config::mitigation::{Action, Cidr, MitigationConfig};
use crate::event::Classification;
use crate::input::capture::engine::tally::AMPLIFIERS;

/// "Few sources": at most this many distinct sources ...
pub const FEW_SOURCES: u64 = 16;
/// ... carrying at least this share of the packets.
pub const FEW_SOURCES_SHARE: f64 = 0.8;
/// A source is blocked only when it sent at least this share of the packets: a neighbour's
/// few packets beside a flood are not the flood.
pub const SOURCE_SHARE: f64 = 0.02;
/// A destination or port with at least this share of the packets is attacked.
pub const TARGET_SHARE: f64 = 0.10;
/// Most targets or ports one vector produces rules for.
pub const MAX_TARGETS: usize = 8;
/// A vector of a multi-vector attack gets rules when it has at least this share.
pub const VECTOR_SHARE: f64 = 0.35;

/// One typed rule. Nothing here is a string handed to a shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// Drop UDP from `src_port` (the amplifier's service) to `target`.
    DropAmplifier { target: IpAddr, src_port: u16 },
    /// Drop everything from `source`.
    BlockSource { source: IpAddr },
    /// SYNs to `port` (None: to any port) over `pps` are dropped.
    SynRateLimit { port: Option<u16>, pps: u32 },
    /// ICMP (`v6`: ICMPv6 echo requests) over `pps` is dropped.
    IcmpRateLimit { v6: bool, pps: u32 },
    /// Drop IP fragments to `target`.
    DropFragments { target: IpAddr },
}

impl Rule {
    /// The rule's identity, stable across renewals: `amp:10.0.0.1:161`, `src:192.0.2.9`, ...
    pub fn key(&self) -> String {
        match self {
            Rule::DropAmplifier { target, src_port } => format!("amp:{target}:{src_port}"),
            Rule::BlockSource { source } => format!("src:{source}"),
            Rule::SynRateLimit { port: Some(p), .. } => format!("syn:{p}"),
            Rule::SynRateLimit { port: None, .. } => "syn:any".into(),
            Rule::IcmpRateLimit { v6, .. } => format!("icmp:{}", if *v6 { 6 } else { 4 }),
            Rule::DropFragments { target } => format!("frag:{target}"),
        }
    }

    /// The action that produced this rule.
    pub fn action(&self) -> Action {
        match self {
            Rule::DropAmplifier { .. } => Action::DropAmplifier,
            Rule::BlockSource { .. } => Action::BlockSources,
            Rule::SynRateLimit { .. } => Action::SynRateLimit,
            Rule::IcmpRateLimit { .. } => Action::IcmpRateLimit,
            Rule::DropFragments { .. } => Action::DropFragments,
        }
    }
}

/// A rule with its width: the share of the incident's packets it acts on (for [`cap`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub rule: Rule,
    pub width: f64,
}

/// What the evidence says, read once.
struct Evidence {
    total: f64,
    sources: Vec<(IpAddr, f64)>,
    source_count: u64,
    targets: Vec<(IpAddr, f64)>,
    dst_ports: Vec<(u16, f64)>,
}

impl Evidence {
    fn read(c: &Classification) -> Self {
        let e = &c.evidence;
        let total = e.get("total_packets").and_then(Value::as_f64).unwrap_or(0.0).max(1.0);
        let list = |key: &str, field: &str| -> Vec<(Value, f64)> {
            e.get(key)
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|x| (x[field].clone(), x["count"].as_f64().unwrap_or(0.0) / total)).collect())
                .unwrap_or_default()
        };
        let ips = |key: &str| -> Vec<(IpAddr, f64)> {
            list(key, "ip").into_iter().filter_map(|(v, s)| Some((v.as_str()?.parse().ok()?, s))).collect()
        };
        Evidence {
            total,
            sources: ips("top_src_ips"),
            source_count: e.get("source_ip_count").and_then(Value::as_u64).unwrap_or(u64::MAX),
            targets: ips("target_ips"),
            dst_ports: list("top_dst_ports", "port")
                .into_iter()
                .filter_map(|(v, s)| Some((u16::try_from(v.as_u64()?).ok()?, s)))
                .collect(),
        }
    }

    fn few_sources(&self) -> bool {
        let covered: f64 = self.sources.iter().map(|(_, s)| s).sum();
        self.total >= 1.0
            && self.source_count <= FEW_SOURCES
            && !self.sources.is_empty()
            && covered >= FEW_SOURCES_SHARE
    }

    fn attacked<T: Copy>(list: &[(T, f64)]) -> Vec<(T, f64)> {
        list.iter().filter(|(_, s)| *s >= TARGET_SHARE).take(MAX_TARGETS).copied().collect()
    }
}

/// The action for one vector: `actions` by subtype, then `amplification`, then family; else the
/// default of §10.
fn choose(cfg: &MitigationConfig, family: &str, subtype: Option<&str>, ev: &Evidence) -> Action {
    let amp = subtype.is_some_and(|s| s.ends_with("_amplification"));
    let lookup = |k: &str| cfg.actions.iter().find(|(n, _)| n == k).map(|(_, a)| *a);
    let configured =
        subtype.and_then(lookup).or_else(|| amp.then(|| lookup("amplification")).flatten()).or_else(|| lookup(family));
    if let Some(a) = configured {
        return a;
    }
    match family {
        _ if amp => Action::DropAmplifier,
        _ if ev.few_sources() => Action::BlockSources,
        "syn_flood" => Action::SynRateLimit,
        "icmp_flood" => Action::IcmpRateLimit,
        "fragment_flood" => Action::DropFragments,
        _ => Action::None,
    }
}

/// The rules for an incident's classification, widest first, allowlist applied.
pub fn plan(c: &Classification, cfg: &MitigationConfig, allow: &[Cidr]) -> Vec<Planned> {
    let ev = Evidence::read(c);
    let mut out: Vec<Planned> = Vec::new();
    if c.classified_by != "packets" {
        // Counters say nothing precise: only a protocol rate limit the operator asked for.
        let Some((_, a)) = cfg.actions.iter().find(|(n, a)| *n == c.attack_family && a.is_rate_limit()) else {
            return out;
        };
        out.extend(rules_for(*a, None, 1.0, &ev, cfg, true));
        return out;
    }
    for (family, subtype, share) in vectors(c) {
        let action = choose(cfg, &family, subtype.as_deref(), &ev);
        for p in rules_for(action, subtype.as_deref(), share, &ev, cfg, false) {
            if !out.iter().any(|q| q.rule == p.rule) {
                out.push(p);
            }
        }
    }
    out.retain(|p| !allowed(&p.rule, allow));
    out.sort_by(|a, b| b.width.total_cmp(&a.width).then(a.rule.cmp(&b.rule)));
    out
}

/// The vectors to act on: the label itself, or each strong vector of a multi-vector attack.
fn vectors(c: &Classification) -> Vec<(String, Option<String>, f64)> {
    if c.attack_family != "multi_vector" {
        return vec![(c.attack_family.clone(), c.attack_subtype.clone(), 1.0)];
    }
    let Some(list) = c.evidence.get("vectors").and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .filter_map(|v| {
            let share = v["share"].as_f64()?;
            let family = v["family"].as_str()?.to_string();
            (share >= VECTOR_SHARE).then(|| (family, v["subtype"].as_str().map(String::from), share))
        })
        .collect()
}

fn rules_for(
    a: Action,
    subtype: Option<&str>,
    share: f64,
    ev: &Evidence,
    cfg: &MitigationConfig,
    counters: bool,
) -> Vec<Planned> {
    let targets = Evidence::attacked(&ev.targets);
    let each_target = |mk: &dyn Fn(IpAddr) -> Rule| -> Vec<Planned> {
        targets.iter().map(|(t, s)| Planned { rule: mk(*t), width: share * s }).collect()
    };
    match a {
        Action::DropAmplifier => {
            let ports: Vec<u16> = AMPLIFIERS.iter().filter(|(_, n)| Some(*n) == subtype).map(|(p, _)| *p).collect();
            ports.iter().flat_map(|p| each_target(&|t| Rule::DropAmplifier { target: t, src_port: *p })).collect()
        }
        Action::BlockSources => ev
            .sources
            .iter()
            .filter(|(ip, s)| *s >= SOURCE_SHARE && blockable(*ip))
            .take(FEW_SOURCES as usize)
            .map(|(ip, s)| Planned { rule: Rule::BlockSource { source: *ip }, width: *s })
            .collect(),
        Action::SynRateLimit if counters => {
            vec![Planned { rule: Rule::SynRateLimit { port: None, pps: cfg.syn_rate_pps }, width: share }]
        }
        Action::SynRateLimit => Evidence::attacked(&ev.dst_ports)
            .into_iter()
            .map(|(p, s)| Planned { rule: Rule::SynRateLimit { port: Some(p), pps: cfg.syn_rate_pps }, width: s })
            .collect(),
        Action::IcmpRateLimit => {
            let v6 = targets.iter().any(|(t, _)| t.is_ipv6());
            let v4 = counters || targets.is_empty() || targets.iter().any(|(t, _)| t.is_ipv4());
            [(false, v4), (true, v6)]
                .into_iter()
                .filter(|(_, on)| *on)
                .map(|(v6, _)| Planned { rule: Rule::IcmpRateLimit { v6, pps: cfg.icmp_rate_pps }, width: share })
                .collect()
        }
        Action::DropFragments => each_target(&|t| Rule::DropFragments { target: t }),
        Action::None => Vec::new(),
    }
}

/// Addresses a host must never drop: link-local (neighbour discovery, routers), loopback,
/// multicast, unspecified.
fn blockable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_link_local() || v4.is_loopback() || v4.is_multicast() || v4.is_unspecified() || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            !(link_local || v6.is_loopback() || v6.is_multicast() || v6.is_unspecified())
        }
    }
}

/// Rules naming a source apply to that source: an allowlisted one is never blocked. (Rate limits
/// and target rules are passed over by allowlisted sources in the table itself.)
fn allowed(r: &Rule, allow: &[Cidr]) -> bool {
    match r {
        Rule::BlockSource { source } => allow.iter().any(|c| c.contains(*source)),
        _ => false,
    }
}

/// `max_rules` (§10): the new rules that fit beside `active` ones; past the cap, only the widest
/// rule of the incident, and nothing once even that does not fit.
pub fn cap(new: Vec<Planned>, active: usize, max_rules: usize) -> Vec<Planned> {
    if active + new.len() <= max_rules {
        return new;
    }
    if active < max_rules {
        return new.into_iter().take(1).collect();
    }
    Vec::new()
}

#[cfg(test)]
mod tests;

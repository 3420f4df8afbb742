//! Reading `nft -j list table inet ftagent` back: the live elements of our sets as typed rules
//! (with their incident, remaining time and drop counter) and the handles and counters of the
//! rate-limit chain rules. Pure: text in, data out.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::Value;

use super::super::plan::Rule;

/// One live rule found in the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub rule: Rule,
    /// The element's comment: the incident that asked for it.
    pub incident: String,
    /// Seconds until the kernel drops the element.
    pub expires_s: u64,
    /// Packets the rule dropped (element counter, or the rate-limit rule's counter).
    pub packets: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    pub rules: Vec<Listed>,
    /// Rate-limit chain rules by rule key: their handle.
    pub handles: HashMap<String, u64>,
    /// Every chain rule in the table (fixed ones included), to check for duplicates.
    pub chain_rules: usize,
}

impl Listing {
    /// Packets dropped per rule key.
    pub fn counters(&self) -> HashMap<String, u64> {
        self.rules.iter().map(|l| (l.rule.key(), l.packets)).collect()
    }
}

/// Parse the listing; `syn_pps`/`icmp_pps` fill in rate limits whose rule is gone.
pub fn parse_listing(text: &str, syn_pps: u32, icmp_pps: u32) -> crate::error::Result<Listing> {
    let v: Value = serde_json::from_str(text).map_err(|e| invalid(format!("nft listing is not JSON: {e}")))?;
    let items = v["nftables"].as_array().ok_or_else(|| invalid("nft listing has no `nftables` array".into()))?;
    let mut out = Listing::default();
    let mut rate_counters: HashMap<String, (u64, u32)> = HashMap::new();
    for it in items {
        if let Some(r) = it.get("rule") {
            out.chain_rules += 1;
            if let (Some(c), Some(h)) = (r["comment"].as_str(), r["handle"].as_u64()) {
                out.handles.insert(c.to_string(), h);
                let expr = r["expr"].as_array().cloned().unwrap_or_default();
                let packets = expr.iter().find_map(|e| e["counter"]["packets"].as_u64()).unwrap_or(0);
                let rate = expr.iter().find_map(|e| e["limit"]["rate"].as_u64()).unwrap_or(0) as u32;
                rate_counters.insert(c.to_string(), (packets, rate));
            }
        }
    }
    for it in items {
        let Some(s) = it.get("set") else { continue };
        let name = s["name"].as_str().unwrap_or_default();
        for e in s["elem"].as_array().into_iter().flatten() {
            let inner = e.get("elem").unwrap_or(e);
            let val = inner.get("val").unwrap_or(inner);
            let Some(rule) = to_rule(name, val, syn_pps, icmp_pps) else { continue };
            let (mut packets, rate) = rate_counters.get(&rule.key()).copied().unwrap_or((0, 0));
            let rule = with_rate(rule, rate);
            if let Some(p) = inner["counter"]["packets"].as_u64() {
                packets = p;
            }
            out.rules.push(Listed {
                rule,
                incident: inner["comment"].as_str().unwrap_or_default().to_string(),
                expires_s: inner["expires"].as_u64().unwrap_or(0),
                packets,
            });
        }
    }
    Ok(out)
}

fn with_rate(rule: Rule, rate: u32) -> Rule {
    match rule {
        Rule::SynRateLimit { port, .. } if rate > 0 => Rule::SynRateLimit { port, pps: rate },
        Rule::IcmpRateLimit { v6, .. } if rate > 0 => Rule::IcmpRateLimit { v6, pps: rate },
        r => r,
    }
}

fn to_rule(set: &str, val: &Value, syn_pps: u32, icmp_pps: u32) -> Option<Rule> {
    let ip = |v: &Value| v.as_str()?.parse::<IpAddr>().ok();
    Some(match set {
        "amp4" | "amp6" => {
            let c = val["concat"].as_array()?;
            Rule::DropAmplifier { target: ip(c.first()?)?, src_port: u16::try_from(c.get(1)?.as_u64()?).ok()? }
        }
        "block4" | "block6" => Rule::BlockSource { source: ip(val)? },
        "frag4" | "frag6" => Rule::DropFragments { target: ip(val)? },
        "syn_ports" => Rule::SynRateLimit { port: Some(u16::try_from(val.as_u64()?).ok()?), pps: syn_pps },
        "proto_on" => match val.as_str().map(String::from).or_else(|| val.as_u64().map(|n| n.to_string()))?.as_str() {
            "tcp" | "6" => Rule::SynRateLimit { port: None, pps: syn_pps },
            "icmp" | "1" => Rule::IcmpRateLimit { v6: false, pps: icmp_pps },
            "ipv6-icmp" | "58" => Rule::IcmpRateLimit { v6: true, pps: icmp_pps },
            _ => return None,
        },
        _ => return None,
    })
}

fn invalid(why: String) -> crate::error::Error {
    crate::error::Error::Invalid { what: "nft listing", why }
}

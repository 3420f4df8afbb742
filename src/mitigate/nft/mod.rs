//! The nftables backend (§10): typed [`Rule`]s → nftables JSON commands for `nft -j -f -`, all in
//! the agent's own table `inet ftagent`; the table listing (`nft -j list table inet ftagent`)
//! read back into live rules and their drop counters. Building and parsing are pure; [`Nft`]
//! is the only code that runs the `nft` binary (argv, JSON on stdin, never a shell).
//!
//! Every rule lives in a set element with a kernel-side `timeout`, so it stops acting when it
//! expires even if the agent is gone: source, amplifier and fragment drops are elements matched
//! by fixed chain rules; a rate limit is a chain rule that also matches its timed guard element.

use crate::error::Error;
use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::plan::Rule;
use crate::config::mitigation::Cidr;

pub const FAMILY: &str = "inet";
pub const TABLE: &str = "ftagent";
pub const CHAIN: &str = "pre";
/// Before conntrack defragmentation (-400) and raw (-300): fragments are still fragments and
/// nothing dropped here costs a conntrack entry.
pub const PRIORITY: i64 = -450;

/// One rule as applied: which incident it belongs to and its timeout in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub rule: Rule,
    pub incident: String,
    pub timeout_s: u64,
}

fn ip_s(ip: &IpAddr) -> String {
    ip.to_string()
}

fn v6(ip: &IpAddr) -> bool {
    ip.is_ipv6()
}

/// The set holding a rule's element and the element's value.
fn element(rule: &Rule) -> (&'static str, Value) {
    match rule {
        Rule::DropAmplifier { target, src_port } => {
            (if v6(target) { "amp6" } else { "amp4" }, json!({"concat": [ip_s(target), src_port]}))
        }
        Rule::BlockSource { source } => (if v6(source) { "block6" } else { "block4" }, json!(ip_s(source))),
        Rule::DropFragments { target } => (if v6(target) { "frag6" } else { "frag4" }, json!(ip_s(target))),
        Rule::SynRateLimit { port: Some(p), .. } => ("syn_ports", json!(p)),
        Rule::SynRateLimit { port: None, .. } => ("proto_on", json!("tcp")),
        Rule::IcmpRateLimit { v6: false, .. } => ("proto_on", json!("icmp")),
        Rule::IcmpRateLimit { v6: true, .. } => ("proto_on", json!("ipv6-icmp")),
    }
}

fn m(left: Value, right: Value) -> Value {
    json!({"match": {"op": "==", "left": left, "right": right}})
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

fn l4proto() -> Value {
    json!({"meta": {"key": "l4proto"}})
}

fn chain_rule(expr: Vec<Value>, comment: Option<String>) -> Value {
    let mut r = json!({"family": FAMILY, "table": TABLE, "chain": CHAIN, "expr": expr});
    if let Some(c) = comment {
        r["comment"] = c.into();
    }
    json!({"add": {"rule": r}})
}

/// The chain rule a rate limit needs beside its guard element (None for set-only rules).
fn rate_rule(rule: &Rule) -> Option<Value> {
    let over = |pps: u32| {
        vec![
            json!({"limit": {"rate": pps, "per": "second", "inv": true}}),
            json!({"counter": null}),
            json!({"drop": null}),
        ]
    };
    let syn = m(json!({"&": [payload("tcp", "flags"), ["fin", "syn", "rst", "ack"]]}), json!("syn"));
    let expr = match rule {
        Rule::SynRateLimit { port: Some(p), pps } => {
            let mut e =
                vec![m(payload("tcp", "dport"), json!(p)), syn, m(payload("tcp", "dport"), json!("@syn_ports"))];
            e.extend(over(*pps));
            e
        }
        Rule::SynRateLimit { port: None, pps } => {
            let mut e = vec![m(l4proto(), json!("tcp")), syn, m(l4proto(), json!("@proto_on"))];
            e.extend(over(*pps));
            e
        }
        Rule::IcmpRateLimit { v6: false, pps } => {
            let mut e = vec![m(l4proto(), json!("icmp")), m(l4proto(), json!("@proto_on"))];
            e.extend(over(*pps));
            e
        }
        Rule::IcmpRateLimit { v6: true, pps } => {
            // Echo requests only: neighbour discovery must keep working.
            let mut e = vec![
                m(l4proto(), json!("ipv6-icmp")),
                m(payload("icmpv6", "type"), json!("echo-request")),
                m(l4proto(), json!("@proto_on")),
            ];
            e.extend(over(*pps));
            e
        }
        _ => return None,
    };
    Some(chain_rule(expr, Some(rule.key())))
}

fn elem_cmd(op: &str, rule: &Rule, incident: &str, timeout_s: u64) -> Value {
    let (set, val) = element(rule);
    let mut e = json!({"val": val});
    if op == "add" {
        e["timeout"] = timeout_s.into();
        e["comment"] = incident.into();
    }
    json!({op: {"element": {"family": FAMILY, "table": TABLE, "name": set, "elem": [{"elem": e}]}}})
}

/// The commands that put one rule in force: its timed element, and its chain rule for a rate
/// limit. This is what events report as the rule's nft JSON.
pub fn rule_commands(a: &Applied) -> Vec<Value> {
    let mut v = vec![elem_cmd("add", &a.rule, &a.incident, a.timeout_s)];
    v.extend(rate_rule(&a.rule));
    v
}

/// A new timeout for a rule in force: add (a no-op when present), delete, add again: the same
/// batch works whether or not the kernel already expired the element.
pub fn renew_commands(a: &Applied) -> Vec<Value> {
    vec![
        elem_cmd("add", &a.rule, &a.incident, 1),
        elem_cmd("delete", &a.rule, &a.incident, 0),
        elem_cmd("add", &a.rule, &a.incident, a.timeout_s),
    ]
}

/// Take a rule out: its element (safely, as in [`renew_commands`]) and its chain rule by handle.
pub fn remove_commands(rule: &Rule, handles: &HashMap<String, u64>) -> Vec<Value> {
    let mut v = vec![elem_cmd("add", rule, "", 1), elem_cmd("delete", rule, "", 0)];
    if let Some(h) = handles.get(&rule.key()) {
        v.push(json!({"delete": {"rule": {"family": FAMILY, "table": TABLE, "chain": CHAIN, "handle": h}}}));
    }
    v
}

/// Delete the table whether or not it exists.
pub fn delete_table() -> Vec<Value> {
    let t = json!({"family": FAMILY, "name": TABLE});
    vec![json!({"add": {"table": t.clone()}}), json!({"delete": {"table": t}})]
}

/// CIDRs with those inside another one removed (nftables rejects overlapping intervals).
pub fn normalise(allow: &[Cidr]) -> Vec<Cidr> {
    let mut out: Vec<Cidr> = Vec::new();
    for c in allow {
        let covered = allow.iter().any(|o| o != c && o.prefix < c.prefix && o.contains(c.addr));
        if !covered && !out.contains(c) {
            out.push(*c);
        }
    }
    out
}

fn set(name: &str, ty: Value, flags: &[&str], counter: bool, elem: Option<Vec<Value>>) -> Value {
    let mut s = json!({"family": FAMILY, "table": TABLE, "name": name, "type": ty, "flags": flags});
    if counter {
        s["stmt"] = json!([{"counter": null}]);
    }
    if let Some(e) = elem.filter(|e| !e.is_empty()) {
        s["elem"] = Value::Array(e);
    }
    json!({"add": {"set": s}})
}

/// The whole table from nothing, in one batch: (re)created empty, then the allowlist, the sets,
/// the base chain, the fixed rules, and `rules`.
pub fn rebuild(allow: &[Cidr], rules: &[Applied]) -> Vec<Value> {
    let mut v = delete_table();
    v.push(json!({"add": {"table": {"family": FAMILY, "name": TABLE}}}));
    let allow = normalise(allow);
    let cidrs = |is6: bool| -> Vec<Value> {
        allow
            .iter()
            .filter(|c| c.addr.is_ipv6() == is6)
            .map(|c| json!({"prefix": {"addr": c.addr.to_string(), "len": c.prefix}}))
            .collect()
    };
    v.push(set("allow4", json!("ipv4_addr"), &["interval"], false, Some(cidrs(false))));
    v.push(set("allow6", json!("ipv6_addr"), &["interval"], false, Some(cidrs(true))));
    for (name, ty) in [
        ("block4", json!("ipv4_addr")),
        ("block6", json!("ipv6_addr")),
        ("amp4", json!(["ipv4_addr", "inet_service"])),
        ("amp6", json!(["ipv6_addr", "inet_service"])),
        ("frag4", json!("ipv4_addr")),
        ("frag6", json!("ipv6_addr")),
    ] {
        v.push(set(name, ty, &["timeout"], true, None));
    }
    v.push(set("syn_ports", json!("inet_service"), &["timeout"], false, None));
    v.push(set("proto_on", json!("inet_proto"), &["timeout"], false, None));
    v.push(json!({"add": {"chain": {"family": FAMILY, "table": TABLE, "name": CHAIN, "type": "filter",
        "hook": "prerouting", "prio": PRIORITY, "policy": "accept"}}}));
    let (accept, drop) = (json!({"accept": null}), json!({"drop": null}));
    let frag4 = json!({"match": {"op": "!=", "left": {"&": [payload("ip", "frag-off"), 0x3fff]}, "right": 0}});
    for expr in [
        vec![m(payload("ip", "saddr"), json!("@allow4")), accept.clone()],
        vec![m(payload("ip6", "saddr"), json!("@allow6")), accept],
        vec![m(payload("ip", "saddr"), json!("@block4")), drop.clone()],
        vec![m(payload("ip6", "saddr"), json!("@block6")), drop.clone()],
        vec![m(json!({"concat": [payload("ip", "daddr"), payload("udp", "sport")]}), json!("@amp4")), drop.clone()],
        vec![m(json!({"concat": [payload("ip6", "daddr"), payload("udp", "sport")]}), json!("@amp6")), drop.clone()],
        vec![frag4, m(payload("ip", "daddr"), json!("@frag4")), drop.clone()],
        vec![m(json!({"exthdr": {"name": "frag"}}), json!(true)), m(payload("ip6", "daddr"), json!("@frag6")), drop],
    ] {
        v.push(chain_rule(expr, None));
    }
    for a in rules {
        v.extend(rule_commands(a));
    }
    v
}

/// A batch as `nft -j -f -` reads it.
pub fn batch(cmds: Vec<Value>) -> Value {
    json!({"nftables": cmds})
}

mod list;
pub use list::{parse_listing, Listed, Listing};

/// Runs the `nft` binary. `program` is `nft` on PATH unless a test says otherwise.
#[derive(Debug, Clone)]
pub struct Nft {
    /// The program and any arguments before nft's own (tests: `ip netns exec NS nft`).
    pub argv: Vec<String>,
    pub timeout: Duration,
}

impl Default for Nft {
    fn default() -> Self {
        Nft { argv: vec!["nft".into()], timeout: Duration::from_secs(5) }
    }
}

impl Nft {
    /// Apply one atomic batch; the error is nft's own message.
    pub fn apply(&self, cmds: Vec<Value>) -> crate::error::Result<()> {
        let input = serde_json::to_vec(&batch(cmds)).map_err(|e| Error::Encode { what: "nft batch", source: e })?;
        self.run(&["-j", "-f", "-"], Some(&input)).map(|_| ())
    }

    /// The table as JSON text, None when it does not exist.
    pub fn list(&self) -> crate::error::Result<Option<String>> {
        match self.run(&["-j", "list", "table", FAMILY, TABLE], None) {
            Ok(text) => Ok(Some(text)),
            Err(Error::Program { why, .. })
                if why.contains("No such file or directory") || why.contains("does not exist") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn run(&self, args: &[&str], input: Option<&[u8]>) -> crate::error::Result<String> {
        let program = &self.argv[0];
        let mut child = Command::new(program)
            .args(&self.argv[1..])
            .args(args)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(program, format!("cannot run {program}: {e}")))?;
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(data).map_err(|e| failed(program, format!("{}: writing the batch: {e}", program)))?;
        }
        let out =
            super::hook::wait_output(child, self.timeout).map_err(|e| failed(program, format!("{}: {e}", program)))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(failed(program, String::from_utf8_lossy(&out.stderr).trim().to_string()))
        }
    }
}

/// nft could not be run or refused the batch; `why` is its own message.
fn failed(program: &str, why: String) -> Error {
    Error::Program { program: program.to_string(), why }
}

#[cfg(test)]
mod tests;

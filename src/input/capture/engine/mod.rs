//! The analysis [`Engine`]: frames in (with timestamps), a [`Classification`] with evidence out.
//! Decodes with [`crate::input::capture::engine::parse`], counts into a [`Tally`], runs the IOC automaton over payloads,
//! classifies with [`crate::input::capture::engine::classify`]. Owns no thread, file or clock: callers feed it.

use std::sync::Arc;

use serde_json::{json, Map, Value};

pub mod classify;
pub mod gram;
pub mod ioc;
pub mod parse;
pub mod stats;
pub mod synth;
pub mod tally;

use self::classify::{classify, Verdict};
use self::ioc::{IocMatcher, ScanHint};
use self::parse::{LinkType, Transport};
use self::tally::{key_ip, Tally, FLAG_NAMES, TCP_KINDS};
use crate::event::Classification;
use crate::input::capture::pcapfile::Frame;

/// Entries in the `top_*` evidence lists.
pub const TOP_N: usize = 10;

#[derive(Debug, Clone, Default)]
pub struct Engine {
    tally: Tally,
    ioc: Option<Arc<IocMatcher>>,
    ioc_hint: ScanHint,
    dns_buf: String,
}

impl Engine {
    /// An engine matching payloads against `ioc` (compiled once, shared between engines).
    pub fn new(ioc: Option<Arc<IocMatcher>>) -> Self {
        Engine { tally: Tally::default(), ioc, ioc_hint: ScanHint::default(), dns_buf: String::new() }
    }

    /// Match later payloads against `ioc` instead (new patterns from the API). Hits counted so
    /// far name the old matcher's patterns, so they are cleared; the other statistics stay.
    pub fn set_ioc(&mut self, ioc: Option<Arc<IocMatcher>>) {
        self.ioc = ioc;
        self.ioc_hint = ScanHint::default();
        self.tally.ioc = Default::default();
    }

    /// Analyse one frame. `wire_len` is its length on the wire (≥ `frame.len()`).
    #[inline]
    pub fn push(&mut self, link: LinkType, ts_ns: u64, wire_len: u32, frame: &[u8]) {
        let wire_len = wire_len.max(frame.len() as u32);
        let p = match parse::parse(link, frame) {
            Ok(p) => p,
            Err(_) => {
                self.tally.add_malformed(ts_ns, wire_len);
                return;
            }
        };
        self.tally.add(ts_ns, wire_len, &p);
        if p.payload.is_empty() {
            return;
        }
        if let Some(m) = &self.ioc {
            if let Some(id) = m.first_match_hinted(p.payload, &mut self.ioc_hint) {
                self.tally.ioc.hit(id);
            }
        }
        if let Transport::Udp { dst_port: 53, .. } = p.transport {
            if parse::dns_query_name(p.payload, &mut self.dns_buf) && !self.dns_buf.is_empty() {
                self.tally.dns_names.add(self.dns_buf.clone());
            }
        }
    }

    /// Analyse a frame read from a capture file; an unknown link type counts as malformed.
    pub fn push_frame(&mut self, f: &Frame<'_>) {
        match LinkType::from_linktype(f.linktype) {
            Some(link) => self.push(link, f.ts_ns, f.orig_len, f.data),
            None => self.tally.add_malformed(f.ts_ns, f.orig_len),
        }
    }

    /// Packets the kernel or the capture dropped (reported in the evidence).
    pub fn add_dropped(&mut self, n: u64) {
        self.tally.dropped += n;
    }

    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    pub fn packets(&self) -> u64 {
        self.tally.packets
    }

    /// Start a new window: counts cleared, the IOC automaton kept.
    pub fn reset(&mut self) {
        self.tally = Tally::default();
    }

    pub fn verdict(&self) -> Verdict {
        classify(&self.tally, self.ioc.as_deref())
    }

    /// The classification the agent puts on incident events (`classified_by: packets`).
    pub fn classification(&self) -> Classification {
        let v = self.verdict();
        let mut evidence = self.evidence();
        evidence.insert("vectors".into(), vectors_json(&v));
        if let Some(tool) = &v.attack_tool {
            evidence.insert("attack_tool".into(), json!(tool));
        }
        Classification {
            attack_family: v.family.to_string(),
            attack_subtype: v.subtype.clone(),
            classified_by: "packets".into(),
            confidence: Some(v.confidence),
            evidence,
        }
    }

    /// The §6.2/§7.2 evidence fields.
    pub fn evidence(&self) -> Map<String, Value> {
        let t = &self.tally;
        let mut m = Map::new();
        m.insert("total_packets".into(), json!(t.packets));
        m.insert("top_src_ips".into(), top_src_ips(t));
        m.insert("source_ip_count".into(), json!(t.sources.estimate()));
        m.insert("target_ips".into(), target_ips(t));
        m.insert("top_dst_ports".into(), ports_json(&t.dst_ports));
        m.insert("top_src_ports".into(), ports_json(&t.src_ports));
        m.insert("protocol_breakdown".into(), self.protocol_breakdown());
        m.insert("tcp_flag_breakdown".into(), self.tcp_flags());
        m.insert("ioc_hits".into(), t.ioc.to_json(self.ioc.as_deref()));
        m.insert("malformed_packets".into(), json!(t.malformed));
        m.insert("fragments".into(), fragments_json(t));
        m.insert("dropped_packets".into(), json!(t.dropped));
        m.insert(
            "packet_size".into(),
            json!({
                "mean": round1(t.size_moments.mean()),
                "stddev": round1(t.size_moments.stddev()),
                "histogram": Value::Object(t.sizes.buckets().into_iter().map(|(k, v)| (k, json!(v))).collect()),
            }),
        );
        m.insert(
            "top_ttls".into(),
            Value::Array(t.top_ttls(5).into_iter().map(|(ttl, c)| json!({"ttl": ttl, "count": c})).collect()),
        );
        m.insert(
            "dns_queries".into(),
            Value::Array(t.dns_names.top(TOP_N).into_iter().map(|(n, c, _)| json!({"name": n, "count": c})).collect()),
        );
        m
    }

    /// {tcp, udp, icmp, other, fragments}: packet counts.
    pub fn protocol_breakdown(&self) -> Value {
        let t = &self.tally;
        json!({
            "tcp": t.tcp,
            "udp": t.udp,
            "icmp": t.icmp,
            "gre": t.gre,
            "esp": t.esp,
            "other": t.gre + t.esp + t.other_proto + t.non_ip,
            "fragments": t.fragments,
            "ipv4": t.ipv4,
            "ipv6": t.ipv6,
        })
    }

    /// Flag combinations (`syn`, `syn_ack`, `ack`, `rst`, ...) and single flags (`SYN`, ...).
    pub fn tcp_flags(&self) -> Value {
        let t = &self.tally;
        let mut m: Map<String, Value> =
            TCP_KINDS.iter().zip(t.tcp_kind.iter()).map(|(k, c)| (k.to_string(), json!(c))).collect();
        for (name, c) in FLAG_NAMES.iter().zip(t.tcp_flag_bits.iter()) {
            m.insert(name.to_string(), json!(c));
        }
        Value::Object(m)
    }

    /// The `--analyze --json` object (§7.6).
    pub fn summary_json(&self) -> Value {
        let t = &self.tally;
        let v = self.verdict();
        let dur = t.duration_s();
        let rate = |n: f64| if dur > 0.0 { round1(n / dur) } else { 0.0 };
        json!({
            "packets": t.packets,
            "bytes": t.bytes,
            "duration_s": round3(dur),
            "pps": rate(t.packets as f64),
            "bps": rate(t.bytes as f64 * 8.0),
            "protocol_breakdown": self.protocol_breakdown(),
            "tcp_flags": self.tcp_flags(),
            "top_src_ips": top_src_ips(t),
            "source_ip_count": t.sources.estimate(),
            "target_ips": target_ips(t),
            "top_dst_ports": ports_json(&t.dst_ports),
            "top_src_ports": ports_json(&t.src_ports),
            "attack_family": v.family,
            "attack_subtype": v.subtype,
            "confidence": v.confidence,
            "attack_tool": v.attack_tool,
            "vectors": vectors_json(&v),
            "ioc_hits": t.ioc.to_json(self.ioc.as_deref()),
            "malformed_packets": t.malformed,
            "fragments": fragments_json(t),
            "non_ip_packets": t.non_ip,
            "top_ttls": Value::Array(t.top_ttls(5).into_iter().map(|(ttl, c)| json!({"ttl": ttl, "count": c})).collect()),
            "dns_queries": Value::Array(t.dns_names.top(TOP_N).into_iter().map(|(n, c, _)| json!({"name": n, "count": c})).collect()),
        })
    }
}

fn top_src_ips(t: &Tally) -> Value {
    Value::Array(
        t.src_ips.top_guaranteed(TOP_N).into_iter().map(|(k, c)| json!({"ip": key_ip(k), "count": c})).collect(),
    )
}

/// The attacked addresses (§5.6): top destinations with their share of IP packets.
fn target_ips(t: &Tally) -> Value {
    let ip = t.ip_packets().max(1) as f64;
    Value::Array(
        t.dst_ips
            .top_guaranteed(TOP_N)
            .into_iter()
            .map(|(k, c)| json!({"ip": key_ip(k), "count": c, "share": round3(c as f64 / ip)}))
            .collect(),
    )
}

fn fragments_json(t: &Tally) -> Value {
    let share = if t.ip_packets() > 0 { t.fragments as f64 / t.ip_packets() as f64 } else { 0.0 };
    json!({"count": t.fragments, "share": round3(share), "udp": t.udp_fragments, "icmp": t.icmp_fragments})
}

fn ports_json(s: &crate::input::capture::engine::stats::SpaceSaving<u16>) -> Value {
    Value::Array(s.top_guaranteed(TOP_N).into_iter().map(|(p, c)| json!({"port": p, "count": c})).collect())
}

fn vectors_json(v: &Verdict) -> Value {
    Value::Array(
        v.vectors.iter().map(|x| json!({"family": x.family, "subtype": x.subtype, "share": round3(x.share)})).collect(),
    )
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

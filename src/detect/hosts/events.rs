//! Flow incidents as events of the §6 schema. The flow facts ride in the classification's
//! evidence (flattened into the event like every evidence key): `scope` (`host` | `prefix`),
//! `target_ips`, `prefix` or `hostgroup`, `source`, `exporter`, `sampling_rate`,
//! `exporter_delay_ms` (arrival of the first datagram seen carrying the flood minus its flow's
//! start) and `first_datagram_at` (that arrival), `flows_per_s`; `interface` is `"flows"`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::evidence::Evidence;
use super::tick::severity;
use super::{ip_of, prefix_text, Open, Rates, ScopeKey, METRIC_NAMES};
use crate::event::{
    rfc3339_ms, Classification, Direction, Event, EventBody, IncidentOpen, IncidentResolve, IncidentUpdate,
    ProtocolRates,
};

/// Who the incident is about, for the event.
pub(super) struct Scope {
    pub key: ScopeKey,
    pub direction: Direction,
    pub group: Option<String>,
    pub test: bool,
}

fn r1(v: f32) -> f64 {
    (f64::from(v) * 10.0).round() / 10.0
}

/// Classification from the evidence, or (no evidence slot was free) from the class rates.
fn classify(s: &Scope, o: &Open, ev: Option<&Evidence>) -> Classification {
    let mut c = match ev.filter(|e| e.packets > 0.0) {
        Some(e) => e.classify(),
        None => from_rates(&o.peak),
    };
    let e = &mut c.evidence;
    let (scope, targets): (&str, Vec<String>) = match s.key {
        ScopeKey::Host(k) => ("host", vec![ip_of(k).to_string()]),
        ScopeKey::Prefix(_) | ScopeKey::Group(_) => {
            let top = ev.map(|e| e.targets.top(16)).unwrap_or_default();
            let t = match s.direction {
                Direction::Inbound => top.into_iter().map(|(ip, _)| ip.to_string()).collect(),
                Direction::Outbound => ev
                    .map(|e| e.sources.top(16))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(ip, _)| ip.to_string())
                    .collect(),
            };
            ("prefix", t)
        }
    };
    e.insert("scope".into(), json!(scope));
    e.insert("target_ips".into(), json!(targets));
    match s.key {
        ScopeKey::Prefix(k) => {
            e.insert("prefix".into(), json!(prefix_text(k)));
        }
        ScopeKey::Group(_) => {
            e.insert("prefix".into(), Value::Null);
        }
        ScopeKey::Host(_) => {}
    }
    if let Some(g) = &s.group {
        e.insert("hostgroup".into(), json!(g));
    }
    if let Some(ev) = ev {
        e.insert("source".into(), json!(ev.source.as_str()));
        e.insert("exporter".into(), json!(ev.exporter.to_string()));
        e.insert("sampling_rate".into(), json!(ev.sampling_rate));
        if let Some(d) = ev.exporter_delay_ms {
            e.insert("exporter_delay_ms".into(), json!(d));
            let first = SystemTime::UNIX_EPOCH + Duration::from_millis(ev.first_arrival_ms);
            e.insert("first_datagram_at".into(), json!(rfc3339_ms(first)));
        }
    }
    e.insert("flows_per_s".into(), json!(r1(o.now[2])));
    c
}

/// Family from SYN/UDP/ICMP/fragment rates alone.
fn from_rates(r: &Rates) -> Classification {
    let pps = r[0].max(1.0);
    let (i, v) = [(3, "syn_flood"), (4, "udp_flood"), (5, "icmp_flood"), (6, "fragment_flood")]
        .iter()
        .map(|(i, n)| (*n, r[*i] / pps))
        .fold(("unknown", 0.0), |b, x| if x.1 > b.1 { x } else { b });
    Classification {
        attack_family: if v >= 0.5 { i.to_string() } else { "unknown".into() },
        attack_subtype: None,
        classified_by: "flows".into(),
        confidence: Some((v.clamp(0.0, 1.0) * 100.0).round() as u8),
        evidence: Default::default(),
    }
}

fn protocol(now: &Rates, thr: &Rates) -> Box<ProtocolRates> {
    let map =
        |r: &Rates| -> BTreeMap<String, f64> { (3..7).map(|i| (METRIC_NAMES[i].to_string(), r1(r[i]))).collect() };
    Box::new(ProtocolRates { protocol_pps: map(now), protocol_threshold_pps: map(thr) })
}

pub(super) fn open(s: &Scope, o: &Open, ev: Option<&Evidence>, wall: SystemTime) -> Event {
    let mut class = classify(s, o, ev);
    class.evidence.insert("threshold_flows_per_s".into(), json!(r1(o.thr[2])));
    Event::new(
        wall,
        EventBody::IncidentOpen(IncidentOpen {
            incident_id: o.id.clone(),
            direction: s.direction,
            previous_incident_id: o.previous_id.clone(),
            interface: "flows".into(),
            pps: r1(o.now[0]),
            bps: r1(o.now[1]),
            dropped_pps: 0.0,
            threshold_pps: r1(o.thr[0]),
            threshold_bps: r1(o.thr[1]),
            baseline_pps: r1(o.baseline_pps),
            severity: severity(&o.peak, &o.thr).into(),
            trigger: METRIC_NAMES[o.trigger].into(),
            protocol: Some(protocol(&o.now, &o.thr)),
            test: s.test,
            started_at: rfc3339_ms(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(o.opened_sec))),
            class,
        }),
    )
}

pub(super) fn update(s: &Scope, o: &Open, sec: u32, ev: Option<&Evidence>, wall: SystemTime) -> Event {
    Event::new(
        wall,
        EventBody::IncidentUpdate(IncidentUpdate {
            incident_id: o.id.clone(),
            direction: s.direction,
            pps: r1(o.now[0]),
            bps: r1(o.now[1]),
            dropped_pps: 0.0,
            peak_pps: r1(o.peak[0]),
            peak_bps: r1(o.peak[1]),
            duration_s: f64::from(sec.saturating_sub(o.opened_sec)),
            severity: severity(&o.peak, &o.thr).into(),
            test: s.test,
            class: classify(s, o, ev),
        }),
    )
}

pub(super) fn resolve(s: &Scope, o: &Open, sec: u32, reason: &str, ev: Option<&Evidence>, wall: SystemTime) -> Event {
    Event::new(
        wall,
        EventBody::IncidentResolve(IncidentResolve {
            incident_id: o.id.clone(),
            direction: s.direction,
            peak_pps: r1(o.peak[0]),
            peak_bps: r1(o.peak[1]),
            duration_s: f64::from(sec.saturating_sub(o.opened_sec)),
            severity: severity(&o.peak, &o.thr).into(),
            reason: reason.into(),
            test: s.test,
            pcap_file: None,
            class: classify(s, o, ev),
        }),
    )
}

//! The life of rules on virtual time, in dry-run (no nftables): apply at open, renew while the
//! incident lasts, hold `ttl_s` after the resolve, expire when no longer planned, `max_rules`.

use std::sync::mpsc::{self, Receiver};
use std::time::UNIX_EPOCH;

use serde_json::json;

use super::*;

const TTL: Duration = Duration::from_secs(10);

fn state(max_rules: usize) -> (State, Receiver<Outgoing>) {
    let cfg = MitigationConfig { mode: Mode::DryRun, ttl: TTL, max_rules, ..Default::default() };
    let (tx, rx) = mpsc::sync_channel(100);
    (State::new(cfg, Vec::new(), None, tx), rx)
}

fn class(sources: &[&str]) -> Classification {
    let mut c = Classification {
        attack_family: "udp_flood".into(),
        classified_by: "packets".into(),
        ..Classification::unknown()
    };
    let n = sources.len() as u64;
    c.evidence.insert("total_packets".into(), json!(1000 * n));
    c.evidence.insert("source_ip_count".into(), json!(n));
    c.evidence.insert(
        "top_src_ips".into(),
        json!(sources.iter().map(|s| json!({"ip": s, "count": 1000})).collect::<Vec<_>>()),
    );
    c
}

/// An incident event as the agent writes it (fields the planner does not read are fixed).
fn incident(kind: &str, id: &str, c: Classification) -> Event {
    let mut v = json!({"ts": "1970-01-01T00:00:00.000Z", "event": kind, "agent_version": "t", "incident_id": id,
        "interface": "eth0", "pps": 1.0, "bps": 1.0, "threshold_pps": 1.0, "threshold_bps": 1.0, "baseline_pps": 1.0,
        "severity": "high", "trigger": "pps", "test": false, "started_at": "", "peak_pps": 1.0, "peak_bps": 1.0,
        "duration_s": 1.0, "reason": "traffic_normal"});
    if let (Some(m), Ok(serde_json::Value::Object(c))) = (v.as_object_mut(), serde_json::to_value(&c)) {
        m.extend(c);
    }
    serde_json::from_value(v).expect("an incident event")
}

fn open(id: &str, c: Classification) -> Event {
    incident("incident_open", id, c)
}

fn update(id: &str, c: Classification) -> Event {
    incident("incident_update", id, c)
}

fn resolve(id: &str) -> Event {
    incident("incident_resolve", id, Classification::unknown())
}

/// (event name, reason, rule keys) of everything reported so far.
fn drain(rx: &Receiver<Outgoing>) -> Vec<(String, String, Vec<String>)> {
    rx.try_iter()
        .filter_map(|m| match m {
            Outgoing::Event(e) => match &e.body {
                EventBody::MitigationApply(m) | EventBody::MitigationRemove(m) => Some((
                    e.name().to_string(),
                    m.reason.clone(),
                    m.rules.iter().map(|r| r["rule"].as_str().unwrap().to_string()).collect(),
                )),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn ev(name: &str, reason: &str, keys: &[&str]) -> (String, String, Vec<String>) {
    (name.into(), reason.into(), keys.iter().map(|k| k.to_string()).collect())
}

#[test]
fn applied_at_open_renewed_while_open_removed_ttl_after_resolve() {
    let (mut s, rx) = state(200);
    let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let at = |secs: u64| t0 + Duration::from_secs(secs);
    s.on_event(&open("i1", class(&["192.0.2.1"])), t0);
    assert_eq!(drain(&rx), vec![ev("mitigation_apply", "incident_open", &["src:192.0.2.1"])]);
    s.tick(at(4));
    assert!(drain(&rx).is_empty(), "more than half the TTL left: no renewal");
    s.tick(at(5));
    assert_eq!(drain(&rx), vec![ev("mitigation_apply", "renewed", &["src:192.0.2.1"])]);
    s.on_event(&resolve("i1"), at(8));
    s.tick(at(17));
    assert!(drain(&rx).is_empty(), "held for ttl_s after the resolve");
    s.tick(at(18));
    assert_eq!(drain(&rx), vec![ev("mitigation_remove", "resolved", &["src:192.0.2.1"])]);
    assert_eq!(s.active_count(), 0);
}

#[test]
fn a_rule_no_longer_planned_expires_and_a_new_one_is_applied() {
    let (mut s, rx) = state(200);
    let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
    s.on_event(&open("i1", class(&["192.0.2.1"])), t0);
    s.on_event(&update("i1", class(&["192.0.2.2"])), t0 + Duration::from_secs(1));
    let got = drain(&rx);
    assert_eq!(got[1], ev("mitigation_apply", "reclassified", &["src:192.0.2.2"]));
    // 192.0.2.2 is still planned and renewed; 192.0.2.1 is not: it expires at open + TTL.
    s.on_event(&update("i1", class(&["192.0.2.2"])), t0 + Duration::from_secs(2));
    s.tick(t0 + Duration::from_secs(6));
    s.tick(t0 + Duration::from_secs(10));
    let got = drain(&rx);
    assert!(got.contains(&ev("mitigation_remove", "expired", &["src:192.0.2.1"])), "{got:?}");
    assert_eq!(s.active_count(), 1);
}

#[test]
fn max_rules_caps_rules_across_incidents() {
    let (mut s, rx) = state(2);
    let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
    s.on_event(&open("i1", class(&["192.0.2.1", "192.0.2.2", "192.0.2.3"])), t0);
    let got = drain(&rx);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2.len(), 1, "past the cap: the widest rule only: {got:?}");
    s.on_event(&open("i2", class(&["198.51.100.1"])), t0);
    assert_eq!(s.active_count(), 2);
    s.on_event(&open("i3", class(&["198.51.100.2"])), t0);
    assert_eq!(s.active_count(), 2, "nothing past max_rules");
}

#[test]
fn an_open_too_thin_to_act_on_is_replanned_from_the_live_capture() {
    let (mut s, rx) = state(200);
    let live = std::sync::Arc::new(std::sync::Mutex::new(None::<Classification>));
    let reader = live.clone();
    s.set_live(Some(std::sync::Arc::new(move || reader.lock().unwrap().clone())));
    let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
    // Capture had not classified yet: the open carries the counters' label only.
    s.on_event(&open("i1", Classification { attack_family: "udp_flood".into(), ..Classification::unknown() }), t0);
    s.tick(t0);
    assert!(drain(&rx).is_empty());
    *live.lock().unwrap() = Some(class(&["192.0.2.1"]));
    s.tick(t0 + Duration::from_millis(100));
    assert_eq!(drain(&rx), vec![ev("mitigation_apply", "reclassified", &["src:192.0.2.1"])]);
    s.tick(t0 + Duration::from_millis(200));
    assert!(drain(&rx).is_empty(), "planned once, not again every tick");
}

#[test]
fn outbound_incidents_get_no_rules() {
    let (mut s, rx) = state(200);
    let mut e = open("o1", class(&["192.0.2.1"]));
    if let EventBody::IncidentOpen(o) = &mut e.body {
        o.direction = crate::event::Direction::Outbound;
    }
    s.on_event(&e, UNIX_EPOCH);
    s.tick(UNIX_EPOCH);
    assert!(drain(&rx).is_empty());
    assert_eq!(s.active_count(), 0);
}

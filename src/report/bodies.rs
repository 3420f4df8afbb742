//! Pure mapping from agent output to the API bodies of §6.2 and the webhook body of §6.4.
//! No I/O; the spool stores what these return.

use serde_json::{json, Map, Value};

use crate::event::{Classification, Event, EventBody};
use crate::report::api::spool::Kind;
use crate::report::Outgoing;

/// One spool entry to be: kind, agent incident id, idempotency key, body.
pub type Entry = (Kind, Option<String>, String, Value);

/// The API entries for one message (none for messages the API does not take). A resolve with
/// a PCAP file also yields the upload.
pub fn api_entries(msg: &Outgoing) -> Vec<Entry> {
    let key = || uuid::Uuid::new_v4().to_string();
    match msg {
        Outgoing::Heartbeat(h) => vec![(Kind::Heartbeat, None, key(), to_value(h))],
        Outgoing::Metrics(m) => vec![(Kind::Metrics, None, key(), to_value(m))],
        Outgoing::Event(e) => event_entries(e, key),
        Outgoing::SaveBaseline(_) | Outgoing::Status(_) => vec![],
    }
}

fn event_entries(e: &Event, key: impl Fn() -> String) -> Vec<Entry> {
    match &e.body {
        EventBody::IncidentOpen(o) => {
            let mut b = json!({
                "client_incident_id": o.incident_id,
                "peak_pps": o.pps,
                "peak_bps": o.bps,
                "started_at": o.started_at,
                "baseline_pps": o.baseline_pps,
                "duration": 0,
                "severity": o.severity,
                "trigger": o.trigger,
                "threshold_pps": o.threshold_pps,
                "threshold_bps": o.threshold_bps,
                "interface": o.interface,
                "direction": o.direction,
                "dropped_pps": o.dropped_pps,
            });
            if let (Some(prev), Value::Object(m)) = (&o.previous_incident_id, &mut b) {
                m.insert("previous_client_incident_id".into(), prev.clone().into());
            }
            add_class(&mut b, &o.class, o.test);
            // The open's idempotency key is the agent's incident id: a retried open is the same open.
            vec![(Kind::Open, Some(o.incident_id.clone()), o.incident_id.clone(), b)]
        }
        EventBody::IncidentUpdate(u) => {
            let mut b = json!({
                "client_incident_id": u.incident_id,
                "pps": u.pps,
                "bps": u.bps,
                "peak_pps": u.peak_pps,
                "peak_bps": u.peak_bps,
                "duration_seconds": u.duration_s,
                "severity": u.severity,
                "direction": u.direction,
                "dropped_pps": u.dropped_pps,
                "ts": e.ts,
            });
            add_class(&mut b, &u.class, u.test);
            vec![(Kind::Update, Some(u.incident_id.clone()), key(), b)]
        }
        EventBody::IncidentResolve(r) => {
            let mut b = json!({
                "client_incident_id": r.incident_id,
                "peak_pps": r.peak_pps,
                "peak_bps": r.peak_bps,
                "duration_seconds": r.duration_s,
                "severity": r.severity,
                "reason": r.reason,
                "direction": r.direction,
                "resolved_at": e.ts,
            });
            add_class(&mut b, &r.class, r.test);
            let mut out = vec![(Kind::Resolve, Some(r.incident_id.clone()), key(), b)];
            if let Some(file) = &r.pcap_file {
                let upload = key();
                out.push((
                    Kind::Pcap,
                    Some(r.incident_id.clone()),
                    upload.clone(),
                    json!({ "path": file, "queued_at": unix_now() }),
                ));
            }
            out
        }
        EventBody::MitigationApply(m) | EventBody::MitigationRemove(m) => {
            // The service hears of mitigation in incident updates, as `mitigation` (§10).
            let b = json!({
                "client_incident_id": m.incident_id,
                "ts": e.ts,
                "mitigation": {"event": e.name(), "mode": m.mode, "rules": m.rules, "expires_at": m.expires_at, "reason": m.reason},
            });
            vec![(Kind::Update, Some(m.incident_id.clone()), key(), b)]
        }
        EventBody::AgentStart { .. } | EventBody::AgentStop {} => vec![],
    }
}

/// Classification and evidence as the service reads them: `attack_family`, `attack_subtype`,
/// `confidence`, and every evidence field (`top_src_ips`, `protocol_breakdown`, `ioc_hits`, ...).
fn add_class(b: &mut Value, c: &Classification, test: bool) {
    let Value::Object(m) = b else { return };
    m.insert("attack_family".into(), c.attack_family.clone().into());
    m.insert("attack_subtype".into(), c.attack_subtype.clone().map(Value::from).unwrap_or(Value::Null));
    m.insert("classified_by".into(), c.classified_by.clone().into());
    if let Some(conf) = c.confidence {
        m.insert("confidence".into(), conf.into());
    }
    for (k, v) in &c.evidence {
        m.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if test {
        m.insert("test".into(), true.into());
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Object(Map::new()))
}

/// The webhook body for an incident open/resolve: the §6.1 object plus a one-line `text`.
pub fn webhook_body(e: &Event, host: &str) -> Option<Value> {
    let text = match &e.body {
        EventBody::IncidentOpen(o) if o.class.classified_by == "access_log" => format!(
            "HTTP flood on {host} ({}): {} at {} requests/s, threshold {} requests/s, severity {} [{}]",
            o.class.evidence.get("access_log").and_then(Value::as_str).unwrap_or("access log"),
            family(&o.class),
            o.class.evidence.get("requests_per_second").unwrap_or(&Value::Null),
            o.class.evidence.get("threshold_rps").unwrap_or(&Value::Null),
            o.severity,
            o.incident_id
        ),
        EventBody::IncidentResolve(r) if r.class.classified_by == "access_log" => format!(
            "HTTP flood resolved on {host}: {} peaked at {} requests/s, lasted {:.0} s, severity {} ({}) [{}]",
            family(&r.class),
            r.class.evidence.get("peak_requests_per_second").unwrap_or(&Value::Null),
            r.duration_s,
            r.severity,
            r.reason.replace('_', " "),
            r.incident_id
        ),
        EventBody::IncidentOpen(o) => format!(
            "{}{} opened on {host} ({}): {} at {:.0} pps / {:.1} Mbit/s, threshold {:.0} pps, severity {}{} [{}]",
            test_tag(o.test),
            what(&o.direction),
            o.interface,
            family(&o.class),
            o.pps,
            o.bps / 1e6,
            o.threshold_pps,
            o.severity,
            o.class.confidence.map(|c| format!(", confidence {c}%")).unwrap_or_default(),
            o.incident_id
        ),
        EventBody::IncidentResolve(r) => format!(
            "{}{} resolved on {host}: {} peaked at {:.0} pps / {:.1} Mbit/s, lasted {:.0} s, severity {} ({}) [{}]",
            test_tag(r.test),
            what(&r.direction),
            family(&r.class),
            r.peak_pps,
            r.peak_bps / 1e6,
            r.duration_s,
            r.severity,
            r.reason.replace('_', " "),
            r.incident_id
        ),
        EventBody::MitigationApply(m) | EventBody::MitigationRemove(m) => format!(
            "{} on {host}: {} rule(s) ({}), {} [{}]",
            if e.name() == "mitigation_apply" { "Mitigation applied" } else { "Mitigation removed" },
            m.rules.len(),
            m.mode.replace('_', "-"),
            m.reason.replace('_', " "),
            m.incident_id
        ),
        _ => return None,
    };
    let mut v = to_value(e);
    v["text"] = text.into();
    v["host"] = host.into();
    Some(v)
}

/// An outbound incident is this host sending a flood, not receiving one.
fn what(direction: &crate::event::Direction) -> &'static str {
    if *direction == crate::event::Direction::Outbound {
        "Outbound flood (this host is sending)"
    } else {
        "DDoS incident"
    }
}

fn test_tag(test: bool) -> &'static str {
    if test {
        "[TEST] "
    } else {
        ""
    }
}

fn family(c: &Classification) -> String {
    match &c.attack_subtype {
        Some(s) => format!("{} ({s})", c.attack_family),
        None => c.attack_family.clone(),
    }
}

/// This machine's name, for webhook summaries.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Seconds since the epoch, for items whose handling depends on their age.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{IncidentOpen, IncidentResolve};
    use crate::input::accesslog::aggregate::Window;
    use crate::input::accesslog::baseline::HttpDetectConfig;
    use crate::input::accesslog::detect::HttpDetector;
    use crate::input::accesslog::events::event;
    use crate::input::accesslog::parse::{parse_line, Format};
    use std::path::Path;
    use std::time::UNIX_EPOCH;
    use std::time::{Duration, Instant, SystemTime};

    fn class() -> Classification {
        Classification { attack_subtype: Some("dns_amplification".into()), ..Classification::unknown() }
    }

    #[test]
    fn webhook_text_summarises_open_and_resolve() {
        let open = Event::new(
            UNIX_EPOCH,
            EventBody::IncidentOpen(IncidentOpen {
                incident_id: "inc-1".into(),
                direction: crate::event::Direction::Inbound,
                previous_incident_id: None,
                interface: "eth0".into(),
                pps: 123456.0,
                bps: 9.5e8,
                dropped_pps: 0.0,
                threshold_pps: 5000.0,
                threshold_bps: 5e7,
                baseline_pps: 100.0,
                severity: "critical".into(),
                trigger: "pps".into(),
                protocol: None,
                test: false,
                started_at: String::new(),
                class: class(),
            }),
        );
        let v = webhook_body(&open, "web-1").unwrap();
        assert_eq!(v["event"], "incident_open");
        assert_eq!(
            v["text"],
            "DDoS incident opened on web-1 (eth0): unknown (dns_amplification) at 123456 pps / 950.0 Mbit/s, \
             threshold 5000 pps, severity critical [inc-1]"
        );
        let resolve = Event::new(
            UNIX_EPOCH,
            EventBody::IncidentResolve(IncidentResolve {
                incident_id: "inc-1".into(),
                direction: crate::event::Direction::Outbound,
                peak_pps: 2e5,
                peak_bps: 1e9,
                duration_s: 42.4,
                severity: "critical".into(),
                reason: "agent_stopped".into(),
                test: true,
                pcap_file: None,
                class: class(),
            }),
        );
        let text = webhook_body(&resolve, "web-1").unwrap()["text"].as_str().unwrap().to_string();
        assert!(text.starts_with("[TEST] Outbound flood (this host is sending) resolved on web-1"), "{text}");
        assert!(text.contains("lasted 42 s") && text.contains("(agent stopped)"), "{text}");
        assert!(webhook_body(&Event::new(UNIX_EPOCH, EventBody::AgentStop {}), "h").is_none());
    }

    #[test]
    fn mitigation_events_reach_the_api_as_incident_updates_and_the_webhook() {
        let m = crate::event::MitigationEvent {
            incident_id: "inc-1".into(),
            mode: "enforce".into(),
            rules: vec![json!({"rule": "amp:192.0.2.1:161", "dropped_packets": 7})],
            expires_at: "2026-01-01T00:10:00.000Z".into(),
            reason: "incident_open".into(),
        };
        let e = Event::new(UNIX_EPOCH, EventBody::MitigationApply(m));
        let entries = api_entries(&Outgoing::Event(e.clone()));
        assert_eq!(entries.len(), 1);
        let (kind, id, _, body) = &entries[0];
        assert_eq!((*kind, id.as_deref()), (Kind::Update, Some("inc-1")));
        assert_eq!(body["mitigation"]["event"], "mitigation_apply");
        assert_eq!(body["mitigation"]["rules"][0]["dropped_packets"], 7);
        let hook = webhook_body(&e, "web-1").unwrap();
        assert_eq!(hook["text"], "Mitigation applied on web-1: 1 rule(s) (enforce), incident open [inc-1]");
        assert_eq!(hook["rules"][0]["rule"], "amp:192.0.2.1:161");
    }

    #[test]
    fn http_flood_events_carry_layer_7_evidence_and_reach_the_webhook_text() {
        let cfg = HttpDetectConfig {
            dynamic_threshold: true,
            threshold_multiplier: 3.0,
            min_rps: 500.0,
            baseline_window: Duration::from_secs(60),
            grace_period: Duration::ZERO,
            holddown: Duration::from_secs(2),
            cooldown: Duration::from_secs(60),
        };
        let t0 = Instant::now();
        let mut d = HttpDetector::new(&cfg, t0);
        let mut w = Window::default();
        let line = br#"10.77.0.2 - - [t] "GET /api/search?q=1 HTTP/1.1" 200 5 "-" "wrk/4.2.0""#;
        for _ in 0..1500 {
            w.add(&parse_line(Format::Combined, line).unwrap());
        }
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let open = d.step(t0 + Duration::from_secs(1), wall, 1500.0, &w.summary()).expect("opens");
        let e = event(Path::new("/var/log/nginx/access.log"), &open, t0, wall);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], "incident_open");
        for (k, want) in [
            ("attack_family", Value::from("http_flood")),
            ("attack_subtype", "single_source".into()),
            ("classified_by", "access_log".into()),
            ("layer", 7.into()),
            ("direction", "inbound".into()),
            ("trigger", "requests_per_second".into()),
            ("requests_per_second", 1500.0.into()),
            ("threshold_rps", 500.0.into()),
            ("severity", "high".into()),
        ] {
            assert_eq!(v[k], want, "{k}: {v}");
        }
        assert_eq!(v["top_client_ips"][0]["ip"], "10.77.0.2");
        assert_eq!(v["top_paths"][0]["path"], "/api/search");
        assert_eq!(v["top_user_agents"][0]["user_agent"], "wrk/4.2.0");
        assert_eq!(v["status_mix"]["2xx"], 1500);
        let hook = webhook_body(&e, "web-1").unwrap();
        assert_eq!(
            hook["text"],
            format!(
                "HTTP flood on web-1 (/var/log/nginx/access.log): http_flood (single_source) at 1500.0 requests/s, \
                 threshold 500.0 requests/s, severity high [{}]",
                e.incident_id().unwrap()
            )
        );
        let stop = d.stop().unwrap();
        let v = serde_json::to_value(event(Path::new("/l"), &stop, t0 + Duration::from_secs(3), wall)).unwrap();
        assert_eq!((v["event"].as_str(), v["reason"].as_str()), (Some("incident_resolve"), Some("agent_stopped")));
    }
}

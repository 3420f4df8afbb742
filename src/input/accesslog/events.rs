//! Access-log incidents as §6.1 events: the same `incident_open` / `incident_update` /
//! `incident_resolve` vocabulary as the counters, with `attack_family: "http_flood"`,
//! `layer: 7`, `classified_by: "access_log"`, `direction: "inbound"` and the request figures as
//! evidence (`requests_per_second`, `threshold_rps`, `top_client_ips`, `top_paths`,
//! `status_mix`, `top_user_agents`, ...). Packet fields (`pps`, `bps`, ...) are 0: a log counts
//! requests, not packets. Pure mapping; no I/O.

use std::path::Path;
use std::time::{Instant, SystemTime};

use serde_json::Map;

use super::detect::{Change, HttpIncident};
use crate::event::{
    rfc3339_ms, Classification, Direction, Event, EventBody, IncidentOpen, IncidentResolve, IncidentUpdate,
};

/// The `interface` field of access-log incidents: they concern a log, not a NIC.
pub const INTERFACE: &str = "access_log";

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn class(log: &Path, inc: &HttpIncident) -> Classification {
    let mut ev = Map::new();
    ev.insert("layer".into(), 7.into());
    ev.insert("access_log".into(), log.display().to_string().into());
    ev.insert("requests_per_second".into(), round1(inc.rps).into());
    ev.insert("peak_requests_per_second".into(), round1(inc.peak_rps).into());
    ev.insert("threshold_rps".into(), round1(inc.threshold_rps).into());
    ev.insert("baseline_rps".into(), round1(inc.baseline_rps).into());
    ev.extend(inc.flood.evidence());
    Classification {
        attack_family: "http_flood".into(),
        attack_subtype: inc.flood.subtype().map(str::to_string),
        classified_by: "access_log".into(),
        confidence: None,
        evidence: ev,
    }
}

/// The event for one change of the incident machine.
pub fn event(log: &Path, change: &Change, now: Instant, wall: SystemTime) -> Event {
    let body = match change {
        Change::Opened(inc) => EventBody::IncidentOpen(IncidentOpen {
            incident_id: inc.id.clone(),
            direction: Direction::Inbound,
            previous_incident_id: inc.previous_incident_id.clone(),
            interface: INTERFACE.into(),
            pps: 0.0,
            bps: 0.0,
            dropped_pps: 0.0,
            threshold_pps: 0.0,
            threshold_bps: 0.0,
            baseline_pps: 0.0,
            severity: inc.severity().into(),
            trigger: "requests_per_second".into(),
            protocol: None,
            test: false,
            started_at: rfc3339_ms(inc.started_wall),
            class: class(log, inc),
        }),
        Change::Updated(inc) => EventBody::IncidentUpdate(IncidentUpdate {
            incident_id: inc.id.clone(),
            direction: Direction::Inbound,
            pps: 0.0,
            bps: 0.0,
            dropped_pps: 0.0,
            peak_pps: 0.0,
            peak_bps: 0.0,
            duration_s: inc.duration(now).as_secs_f64(),
            severity: inc.severity().into(),
            test: false,
            class: class(log, inc),
        }),
        Change::Resolved(inc, stopping) => EventBody::IncidentResolve(IncidentResolve {
            incident_id: inc.id.clone(),
            direction: Direction::Inbound,
            peak_pps: 0.0,
            peak_bps: 0.0,
            duration_s: inc.duration(now).as_secs_f64(),
            severity: inc.severity().into(),
            reason: if *stopping { "agent_stopped" } else { "traffic_normal" }.into(),
            test: false,
            pcap_file: None,
            class: class(log, inc),
        }),
    };
    Event::new(wall, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::accesslog::aggregate::Window;
    use crate::input::accesslog::baseline::HttpDetectConfig;
    use crate::input::accesslog::detect::HttpDetector;
    use crate::input::accesslog::parse::{parse_line, Format};
    use serde_json::Value;
    use std::time::Duration;

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
        let hook = crate::report::bodies::webhook_body(&e, "web-1").unwrap();
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

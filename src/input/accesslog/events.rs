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

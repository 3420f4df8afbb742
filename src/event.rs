//! The agent's event vocabulary (§6.1): what the local event log records and every sink
//! receives. Plain data with serde; no I/O.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-21T22:27:20.123Z`.
pub fn rfc3339_ms(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// One event as written to the event log: `ts`, `event`, `agent_version`, then the fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub ts: String,
    #[serde(flatten)]
    pub body: EventBody,
    pub agent_version: String,
}

impl Event {
    pub fn new(wall: SystemTime, body: EventBody) -> Self {
        Event { ts: rfc3339_ms(wall), body, agent_version: AGENT_VERSION.to_string() }
    }

    pub fn name(&self) -> &'static str {
        match &self.body {
            EventBody::AgentStart { .. } => "agent_start",
            EventBody::IncidentOpen(_) => "incident_open",
            EventBody::IncidentUpdate(_) => "incident_update",
            EventBody::IncidentResolve(_) => "incident_resolve",
            EventBody::AgentStop {} => "agent_stop",
            EventBody::MitigationApply(_) => "mitigation_apply",
            EventBody::MitigationRemove(_) => "mitigation_remove",
            EventBody::TrafficSurge(_) => "traffic_surge",
        }
    }

    /// The incident this event belongs to, if any.
    pub fn incident_id(&self) -> Option<&str> {
        match &self.body {
            EventBody::IncidentOpen(o) => Some(&o.incident_id),
            EventBody::IncidentUpdate(u) => Some(&u.incident_id),
            EventBody::IncidentResolve(r) => Some(&r.incident_id),
            EventBody::MitigationApply(m) | EventBody::MitigationRemove(m) => Some(&m.incident_id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventBody {
    AgentStart {
        interface: String,
        mode: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        capture_reason: Option<String>,
        baseline_restored: bool,
    },
    IncidentOpen(IncidentOpen),
    IncidentUpdate(IncidentUpdate),
    IncidentResolve(IncidentResolve),
    AgentStop {},
    MitigationApply(MitigationEvent),
    MitigationRemove(MitigationEvent),
    TrafficSurge(TrafficSurge),
}

/// `traffic_surge` (§5.8): traffic of the host's own connections far over its normal (a backup,
/// a speed test). Informational: no incident, no alert, no rule; written to the event log only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficSurge {
    pub interface: String,
    /// Everything received (offered load).
    pub pps: f64,
    pub bps: f64,
    /// The part attributed to the host's established connections.
    pub attributed_pps: f64,
    pub attributed_bps: f64,
    /// The thresholds the attributed traffic would have crossed.
    pub threshold_pps: f64,
    pub threshold_bps: f64,
    /// The connections carrying the most: `ip`, `port`, `local_port`, `pps`, `bps`.
    pub attributed_connections: Vec<Value>,
}

/// `mitigation_apply` / `mitigation_remove` (§10): the rules of one incident put in force (or
/// planned, in dry-run) or taken out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MitigationEvent {
    pub incident_id: String,
    /// `dry_run` or `enforce`.
    pub mode: String,
    /// One object per rule: `rule` (its key), `action`, `nft` (the nftables JSON commands),
    /// `expires_at`, `dropped_packets`; for BGP `rule`, `backend`, `action`, `route` (family,
    /// prefix, match, communities), `argv` (the exact client command), `expires_at`.
    pub rules: Vec<Value>,
    /// When the last of these rules expires (RFC 3339).
    pub expires_at: String,
    /// apply: `incident_open`, `reclassified`, `renewed`, `adopted`; remove: `resolved`, `expired`.
    pub reason: String,
    /// `nftables` or `bgp` (§10.2); events written before BGP existed read as `nftables`.
    #[serde(default = "nftables")]
    pub backend: String,
    /// What was planned and not put in force, each with its `reason` (outside the networks,
    /// protected, `max_routes`, ...): an operator sees why an address was not touched (§10.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<Value>,
    /// Whether `ct state established,related accept` precedes the rules (false: conntrack is
    /// not available, replies to the host's own traffic are not exempt). Absent in dry-run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conntrack: Option<bool>,
}

fn nftables() -> String {
    "nftables".into()
}

/// How an incident was classified and the evidence behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub attack_family: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack_subtype: Option<String>,
    /// `counters` (limited mode) or `packets` (capture builds).
    pub classified_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<u8>,
    /// Capture-build evidence (§7.2): `top_src_ips`, `protocol_breakdown`, `ioc_hits`, ...
    #[serde(flatten)]
    pub evidence: Map<String, Value>,
}

impl Classification {
    pub fn unknown() -> Self {
        Classification {
            attack_family: "unknown".into(),
            attack_subtype: None,
            classified_by: "counters".into(),
            confidence: None,
            evidence: Map::new(),
        }
    }
}

/// SYN/s, UDP/s, ICMP/s, fragments/s of the opening sample and the thresholds then in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolRates {
    pub protocol_pps: std::collections::BTreeMap<String, f64>,
    pub protocol_threshold_pps: std::collections::BTreeMap<String, f64>,
}

/// Which traffic an incident is about (§5.5): received, or sent by this host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentOpen {
    pub incident_id: String,
    /// `inbound` or `outbound` (§5.5).
    #[serde(default)]
    pub direction: Direction,
    /// The incident that resolved within `cooldown_s` before this one opened (§5.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_incident_id: Option<String>,
    pub interface: String,
    /// Offered packets/s: received plus dropped by the NIC or kernel.
    pub pps: f64,
    pub bps: f64,
    /// The part of `pps` the NIC or kernel dropped.
    #[serde(default)]
    pub dropped_pps: f64,
    pub threshold_pps: f64,
    pub threshold_bps: f64,
    pub baseline_pps: f64,
    pub severity: String,
    /// `pps` or `bps`, or (capture builds) `syn`, `udp`, `icmp`, `fragments`.
    pub trigger: String,
    /// Capture builds: the per-protocol rates and thresholds at open (§5.6).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Box<ProtocolRates>>,
    pub test: bool,
    /// Onset time (first sample over threshold), RFC 3339.
    pub started_at: String,
    #[serde(flatten)]
    pub class: Classification,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentUpdate {
    pub incident_id: String,
    #[serde(default)]
    pub direction: Direction,
    pub pps: f64,
    pub bps: f64,
    #[serde(default)]
    pub dropped_pps: f64,
    pub peak_pps: f64,
    pub peak_bps: f64,
    pub duration_s: f64,
    pub severity: String,
    pub test: bool,
    #[serde(flatten)]
    pub class: Classification,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentResolve {
    pub incident_id: String,
    #[serde(default)]
    pub direction: Direction,
    pub peak_pps: f64,
    pub peak_bps: f64,
    pub duration_s: f64,
    pub severity: String,
    /// `traffic_normal` or `agent_stopped`.
    pub reason: String,
    pub test: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcap_file: Option<String>,
    #[serde(flatten)]
    pub class: Classification,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn event_line_has_required_fields_and_round_trips() {
        let wall = UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
        let e = Event::new(
            wall,
            EventBody::IncidentResolve(IncidentResolve {
                incident_id: "id".into(),
                direction: Direction::Inbound,
                peak_pps: 1.0,
                peak_bps: 2.0,
                duration_s: 3.0,
                severity: "high".into(),
                reason: "traffic_normal".into(),
                test: false,
                pcap_file: None,
                class: Classification::unknown(),
            }),
        );
        let v: Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["ts"], "2026-01-01T00:00:00.123Z");
        assert_eq!(v["event"], "incident_resolve");
        assert_eq!(v["agent_version"], AGENT_VERSION);
        assert_eq!(v["attack_family"], "unknown");
        assert_eq!(v["classified_by"], "counters");
        assert!(v.get("pcap_file").is_none());
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.incident_id(), Some("id"));
    }
}

//! The state file's shape: what the agent publishes once per second and `--status --json`
//! prints. Plain serde data, no I/O. Every struct reads with defaults for missing fields, so a
//! `--status` of one version can read the file of another.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Seconds of per-second rates kept in the file, for `--top`'s sparkline.
pub const HISTORY_LEN: usize = 120;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusSnapshot {
    /// The agent's process id; `--status` checks it is alive.
    pub pid: u32,
    pub version: String,
    /// The config file the agent was started with (None = defaults).
    pub config: Option<String>,
    pub started_at: String,
    /// RFC 3339 time of this snapshot, and the same as Unix milliseconds for freshness checks.
    pub updated_at: String,
    pub updated_unix_ms: u64,
    /// `limited`, `capture-scapy` or `capture-tcpdump`.
    pub mode: String,
    pub capture_reason: Option<String>,
    pub interface: String,
    pub sample_interval_ms: u64,
    pub rates: RatesNow,
    /// Traffic the host asked for (§5.8), taken out of what is judged.
    pub attribution: AttributionNow,
    pub thresholds: ThresholdsNow,
    pub baseline: BaselineNow,
    pub incident: Option<IncidentNow>,
    pub incidents_total: u64,
    /// Protocol mix of the last sample (host-wide `/proc/net/snmp`), percent of packets.
    pub proto: ProtoMix,
    pub capture_dropped_packets: u64,
    pub spool: SpoolNow,
    pub api: ApiNow,
    /// Active mitigation rules (§10): `rule`, `action`, `expires_at`, `dropped_packets` (at
    /// apply), `incident_id`, `mode`; empty when mitigation is off.
    pub mitigations: Vec<Value>,
    /// The last [`HISTORY_LEN`] seconds, oldest first.
    pub history: Vec<HistoryPoint>,
}

/// The last sample's rates; `bps` fields are bits per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RatesNow {
    pub rx_pps: f64,
    pub rx_bps: f64,
    pub tx_pps: f64,
    pub tx_bps: f64,
}

/// What the last sample attributed to the host's own connections (§5.8).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AttributionNow {
    pub attributed_pps: f64,
    /// Bits per second.
    pub attributed_bps: f64,
    /// What the detector judged: received minus attributed (never under the unsolicited part).
    pub judged_pps: f64,
    pub judged_bps: f64,
    /// TCP over the threshold waiting for the socket census.
    pub held: bool,
    /// `ip`, `port`, `local_port`, `pps`, `bps` of the connections carrying the most.
    pub top_connections: Vec<Value>,
    /// Many new peers pushing data: not attributed (`tcp_data_flood`).
    pub data_flood: bool,
    pub new_peers: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ThresholdsNow {
    pub pps: f64,
    /// Bits per second.
    pub bps: f64,
    pub baseline_pps: f64,
    pub dynamic: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BaselineNow {
    /// `learning`, `low`, `medium`, `high` (as in the heartbeat).
    pub quality: String,
    pub ready: bool,
    pub p99_pps: f64,
    pub total_samples: u64,
    /// A saved baseline was restored at start (no grace period).
    pub restored: bool,
    /// Seconds of the grace period left; 0 once detection is active.
    pub grace_left_s: f64,
    pub detection_active: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IncidentNow {
    pub id: String,
    /// `inbound` or `outbound` (§5.5).
    #[serde(default)]
    pub direction: String,
    /// The classification so far, e.g. `udp_flood` or `amplification/dns` (`unknown` before the
    /// first classification reaches the report worker).
    pub label: String,
    pub severity: String,
    /// `pps` or `bps`, or (capture builds) `syn`, `udp`, `icmp`, `fragments`.
    pub trigger: String,
    pub started_at: String,
    pub duration_s: f64,
    pub peak_pps: f64,
    pub peak_bps: f64,
    /// Capture builds: `top_src_ips`, `top_dst_ports`, ... from the incident's latest evidence.
    pub top: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProtoMix {
    pub tcp_pct: f64,
    pub udp_pct: f64,
    pub icmp_pct: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpoolNow {
    /// Events waiting in the durable spools (API and webhook).
    pub events: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiNow {
    pub enabled: bool,
    /// RFC 3339 time of the last call the API accepted, if any since the agent started.
    pub last_success: Option<String>,
}

/// One second of history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryPoint {
    pub unix_s: u64,
    pub rx_pps: f64,
    pub rx_bps: f64,
}

/// The baseline quality as a number for Prometheus: learning 0, low 1, medium 2, high 3.
pub fn quality_level(quality: &str) -> f64 {
    match quality {
        "low" => 1.0,
        "medium" => 2.0,
        "high" => 3.0,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_file_reads_with_defaults_and_keeps_the_mitigations_field() {
        let s: StatusSnapshot = serde_json::from_str(r#"{"pid": 7, "mode": "limited"}"#).unwrap();
        assert_eq!((s.pid, s.mode.as_str(), s.incident.is_none()), (7, "limited", true));
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back["mitigations"], serde_json::json!([]));
    }

    #[test]
    fn quality_levels_are_ordered() {
        let levels: Vec<f64> = ["learning", "low", "medium", "high"].iter().map(|q| quality_level(q)).collect();
        assert_eq!(levels, vec![0.0, 1.0, 2.0, 3.0]);
    }
}

//! What the sampling thread hands to sinks: events, metrics, heartbeats, baseline snapshots.
//! Plain data; the field names of [`Metrics`] and [`Heartbeat`] follow the API bodies of §6.2.

use serde::Serialize;

use crate::detect::baseline::{Quality, Snapshot};
use crate::event::Event;

#[derive(Debug, Clone)]
pub enum Outgoing {
    Event(Event),
    Metrics(Metrics),
    Heartbeat(Heartbeat),
    /// Persist the baseline (every 60 s and at exit).
    SaveBaseline(Box<Snapshot>),
    /// The once-a-second state for the state file and `/metrics` (§6.6); dropped, like metrics,
    /// when the worker is behind.
    Status(Box<crate::status::StatusSnapshot>),
}

impl Outgoing {
    pub fn is_event(&self) -> bool {
        matches!(self, Outgoing::Event(_) | Outgoing::SaveBaseline(_))
    }
}

/// One metrics interval (§6.2 `POST /agent/metrics`, plus fields for local sinks).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    pub ts: String,
    /// Max PPS of the interval.
    pub pps: f64,
    /// Max BPS (bits/s) of the interval.
    pub bps: f64,
    pub avg_pps: f64,
    pub tcp_pct: f64,
    pub udp_pct: f64,
    pub icmp_pct: f64,
    /// PPS threshold in force at the end of the interval.
    pub threshold: f64,
    pub samples: u32,
    #[serde(skip)]
    pub local: LocalMetrics,
}

/// Metrics only local sinks (Prometheus textfile) show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalMetrics {
    pub interface: String,
    pub last_pps: f64,
    pub last_bits_per_s: f64,
    pub threshold_bits_per_s: f64,
    pub baseline_p99_pps: f64,
    pub incident_active: bool,
    pub incidents_total: u64,
    pub capture_dropped_packets: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InterfaceInfo {
    pub name: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub has_traffic: bool,
}

/// §6.2 `POST /agent/heartbeat`. `retry_queue_size` is filled by the sink that owns the spool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Heartbeat {
    pub ts: String,
    pub version: String,
    #[serde(flatten)]
    pub quality: Quality,
    pub interface: String,
    pub available_interfaces: Vec<InterfaceInfo>,
    pub pcap_active: bool,
    pub retry_queue_size: u64,
}

//! The seam between the counter-driven agent and packet capture: the [`PacketInsight`] trait both
//! capture modes implement, the [`CaptureStatus`] the capture front door decides, and the
//! [`Running`] handle it returns. Stands below both `capture`/`tcpdump` and the agent; imports
//! neither. The default build has no implementation; the agent then classifies from counters.
//!
//! Implementations must answer from state they already hold: every method is called on the
//! sampling thread and must not wait on disk, network or a child process.

use std::time::SystemTime;

use crate::event::Classification;

/// A reader of the capture's latest classification that another thread may call (mitigation
/// re-plans from it while an open incident has no rule yet). Copies a published value only.
pub type LiveClassification = std::sync::Arc<dyn Fn() -> Option<Classification> + Send + Sync>;
/// How capture stands for this run, for `agent_start`: what the capture front door
/// (`capture::start`) decided. Lives here, below both capture and the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureStatus {
    /// `limited`, `capture-scapy` or `capture-tcpdump`.
    pub mode: String,
    /// Why capture is off, when it is.
    pub reason: Option<String>,
}

impl CaptureStatus {
    /// Capture runs in `mode`.
    pub fn on(mode: &str) -> Self {
        CaptureStatus { mode: mode.into(), reason: None }
    }

    /// Counters only, and why.
    pub fn limited(reason: impl Into<String>) -> Self {
        CaptureStatus { mode: "limited".into(), reason: Some(reason.into()) }
    }
}

/// The `limited` reason when the user asked for it.
pub const LIMITED_BY_CONFIG: &str = "limited mode (--limited or \"limited\": true in the config)";

/// What the capture front door returns: the status for `agent_start`, and the running capture
/// when there is one. Dropping it stops the capture (each mode's `Drop`, bounded).
pub struct Running {
    pub status: CaptureStatus,
    pub insight: Option<Box<dyn PacketInsight>>,
}

impl Running {
    /// No capture, for this reason (or none: a status decided without starting).
    pub fn off(status: CaptureStatus) -> Self {
        Running { status, insight: None }
    }
}

/// The one log line of a run whose capture is off.
pub fn log_off(status: &CaptureStatus) {
    if let Some(reason) = &status.reason {
        log::info!("packet capture off: {reason}");
    }
}

pub trait PacketInsight: Send {
    /// `capture-scapy` or `capture-tcpdump`, for `agent_start`.
    fn mode(&self) -> &'static str;
    /// An incident opened: start keeping its packets.
    fn incident_opened(&mut self, incident_id: &str, wall: SystemTime);
    /// The current classification with evidence; None while nothing useful was seen.
    fn classify(&mut self) -> Option<Classification>;
    /// The incident resolved: the evidence file it will be written to (writing happens elsewhere).
    fn incident_resolved(&mut self, incident_id: &str, wall: SystemTime) -> Option<String>;
    /// Packets the kernel or the capture dropped so far.
    fn dropped_packets(&self) -> u64;
    /// Capture is running now.
    fn active(&self) -> bool;
    /// A handle on the latest classification for other threads; None when there is none.
    fn live_classification(&self) -> Option<LiveClassification> {
        None
    }
    /// Received packets per class (SYN, UDP, ICMP, fragments; [`crate::input::protocols::CLASSES`]) since
    /// capture started, for the per-protocol thresholds (§5.6). None where the capture cannot
    /// count them as they arrive.
    fn class_totals(&self) -> Option<crate::input::protocols::ClassTotals> {
        None
    }
    /// New `pcap_enabled` / `ioc_patterns` (the API's `/agent/config`) for the running capture,
    /// from the next packets on. The patterns are compiled off the sampling thread.
    fn set_options(&mut self, pcap_enabled: bool, ioc_patterns: &[crate::config::IocPattern]);
}

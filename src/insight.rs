//! The seam between the counter-driven agent and packet capture (capture builds). The default
//! build has no implementation; the agent then classifies from counters.
//!
//! Implementations must answer from state they already hold: every method is called on the
//! sampling thread and must not wait on disk, network or a child process.

use std::time::SystemTime;

use crate::event::Classification;

/// A reader of the capture's latest classification that another thread may call (mitigation
/// re-plans from it while an open incident has no rule yet). Copies a published value only.
pub type LiveClassification = std::sync::Arc<dyn Fn() -> Option<Classification> + Send + Sync>;

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
}

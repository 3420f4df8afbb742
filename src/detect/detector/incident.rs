//! What the incident state machine reports: the open [`Incident`], what opened it
//! ([`Trigger`]) and why it ended ([`ResolveReason`]). Pure data; [`super::Detector`] fills it.

use std::time::{Duration, Instant, SystemTime};

use super::{ratio, Direction};
use crate::detect::baseline::Thresholds;
use crate::input::counters::ProtoCounters;
use crate::input::protocols::CLASSES;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Pps,
    Bps,
    /// A per-protocol rate (§5.6), by index into [`CLASSES`].
    Class(usize),
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Pps => "pps",
            Trigger::Bps => "bps",
            Trigger::Class(i) => CLASSES[i],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveReason {
    TrafficNormal,
    AgentStopped,
}

impl ResolveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ResolveReason::TrafficNormal => "traffic_normal",
            ResolveReason::AgentStopped => "agent_stopped",
        }
    }
}

/// An open incident and what has been seen of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// UUID v4 made by the agent at open time, before any network call.
    pub id: String,
    pub direction: Direction,
    /// The incident that resolved within `cooldown` before this one opened.
    pub previous_id: Option<String>,
    pub opened_at: Instant,
    /// Wall time of the first sample over threshold.
    pub started_wall: SystemTime,
    pub trigger: Trigger,
    /// Thresholds when it opened; the baseline does not learn while it is open.
    pub thresholds: Thresholds,
    pub pps: f64,
    pub bits_per_s: f64,
    pub dropped_pps: f64,
    pub peak_pps: f64,
    pub peak_bits_per_s: f64,
    /// The largest per-protocol rate / threshold seen (capture builds; 0 without).
    pub peak_class_ratio: f64,
    /// Per-protocol rates of the opening sample (capture builds).
    pub classes: Option<crate::input::protocols::ClassRates>,
    /// Packets per protocol since the first sample over threshold.
    pub proto: ProtoCounters,
    pub(super) below: u32,
    pub(super) last_update: Instant,
}

impl Incident {
    pub fn duration(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.opened_at)
    }

    /// `medium` ≥ 1×, `high` ≥ 2×, `critical` ≥ 5× the threshold, by the larger of PPS and BPS.
    pub fn severity(&self) -> &'static str {
        let ratio = ratio(self.peak_pps, self.thresholds.pps)
            .max(ratio(self.peak_bits_per_s, self.thresholds.bits_per_s))
            .max(self.peak_class_ratio);
        if ratio >= 5.0 {
            "critical"
        } else if ratio >= 2.0 {
            "high"
        } else {
            "medium"
        }
    }
}

//! The incident state machine (§5.3). Pure: each step takes the monotonic `now`, the wall time,
//! the sample (or None for a gap) and the thresholds in force, and says what changed. Building
//! events from the result is the agent's job.

use std::time::{Duration, Instant, SystemTime};

use crate::baseline::Thresholds;
use crate::config::DetectConfig;
use crate::counters::{ProtoCounters, Rates};

/// Updates of an open incident are emitted at most this often.
pub const UPDATE_EVERY: Duration = Duration::from_secs(5);
/// A sample this many times the threshold opens an incident at once.
pub const IMMEDIATE_FACTOR: f64 = 10.0;
/// During the cooldown after a resolve, opening needs this many times the threshold.
pub const COOLDOWN_FACTOR: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Pps,
    Bps,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Pps => "pps",
            Trigger::Bps => "bps",
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
    pub opened_at: Instant,
    /// Wall time of the first sample over threshold.
    pub started_wall: SystemTime,
    pub trigger: Trigger,
    /// Thresholds when it opened; the baseline does not learn while it is open.
    pub thresholds: Thresholds,
    pub pps: f64,
    pub bits_per_s: f64,
    pub peak_pps: f64,
    pub peak_bits_per_s: f64,
    /// Packets per protocol received since the first sample over threshold.
    pub proto: ProtoCounters,
    below: u32,
    last_update: Instant,
}

impl Incident {
    pub fn duration(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.opened_at)
    }

    /// `medium` ≥ 1×, `high` ≥ 2×, `critical` ≥ 5× the threshold, by the larger of PPS and BPS.
    pub fn severity(&self) -> &'static str {
        let ratio =
            ratio(self.peak_pps, self.thresholds.pps).max(ratio(self.peak_bits_per_s, self.thresholds.bits_per_s));
        if ratio >= 5.0 {
            "critical"
        } else if ratio >= 2.0 {
            "high"
        } else {
            "medium"
        }
    }
}

fn ratio(v: f64, thr: f64) -> f64 {
    if thr > 0.0 {
        v / thr
    } else {
        f64::INFINITY
    }
}

/// What one step changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Opened,
    Updated,
    Resolved(Incident, ResolveReason),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub change: Option<Change>,
    /// The sample is normal traffic and may be learned by the baseline.
    pub learn: bool,
}

#[derive(Debug, Clone)]
pub struct Detector {
    cfg: DetectConfig,
    grace_until: Option<Instant>,
    cooldown_until: Option<Instant>,
    over: u32,
    confirm_started: Option<SystemTime>,
    /// When the first sample over threshold was taken (for `DetectConfig::confirm_for`).
    confirm_since: Option<Instant>,
    confirm_proto: ProtoCounters,
    open: Option<Incident>,
}

impl Detector {
    /// `restored`: a saved baseline was loaded, so there is no grace period.
    pub fn new(cfg: &DetectConfig, start: Instant, restored: bool) -> Self {
        Detector {
            cfg: cfg.clone(),
            grace_until: (!restored).then(|| start + cfg.grace_period),
            cooldown_until: None,
            over: 0,
            confirm_started: None,
            confirm_since: None,
            confirm_proto: ProtoCounters::default(),
            open: None,
        }
    }

    /// Replace the tuning (e.g. from the API's `/agent/config`); state is kept.
    pub fn set_config(&mut self, cfg: &DetectConfig) {
        self.cfg = cfg.clone();
    }

    pub fn incident(&self) -> Option<&Incident> {
        self.open.as_ref()
    }

    /// Samples are over threshold but the incident is not open yet.
    pub fn confirming(&self) -> bool {
        self.open.is_none() && self.over > 0
    }

    pub fn in_grace(&self, now: Instant) -> bool {
        self.grace_until.is_some_and(|g| now < g)
    }

    pub fn step(&mut self, now: Instant, wall: SystemTime, rates: Option<&Rates>, thr: &Thresholds) -> Step {
        let Some(r) = rates else {
            return Step { change: None, learn: false };
        };
        if self.open.is_some() {
            return Step { change: self.step_open(now, r), learn: false };
        }
        if self.in_grace(now) {
            return Step { change: None, learn: true };
        }
        let factor = if self.cooldown_until.is_some_and(|c| now < c) { COOLDOWN_FACTOR } else { 1.0 };
        let over_pps = r.pps > thr.pps * factor;
        let over_bps = r.bits_per_s > thr.bits_per_s * factor;
        if !over_pps && !over_bps {
            self.over = 0;
            self.confirm_started = None;
            self.confirm_since = None;
            self.confirm_proto = ProtoCounters::default();
            return Step { change: None, learn: true };
        }
        self.over += 1;
        self.confirm_started.get_or_insert(wall);
        if let Some(p) = &r.proto {
            self.confirm_proto.add(p);
        }
        let immediate = r.pps >= thr.pps * IMMEDIATE_FACTOR || r.bits_per_s >= thr.bits_per_s * IMMEDIATE_FACTOR;
        let since = *self.confirm_since.get_or_insert(now);
        let confirmed = match self.cfg.confirm_for {
            Some(d) => now.saturating_duration_since(since) >= d,
            None => self.over >= self.cfg.confirm_ticks,
        };
        if !confirmed && !immediate {
            return Step { change: None, learn: false };
        }
        self.open = Some(Incident {
            id: uuid::Uuid::new_v4().to_string(),
            opened_at: now,
            started_wall: self.confirm_started.take().unwrap_or(wall),
            trigger: if over_pps { Trigger::Pps } else { Trigger::Bps },
            thresholds: *thr,
            pps: r.pps,
            bits_per_s: r.bits_per_s,
            peak_pps: r.pps,
            peak_bits_per_s: r.bits_per_s,
            proto: std::mem::take(&mut self.confirm_proto),
            below: 0,
            last_update: now,
        });
        self.over = 0;
        self.confirm_since = None;
        Step { change: Some(Change::Opened), learn: false }
    }

    fn step_open(&mut self, now: Instant, r: &Rates) -> Option<Change> {
        let inc = self.open.as_mut().expect("caller checked");
        inc.pps = r.pps;
        inc.bits_per_s = r.bits_per_s;
        inc.peak_pps = inc.peak_pps.max(r.pps);
        inc.peak_bits_per_s = inc.peak_bits_per_s.max(r.bits_per_s);
        if let Some(p) = &r.proto {
            inc.proto.add(p);
        }
        // Both rates must be under: a BPS-opened incident stays open while BPS stays high.
        let under = r.pps < inc.thresholds.pps && r.bits_per_s < inc.thresholds.bits_per_s;
        inc.below = if under { inc.below + 1 } else { 0 };
        if inc.below >= self.cfg.holddown_ticks {
            let done = self.open.take().expect("open");
            self.cooldown_until = Some(now + self.cfg.cooldown);
            return Some(Change::Resolved(done, ResolveReason::TrafficNormal));
        }
        if now.saturating_duration_since(inc.last_update) >= UPDATE_EVERY {
            inc.last_update = now;
            return Some(Change::Updated);
        }
        None
    }

    /// The agent is stopping: resolve any open incident with `agent_stopped`.
    pub fn stop(&mut self) -> Option<Change> {
        self.open.take().map(|i| Change::Resolved(i, ResolveReason::AgentStopped))
    }
}

#[cfg(test)]
#[path = "detect_tests.rs"]
mod tests;

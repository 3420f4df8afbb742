//! The incident state machine (§5.3, §5.4). Pure: each step takes the monotonic `now`, the wall
//! time, the sample (or None for a gap) and the thresholds in force, and says what changed and
//! whether the sample may be learned. Building events from the result is the agent's job. The
//! agent runs one detector per direction (§5.5).
//!
//! Learning (§5.4): a sample may be learned only when it is under the normal (1×) thresholds,
//! and during the grace period of a fresh start only when it is under the floors as well. The
//! settle horizon ([`crate::detect::learn`]) then drops it if an incident follows within a few seconds.
//!
//! Cooldown (hysteresis after a resolve): for `cooldown` a sample over 1× alone does not open
//! an incident at once; it opens after `confirm_ticks` samples over 2×, or once a wave over 1×
//! has lasted [`COOLDOWN_SUSTAIN`] (dips under 1× shorter than [`WAVE_GAP`] do not end a wave).
//! Short blips right after a flood do not flap the incident, and a second wave under 2× is still
//! caught, two seconds later. Incidents that open within `cooldown` of a resolve carry the
//! previous incident's id.
//!
//! Bursts: a flood sent as short bursts (a second's packets in 50 ms) never gives two samples
//! over the threshold in a row. An accumulator of the excess over the threshold (CUSUM: the
//! ratio over 1× times the time, drained by the time under it) opens an incident once it holds
//! [`BURST_EXCESS`] seconds' worth — a few seconds into such a flood; a lone spike drains away.

use std::time::{Duration, Instant, SystemTime};

use crate::config::DetectConfig;
use crate::detect::baseline::Thresholds;
use crate::input::counters::{ProtoCounters, Sample};

/// Updates of an open incident are emitted at most this often.
pub const UPDATE_EVERY: Duration = Duration::from_secs(5);
/// A sample this many times the threshold opens an incident at once (during grace: the floors).
pub const IMMEDIATE_FACTOR: f64 = 10.0;
/// During the cooldown after a resolve, this many times the threshold confirms as usual.
pub const COOLDOWN_FACTOR: f64 = 2.0;
/// During the cooldown, a wave over 1× that lasts this long opens an incident too.
pub const COOLDOWN_SUSTAIN: Duration = Duration::from_secs(2);
/// A wave ends after this long with every sample under 1×.
pub const WAVE_GAP: Duration = Duration::from_secs(1);
/// Excess over the threshold, in seconds at 1× over, that opens an incident whatever the pattern.
pub const BURST_EXCESS: f64 = 2.0;

pub use crate::event::Direction;

mod incident;
pub use incident::{Incident, ResolveReason, Trigger};

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
    Resolved(Box<Incident>, ResolveReason),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub change: Option<Change>,
    /// The sample is normal traffic and may be learned (after the settle horizon).
    pub learn: bool,
}

impl Step {
    fn quiet(learn: bool) -> Self {
        Step { change: None, learn }
    }
}

/// Which of a sample's rates are over `factor` × the thresholds.
struct Over {
    pps: bool,
    bps: bool,
    class: Option<usize>,
}

impl Over {
    fn of(s: &Sample, thr: &Thresholds, factor: f64) -> Self {
        Self::check(s, thr, factor, |v, t| v > t)
    }

    /// At or over (the 10× rule counts a sample of exactly ten times).
    fn at_least(s: &Sample, thr: &Thresholds, factor: f64) -> Self {
        Self::check(s, thr, factor, |v, t| v >= t)
    }

    fn check(s: &Sample, thr: &Thresholds, factor: f64, over: impl Fn(f64, f64) -> bool) -> Self {
        let class = s.classes.and_then(|c| (0..c.len()).find(|&i| over(c[i], thr.classes[i] * factor)));
        Over { pps: over(s.pps, thr.pps * factor), bps: over(s.bits_per_s, thr.bits_per_s * factor), class }
    }

    fn any(&self) -> bool {
        self.pps || self.bps || self.class.is_some()
    }

    fn trigger(&self) -> Trigger {
        match (self.pps, self.bps, self.class) {
            (true, _, _) => Trigger::Pps,
            (_, true, _) => Trigger::Bps,
            (_, _, Some(i)) => Trigger::Class(i),
            _ => Trigger::Pps,
        }
    }
}

/// The largest rate / threshold of a sample: PPS, BPS, and the classes when counted.
fn max_ratio(s: &Sample, thr: &Thresholds) -> f64 {
    ratio(s.pps, thr.pps).max(ratio(s.bits_per_s, thr.bits_per_s)).max(class_ratio(s, thr))
}

/// The largest per-protocol rate / threshold of a sample (0 without class rates).
fn class_ratio(s: &Sample, thr: &Thresholds) -> f64 {
    s.classes.map(|c| (0..c.len()).map(|i| ratio(c[i], thr.classes[i])).fold(0.0, f64::max)).unwrap_or(0.0)
}

#[derive(Debug, Clone)]
pub struct Detector {
    cfg: DetectConfig,
    direction: Direction,
    grace_until: Option<Instant>,
    /// The last resolved incident and when: the cooldown, and `previous_id`.
    last_resolved: Option<(String, Instant)>,
    /// Consecutive samples over 1×, and over 2× (the cooldown's fast path).
    over: u32,
    over_double: u32,
    confirm_since: Option<(Instant, SystemTime)>,
    confirm_proto: ProtoCounters,
    /// The current wave over 1×: (start, start wall time, last sample over).
    wave: Option<(Instant, SystemTime, Instant)>,
    /// Accumulated excess over the thresholds (seconds × (ratio − 1)), never below 0, and since
    /// when it has been above 0.
    excess: f64,
    excess_since: Option<Instant>,
    last_step: Option<Instant>,
    open: Option<Incident>,
}

impl Detector {
    /// `restored`: a saved baseline was loaded, so there is no grace period.
    pub fn new(cfg: &DetectConfig, direction: Direction, start: Instant, restored: bool) -> Self {
        Detector {
            cfg: cfg.clone(),
            direction,
            grace_until: (!restored).then(|| start + cfg.grace_period),
            last_resolved: None,
            over: 0,
            over_double: 0,
            confirm_since: None,
            confirm_proto: ProtoCounters::default(),
            wave: None,
            excess: 0.0,
            excess_since: None,
            last_step: None,
            open: None,
        }
    }

    /// Replace the tuning (e.g. from the API's `/agent/config`); state is kept.
    pub fn set_config(&mut self, cfg: &DetectConfig) {
        self.cfg = cfg.clone();
    }

    pub fn direction(&self) -> Direction {
        self.direction
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

    /// Time left in the grace period.
    pub fn grace_left(&self, now: Instant) -> Duration {
        self.grace_until.map(|g| g.saturating_duration_since(now)).unwrap_or_default()
    }

    fn in_cooldown(&self, now: Instant) -> bool {
        self.last_resolved.as_ref().is_some_and(|(_, at)| now < *at + self.cfg.cooldown)
    }

    pub fn step(&mut self, now: Instant, wall: SystemTime, sample: Option<&Sample>, thr: &Thresholds) -> Step {
        let Some(s) = sample else {
            return Step::quiet(false);
        };
        // Capped: a long gap (suspend, overload) must not drain or fill the accumulator at once.
        let dt = self.last_step.replace(now).map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64().min(1.0));
        if self.open.is_some() {
            return Step { change: self.step_open(now, s), learn: false };
        }
        if self.in_grace(now) {
            self.excess = 0.0;
            self.excess_since = None;
            return self.step_grace(now, wall, s, thr);
        }
        let ratio = max_ratio(s, thr).min(IMMEDIATE_FACTOR);
        self.excess = (self.excess + (ratio - 1.0) * dt).max(0.0);
        self.excess_since = if self.excess > 0.0 { self.excess_since.or(Some(now)) } else { None };
        let over = Over::of(s, thr, 1.0);
        if !over.any() {
            self.reset_confirm();
            if self.wave.is_some_and(|(_, _, last)| now.saturating_duration_since(last) >= WAVE_GAP) {
                self.wave = None;
            }
            return Step::quiet(true);
        }
        self.count_over(now, wall, s, thr);
        let immediate = Over::at_least(s, thr, IMMEDIATE_FACTOR).any();
        let confirmed = self.bursting(now)
            || if self.in_cooldown(now) {
                self.over_double >= self.cfg.confirm_ticks || self.wave_lasted(now) >= COOLDOWN_SUSTAIN
            } else {
                match self.cfg.confirm_for {
                    // The server's `confirm_ticks` are seconds of confirmation, not samples.
                    Some(d) => self.sustained(now) >= d,
                    None => self.over >= self.cfg.confirm_ticks,
                }
            };
        if !confirmed && !immediate {
            return Step::quiet(false);
        }
        self.open_incident(now, wall, s, thr, over.trigger());
        Step { change: Some(Change::Opened), learn: false }
    }

    /// Grace: nothing opens unless it is ≥ 10× the floors; only samples under the floors
    /// are learned (a floor of 0 does not limit).
    fn step_grace(&mut self, now: Instant, wall: SystemTime, s: &Sample, thr: &Thresholds) -> Step {
        // The floors as thresholds; a floor of 0 stands for "no limit" here.
        let unlimited = |f: f64| if f > 0.0 { f } else { f64::INFINITY };
        let floors = Thresholds {
            pps: unlimited(self.cfg.min_pps_threshold),
            bits_per_s: unlimited(self.cfg.min_bits_per_s_threshold),
            baseline_pps: 0.0,
            classes: [unlimited(self.cfg.min_protocol_pps_threshold); 4],
        };
        let huge = Over::at_least(s, &floors, IMMEDIATE_FACTOR);
        if huge.any() {
            self.count_over(now, wall, s, thr);
            self.open_incident(now, wall, s, thr, huge.trigger());
            return Step { change: Some(Change::Opened), learn: false };
        }
        Step::quiet(!Over::of(s, &floors, 1.0).any() && !Over::of(s, thr, 1.0).any())
    }

    fn count_over(&mut self, now: Instant, wall: SystemTime, s: &Sample, thr: &Thresholds) {
        self.over += 1;
        let double = Over::of(s, thr, COOLDOWN_FACTOR).any();
        self.over_double = if double { self.over_double + 1 } else { 0 };
        self.confirm_since.get_or_insert((now, wall));
        let (start, start_wall, _) = self.wave.unwrap_or((now, wall, now));
        self.wave = Some((start, start_wall, now));
        if let Some(p) = &s.proto {
            self.confirm_proto.add(p);
        }
    }

    /// The excess reached [`BURST_EXCESS`], and has built up for at least the confirmation
    /// duration the server asked for (`confirm_for`), which no path may cut short.
    fn bursting(&self, now: Instant) -> bool {
        let age = self.excess_since.map(|t| now.saturating_duration_since(t)).unwrap_or_default();
        self.excess >= BURST_EXCESS && self.cfg.confirm_for.is_none_or(|d| age >= d)
    }

    /// How long the samples have been over 1× without a break.
    fn sustained(&self, now: Instant) -> Duration {
        self.confirm_since.map(|(t, _)| now.saturating_duration_since(t)).unwrap_or_default()
    }

    fn wave_lasted(&self, now: Instant) -> Duration {
        self.wave.map(|(t, _, _)| now.saturating_duration_since(t)).unwrap_or_default()
    }

    fn reset_confirm(&mut self) {
        self.over = 0;
        self.over_double = 0;
        self.confirm_since = None;
        self.confirm_proto = ProtoCounters::default();
    }

    fn open_incident(&mut self, now: Instant, wall: SystemTime, s: &Sample, thr: &Thresholds, trigger: Trigger) {
        let previous_id =
            self.in_cooldown(now).then(|| self.last_resolved.as_ref().map(|(id, _)| id.clone())).flatten();
        self.open = Some(Incident {
            id: uuid::Uuid::new_v4().to_string(),
            direction: self.direction,
            previous_id,
            opened_at: now,
            started_wall: self.wave.map(|(_, w, _)| w).or(self.confirm_since.map(|(_, w)| w)).unwrap_or(wall),
            trigger,
            thresholds: *thr,
            pps: s.pps,
            bits_per_s: s.bits_per_s,
            dropped_pps: s.dropped_pps,
            peak_pps: s.pps,
            peak_bits_per_s: s.bits_per_s,
            peak_class_ratio: class_ratio(s, thr),
            classes: s.classes,
            proto: std::mem::take(&mut self.confirm_proto),
            below: 0,
            last_update: now,
        });
        self.reset_confirm();
        self.wave = None;
        self.excess = 0.0;
        self.excess_since = None;
    }

    fn step_open(&mut self, now: Instant, s: &Sample) -> Option<Change> {
        let inc = self.open.as_mut().expect("caller checked");
        inc.pps = s.pps;
        inc.bits_per_s = s.bits_per_s;
        inc.dropped_pps = s.dropped_pps;
        inc.peak_pps = inc.peak_pps.max(s.pps);
        inc.peak_bits_per_s = inc.peak_bits_per_s.max(s.bits_per_s);
        inc.peak_class_ratio = inc.peak_class_ratio.max(class_ratio(s, &inc.thresholds));
        if let Some(p) = &s.proto {
            inc.proto.add(p);
        }
        // Every rate must be under: a BPS-opened incident stays open while BPS stays high.
        let under = !Over::at_least(s, &inc.thresholds, 1.0).any();
        inc.below = if under { inc.below + 1 } else { 0 };
        if inc.below >= self.cfg.holddown_ticks {
            let done = self.open.take().expect("open");
            self.last_resolved = Some((done.id.clone(), now));
            return Some(Change::Resolved(Box::new(done), ResolveReason::TrafficNormal));
        }
        if now.saturating_duration_since(inc.last_update) >= UPDATE_EVERY {
            inc.last_update = now;
            return Some(Change::Updated);
        }
        None
    }

    /// The agent is stopping: resolve any open incident with `agent_stopped`.
    pub fn stop(&mut self) -> Option<Change> {
        self.open.take().map(|i| Change::Resolved(Box::new(i), ResolveReason::AgentStopped))
    }
}

#[cfg(test)]
mod tests;

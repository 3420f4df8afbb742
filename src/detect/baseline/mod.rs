//! Dynamic baseline (§5.2): a flat rolling window plus 24 hour-of-day buckets, and the
//! thresholds derived from them. Pure: every call takes the time it concerns; persistence goes
//! through [`Snapshot`] (`snapshot.rs`), which the caller writes to disk off the sampling
//! thread.
//!
//! Hour buckets are bounded log-scale histograms (5 % bins) so days of history cost a few KiB;
//! when a bucket passes `histogram::HOUR_CAP` samples its counts are halved, so old days fade out.
//! The hour of day is taken in UTC: a bucket index needs no time zone, only consistency.
//!
//! Growth is bounded (§5.4): the p99 a threshold is built from may be at most [`GROWTH`] times
//! the p99 in force one window of learned samples ago (or the floor's share of the threshold,
//! whichever is larger), so traffic that ramps up slowly cannot carry the threshold with it.
//! Which samples are learned at all is decided by [`crate::detect::detector`] and [`crate::detect::learn`].

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::DetectConfig;
use crate::detect::baseline::protocol::{ClassRates, ClassWindows};

mod histogram;
pub mod protocol;
mod snapshot;
pub use histogram::GROWTH;
use histogram::{p99, LogHist};
pub use snapshot::{DirSnapshot, RestoreRefused, Snapshot};

/// An hour bucket is trusted once it holds this much sampled time.
const HOUR_TRUST: Duration = Duration::from_secs(30 * 60);
/// A saved baseline older than this is ignored at start.
pub const MAX_RESTORE_AGE: Duration = Duration::from_secs(24 * 3600);
/// Growth checkpoints per window.
const CHECKPOINTS: usize = 8;
/// Version of [`Snapshot`]; version 1 (before the §5.4 learning rules) is refused.
pub const SNAPSHOT_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct HourBucket {
    pps: LogHist,
    bits_per_s: LogHist,
}

/// Thresholds in force for one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub pps: f64,
    pub bits_per_s: f64,
    /// Mean PPS of the flat window: "normal" traffic, for reports.
    pub baseline_pps: f64,
    /// Per-protocol thresholds (§5.6), compared only when capture counts the classes.
    pub classes: ClassRates,
}

/// Heartbeat view of the baseline (§6.2).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quality {
    pub baseline_ready: bool,
    pub baseline_quality: &'static str,
    pub baseline_total_samples: u64,
    pub baseline_avg_pps: f64,
    pub baseline_p99_pps: f64,
    pub baseline_hourly_ready: bool,
    pub baseline_current_hour_p99: f64,
}

/// The capped flat p99s after `at` learned samples: the reference that bounds growth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub at: u64,
    pub pps: f64,
    pub bits_per_s: f64,
}

#[derive(Debug, Clone)]
pub struct Baseline {
    window_len: usize,
    sample_interval: Duration,
    pps: VecDeque<f64>,
    bits_per_s: VecDeque<f64>,
    hours: Vec<HourBucket>,
    total_samples: u64,
    checkpoints: VecDeque<Checkpoint>,
    /// The p99 at which the threshold is the floor: growth from below it is not limited.
    floor_p99: (f64, f64),
    classes: ClassWindows,
}

impl Baseline {
    pub fn new(cfg: &DetectConfig) -> Self {
        let window_len = (cfg.baseline_window.as_millis() / cfg.sample_interval.as_millis().max(1)).max(1) as usize;
        let empty = HourBucket { pps: LogHist::new(), bits_per_s: LogHist::new() };
        Baseline {
            window_len,
            sample_interval: cfg.sample_interval,
            pps: VecDeque::with_capacity(window_len),
            bits_per_s: VecDeque::with_capacity(window_len),
            hours: vec![empty; 24],
            total_samples: 0,
            checkpoints: VecDeque::with_capacity(CHECKPOINTS + 2),
            floor_p99: floor_p99(cfg),
            classes: ClassWindows::new(window_len),
        }
    }

    /// New tuning (API config): only the floors' share matters here.
    pub fn set_config(&mut self, cfg: &DetectConfig) {
        self.floor_p99 = floor_p99(cfg);
    }

    /// Learn one normal sample taken at `wall`.
    pub fn observe(&mut self, wall: SystemTime, pps: f64, bits_per_s: f64) {
        if self.pps.len() == self.window_len {
            self.pps.pop_front();
            self.bits_per_s.pop_front();
        }
        self.pps.push_back(pps);
        self.bits_per_s.push_back(bits_per_s);
        let h = &mut self.hours[hour_of(wall)];
        h.pps.add(pps);
        h.bits_per_s.add(bits_per_s);
        self.total_samples += 1;
        let every = (self.window_len / CHECKPOINTS).max(1) as u64;
        if self.total_samples.is_multiple_of(every) {
            self.checkpoint();
        }
    }

    /// Learn one normal sample's per-protocol rates (capture builds).
    pub fn observe_classes(&mut self, r: &ClassRates) {
        self.classes.observe(r);
    }

    /// Record the capped flat p99 now; keep the checkpoints of the last window.
    fn checkpoint(&mut self) {
        let cap = self.cap();
        let c = Checkpoint {
            at: self.total_samples,
            pps: p99(&self.pps).min(cap.0),
            bits_per_s: p99(&self.bits_per_s).min(cap.1),
        };
        self.checkpoints.push_back(c);
        let window = self.window_len as u64;
        while self.checkpoints.len() > 1 && self.checkpoints[1].at + window <= self.total_samples {
            self.checkpoints.pop_front();
        }
    }

    /// The largest p99 a threshold may be built from now: [`GROWTH`] × the reference (the
    /// oldest checkpoint within the last window), never less than [`GROWTH`] × the floor's p99.
    /// Until the first checkpoint (an eighth of a window of a fresh baseline) nothing is capped:
    /// those first samples are the reference, and the grace period only learned them under the
    /// floors.
    fn cap(&self) -> (f64, f64) {
        match self.checkpoints.front() {
            Some(c) => (GROWTH * c.pps.max(self.floor_p99.0), GROWTH * c.bits_per_s.max(self.floor_p99.1)),
            None => (f64::INFINITY, f64::INFINITY),
        }
    }

    /// The flat window is full: the baseline describes a whole window of traffic.
    pub fn ready(&self) -> bool {
        self.pps.len() >= self.window_len
    }

    fn hour_trusted(&self, hour: usize) -> bool {
        let need = (HOUR_TRUST.as_millis() / self.sample_interval.as_millis().max(1)) as u32;
        self.hours[hour].pps.total >= need
    }

    /// Effective p99 for PPS and BPS at `wall`: max(hourly p99, 0.5 × flat p99) when trusted,
    /// bounded by the growth cap.
    fn effective_p99(&self, wall: SystemTime) -> (f64, f64) {
        let flat = (p99(&self.pps), p99(&self.bits_per_s));
        let hour = hour_of(wall);
        let raw = if self.hour_trusted(hour) {
            let h = &self.hours[hour];
            (h.pps.quantile(0.99).max(0.5 * flat.0), h.bits_per_s.quantile(0.99).max(0.5 * flat.1))
        } else {
            flat
        };
        let cap = self.cap();
        (raw.0.min(cap.0), raw.1.min(cap.1))
    }

    /// Thresholds at `wall`: dynamic = max(multiplier × p99, floor); else the fixed floors.
    pub fn thresholds(&self, wall: SystemTime, cfg: &DetectConfig) -> Thresholds {
        let baseline_pps = mean(&self.pps);
        if !cfg.dynamic_threshold {
            return Thresholds {
                pps: cfg.min_pps_threshold,
                bits_per_s: cfg.min_bits_per_s_threshold,
                baseline_pps,
                classes: self.classes.thresholds(cfg),
            };
        }
        let (p_pps, p_bps) = self.effective_p99(wall);
        Thresholds {
            pps: (cfg.threshold_multiplier * p_pps).max(cfg.min_pps_threshold),
            bits_per_s: (cfg.threshold_multiplier * p_bps).max(cfg.min_bits_per_s_threshold),
            baseline_pps,
            classes: self.classes.thresholds(cfg),
        }
    }

    pub fn quality(&self, wall: SystemTime) -> Quality {
        let learned = self.sample_interval * self.total_samples.min(u32::MAX as u64) as u32;
        let quality = if !self.ready() {
            "learning"
        } else if learned < Duration::from_secs(3600) {
            "low"
        } else if learned < Duration::from_secs(24 * 3600) {
            "medium"
        } else {
            "high"
        };
        let hour = hour_of(wall);
        Quality {
            baseline_ready: self.ready(),
            baseline_quality: quality,
            baseline_total_samples: self.total_samples,
            baseline_avg_pps: mean(&self.pps),
            baseline_p99_pps: p99(&self.pps),
            baseline_hourly_ready: self.hour_trusted(hour),
            baseline_current_hour_p99: self.hours[hour].pps.quantile(0.99),
        }
    }
}

fn floor_p99(cfg: &DetectConfig) -> (f64, f64) {
    (cfg.min_pps_threshold / cfg.threshold_multiplier, cfg.min_bits_per_s_threshold / cfg.threshold_multiplier)
}

fn hour_of(wall: SystemTime) -> usize {
    let secs = wall.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    ((secs / 3600) % 24) as usize
}

fn mean(v: &VecDeque<f64>) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

#[cfg(test)]
mod tests;

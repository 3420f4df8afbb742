//! One direction's detection (§5.4, §5.5): its baseline, its incident state machine, and the
//! settle horizon between them. Pure: time is passed in.
//!
//! The settle horizon: a sample the detector calls normal is held for [`SETTLE`] before the
//! baseline learns it, and every held sample is dropped as soon as a sample is not learnable
//! (over a threshold, over the floors in grace, or an incident open). So the samples on the ramp
//! of a flood — just under the threshold, a moment before it is crossed — are never learned.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use crate::config::DetectConfig;
use crate::detect::baseline::{Baseline, Thresholds};
use crate::detect::detector::{Change, Detector, Direction};
use crate::input::counters::Sample;
use crate::input::protocols::ClassRates;

/// How long a normal sample waits before it is learned.
pub const SETTLE: Duration = Duration::from_secs(5);

/// Normal samples waiting out the settle horizon.
#[derive(Debug, Clone, Default)]
pub struct Settle {
    pending: VecDeque<(Instant, SystemTime, f64, f64, Option<ClassRates>)>,
}

impl Settle {
    pub fn push(&mut self, now: Instant, wall: SystemTime, s: &Sample) {
        self.pending.push_back((now, wall, s.pps, s.bits_per_s, s.classes));
    }

    /// Forget every held sample: something abnormal followed them.
    pub fn discard(&mut self) {
        self.pending.clear();
    }

    /// Hand the samples older than [`SETTLE`] to the baseline.
    pub fn release(&mut self, now: Instant, baseline: &mut Baseline) {
        while let Some(&(at, wall, pps, bps, classes)) = self.pending.front() {
            if now.saturating_duration_since(at) < SETTLE {
                break;
            }
            baseline.observe(wall, pps, bps);
            if let Some(c) = &classes {
                baseline.observe_classes(c);
            }
            self.pending.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Baseline + detector + settle horizon for one direction.
#[derive(Debug, Clone)]
pub struct Watch {
    pub baseline: Baseline,
    pub detector: Detector,
    settle: Settle,
    thresholds: Thresholds,
}

impl Watch {
    /// `restored`: the saved baseline, if one was usable (no grace period then).
    pub fn new(
        cfg: &DetectConfig,
        direction: Direction,
        now: Instant,
        wall: SystemTime,
        restored: Option<Baseline>,
    ) -> Self {
        let detector = Detector::new(cfg, direction, now, restored.is_some());
        let baseline = restored.unwrap_or_else(|| Baseline::new(cfg));
        let thresholds = baseline.thresholds(wall, cfg);
        Watch { baseline, detector, settle: Settle::default(), thresholds }
    }

    pub fn set_config(&mut self, cfg: &DetectConfig) {
        self.detector.set_config(cfg);
        self.baseline.set_config(cfg);
    }

    /// The thresholds the last step compared against.
    pub fn thresholds(&self) -> Thresholds {
        self.thresholds
    }

    /// One sample (None = a gap, which neither learns nor discards).
    pub fn step(
        &mut self,
        now: Instant,
        wall: SystemTime,
        sample: Option<&Sample>,
        cfg: &DetectConfig,
    ) -> Option<Change> {
        self.thresholds = self.baseline.thresholds(wall, cfg);
        let step = self.detector.step(now, wall, sample, &self.thresholds);
        if let Some(s) = sample {
            if step.learn {
                self.settle.push(now, wall, s);
            } else {
                self.settle.discard();
            }
        }
        self.settle.release(now, &mut self.baseline);
        step.change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(pps: f64) -> Sample {
        Sample { pps, bits_per_s: pps * 800.0, dropped_pps: 0.0, proto: None, classes: None }
    }

    #[test]
    fn normal_samples_are_learned_after_the_horizon_only() {
        let cfg = DetectConfig { baseline_window: Duration::from_secs(10), ..DetectConfig::default() };
        let mut b = Baseline::new(&cfg);
        let mut s = Settle::default();
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH;
        s.push(t0, w0, &sample(100.0));
        s.release(t0 + SETTLE - Duration::from_millis(1), &mut b);
        assert_eq!(b.quality(w0).baseline_total_samples, 0, "still held");
        s.release(t0 + SETTLE, &mut b);
        assert_eq!(b.quality(w0).baseline_total_samples, 1);
        assert!(s.is_empty());
    }

    #[test]
    fn discard_drops_every_held_sample() {
        let cfg = DetectConfig::default();
        let mut b = Baseline::new(&cfg);
        let mut s = Settle::default();
        let t0 = Instant::now();
        for n in 0..10u32 {
            s.push(t0 + Duration::from_millis(200) * n, SystemTime::UNIX_EPOCH, &sample(100.0));
        }
        assert_eq!(s.len(), 10);
        s.discard();
        s.release(t0 + Duration::from_secs(60), &mut b);
        assert_eq!(b.quality(SystemTime::UNIX_EPOCH).baseline_total_samples, 0);
    }
}

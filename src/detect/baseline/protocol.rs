//! Per-protocol rates of capture builds (§5.6): SYN/s, UDP/s, ICMP/s and fragments/s, learned
//! beside the totals so a 5k SYN/s flood is an incident even while total PPS stays under its
//! floor. Pure: the windows learn what [`crate::detect::learn`] hands them, under the same rules as the
//! totals (1× only, settle horizon, grace under the floors, growth at most 1.5× per window).
//!
//! Packet capture counts the classes ([`crate::input::capture::handle::PacketInsight::class_totals`]); the
//! default build has no such counts and these thresholds are never compared.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::histogram::{p99, GROWTH};
use crate::config::DetectConfig;

pub use crate::input::protocols::{ClassRates, ClassTotals, CLASSES};

/// Flat windows of the four class rates, with a growth reference like the totals'.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassWindows {
    len: usize,
    windows: [VecDeque<f64>; 4],
    learned: u64,
    /// (learned samples, capped p99s) every eighth of a window; the front is a window old.
    checkpoints: VecDeque<(u64, ClassRates)>,
}

/// As saved in `baseline.json` (inbound only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassSnapshot {
    pub windows: [Vec<f64>; 4],
    pub learned: u64,
    pub checkpoints: Vec<(u64, ClassRates)>,
}

impl ClassWindows {
    pub fn new(window_len: usize) -> Self {
        ClassWindows { len: window_len.max(1), windows: Default::default(), learned: 0, checkpoints: VecDeque::new() }
    }

    pub fn observe(&mut self, r: &ClassRates) {
        for (w, v) in self.windows.iter_mut().zip(r) {
            // NaN: a class this source does not measure (limited mode counts SYNs only).
            if v.is_nan() {
                continue;
            }
            if w.len() == self.len {
                w.pop_front();
            }
            w.push_back(*v);
        }
        self.learned += 1;
        if self.learned.is_multiple_of((self.len as u64 / 8).max(1)) {
            let p = self.capped_p99(None);
            self.checkpoints.push_back((self.learned, p));
            while self.checkpoints.len() > 1 && self.checkpoints[1].0 + self.len as u64 <= self.learned {
                self.checkpoints.pop_front();
            }
        }
    }

    /// p99 per class, capped at 1.5× the reference (or the floor's share) once there is one.
    fn capped_p99(&self, floor_p99: Option<f64>) -> ClassRates {
        let mut out = [0.0; 4];
        for (i, w) in self.windows.iter().enumerate() {
            let raw = p99(w);
            out[i] = match self.checkpoints.front() {
                Some((_, reference)) => raw.min(GROWTH * reference[i].max(floor_p99.unwrap_or(0.0))),
                None => raw,
            };
        }
        out
    }

    /// Thresholds per class: max(multiplier × capped p99, `min_protocol_pps_threshold`).
    pub fn thresholds(&self, cfg: &DetectConfig) -> ClassRates {
        let floor = cfg.min_protocol_pps_threshold;
        if !cfg.dynamic_threshold {
            return [floor; 4];
        }
        self.capped_p99(Some(floor / cfg.threshold_multiplier)).map(|p| (cfg.threshold_multiplier * p).max(floor))
    }

    pub fn snapshot(&self) -> ClassSnapshot {
        ClassSnapshot {
            windows: self.windows.clone().map(|w| w.into_iter().collect()),
            learned: self.learned,
            checkpoints: self.checkpoints.iter().copied().collect(),
        }
    }

    /// Rebuild from a saved file; values that are not finite and non-negative are dropped.
    pub fn restore(window_len: usize, s: &ClassSnapshot) -> Self {
        let mut c = ClassWindows::new(window_len);
        let ok = |v: &f64| v.is_finite() && *v >= 0.0;
        for (w, saved) in c.windows.iter_mut().zip(&s.windows) {
            let skip = saved.len().saturating_sub(c.len);
            w.extend(saved.iter().skip(skip).copied().filter(ok));
        }
        c.learned = s.learned;
        c.checkpoints = s.checkpoints.iter().copied().filter(|(at, r)| *at <= s.learned && r.iter().all(ok)).collect();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_follow_p99_above_the_floor_and_growth_is_bounded() {
        let cfg = DetectConfig { min_protocol_pps_threshold: 1000.0, ..DetectConfig::default() };
        let mut c = ClassWindows::new(80);
        for _ in 0..200 {
            c.observe(&[10.0, 800.0, 5.0, 0.0]);
        }
        assert_eq!(c.thresholds(&cfg), [1000.0, 2400.0, 1000.0, 1000.0]);
        // UDP jumps to 10x: within one window its threshold may rise by 1.5x at most.
        for _ in 0..80 {
            c.observe(&[10.0, 8000.0, 5.0, 0.0]);
        }
        assert!(c.thresholds(&cfg)[1] <= 2400.0 * GROWTH * GROWTH, "{:?}", c.thresholds(&cfg));
        let back = ClassWindows::restore(80, &c.snapshot());
        assert_eq!(back, c);
    }
}

//! The statistics both the totals' baseline and the per-protocol windows are built from: the
//! nearest-rank [`p99`] of a flat window, the bounded log-scale histogram of an hour bucket, and
//! the [`GROWTH`] bound on the p99 in force (§5.4). Pure.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Log-histogram bin ratio: p99 read from a bucket overestimates by at most this factor.
pub(super) const BIN_RATIO: f64 = 1.05;
/// Bins cover 1 .. ~1e13 (10 Tbit/s) at 5 % resolution.
pub(super) const BINS: usize = 640;
/// Samples a bucket holds before it is decayed by halving.
pub(super) const HOUR_CAP: u32 = 400_000;
/// The p99 in force may grow by at most this factor per window of learned samples (§5.4).
pub const GROWTH: f64 = 1.5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct LogHist {
    /// Sparse (bin, count) pairs, sorted by bin.
    pub(super) bins: Vec<(u16, u32)>,
    pub(super) total: u32,
}

impl LogHist {
    pub(super) fn new() -> Self {
        LogHist { bins: Vec::new(), total: 0 }
    }

    pub(super) fn bin_of(v: f64) -> u16 {
        if v < 1.0 || v.is_nan() {
            return 0;
        }
        (1.0 + v.ln() / BIN_RATIO.ln()).min((BINS - 1) as f64) as u16
    }

    pub(super) fn upper_edge(bin: u16) -> f64 {
        if bin == 0 {
            1.0
        } else {
            BIN_RATIO.powi(bin as i32)
        }
    }

    pub(super) fn add(&mut self, v: f64) {
        let b = Self::bin_of(v);
        match self.bins.binary_search_by_key(&b, |(k, _)| *k) {
            Ok(i) => self.bins[i].1 += 1,
            Err(i) => self.bins.insert(i, (b, 1)),
        }
        self.total += 1;
        if self.total >= HOUR_CAP {
            self.bins.iter_mut().for_each(|(_, c)| *c /= 2);
            self.bins.retain(|(_, c)| *c > 0);
            self.total = self.bins.iter().map(|(_, c)| *c).sum();
        }
    }

    /// Counts a restored file may hold: below the decay cap and adding up to `total`.
    pub(super) fn sane(&self) -> bool {
        let sum = self.bins.iter().try_fold(0u32, |acc, (_, c)| acc.checked_add(*c));
        self.total < HOUR_CAP && sum == Some(self.total)
    }

    pub(super) fn quantile(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = (q * self.total as f64).ceil().max(1.0) as u32;
        let mut seen = 0;
        for (b, c) in &self.bins {
            seen += c;
            if seen >= rank {
                return Self::upper_edge(*b);
            }
        }
        Self::upper_edge(self.bins.last().map(|(b, _)| *b).unwrap_or(0))
    }
}

/// Nearest-rank 99th percentile of the window.
pub fn p99(v: &VecDeque<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s: Vec<f64> = v.iter().copied().collect();
    let rank = ((0.99 * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    let (_, x, _) = s.select_nth_unstable_by(rank, |a, b| a.total_cmp(b));
    *x
}

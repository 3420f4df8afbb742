//! The compact per-address baseline (§5.2, §5.4 on a budget): the host's rules — threshold =
//! max(multiplier × p99 of a flat window, floor), the p99 allowed to grow by at most [`GROWTH`]
//! per window of learned samples — in ~300 bytes for all seven rates of one direction, where the
//! host's flat window of f64 samples ([`crate::detect::baseline::Baseline`]) costs ~2.4 KiB per rate.
//!
//! How: a nearest-rank p99 of n samples is the k-th largest, k = n − ⌈0.99 n⌉ + 1 (3 for a
//! 300-sample window). So each rate keeps only the [`TOP`] largest samples of each quarter of a
//! window, and the window's p99 is the k-th largest of the last [`BLOCKS`] quarters' tops.
//! Samples are stored as u16 on a log scale (256 steps per doubling, 0.3 % resolution).
//!
//! The trade-off, written down:
//! - exact (to 0.3 %) for windows up to 400 samples (k ≤ [`TOP`]); a longer window reads the
//!   k-th largest with k capped at [`TOP`], a higher quantile than p99 (99.6 % for 3600 s):
//!   conservative, thresholds a little higher, never lower;
//! - the window is the current quarter plus the three before it: ¾ to 1 window, where the host
//!   keeps exactly one;
//! - no hour-of-day buckets: a per-address baseline follows its address's daily cycle through
//!   the window alone (the host detector keeps them);
//! - growth checkpoints four per window (the host: eight): the reference a p99 may grow from
//!   is ¾ to 1 window old.

use super::{Floors, METRICS};
use crate::detect::baseline::GROWTH;

/// Largest samples kept per quarter window.
pub const TOP: usize = 4;
/// Quarters of a window kept (the current one and three complete ones).
pub const BLOCKS: usize = 4;
/// Growth checkpoints per window.
const CHECKPOINTS: usize = 4;

/// A rate as a u16 (log scale, 256 steps per doubling; 0 = 0).
pub fn encode(v: f32) -> u16 {
    if v.is_nan() || v <= 0.0 {
        0
    } else {
        (256.0 * (1.0 + v).log2()).round().min(u16::MAX as f32) as u16
    }
}

pub fn decode(x: u16) -> f32 {
    (x as f32 / 256.0).exp2() - 1.0
}

/// One rate: the top samples of each quarter window (largest first) and its growth
/// checkpoints (a ring, see [`Baseline::ck_next`]).
#[derive(Debug, Clone, PartialEq, Default)]
struct Metric {
    tops: [[u16; TOP]; BLOCKS],
    checkpoints: [u16; CHECKPOINTS],
}

impl Metric {
    fn add(&mut self, block: usize, v: u16) {
        let t = &mut self.tops[block];
        if let Some(i) = t.iter().position(|&x| v > x) {
            t.copy_within(i..TOP - 1, i + 1);
            t[i] = v;
        }
    }

    /// The k-th largest of the kept tops (k ≥ 1; capped at what is kept).
    fn kth(&self, k: usize) -> u16 {
        let mut all = [0u16; TOP * BLOCKS];
        for (i, t) in self.tops.iter().enumerate() {
            all[i * TOP..(i + 1) * TOP].copy_from_slice(t);
        }
        all.sort_unstable_by(|a, b| b.cmp(a));
        all[k.clamp(1, TOP) - 1]
    }
}

/// The seven rates of one direction of one address (or prefix).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Baseline {
    metrics: [Metric; METRICS],
    /// Samples learned since tracking began (saturating).
    learned: u32,
    /// Samples in each kept quarter; `block` is the one being filled.
    counts: [u16; BLOCKS],
    block: u8,
    /// Checkpoints taken (capped at [`CHECKPOINTS`]) and the ring's write position.
    ck_taken: u8,
    ck_next: u8,
    /// Mean pps of what was learned (exponentially weighted, time constant one window), for
    /// reports.
    mean_pps: f32,
}

impl Baseline {
    /// Learn one normal second (values as [`encode`]d). `window`: samples per window.
    pub fn learn(&mut self, values: &[u16; METRICS], window: u16, floors: &Floors, multiplier: f32) {
        let quarter = (window as usize).div_ceil(BLOCKS).max(1) as u16;
        let mut b = self.block as usize;
        if self.counts[b] >= quarter {
            b = (b + 1) % BLOCKS;
            self.block = b as u8;
            self.counts[b] = 0;
            for m in &mut self.metrics {
                m.tops[b] = [0; TOP];
            }
        }
        for (m, &v) in self.metrics.iter_mut().zip(values) {
            m.add(b, v);
        }
        self.counts[b] += 1;
        self.learned = self.learned.saturating_add(1);
        let n = self.learned.min(u32::from(window)).max(1) as f32;
        self.mean_pps += (decode(values[0]) - self.mean_pps) / n;
        if self.learned.is_multiple_of(u32::from(quarter)) {
            let p = self.p99s(floors, multiplier);
            let at = self.ck_next as usize;
            for (m, v) in self.metrics.iter_mut().zip(p) {
                m.checkpoints[at] = encode(v);
            }
            self.ck_next = ((at + 1) % CHECKPOINTS) as u8;
            self.ck_taken = (self.ck_taken + 1).min(CHECKPOINTS as u8);
        }
    }

    pub fn learned(&self) -> u32 {
        self.learned
    }

    /// Nearest-rank p99 of each rate over the kept quarters, capped at [`GROWTH`] × the oldest
    /// checkpoint (or the floor's share of the threshold, whichever is larger). Until the first
    /// checkpoint nothing is capped.
    pub fn p99s(&self, floors: &Floors, multiplier: f32) -> [f32; METRICS] {
        let n: u32 = self.counts.iter().map(|&c| u32::from(c)).sum();
        if n == 0 {
            return [0.0; METRICS];
        }
        let k = (n - (0.99 * n as f32).ceil() as u32 + 1) as usize;
        let oldest = if (self.ck_taken as usize) < CHECKPOINTS { 0 } else { self.ck_next as usize };
        std::array::from_fn(|i| {
            let m = &self.metrics[i];
            let raw = decode(m.kth(k));
            if self.ck_taken == 0 {
                return raw;
            }
            let reference = decode(m.checkpoints[oldest]).max(floors.0[i] / multiplier);
            raw.min(GROWTH as f32 * reference)
        })
    }

    /// Thresholds: max(multiplier × capped p99, floor) per rate.
    pub fn thresholds(&self, floors: &Floors, multiplier: f32) -> [f32; METRICS] {
        let p = self.p99s(floors, multiplier);
        std::array::from_fn(|i| (multiplier * p[i]).max(floors.0[i]))
    }

    pub fn mean_pps(&self) -> f32 {
        self.mean_pps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floors() -> Floors {
        Floors([1.0; METRICS])
    }

    fn learn(b: &mut Baseline, v: f32, window: u16) {
        b.learn(&[encode(v); METRICS], window, &floors(), 3.0);
    }

    #[test]
    fn encoding_round_trips_within_a_third_of_a_percent() {
        for v in [0.5f32, 1.0, 10.0, 999.0, 1e6, 3.3e9, 1e12] {
            let back = decode(encode(v));
            assert!((back - v).abs() <= v * 0.003, "{v} -> {back}");
        }
        assert_eq!(encode(0.0), 0);
        assert_eq!(encode(f32::NAN), 0);
    }

    #[test]
    fn p99_is_the_nearest_rank_of_the_window() {
        // 300 samples 300 down to 1: the p99 by nearest rank is 297.
        let mut b = Baseline::default();
        for v in (1..=300).rev() {
            learn(&mut b, v as f32, 400);
        }
        let p = b.p99s(&floors(), 3.0)[0];
        assert!((p - 297.0).abs() <= 1.0, "{p}");
    }

    #[test]
    fn old_quarters_leave_the_window() {
        let mut b = Baseline::default();
        for _ in 0..300 {
            learn(&mut b, 10_000.0, 300);
        }
        for _ in 0..300 {
            learn(&mut b, 100.0, 300);
        }
        let p = b.p99s(&floors(), 1.0)[0];
        assert!((p - 100.0).abs() < 1.0, "a window later only the new level counts: {p}");
        for _ in 0..2700 {
            learn(&mut b, 100.0, 300);
        }
        assert!((b.mean_pps() - 100.0).abs() < 5.0, "the mean follows too: {}", b.mean_pps());
    }

    #[test]
    fn growth_is_bounded_per_window() {
        let mut b = Baseline::default();
        for _ in 0..300 {
            learn(&mut b, 1000.0, 100);
        }
        let before = b.p99s(&floors(), 3.0)[0];
        for _ in 0..100 {
            learn(&mut b, 20_000.0, 100);
        }
        let after = b.p99s(&floors(), 3.0)[0];
        assert!(after <= before * (GROWTH * GROWTH) as f32 * 1.01, "{before} -> {after}");
        assert!(after > before, "it does grow");
    }
}

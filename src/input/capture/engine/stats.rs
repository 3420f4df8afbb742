//! Bounded-memory statistics of the packet tallies (§7.2): the sketches of [`crate::util::sketch`]
//! (re-exported here), a fixed-bucket [`Histogram`] and running [`Moments`]. Pure data
//! structures; no I/O, no clock.

pub use crate::util::sketch::{mix64, HyperLogLog, MixBuild, MixHasher, SpaceSaving};

/// Counts per fixed bucket, given by ascending upper bounds (the last bucket is open-ended).
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [u32],
    counts: Vec<u64>,
}

impl Histogram {
    pub fn new(bounds: &'static [u32]) -> Self {
        Histogram { bounds, counts: vec![0; bounds.len() + 1] }
    }

    #[inline]
    pub fn add(&mut self, v: u32) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
    }

    /// (label, count) per bucket, e.g. `"<=64"`, `">1500"`.
    pub fn buckets(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> =
            self.bounds.iter().map(|b| format!("<={b}")).zip(self.counts.iter().copied()).collect();
        out.push((format!(">{}", self.bounds.last().copied().unwrap_or(0)), *self.counts.last().unwrap_or(&0)));
        out
    }

    pub fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
    }
}

/// Running mean and standard deviation (Welford).
#[derive(Debug, Clone, Copy, Default)]
pub struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    #[inline]
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    pub fn stddev(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.m2 / self.n as f64).sqrt()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_and_moments() {
        let mut h = Histogram::new(&[64, 128]);
        for v in [10, 64, 65, 2000] {
            h.add(v);
        }
        assert_eq!(h.buckets(), vec![("<=64".into(), 2), ("<=128".into(), 1), (">128".into(), 1)]);
        let mut m = Moments::default();
        for x in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            m.add(x);
        }
        assert_eq!(m.mean(), 5.0);
        assert_eq!(m.stddev(), 2.0);
    }
}

//! The requests/s baseline of the access-log detector, with the learning rules of §5.2/§5.4
//! applied to one sample per second:
//! - threshold = max(`threshold_multiplier` × p99 of the last `baseline_window_s` samples,
//!   `http_min_rps_threshold`) (`dynamic_threshold: false`: the floor alone);
//! - a sample is learned only when it was under the normal (1×) threshold in force — never the
//!   cooldown's 2× — and no incident opened within [`SETTLE`] after it, so the ramp of a flood is
//!   dropped once the flood is confirmed; samples taken while an incident is open are not learned;
//! - during the grace period only samples under the floor are learned;
//! - once a whole window is learned, the p99 in use grows by at most 2× per `baseline_window_s`
//!   (falls are immediate), so a slow ramp cannot raise the threshold faster than that.
//!
//! Pure: `now` is passed in. The flat window only (no hour-of-day buckets: access-log detection
//! keeps no baseline file).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a sample waits before it is learned; an incident opening meanwhile drops it.
pub const SETTLE: Duration = Duration::from_secs(5);

/// What the baseline and the incident machine read (from the config, §3.2 and §11).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpDetectConfig {
    pub dynamic_threshold: bool,
    pub threshold_multiplier: f64,
    /// Floor of the requests/s threshold.
    pub min_rps: f64,
    pub baseline_window: Duration,
    pub grace_period: Duration,
    /// Seconds under threshold before an incident resolves.
    pub holddown: Duration,
    pub cooldown: Duration,
}

impl HttpDetectConfig {
    /// The access-log tuning from the counters' keys plus the requests/s floor.
    pub fn from_detect(d: &crate::config::DetectConfig, min_rps: f64) -> Self {
        HttpDetectConfig {
            dynamic_threshold: d.dynamic_threshold,
            threshold_multiplier: d.threshold_multiplier,
            min_rps,
            baseline_window: d.baseline_window,
            grace_period: d.grace_period,
            holddown: (d.sample_interval * d.holddown_ticks).max(Duration::from_secs(1)),
            cooldown: d.cooldown,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RpsBaseline {
    cfg: HttpDetectConfig,
    /// Learned samples, newest last, at most one per second of the window.
    learned: VecDeque<f64>,
    /// Samples waiting out the settle horizon: (taken at, rps, learnable).
    pending: VecDeque<(Instant, f64, bool)>,
    /// The p99 in use, growth-limited.
    p99: f64,
    p99_at: Option<Instant>,
}

impl RpsBaseline {
    pub fn new(cfg: &HttpDetectConfig) -> Self {
        RpsBaseline { cfg: cfg.clone(), learned: VecDeque::new(), pending: VecDeque::new(), p99: 0.0, p99_at: None }
    }

    /// The normal (1×) threshold in force.
    pub fn threshold(&self) -> f64 {
        if self.cfg.dynamic_threshold {
            (self.cfg.threshold_multiplier * self.p99).max(self.cfg.min_rps)
        } else {
            self.cfg.min_rps
        }
    }

    pub fn p99(&self) -> f64 {
        self.p99
    }

    pub fn learned_samples(&self) -> usize {
        self.learned.len()
    }

    /// Offer one sample. `quiet`: no incident open or confirming. `grace`: the grace period runs.
    pub fn observe(&mut self, now: Instant, rps: f64, quiet: bool, grace: bool) {
        let limit = if grace { self.cfg.min_rps } else { self.threshold() };
        self.pending.push_back((now, rps, quiet && rps < limit));
        self.settle(now);
    }

    /// An incident opened: nothing on its ramp is learned.
    pub fn incident_opened(&mut self) {
        self.pending.clear();
    }

    fn settle(&mut self, now: Instant) {
        let mut changed = false;
        while let Some(&(at, rps, ok)) = self.pending.front() {
            if now.saturating_duration_since(at) < SETTLE {
                break;
            }
            self.pending.pop_front();
            if ok {
                self.learned.push_back(rps);
                changed = true;
            }
        }
        let cap = self.cfg.baseline_window.as_secs().max(1) as usize;
        while self.learned.len() > cap {
            self.learned.pop_front();
        }
        if changed {
            self.update_p99(now);
        }
    }

    fn update_p99(&mut self, now: Instant) {
        let mut v: Vec<f64> = self.learned.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        let raw = v.get(((v.len() as f64 * 0.99).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0.0);
        // The growth limit holds once a whole window is learned; until then the raw p99 is used
        // (every sample in it was under the threshold in force anyway).
        let full = self.learned.len() as u64 >= self.cfg.baseline_window.as_secs().max(1);
        self.p99 = match self.p99_at {
            Some(at) => {
                let window = self.cfg.baseline_window.as_secs_f64().max(1.0);
                let base = self.p99.max(self.cfg.min_rps / self.cfg.threshold_multiplier).max(1.0);
                raw.min(base * 2f64.powf(now.saturating_duration_since(at).as_secs_f64() / window))
            }
            None => raw,
        };
        if full || self.p99_at.is_some() {
            self.p99_at = Some(now);
        }
    }
}

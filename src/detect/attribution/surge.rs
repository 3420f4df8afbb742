//! `traffic_surge` (§5.8): attributed traffic far over its own normal is worth a line in the
//! event log, never an incident, an alert or a rule. Pure: time passed in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::detect::baseline::Thresholds;

/// Attributed traffic over this × its own p99 (and over the thresholds the remainder is judged
/// against: traffic that would have been an incident) is a surge.
pub const SURGE_FACTOR: f64 = 4.0;
/// A surge ends after this long under; one event per surge.
pub const SURGE_QUIET: Duration = Duration::from_secs(30);
/// Seconds of attributed bit rates kept (one a second).
pub const SURGE_HISTORY: usize = 3600;

/// Attributed traffic's own short history and whether a surge is on.
#[derive(Debug, Default)]
pub struct Surge {
    seen: VecDeque<f64>,
    next_learn: Option<Instant>,
    /// The surge under way: since when, and the last moment it was over.
    on: Option<(Instant, Instant)>,
}

impl Surge {
    /// One tick's attributed rates. Returns true when a surge begins (write one event).
    pub fn step(&mut self, now: Instant, attributed_pps: f64, attributed_bps: f64, thr: &Thresholds) -> bool {
        // The p99 only when it matters: no sorting on an idle host's ticks.
        let far = (attributed_bps > thr.bits_per_s || attributed_pps > thr.pps)
            && attributed_bps > SURGE_FACTOR * p99(&self.seen);
        // A surge is not its own normal: nothing is learned while one is on.
        if !far && self.on.is_none() && self.next_learn.is_none_or(|t| now >= t) {
            self.next_learn = Some(now + Duration::from_secs(1));
            self.seen.push_back(attributed_bps);
            if self.seen.len() > SURGE_HISTORY {
                self.seen.pop_front();
            }
        }
        match (&mut self.on, far) {
            (Some((_, last)), true) => {
                *last = now;
                false
            }
            (Some((_, last)), false) => {
                if now.saturating_duration_since(*last) >= SURGE_QUIET {
                    self.on = None;
                }
                false
            }
            (None, true) => {
                self.on = Some((now, now));
                true
            }
            (None, false) => false,
        }
    }

    pub fn active(&self) -> bool {
        self.on.is_some()
    }
}

fn p99(v: &VecDeque<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s: Vec<f64> = v.iter().copied().collect();
    s.sort_unstable_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * 0.99).round() as usize]
}

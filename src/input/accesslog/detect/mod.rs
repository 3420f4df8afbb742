//! The access-log incident state machine: one requests/s sample per second in, what changed
//! out. Opens an `http_flood` incident on the first second over the threshold (a one-second
//! requests/s sample already averages a whole second; twice the threshold during the cooldown
//! after a resolve, none during the grace period), updates it at most every 5 s, resolves it
//! after `holddown` seconds under threshold. Owns the [`RpsBaseline`] so learning follows the
//! incident state. Pure: `now` and the wall time are passed in; no events are built here.

use std::time::{Duration, Instant, SystemTime};

use super::aggregate::Summary;
use super::baseline::{HttpDetectConfig, RpsBaseline};

pub const UPDATE_EVERY: Duration = Duration::from_secs(5);
pub const COOLDOWN_FACTOR: f64 = 2.0;

/// An open `http_flood` incident.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpIncident {
    pub id: String,
    pub opened_at: Instant,
    pub started_wall: SystemTime,
    /// The 1× threshold when it opened.
    pub threshold_rps: f64,
    pub baseline_rps: f64,
    pub rps: f64,
    pub peak_rps: f64,
    /// The last second over threshold: who and what.
    pub flood: Summary,
    pub previous_incident_id: Option<String>,
    below: Duration,
    last_update: Instant,
}

impl HttpIncident {
    pub fn duration(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.opened_at)
    }

    /// `medium` ≥ 1×, `high` ≥ 2×, `critical` ≥ 5× the threshold.
    pub fn severity(&self) -> &'static str {
        let r = if self.threshold_rps > 0.0 { self.peak_rps / self.threshold_rps } else { f64::INFINITY };
        if r >= 5.0 {
            "critical"
        } else if r >= 2.0 {
            "high"
        } else {
            "medium"
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Opened(HttpIncident),
    Updated(HttpIncident),
    /// The incident and whether the agent is stopping (else traffic went back to normal).
    Resolved(HttpIncident, bool),
}

pub struct HttpDetector {
    cfg: HttpDetectConfig,
    baseline: RpsBaseline,
    grace_until: Instant,
    open: Option<HttpIncident>,
    /// The last resolve: when, and which incident.
    last: Option<(Instant, String)>,
}

impl HttpDetector {
    pub fn new(cfg: &HttpDetectConfig, now: Instant) -> Self {
        HttpDetector {
            cfg: cfg.clone(),
            baseline: RpsBaseline::new(cfg),
            grace_until: now + cfg.grace_period,
            open: None,
            last: None,
        }
    }

    pub fn threshold(&self) -> f64 {
        self.baseline.threshold()
    }

    pub fn baseline(&self) -> &RpsBaseline {
        &self.baseline
    }

    pub fn open_incident(&self) -> Option<&HttpIncident> {
        self.open.as_ref()
    }

    fn in_cooldown(&self, now: Instant) -> bool {
        self.last.as_ref().is_some_and(|(t, _)| now.saturating_duration_since(*t) < self.cfg.cooldown)
    }

    /// One second's figures.
    pub fn step(&mut self, now: Instant, wall: SystemTime, rps: f64, summary: &Summary) -> Option<Change> {
        let threshold = self.baseline.threshold();
        let grace = now < self.grace_until;
        let change = match self.open.as_mut() {
            Some(inc) => {
                inc.rps = rps;
                inc.peak_rps = inc.peak_rps.max(rps);
                if rps >= inc.threshold_rps.min(threshold) {
                    inc.below = Duration::ZERO;
                    inc.flood = summary.clone();
                } else {
                    inc.below += Duration::from_secs(1);
                }
                if inc.below >= self.cfg.holddown {
                    let inc = self.open.take().expect("open");
                    self.last = Some((now, inc.id.clone()));
                    Some(Change::Resolved(inc, false))
                } else if now.saturating_duration_since(inc.last_update) >= UPDATE_EVERY {
                    inc.last_update = now;
                    Some(Change::Updated(inc.clone()))
                } else {
                    None
                }
            }
            None => {
                let needed = if self.in_cooldown(now) { threshold * COOLDOWN_FACTOR } else { threshold };
                (!grace && rps >= needed).then(|| self.open_now(now, wall, rps, threshold, summary))
            }
        };
        let quiet = self.open.is_none() && !matches!(change, Some(Change::Resolved(..)));
        self.baseline.observe(now, rps, quiet, grace);
        change
    }

    fn open_now(&mut self, now: Instant, wall: SystemTime, rps: f64, threshold: f64, summary: &Summary) -> Change {
        self.baseline.incident_opened();
        let previous_incident_id = self.last.as_ref().filter(|_| self.in_cooldown(now)).map(|(_, id)| id.clone());
        let inc = HttpIncident {
            id: uuid::Uuid::new_v4().to_string(),
            opened_at: now,
            // The flood filled the second that just ended.
            started_wall: wall.checked_sub(Duration::from_secs(1)).unwrap_or(wall),
            threshold_rps: threshold,
            baseline_rps: self.baseline.p99(),
            rps,
            peak_rps: rps,
            flood: summary.clone(),
            previous_incident_id,
            below: Duration::ZERO,
            last_update: now,
        };
        self.open = Some(inc.clone());
        Change::Opened(inc)
    }

    /// The agent stops: resolve what is open.
    pub fn stop(&mut self) -> Option<Change> {
        self.open.take().map(|inc| Change::Resolved(inc, true))
    }
}

#[cfg(test)]
mod tests;

//! Retry timing for the spool senders (§6.3): exponential backoff with jitter capped at 60 s,
//! `Retry-After` honoured up to the cap, and a circuit breaker (closed → open → half-open with
//! one probe). Pure: every call takes `now`; the sender thread is the only one that sleeps.

use std::time::{Duration, Instant, SystemTime};

/// No wait between attempts is ever longer than this.
pub const RETRY_CAP: Duration = Duration::from_secs(60);
/// First backoff step.
pub const RETRY_BASE: Duration = Duration::from_millis(500);
/// Consecutive failures that open the breaker.
pub const OPEN_AFTER: u32 = 3;

/// Backoff before attempt `failures + 1`: `base × 2^(failures-1)` capped, scaled by a jitter
/// factor in [0.5, 1.0] (`jitter01` in [0, 1]) so a fleet does not retry in lock-step.
pub fn backoff(failures: u32, jitter01: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let raw = RETRY_BASE.saturating_mul(1u32 << exp).min(RETRY_CAP);
    raw.mul_f64(0.5 + 0.5 * jitter01.clamp(0.0, 1.0))
}

/// Parse a `Retry-After` value (delta-seconds or an HTTP date), capped at [`RETRY_CAP`].
pub fn parse_retry_after(value: &str, wall: SystemTime) -> Option<Duration> {
    let v = value.trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate_to_system(v)?.duration_since(wall).unwrap_or(Duration::ZERO),
    };
    Some(d.min(RETRY_CAP))
}

fn httpdate_to_system(v: &str) -> Option<SystemTime> {
    // IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT": humantime reads the RFC 3339 form.
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| *m == parts[2])? + 1;
    let day: u32 = parts[1].parse().ok()?;
    let year: u32 = parts[3].parse().ok()?;
    humantime::parse_rfc3339(&format!("{year:04}-{month:02}-{day:02}T{}Z", parts[4])).ok()
}

/// A cheap jitter source in [0, 1) (no need for a crypto RNG here).
pub fn jitter() -> f64 {
    let n = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let x = (n as u64 ^ u64::from(std::process::id())).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls flow; `retry_at` spaces out retries after a failure.
    Closed,
    /// No calls until `until`.
    Open { until: Instant },
    /// One probe is allowed; its result closes or re-opens the breaker.
    HalfOpen { probing: bool },
}

/// The circuit breaker plus the backoff clock of one destination.
#[derive(Debug, Clone)]
pub struct Breaker {
    pub state: State,
    /// Consecutive failures.
    pub failures: u32,
    retry_at: Option<Instant>,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker { state: State::Closed, failures: 0, retry_at: None }
    }
}

impl Breaker {
    /// May a call start now? In half-open only the first caller gets the probe.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state {
            State::Closed => !matches!(self.retry_at, Some(t) if now < t),
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen { probing: true };
                true
            }
            State::Open { .. } => false,
            State::HalfOpen { probing } => {
                if probing {
                    false
                } else {
                    self.state = State::HalfOpen { probing: true };
                    true
                }
            }
        }
    }

    /// When the next call may start (None = now).
    pub fn next_attempt(&self) -> Option<Instant> {
        match self.state {
            State::Closed => self.retry_at,
            State::Open { until } => Some(until),
            State::HalfOpen { .. } => None,
        }
    }

    /// The call succeeded. Returns true when this closed an open breaker (worth a log line).
    pub fn on_success(&mut self) -> bool {
        let was_open = !matches!(self.state, State::Closed);
        *self = Breaker::default();
        was_open
    }

    /// The call failed; `retry_after` is the server's wish (already capped), `min_delay` a floor
    /// (401/403 retry slowly). Returns the wait before the next attempt.
    pub fn on_failure(&mut self, now: Instant, retry_after: Option<Duration>, min_delay: Duration, j: f64) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let delay = backoff(self.failures, j).max(retry_after.unwrap_or_default()).max(min_delay).min(RETRY_CAP);
        let half_open = matches!(self.state, State::HalfOpen { .. });
        if half_open || self.failures >= OPEN_AFTER {
            self.state = State::Open { until: now + delay };
            self.retry_at = None;
        } else {
            self.retry_at = Some(now + delay);
        }
        delay
    }

    pub fn is_open(&self) -> bool {
        !matches!(self.state, State::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps_at_60s() {
        assert_eq!(backoff(1, 1.0), Duration::from_millis(500));
        assert_eq!(backoff(2, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(4, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(4, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(30, 1.0), RETRY_CAP);
        assert_eq!(backoff(u32::MAX, 0.5), RETRY_CAP.mul_f64(0.75));
    }

    #[test]
    fn retry_after_seconds_and_dates_are_capped() {
        let wall = humantime::parse_rfc3339("2026-11-21T10:00:00Z").unwrap();
        assert_eq!(parse_retry_after("7", wall), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("3600", wall), Some(RETRY_CAP));
        assert_eq!(parse_retry_after("Sat, 21 Nov 2026 10:00:30 GMT", wall), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Sat, 21 Nov 2026 09:00:00 GMT", wall), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", wall), None);
    }

    #[test]
    fn breaker_opens_after_repeated_failures_and_half_open_allows_one_probe() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        assert!(b.allow(t0));
        let d1 = b.on_failure(t0, None, Duration::ZERO, 1.0);
        assert_eq!(b.state, State::Closed);
        assert!(!b.allow(t0), "backoff spaces retries");
        assert!(b.allow(t0 + d1));
        b.on_failure(t0 + d1, None, Duration::ZERO, 1.0);
        let d3 = b.on_failure(t0 + d1, None, Duration::ZERO, 1.0);
        let State::Open { until } = b.state else { panic!("open after {OPEN_AFTER} failures: {:?}", b.state) };
        assert!(!b.allow(until - Duration::from_millis(1)));
        assert!(b.allow(until), "probe allowed once the open period ends");
        assert!(!b.allow(until), "only one probe while half-open");
        // The probe fails again: open once more, for longer.
        let d4 = b.on_failure(until, None, Duration::ZERO, 1.0);
        assert!(d4 > d3, "{d4:?} > {d3:?}");
        assert!(matches!(b.state, State::Open { .. }));
        assert!(!b.allow(until + d4 - Duration::from_millis(1)));
        assert!(b.allow(until + d4));
        assert!(b.on_success(), "success closes the breaker");
        assert_eq!((b.state, b.failures), (State::Closed, 0));
        assert!(b.allow(until + d4));
    }

    #[test]
    fn retry_after_and_min_delay_win_over_short_backoff() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        assert_eq!(b.on_failure(t0, Some(Duration::from_secs(7)), Duration::ZERO, 0.0), Duration::from_secs(7));
        assert_eq!(b.on_failure(t0, None, RETRY_CAP, 0.0), RETRY_CAP);
    }

    #[test]
    fn jitter_is_in_unit_interval() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}

//! The agent's side of the state file (§6.6): once per second of agent time, a
//! [`StatusSnapshot`] built from state the tick already holds, handed to the report worker like
//! any other message (the worker writes the file). Also the two operator log lines: how long the
//! baseline will learn, and when detection becomes active with its thresholds.
//!
//! Pure: `now`/`wall` come from the caller; no I/O, nothing that can block the sampling thread.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Agent;
use crate::event::rfc3339_ms;
use crate::report::Outgoing;
use crate::status::snapshot::{
    BaselineNow, HistoryPoint, IncidentNow, ProtoMix, RatesNow, StatusSnapshot, ThresholdsNow, HISTORY_LEN,
};

/// How often the state file is refreshed.
pub const STATUS_EVERY: Duration = Duration::from_secs(1);

/// What the agent keeps between snapshots.
#[derive(Debug)]
pub(super) struct StatusClock {
    next: Instant,
    started_wall: SystemTime,
    history: VecDeque<HistoryPoint>,
    /// Detection was active at the last snapshot (to log the moment it becomes so).
    active: bool,
}

impl StatusClock {
    pub(super) fn new(now: Instant, wall: SystemTime) -> Self {
        StatusClock { next: now, started_wall: wall, history: VecDeque::new(), active: false }
    }

    /// Keep the last [`HISTORY_LEN`] seconds.
    fn record(&mut self, p: HistoryPoint) {
        self.history.push_back(p);
        while self.history.len() > HISTORY_LEN {
            self.history.pop_front();
        }
    }
}

impl Agent {
    /// The start-up line about learning: how long the grace period lasts, or that a saved
    /// baseline makes detection active at once.
    pub fn learning_line(&self) -> String {
        let d = &self.settings.detect;
        if self.restored {
            return "saved baseline restored: detection is active from the first sample".into();
        }
        if !d.dynamic_threshold {
            return format!(
                "fixed thresholds (dynamic_threshold false); detection starts after the {} s grace period",
                d.grace_period.as_secs()
            );
        }
        format!(
            "learning the baseline: detection starts in {} s (grace_period_s), the window fills in {} s (baseline_window_s)",
            d.grace_period.as_secs(),
            d.baseline_window.as_secs()
        )
    }

    /// Once per [`STATUS_EVERY`]: push a snapshot, and log when detection has just become active.
    pub(super) fn publish_status(&mut self, now: Instant, wall: SystemTime, out: &mut Vec<Outgoing>) {
        if now < self.status.next {
            return;
        }
        self.status.next = now + STATUS_EVERY;
        let snap = self.status_snapshot(now, wall);
        if snap.baseline.detection_active && !self.status.active {
            log::info!(
                "detection active on {}: thresholds {:.0} pps / {:.1} Mbit/s (baseline {:.0} pps, quality {})",
                snap.interface,
                snap.thresholds.pps,
                snap.thresholds.bps / 1e6,
                snap.thresholds.baseline_pps,
                snap.baseline.quality
            );
        }
        self.status.active = snap.baseline.detection_active;
        out.push(Outgoing::Status(Box::new(snap)));
    }

    /// The snapshot as of `now`. Spool depth, API success and the incident's label are filled
    /// in by the report worker, which knows them.
    pub fn status_snapshot(&mut self, now: Instant, wall: SystemTime) -> StatusSnapshot {
        let r = self.last_rates;
        let rates = RatesNow {
            rx_pps: r.map(|r| r.pps).unwrap_or(0.0),
            rx_bps: r.map(|r| r.bits_per_s).unwrap_or(0.0),
            tx_pps: r.map(|r| r.tx_pps).unwrap_or(0.0),
            tx_bps: r.map(|r| r.tx_bits_per_s).unwrap_or(0.0),
        };
        let unix_ms = wall.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        self.status.record(HistoryPoint { unix_s: unix_ms / 1000, rx_pps: rates.rx_pps, rx_bps: rates.rx_bps });
        let thr = self.inbound.thresholds();
        StatusSnapshot {
            pid: std::process::id(),
            version: crate::event::AGENT_VERSION.into(),
            config: self.settings.source.as_ref().map(|p| p.display().to_string()),
            started_at: rfc3339_ms(self.status.started_wall),
            updated_at: rfc3339_ms(wall),
            updated_unix_ms: unix_ms,
            mode: self.capture.mode.clone(),
            capture_reason: self.capture.reason.clone(),
            interface: self.interface(),
            sample_interval_ms: self.settings.detect.sample_interval.as_millis() as u64,
            rates,
            thresholds: ThresholdsNow {
                pps: thr.pps,
                bps: thr.bits_per_s,
                baseline_pps: thr.baseline_pps,
                dynamic: self.settings.detect.dynamic_threshold,
            },
            baseline: self.baseline_now(now, wall),
            incident: self.incident_now(now),
            incidents_total: self.incidents_total,
            proto: proto_mix(r.and_then(|r| r.proto)),
            capture_dropped_packets: self.insight.as_ref().map(|i| i.dropped_packets()).unwrap_or(0),
            history: self.status.history.iter().copied().collect(),
            ..StatusSnapshot::default()
        }
    }

    fn baseline_now(&self, now: Instant, wall: SystemTime) -> BaselineNow {
        let q = self.inbound.baseline.quality(wall);
        let in_grace = self.inbound.detector.in_grace(now);
        let grace_end = self.status.started_wall + self.settings.detect.grace_period;
        let grace_left = if in_grace { grace_end.duration_since(wall).unwrap_or_default().as_secs_f64() } else { 0.0 };
        BaselineNow {
            quality: q.baseline_quality.into(),
            ready: q.baseline_ready,
            p99_pps: q.baseline_p99_pps,
            total_samples: q.baseline_total_samples,
            restored: self.restored,
            grace_left_s: (grace_left * 10.0).round() / 10.0,
            detection_active: !in_grace,
        }
    }

    fn incident_now(&self, now: Instant) -> Option<IncidentNow> {
        // The inbound incident when there is one: it is the one capture and mitigation follow.
        let inc = self.inbound.detector.incident().or(self.outbound.detector.incident())?;
        Some(IncidentNow {
            id: inc.id.clone(),
            direction: inc.direction.as_str().into(),
            label: "unknown".into(),
            severity: inc.severity().into(),
            trigger: inc.trigger.as_str().into(),
            started_at: rfc3339_ms(inc.started_wall),
            duration_s: (inc.duration(now).as_secs_f64() * 10.0).round() / 10.0,
            peak_pps: inc.peak_pps,
            peak_bps: inc.peak_bits_per_s,
            top: Default::default(),
        })
    }
}

fn proto_mix(p: Option<crate::input::counters::ProtoCounters>) -> ProtoMix {
    let Some(p) = p else { return ProtoMix::default() };
    let total = p.total() as f64;
    if total <= 0.0 {
        return ProtoMix::default();
    }
    let pct = |n: u64| (1000.0 * n as f64 / total).round() / 10.0;
    ProtoMix { tcp_pct: pct(p.tcp), udp_pct: pct(p.udp), icmp_pct: pct(p.icmp) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::CaptureStatus;
    use crate::config::paths::{Env, Paths};
    use crate::config::Settings;
    use crate::input::counters::{ProcSource, Sampler};

    fn write_dev(root: &std::path::Path, packets: u64) {
        std::fs::create_dir_all(root.join("net")).unwrap();
        let line =
            format!("  eth0: {} {packets} 0 0 0 0 0 0 {} {} 0 0 0 0 0 0\n", packets * 100, packets * 50, packets / 2);
        std::fs::write(root.join("net/.dev"), line).unwrap();
        std::fs::rename(root.join("net/.dev"), root.join("net/dev")).unwrap();
    }

    #[test]
    fn the_start_line_says_how_long_the_baseline_learns() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env { euid: 1000, home: Some(dir.path().into()), root: "/".into(), ..Env::default() };
        let s = Settings::defaults(&Paths::resolve(&env, false));
        let sampler = Sampler::new(Box::new(ProcSource::new(dir.path())), "auto");
        let cap = CaptureStatus { mode: "limited".into(), reason: None };
        let a = Agent::new(s, sampler, None, cap, None, Instant::now(), SystemTime::now());
        assert_eq!(
            a.learning_line(),
            "learning the baseline: detection starts in 90 s (grace_period_s), the window fills in 300 s (baseline_window_s)"
        );
    }

    #[test]
    fn one_snapshot_a_second_with_grace_counting_down_then_detection_active() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env { euid: 1000, home: Some(dir.path().into()), root: "/".into(), ..Env::default() };
        let mut s = Settings::defaults(&Paths::resolve(&env, false));
        s.detect.grace_period = Duration::from_secs(2);
        s.procfs_root = dir.path().into();
        let sampler = Sampler::new(Box::new(ProcSource::new(dir.path())), "auto");
        let cap = CaptureStatus { mode: "limited".into(), reason: None };
        let (t0, w0) = (Instant::now(), SystemTime::now());
        let mut a = Agent::new(s, sampler, None, cap, None, t0, w0);
        write_dev(dir.path(), 0);
        a.start(w0);
        let mut snaps = Vec::new();
        for n in 1..=20u32 {
            write_dev(dir.path(), 200 * n as u64); // 1000 pps at 200 ms ticks
            let d = Duration::from_millis(200) * n;
            for m in a.tick(t0 + d, w0 + d) {
                if let Outgoing::Status(s) = m {
                    snaps.push(*s);
                }
            }
        }
        assert_eq!(snaps.len(), 4, "one per second over 4 s (the first tick, then every second)");
        let first = &snaps[0];
        assert_eq!((first.interface.as_str(), first.mode.as_str()), ("eth0", "limited"));
        assert!(!first.baseline.detection_active && first.baseline.grace_left_s > 0.5, "{:?}", first.baseline);
        let rates = snaps[1].rates; // the first tick has no rate yet (one reading)
        assert!((rates.rx_pps - 1000.0).abs() < 1.0 && (rates.tx_pps - 500.0).abs() < 1.0, "{rates:?}");
        assert_eq!(first.thresholds.pps, 5000.0);
        let last = snaps.last().unwrap();
        assert!(last.baseline.detection_active && last.baseline.grace_left_s == 0.0, "{:?}", last.baseline);
        assert_eq!(last.history.len(), 4);
        assert!(last.mitigations.is_empty() && last.incident.is_none());
    }
}

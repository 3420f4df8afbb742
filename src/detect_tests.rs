//! State machine tests on virtual time: `t0 + n × 200 ms`, never a sleep.

use super::*;
use crate::baseline::Baseline;

const TICK: Duration = Duration::from_millis(200);

fn cfg() -> DetectConfig {
    DetectConfig {
        grace_period: Duration::from_secs(2),
        confirm_ticks: 2,
        holddown_ticks: 3,
        cooldown: Duration::from_secs(10),
        ..DetectConfig::default()
    }
}

fn thr() -> Thresholds {
    Thresholds { pps: 1000.0, bits_per_s: 1e6, baseline_pps: 100.0 }
}

fn rates(pps: f64, bits_per_s: f64) -> Rates {
    Rates { pps, bits_per_s, tx_pps: 0.0, tx_bits_per_s: 0.0, proto: None, interval: TICK }
}

/// Drives a detector tick by tick on virtual time.
struct Sim {
    d: Detector,
    t0: Instant,
    n: u32,
}

impl Sim {
    fn new(restored: bool) -> Self {
        let t0 = Instant::now();
        Sim { d: Detector::new(&cfg(), t0, restored), t0, n: 0 }
    }

    fn past_grace() -> Self {
        let mut s = Sim::new(false);
        s.n = 20; // 4 s
        s
    }

    fn tick(&mut self, pps: f64, bps: f64) -> Step {
        self.n += 1;
        let now = self.t0 + TICK * self.n;
        self.d.step(now, SystemTime::UNIX_EPOCH + TICK * self.n, Some(&rates(pps, bps)), &thr())
    }

    fn opened(&mut self, pps: f64, bps: f64) -> bool {
        matches!(self.tick(pps, bps).change, Some(Change::Opened))
    }
}

#[test]
fn no_incident_during_grace_period() {
    let mut s = Sim::new(false);
    for _ in 0..9 {
        let st = s.tick(1e6, 1e9);
        assert_eq!(st.change, None);
        assert!(st.learn, "grace samples are learned");
    }
    // 2 s = 10 ticks: the next over-threshold samples count.
    s.tick(5000.0, 0.0);
    assert!(s.opened(5000.0, 0.0));
}

#[test]
fn restored_baseline_skips_grace() {
    let mut s = Sim::new(true);
    s.tick(5000.0, 0.0);
    assert!(s.opened(5000.0, 0.0));
}

#[test]
fn confirm_ticks_must_be_consecutive() {
    let mut s = Sim::past_grace();
    assert!(!s.opened(2000.0, 0.0));
    assert!(!s.opened(500.0, 0.0), "a normal sample resets the count");
    assert!(!s.opened(2000.0, 0.0));
    let step = s.tick(2000.0, 0.0);
    assert_eq!(step.change, Some(Change::Opened));
    assert_eq!(s.d.incident().unwrap().trigger, Trigger::Pps);
}

#[test]
fn confirming_is_reported_until_open_or_reset() {
    let mut s = Sim::past_grace();
    assert!(!s.d.confirming());
    s.tick(2000.0, 0.0);
    assert!(s.d.confirming());
    s.tick(10.0, 0.0);
    assert!(!s.d.confirming());
    s.tick(2000.0, 0.0);
    assert!(s.opened(2000.0, 0.0));
    assert!(!s.d.confirming(), "open is not confirming");
}

#[test]
fn ten_times_threshold_opens_at_once() {
    let mut s = Sim::past_grace();
    assert!(s.opened(10_000.0, 0.0));
    let mut s = Sim::past_grace();
    assert!(!s.opened(9_999.0, 0.0), "just under 10x waits for confirmation");
    let mut s = Sim::past_grace();
    assert!(s.opened(0.0, 1e7), "BPS at 10x also opens at once");
    assert_eq!(s.d.incident().unwrap().trigger, Trigger::Bps);
}

#[test]
fn bps_triggered_incident_stays_open_while_bps_stays_high() {
    let mut s = Sim::past_grace();
    s.tick(10.0, 3e6);
    assert!(s.opened(10.0, 3e6));
    assert_eq!(s.d.incident().unwrap().trigger, Trigger::Bps);
    // Big packets: PPS under threshold the whole time, BPS over it for a minute.
    for _ in 0..300 {
        let st = s.tick(10.0, 3e6);
        assert!(!matches!(st.change, Some(Change::Resolved(..))), "resolved while BPS high");
    }
    assert!(s.d.incident().is_some());
}

#[test]
fn holddown_needs_pps_and_bps_under() {
    let mut s = Sim::past_grace();
    assert!(s.opened(20_000.0, 2e6));
    s.tick(500.0, 2e6); // PPS normal, BPS still high
    s.tick(500.0, 2e6);
    s.tick(500.0, 2e6);
    assert!(s.d.incident().is_some());
    s.tick(500.0, 5e5);
    s.tick(500.0, 5e5);
    s.tick(2000.0, 5e5); // relapse resets the hold-down
    s.tick(500.0, 5e5);
    s.tick(500.0, 5e5);
    let st = s.tick(500.0, 5e5);
    match st.change {
        Some(Change::Resolved(inc, ResolveReason::TrafficNormal)) => {
            assert_eq!(inc.peak_pps, 20_000.0);
            assert_eq!(inc.peak_bits_per_s, 2e6);
            assert_eq!(inc.severity(), "critical");
        }
        other => panic!("expected resolve, got {other:?}"),
    }
    assert!(!st.learn, "the resolving sample is still part of the incident");
    assert!(s.tick(500.0, 5e5).learn);
}

#[test]
fn cooldown_needs_twice_the_threshold() {
    let mut s = Sim::past_grace();
    assert!(s.opened(20_000.0, 0.0));
    for _ in 0..3 {
        s.tick(0.0, 0.0);
    }
    assert!(s.d.incident().is_none());
    for _ in 0..5 {
        assert!(!s.opened(1500.0, 0.0), "1.5x during cooldown must not open");
    }
    s.tick(2500.0, 0.0);
    assert!(s.opened(2500.0, 0.0), "2.5x opens during cooldown");
    for _ in 0..3 {
        s.tick(0.0, 0.0);
    }
    s.n += 50; // 10 s later the cooldown is over
    s.tick(1500.0, 0.0);
    assert!(s.opened(1500.0, 0.0));
}

#[test]
fn updates_come_every_five_seconds() {
    let mut s = Sim::past_grace();
    assert!(s.opened(50_000.0, 0.0));
    let updates = (0..50).filter(|_| s.tick(50_000.0, 0.0).change == Some(Change::Updated)).count();
    assert_eq!(updates, 2, "10 s open = 2 updates");
}

#[test]
fn severity_follows_peak_ratio() {
    for (pps, sev) in [(1500.0, "medium"), (2500.0, "high"), (6000.0, "critical")] {
        let mut s = Sim::past_grace();
        s.tick(pps, 0.0);
        assert!(s.opened(pps, 0.0));
        assert_eq!(s.d.incident().unwrap().severity(), sev, "{pps}");
    }
}

#[test]
fn gaps_change_nothing_and_are_not_learned() {
    let mut s = Sim::past_grace();
    s.tick(2000.0, 0.0);
    let st = s.d.step(s.t0 + TICK * 100, SystemTime::UNIX_EPOCH, None, &thr());
    assert_eq!(st, Step { change: None, learn: false });
    assert!(s.opened(2000.0, 0.0), "a gap does not reset confirmation");
}

#[test]
fn stop_resolves_with_agent_stopped() {
    let mut s = Sim::past_grace();
    assert!(s.opened(50_000.0, 0.0));
    assert!(matches!(s.d.stop(), Some(Change::Resolved(_, ResolveReason::AgentStopped))));
    assert_eq!(s.d.stop(), None);
}

#[test]
fn incident_samples_do_not_poison_the_baseline() {
    // Baseline + detector together, as the agent drives them: a long flood leaves the threshold as it was.
    let c = DetectConfig { baseline_window: Duration::from_secs(10), min_pps_threshold: 100.0, ..cfg() };
    let t0 = Instant::now();
    let mut b = Baseline::new(&c);
    let mut d = Detector::new(&c, t0, false);
    let mut threshold_before = 0.0;
    for n in 1..=400u32 {
        let pps = if (100..300).contains(&n) { 100_000.0 } else { 1000.0 };
        let wall = SystemTime::UNIX_EPOCH + TICK * n;
        let thr = b.thresholds(wall, &c);
        if n == 99 {
            threshold_before = thr.pps;
        }
        let st = d.step(t0 + TICK * n, wall, Some(&rates(pps, 0.0)), &thr);
        if st.learn {
            b.observe(wall, pps, 0.0);
        }
    }
    assert_eq!(threshold_before, 3000.0);
    assert_eq!(b.thresholds(SystemTime::UNIX_EPOCH, &c).pps, threshold_before);
}

#[test]
fn incident_ids_are_uuid_v4() {
    let mut s = Sim::past_grace();
    assert!(s.opened(50_000.0, 0.0));
    let id = uuid::Uuid::parse_str(&s.d.incident().unwrap().id).unwrap();
    assert_eq!(id.get_version_num(), 4);
}

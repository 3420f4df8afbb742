//! State machine tests on virtual time: `t0 + n × 200 ms`, never a sleep.

use super::*;

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
    Thresholds { pps: 1000.0, bits_per_s: 1e6, baseline_pps: 100.0, classes: [500.0; 4] }
}

fn sample(pps: f64, bits_per_s: f64) -> Sample {
    Sample { pps, bits_per_s, dropped_pps: 0.0, proto: None, classes: None }
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
        Sim { d: Detector::new(&cfg(), Direction::Inbound, t0, restored), t0, n: 0 }
    }

    fn past_grace() -> Self {
        let mut s = Sim::new(false);
        s.n = 20; // 4 s
        s
    }

    fn tick(&mut self, pps: f64, bps: f64) -> Step {
        self.n += 1;
        let now = self.t0 + TICK * self.n;
        self.d.step(now, SystemTime::UNIX_EPOCH + TICK * self.n, Some(&sample(pps, bps)), &thr())
    }

    fn opened(&mut self, pps: f64, bps: f64) -> bool {
        matches!(self.tick(pps, bps).change, Some(Change::Opened))
    }
}

#[test]
fn grace_learns_only_under_the_floors_and_opens_only_at_ten_times_them() {
    // Floors: 5000 pps, 50 Mbit/s. Thresholds in force during this test: 1000 pps (below floor).
    let mut s = Sim::new(false);
    for _ in 0..3 {
        let st = s.tick(100.0, 1e5);
        assert_eq!(st, Step { change: None, learn: true }, "normal grace samples are learned");
    }
    for _ in 0..3 {
        let st = s.tick(40_000.0, 1e5);
        assert_eq!(st, Step { change: None, learn: false }, "over the floor: neither learned nor an incident");
    }
    let st = s.tick(100.0, 6e7);
    assert!(!st.learn, "over the BPS floor is not learned either");
    let st = s.tick(50_001.0, 1e5);
    assert_eq!(st.change, Some(Change::Opened), "10x the floor opens even in grace");
    assert!(!st.learn);
}

#[test]
fn a_zero_floor_does_not_stop_grace_learning() {
    let c = DetectConfig { min_pps_threshold: 0.0, ..cfg() };
    let t0 = Instant::now();
    let mut d = Detector::new(&c, Direction::Inbound, t0, false);
    let st = d.step(t0 + TICK, SystemTime::UNIX_EPOCH, Some(&sample(800.0, 1e5)), &thr());
    assert_eq!(st, Step { change: None, learn: true });
}

#[test]
fn flood_running_at_start_opens_when_grace_ends() {
    let mut s = Sim::new(false);
    // 6000 pps: over the 5000 floor (so not learned), under 10x of anything (so no open in grace).
    for _ in 0..9 {
        assert_eq!(s.tick(6000.0, 0.0), Step { change: None, learn: false });
    }
    // 2 s = 10 ticks: the next over-threshold samples count.
    s.tick(6000.0, 0.0);
    assert!(s.opened(6000.0, 0.0));
}

#[test]
fn samples_over_the_threshold_are_never_learned() {
    let mut s = Sim::past_grace();
    let st = s.tick(1200.0, 0.0);
    assert_eq!(st, Step { change: None, learn: false }, "a single 1.2x blip is not learned");
    assert!(s.tick(900.0, 0.0).learn);
    assert!(!s.tick(900.0, 2e6).learn, "BPS over is not learned either");
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

/// Open and resolve one incident; returns its id. The cooldown (10 s) starts at the resolve.
fn flood_and_resolve(s: &mut Sim) -> String {
    assert!(s.opened(20_000.0, 0.0));
    let id = s.d.incident().unwrap().id.clone();
    for _ in 0..3 {
        s.tick(0.0, 0.0);
    }
    assert!(s.d.incident().is_none());
    id
}

#[test]
fn cooldown_blips_under_twice_do_not_flap() {
    let mut s = Sim::past_grace();
    flood_and_resolve(&mut s);
    for _ in 0..3 {
        // 1.5x for 1.2 s, then normal for 1.2 s: tails, not a wave.
        for _ in 0..6 {
            let st = s.tick(1500.0, 0.0);
            assert_eq!(
                st,
                Step { change: None, learn: false },
                "1.5x blips in the cooldown neither open nor are learned"
            );
        }
        for _ in 0..6 {
            s.tick(500.0, 0.0);
        }
    }
}

#[test]
fn cooldown_second_wave_under_twice_opens_after_two_seconds() {
    let mut s = Sim::past_grace();
    let first = flood_and_resolve(&mut s);
    let mut opened_after = None;
    for n in 1..=20u32 {
        if s.opened(1500.0, 0.0) {
            opened_after = Some(TICK * n);
            break;
        }
    }
    assert_eq!(opened_after, Some(COOLDOWN_SUSTAIN + TICK), "sustained 1.5x opens once it lasted 2 s");
    assert_eq!(s.d.incident().unwrap().previous_id.as_deref(), Some(first.as_str()));
}

#[test]
fn cooldown_wave_with_short_dips_still_opens_after_two_seconds() {
    // A paced sender seen at a fine interval: 1.6x with a dip under 1x every fifth sample.
    let mut s = Sim::past_grace();
    flood_and_resolve(&mut s);
    let mut opened_at = None;
    for n in 1..=20u32 {
        let pps = if n % 5 == 0 { 800.0 } else { 1600.0 };
        if s.opened(pps, 0.0) {
            opened_at = Some(n);
            break;
        }
    }
    assert_eq!(opened_at, Some(11), "the wave began at sample 1 and lasted 2 s at sample 11");
}

#[test]
fn cooldown_wave_ends_after_a_second_under() {
    let mut s = Sim::past_grace();
    flood_and_resolve(&mut s);
    for _ in 0..6 {
        assert!(!s.opened(1600.0, 0.0));
    }
    for _ in 0..5 {
        assert!(!s.opened(500.0, 0.0), "1 s under ends the wave");
    }
    for _ in 0..10 {
        assert!(!s.opened(1600.0, 0.0), "a new wave needs its own 2 s");
    }
    assert!(s.opened(1600.0, 0.0));
}

#[test]
fn cooldown_wave_over_twice_opens_as_fast_as_ever() {
    let mut s = Sim::past_grace();
    let first = flood_and_resolve(&mut s);
    s.tick(2500.0, 0.0);
    assert!(s.opened(2500.0, 0.0), "2.5x opens on confirm_ticks during the cooldown");
    assert_eq!(s.d.incident().unwrap().previous_id.as_deref(), Some(first.as_str()), "linked to the previous one");
}

#[test]
fn after_the_cooldown_one_times_opens_unlinked() {
    let mut s = Sim::past_grace();
    flood_and_resolve(&mut s);
    s.n += 50; // 10 s later the cooldown is over
    s.tick(1500.0, 0.0);
    assert!(s.opened(1500.0, 0.0));
    assert_eq!(s.d.incident().unwrap().previous_id, None);
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
    let st = s.d.step(s.t0 + TICK * 22, SystemTime::UNIX_EPOCH, None, &thr());
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
    let c = DetectConfig { baseline_window: Duration::from_secs(10), min_pps_threshold: 2000.0, ..cfg() };
    let t0 = Instant::now();
    let mut w = crate::detect::learn::Watch::new(&c, Direction::Inbound, t0, SystemTime::UNIX_EPOCH, None);
    let mut threshold_before = 0.0;
    for n in 1..=400u32 {
        let pps = if (100..300).contains(&n) { 100_000.0 } else { 1000.0 };
        let wall = SystemTime::UNIX_EPOCH + TICK * n;
        w.step(t0 + TICK * n, wall, Some(&sample(pps, 0.0)), &c);
        if n == 99 {
            threshold_before = w.thresholds().pps;
        }
    }
    assert_eq!(threshold_before, 3000.0);
    assert_eq!(w.baseline.thresholds(SystemTime::UNIX_EPOCH, &c).pps, threshold_before);
}

#[test]
fn incident_ids_are_uuid_v4() {
    let mut s = Sim::past_grace();
    assert!(s.opened(50_000.0, 0.0));
    let id = uuid::Uuid::parse_str(&s.d.incident().unwrap().id).unwrap();
    assert_eq!(id.get_version_num(), 4);
}

#[test]
fn bursts_never_two_in_a_row_open_on_their_excess() {
    // 8x the threshold for one sample in five: the consecutive rule never fires.
    let mut s = Sim::past_grace();
    let mut opened_at = None;
    for n in 1..=100u32 {
        let pps = if n % 5 == 1 { 8000.0 } else { 100.0 };
        if s.opened(pps, 0.0) {
            opened_at = Some(n);
            break;
        }
    }
    // The first sample has no interval yet; then each burst adds 7 x 0.2 s = 1.4 and the four
    // quiet samples drain 0.9 x 0.8 s = 0.72: 0.68 after the second burst, 2.08 at the third.
    assert_eq!(opened_at, Some(11), "opened at sample {opened_at:?}");
}

#[test]
fn a_lone_spike_drains_away() {
    // A 9x spike every 11 samples: +1.6, then ten quiet samples drain 1.8.
    let mut s = Sim::past_grace();
    for _ in 0..20 {
        assert!(!s.opened(9000.0, 0.0), "a 9x spike alone (+1.6) does not open");
        for _ in 0..10 {
            assert!(!s.opened(100.0, 0.0));
        }
    }
}

//! Virtual-time tests of the requests/s baseline and the incident machine (§5.4 rules).

use super::*;
use crate::input::accesslog::aggregate::Window;

struct Sim {
    d: HttpDetector,
    t0: Instant,
    w0: SystemTime,
    s: u64,
    changes: Vec<(u64, Change)>,
}

fn cfg() -> HttpDetectConfig {
    HttpDetectConfig {
        dynamic_threshold: true,
        threshold_multiplier: 3.0,
        min_rps: 200.0,
        baseline_window: Duration::from_secs(300),
        grace_period: Duration::from_secs(10),
        holddown: Duration::from_secs(10),
        cooldown: Duration::from_secs(60),
    }
}

impl Sim {
    fn new(cfg: HttpDetectConfig) -> Self {
        let t0 = Instant::now();
        Sim { d: HttpDetector::new(&cfg, t0), t0, w0: SystemTime::UNIX_EPOCH, s: 0, changes: vec![] }
    }

    /// `secs` seconds at `rps(second index)`.
    fn run(&mut self, secs: u64, rps: impl Fn(u64) -> f64) {
        let summary = Window::default().summary();
        for i in 0..secs {
            self.s += 1;
            let now = self.t0 + Duration::from_secs(self.s);
            let wall = self.w0 + Duration::from_secs(self.s);
            if let Some(c) = self.d.step(now, wall, rps(i), &summary) {
                self.changes.push((self.s, c));
            }
        }
    }

    fn opens(&self) -> Vec<(u64, &HttpIncident)> {
        self.changes
            .iter()
            .filter_map(|(s, c)| match c {
                Change::Opened(i) => Some((*s, i)),
                _ => None,
            })
            .collect()
    }

    fn resolves(&self) -> usize {
        self.changes.iter().filter(|(_, c)| matches!(c, Change::Resolved(_, false))).count()
    }

    /// Normal traffic around 100 req/s (90..110) for `secs` seconds.
    fn normal(&mut self, secs: u64) {
        self.run(secs, |i| 90.0 + (i % 21) as f64);
    }
}

#[test]
fn normal_traffic_learns_and_a_flood_opens_at_once() {
    let mut sim = Sim::new(cfg());
    sim.normal(120);
    assert!(sim.changes.is_empty());
    let normal = sim.d.threshold();
    assert!((normal - 330.0).abs() < 1.0, "threshold {normal}");
    sim.run(30, |_| 1500.0);
    let opens = sim.opens();
    assert_eq!(opens.len(), 1);
    assert_eq!(opens[0].0, 121, "opens on the first flood second");
    assert_eq!(opens[0].1.severity(), "high");
    sim.normal(20);
    assert_eq!(sim.resolves(), 1);
    assert!((sim.d.threshold() - normal).abs() / normal < 0.1, "{} vs {normal}", sim.d.threshold());
}

#[test]
fn ramp_samples_before_the_open_are_not_learned() {
    let mut sim = Sim::new(cfg());
    sim.normal(60);
    let learned = |sim: &Sim| sim.d.baseline().learned_samples();
    // Three seconds of ramp under the threshold, then the flood.
    sim.run(3, |_| 320.0);
    sim.run(20, |_| 5000.0);
    sim.normal(60);
    assert_eq!(sim.opens().len(), 1);
    assert!(sim.d.threshold() < 340.0, "the ramp was learned: {}", sim.d.threshold());
    // 60 + 60 normal seconds, minus the settle horizon, minus the hold-down: no ramp sample.
    assert!(learned(&sim) <= 120 - 10, "learned {}", learned(&sim));
}

#[test]
fn flood_right_after_a_resolve_opens_again_and_names_the_previous() {
    let mut sim = Sim::new(cfg());
    sim.normal(60);
    sim.run(10, |_| 2000.0);
    sim.normal(12);
    sim.run(5, |_| 2000.0);
    let opens = sim.opens();
    assert_eq!(opens.len(), 2, "{:?}", sim.changes);
    assert_eq!(opens[1].1.previous_incident_id.as_deref(), Some(opens[0].1.id.as_str()));
    assert!(sim.d.threshold() < 340.0);
}

#[test]
fn flood_under_twice_the_threshold_in_the_cooldown_is_not_learned() {
    let mut sim = Sim::new(cfg());
    sim.normal(60);
    let normal = sim.d.threshold();
    sim.run(10, |_| 2000.0);
    sim.normal(12); // resolved; cooldown runs
    sim.run(40, |_| 1.8 * normal); // under 2x: opens nothing
    assert_eq!(sim.opens().len(), 1);
    sim.normal(60);
    assert!((sim.d.threshold() - normal).abs() / normal < 0.1, "{} vs {normal}", sim.d.threshold());
    // After the cooldown the same level opens an incident.
    sim.run(5, |_| 1.8 * normal);
    assert_eq!(sim.opens().len(), 2);
}

#[test]
fn slow_ramp_opens_before_twice_the_starting_threshold() {
    let mut sim = Sim::new(cfg());
    sim.normal(300);
    let start = sim.d.threshold();
    // 100 -> 2000 req/s over ten minutes.
    sim.run(600, |i| 100.0 + 1900.0 * i as f64 / 600.0);
    let opens = sim.opens();
    assert!(!opens.is_empty(), "the ramp opened nothing; threshold now {}", sim.d.threshold());
    let at = opens[0].1.rps;
    assert!(at < 2.0 * start, "opened at {at} req/s, starting threshold {start}");
}

#[test]
fn starting_under_a_flood_learns_nothing_and_opens_when_grace_ends() {
    let mut sim = Sim::new(cfg());
    sim.run(30, |_| 3000.0);
    let opens = sim.opens();
    assert_eq!(opens.len(), 1);
    assert_eq!(opens[0].0, 10, "opens when the 10 s grace period ends");
    assert_eq!(sim.d.baseline().learned_samples(), 0);
    assert_eq!(opens[0].1.threshold_rps, 200.0);
}

#[test]
fn fixed_threshold_is_the_floor_and_stop_resolves() {
    let mut sim = Sim::new(HttpDetectConfig { dynamic_threshold: false, min_rps: 500.0, ..cfg() });
    sim.normal(60);
    assert_eq!(sim.d.threshold(), 500.0);
    sim.run(3, |_| 499.0);
    assert!(sim.opens().is_empty());
    sim.run(3, |_| 600.0);
    assert_eq!(sim.opens().len(), 1);
    assert!(matches!(sim.d.stop(), Some(Change::Resolved(_, true))));
    assert!(sim.d.stop().is_none());
}

#[test]
fn updates_come_every_five_seconds_while_open() {
    let mut sim = Sim::new(cfg());
    sim.normal(20);
    sim.run(21, |_| 1000.0);
    let updates = sim.changes.iter().filter(|(_, c)| matches!(c, Change::Updated(_))).count();
    assert_eq!(updates, 4);
}

#[test]
fn grace_learns_only_under_the_floor_even_when_the_threshold_is_higher() {
    let mut sim = Sim::new(HttpDetectConfig { grace_period: Duration::from_secs(30), ..cfg() });
    sim.run(10, |_| 150.0); // under the 200 floor: learned, threshold 450
    sim.run(15, |_| 400.0); // over the floor, under the threshold, still in grace: not learned
    sim.run(20, |_| 150.0);
    assert!(sim.opens().is_empty());
    assert!((sim.d.threshold() - 450.0).abs() < 1.0, "threshold {}", sim.d.threshold());
}

#[test]
fn pulse_waves_are_each_caught_and_linked_to_the_previous_pulse() {
    let mut sim = Sim::new(cfg());
    sim.normal(60);
    let normal = sim.d.threshold();
    for _ in 0..4 {
        sim.run(4, |_| 3000.0); // a 4 s pulse
        sim.normal(15); // a pause longer than the 10 s hold-down
    }
    let opens = sim.opens();
    assert_eq!(opens.len(), 4, "{:?}", sim.changes);
    assert_eq!(sim.resolves(), 4);
    for pair in opens.windows(2) {
        assert_eq!(pair[1].1.previous_incident_id.as_deref(), Some(pair[0].1.id.as_str()));
    }
    assert!((sim.d.threshold() - normal).abs() / normal < 0.1, "{} vs {normal}", sim.d.threshold());
}

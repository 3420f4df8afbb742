use super::histogram::{BINS, BIN_RATIO, HOUR_CAP};
use super::*;

fn cfg(window_s: u64) -> DetectConfig {
    DetectConfig { baseline_window: Duration::from_secs(window_s), ..DetectConfig::default() }
}

/// 2026-01-01T00:00:00Z, a whole hour.
fn day0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

#[test]
fn threshold_is_multiplier_times_p99_above_floor() {
    let c = DetectConfig { min_pps_threshold: 10.0, min_bits_per_s_threshold: 10.0, ..cfg(20) };
    let mut b = Baseline::new(&c);
    assert_eq!(b.window_len, 100);
    for i in 0..100 {
        b.observe(day0(), 1000.0 + i as f64, 8e6);
    }
    let t = b.thresholds(day0(), &c);
    assert_eq!(t.pps, 3.0 * 1098.0);
    assert_eq!(t.bits_per_s, 3.0 * 8e6);
    assert!((t.baseline_pps - 1049.5).abs() < 1e-9);
}

#[test]
fn floors_apply_and_fixed_mode_ignores_history() {
    let mut b = Baseline::new(&cfg(10));
    b.observe(day0(), 10.0, 100.0);
    let t = b.thresholds(day0(), &cfg(10));
    assert_eq!((t.pps, t.bits_per_s), (5000.0, 50_000_000.0));
    for _ in 0..50 {
        b.observe(day0(), 1e6, 1e10);
    }
    let fixed = DetectConfig { dynamic_threshold: false, ..cfg(10) };
    let t = b.thresholds(day0(), &fixed);
    assert_eq!((t.pps, t.bits_per_s), (5000.0, 50_000_000.0));
}

#[test]
fn window_rolls() {
    let mut b = Baseline::new(&cfg(1)); // 5 samples
    for _ in 0..5 {
        b.observe(day0(), 1e6, 1.0);
    }
    for _ in 0..5 {
        b.observe(day0(), 100.0, 1.0);
    }
    assert_eq!(p99(&b.pps), 100.0);
    assert!(b.ready());
}

#[test]
fn hourly_bucket_is_used_once_trusted() {
    // Quiet nights (hour 3), busy afternoons (hour 15): at 15:00 the hour's own history rules.
    let c = DetectConfig { min_pps_threshold: 0.0, ..cfg(60) };
    let mut b = Baseline::new(&c);
    let at = |h: u64, s: u64| day0() + Duration::from_secs(h * 3600 + s);
    for i in 0..9000 {
        b.observe(at(15, i % 3600), 50_000.0, 1e6);
    }
    assert!(b.hour_trusted(15) && !b.hour_trusted(3));
    // Now the flat window holds a quiet stretch.
    for i in 0..300 {
        b.observe(at(3, i), 100.0, 1e6);
    }
    let busy = b.thresholds(at(15, 10), &c).pps;
    assert!((3.0 * 50_000.0..=3.0 * 50_000.0 * BIN_RATIO).contains(&busy), "{busy}");
    // Hour 3 is not trusted yet: the flat window decides.
    assert_eq!(b.thresholds(at(3, 400), &c).pps, 300.0);
}

#[test]
fn trusted_quiet_hour_still_respects_half_the_flat_p99() {
    let c = DetectConfig { min_pps_threshold: 0.0, ..cfg(60) };
    let mut b = Baseline::new(&c);
    let at = |s: u64| day0() + Duration::from_secs(2 * 3600 + s % 3600);
    for i in 0..9000 {
        b.observe(at(i), 10.0, 1e6);
    }
    // A loud stretch at 05:00, ten windows long (growth is bounded per window), fills the flat
    // window but not the 02:00 bucket.
    for i in 0..3000 {
        b.observe(day0() + Duration::from_secs(5 * 3600 + i), 200.0, 1e6);
    }
    assert_eq!(b.thresholds(at(1), &c).pps, 3.0 * 0.5 * 200.0);
}

#[test]
fn hour_histogram_decays_and_stays_bounded() {
    let mut h = LogHist::new();
    for i in 0..(HOUR_CAP as u64 + 10) {
        h.add((i % 1000) as f64);
    }
    assert!(h.total < HOUR_CAP);
    assert!(h.bins.len() <= BINS);
    let q = h.quantile(0.5);
    assert!((450.0..=550.0).contains(&q), "{q}");
}

#[test]
fn snapshot_round_trips_and_old_ones_are_refused() {
    let c = cfg(10);
    let mut b = Baseline::new(&c);
    for i in 0..60 {
        b.observe(day0(), i as f64, 2.0 * i as f64);
    }
    let snap = Snapshot::new(day0(), &c, b.snapshot(), Baseline::new(&c).snapshot());
    let json = serde_json::to_string(&snap).unwrap();
    let back: Snapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back.usable(day0() + Duration::from_secs(3600)), Ok(()));
    let r = Baseline::restore(&c, back.inbound.as_ref().unwrap()).unwrap();
    assert_eq!(r.thresholds(day0(), &c), b.thresholds(day0(), &c));
    assert_eq!(r.total_samples, 60);
    assert_eq!(r.checkpoints, b.checkpoints, "the growth reference survives a restart");
    assert!(r.ready());
    assert_eq!(back.usable(day0() + Duration::from_secs(25 * 3600)), Err(RestoreRefused::TooOld { age_s: 25 * 3600 }));
    assert_eq!(back.usable(day0() - Duration::from_secs(10)), Err(RestoreRefused::FromTheFuture));
}

#[test]
fn version_1_snapshots_are_refused() {
    // The shape version 1 had: one direction at the top level, learned by the old rules.
    let v1 = serde_json::json!({
        "version": 1, "saved_at": 1_767_225_600u64, "sample_interval_ms": 200, "total_samples": 3,
        "window_pps": [1.0, 2.0, 3.0], "window_bits_per_s": [1.0, 2.0, 3.0], "hours": []
    });
    let snap: Snapshot = serde_json::from_value(v1).unwrap();
    let why = snap.usable(day0() + Duration::from_secs(60)).unwrap_err();
    assert_eq!(why, RestoreRefused::OldVersion(1));
    assert!(why.to_string().contains("version 1"), "{why}");
}

#[test]
fn out_of_range_snapshot_values_are_refused_not_a_panic() {
    let c = cfg(10);
    let mut snap = Snapshot::new(day0(), &c, Baseline::new(&c).snapshot(), Baseline::new(&c).snapshot());
    snap.saved_at = u64::MAX;
    assert!(snap.usable(day0()).is_err());
    let mut dir = Baseline::new(&c).snapshot();
    dir.window_pps = vec![f64::NAN];
    dir.window_bits_per_s = vec![1.0];
    assert!(matches!(Baseline::restore(&c, &dir), Err(RestoreRefused::Malformed(_))));
    dir.window_pps = vec![1.0, 2.0];
    assert!(matches!(Baseline::restore(&c, &dir), Err(RestoreRefused::Malformed(_))));
}

#[test]
fn restore_into_a_smaller_window_keeps_the_newest_samples() {
    let mut b = Baseline::new(&cfg(10));
    for i in 0..50 {
        b.observe(day0(), i as f64, 1.0);
    }
    let r = Baseline::restore(&cfg(2), &b.snapshot()).unwrap();
    assert_eq!(
        r.pps.iter().copied().collect::<Vec<_>>(),
        vec![40.0, 41.0, 42.0, 43.0, 44.0, 45.0, 46.0, 47.0, 48.0, 49.0]
    );
}

#[test]
fn p99_growth_is_bounded_per_window() {
    // 10 s window = 50 samples; floors 0 so only the growth cap limits.
    let c = DetectConfig { min_pps_threshold: 0.0, min_bits_per_s_threshold: 0.0, ..cfg(10) };
    let mut b = Baseline::new(&c);
    for _ in 0..200 {
        b.observe(day0(), 1000.0, 1e6);
    }
    assert_eq!(b.thresholds(day0(), &c).pps, 3000.0);
    // Traffic jumps to 10x and stays: the p99 may follow by at most 1.5x per window.
    let mut last = 1000.0;
    for w in 1..=4 {
        for _ in 0..50 {
            b.observe(day0(), 10_000.0, 1e7);
        }
        let p = b.thresholds(day0(), &c).pps / 3.0;
        assert!(p <= last * GROWTH * GROWTH + 1e-6, "window {w}: p99 {p} after {last}");
        assert!(p > last, "window {w}: the p99 still grows ({p})");
        last = p;
    }
    assert!(last < 10_000.0, "four windows are not enough to learn a 10x step ({last})");
    // Enough windows later the new level is learned in full.
    for _ in 0..50 * 8 {
        b.observe(day0(), 10_000.0, 1e7);
    }
    assert_eq!(b.thresholds(day0(), &c).pps, 30_000.0);
}

#[test]
fn growth_under_the_floor_is_not_limited() {
    // Floor 5000 pps, multiplier 3: a p99 up to 1.5 x 5000 / 3 = 2500 is learned at once.
    let c = cfg(10);
    let mut b = Baseline::new(&c);
    for _ in 0..60 {
        b.observe(day0(), 2400.0, 1e6);
    }
    assert_eq!(b.thresholds(day0(), &c).pps, 7200.0);
}

#[test]
fn quality_grows_with_samples() {
    let c = cfg(1);
    let mut b = Baseline::new(&c);
    assert_eq!(b.quality(day0()).baseline_quality, "learning");
    for _ in 0..5 {
        b.observe(day0(), 1.0, 1.0);
    }
    assert_eq!(b.quality(day0()).baseline_quality, "low");
    b.total_samples = 5 * 3600 * 2;
    assert_eq!(b.quality(day0()).baseline_quality, "medium");
    b.total_samples = 5 * 3600 * 25;
    assert_eq!(b.quality(day0()).baseline_quality, "high");
}

#[test]
fn restore_refuses_numbers_out_of_range_without_panicking() {
    let c = cfg(10);
    let mut b = Baseline::new(&c);
    b.observe(day0(), 10.0, 100.0);
    let good = b.snapshot();
    let far = Snapshot { saved_at: u64::MAX, ..Snapshot::new(day0(), &c, good.clone(), good.clone()) };
    assert!(far.usable(day0()).is_err());
    let mut counts = good.clone();
    counts.hours[0].pps.bins = vec![(3, u32::MAX), (4, 2)];
    assert!(Baseline::restore(&c, &counts).is_err());
    let samples = DirSnapshot { total_samples: u64::MAX, ..good.clone() };
    assert!(Baseline::restore(&c, &samples).is_err());
    assert!(Baseline::restore(&c, &good).is_ok());
}

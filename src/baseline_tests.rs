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
    // A loud stretch at 05:00 fills the flat window but not the 02:00 bucket.
    for i in 0..300 {
        b.observe(day0() + Duration::from_secs(5 * 3600 + i), 10_000.0, 1e6);
    }
    assert_eq!(b.thresholds(at(1), &c).pps, 3.0 * 0.5 * 10_000.0);
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
    let snap = b.snapshot(day0());
    let json = serde_json::to_string(&snap).unwrap();
    let back: Snapshot = serde_json::from_str(&json).unwrap();
    let r = Baseline::restore(&c, &back, day0() + Duration::from_secs(3600)).unwrap();
    assert_eq!(r.thresholds(day0(), &c), b.thresholds(day0(), &c));
    assert_eq!(r.total_samples, 60);
    assert!(r.ready());
    assert!(Baseline::restore(&c, &back, day0() + Duration::from_secs(25 * 3600)).is_none());
    assert!(Baseline::restore(&c, &back, day0() - Duration::from_secs(10)).is_none());
}

#[test]
fn restore_into_a_smaller_window_keeps_the_newest_samples() {
    let mut b = Baseline::new(&cfg(10));
    for i in 0..50 {
        b.observe(day0(), i as f64, 1.0);
    }
    let r = Baseline::restore(&cfg(2), &b.snapshot(day0()), day0()).unwrap();
    assert_eq!(
        r.pps.iter().copied().collect::<Vec<_>>(),
        vec![40.0, 41.0, 42.0, 43.0, 44.0, 45.0, 46.0, 47.0, 48.0, 49.0]
    );
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
    let good = b.snapshot(day0());
    let far = Snapshot { saved_at: u64::MAX, ..good.clone() };
    assert!(Baseline::restore(&c, &far, day0()).is_none());
    let mut counts = good.clone();
    counts.hours[0].pps.bins = vec![(3, u32::MAX), (4, 2)];
    assert!(Baseline::restore(&c, &counts, day0()).is_none());
    let samples = Snapshot { total_samples: u64::MAX, ..good.clone() };
    assert!(Baseline::restore(&c, &samples, day0()).is_none());
    assert!(Baseline::restore(&c, &good, day0()).is_some());
}

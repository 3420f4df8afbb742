//! Sampler tests against a real fake `/proc` tree written into a temp dir.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

fn write_dev(root: &Path, rows: &[(&str, u64, u64)]) {
    fs::create_dir_all(root.join("net")).unwrap();
    let mut text = String::from(
        "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n",
    );
    for (name, bytes, packets) in rows {
        text.push_str(&format!("{name:>6}: {bytes} {packets} 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"));
    }
    fs::write(root.join("net/dev"), text).unwrap();
}

fn sampler(root: &Path, iface: &str) -> Sampler {
    Sampler::new(Box::new(ProcSource::new(root)), iface)
}

#[test]
fn steady_counters_give_rates() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut s = sampler(dir.path(), "eth0");
    write_dev(dir.path(), &[("eth0", 0, 0)]);
    assert!(s.sample(t0).is_none(), "first reading has no rate");
    write_dev(dir.path(), &[("eth0", 125_000, 1000)]);
    let r = s.sample(t0 + Duration::from_millis(200)).unwrap();
    assert_eq!(r.pps, 5000.0);
    assert_eq!(r.bits_per_s, 5_000_000.0);
}

#[test]
fn counter_reset_yields_no_spike() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut s = sampler(dir.path(), "eth0");
    write_dev(dir.path(), &[("eth0", 9_000_000_000, 90_000_000)]);
    s.sample(t0);
    write_dev(dir.path(), &[("eth0", 1000, 10)]);
    assert!(s.sample(t0 + Duration::from_millis(200)).is_none());
    write_dev(dir.path(), &[("eth0", 2000, 20)]);
    let r = s.sample(t0 + Duration::from_millis(400)).unwrap();
    assert_eq!(r.pps, 50.0, "rate resumes from the post-reset reading");
    assert_eq!(s.gaps, 1);
}

#[test]
fn vanished_interface_gives_gaps_then_resumes_without_spike() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let mut s = sampler(dir.path(), "eth0");
    write_dev(dir.path(), &[("eth0", 0, 0), ("lo", 0, 0)]);
    s.sample(ms(0));
    write_dev(dir.path(), &[("lo", 10, 1)]);
    assert!(s.sample(ms(200)).is_none());
    assert!(s.sample(ms(400)).is_none());
    // Re-created with much larger counters: the first reading after return is a fresh start.
    write_dev(dir.path(), &[("eth0", 50_000_000, 400_000), ("lo", 10, 1)]);
    assert!(s.sample(ms(600)).is_none());
    write_dev(dir.path(), &[("eth0", 50_000_000, 400_100), ("lo", 10, 1)]);
    assert_eq!(s.sample(ms(800)).unwrap().pps, 500.0);
}

#[test]
fn malformed_line_does_not_cost_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut s = sampler(dir.path(), "eth0");
    write_dev(dir.path(), &[("eth0", 0, 0)]);
    s.sample(t0);
    let mut text = fs::read_to_string(dir.path().join("net/dev")).unwrap();
    text = text.replace("eth0: 0 0", "eth0: 100 10");
    text.push_str("broken: 1 2 three\n");
    fs::write(dir.path().join("net/dev"), text).unwrap();
    assert_eq!(s.sample(t0 + Duration::from_secs(1)).unwrap().pps, 10.0);
}

#[test]
fn missing_proc_tree_is_a_gap_not_a_panic() {
    let mut s = sampler(Path::new("/nonexistent-procfs-root"), "auto");
    assert!(s.sample(Instant::now()).is_none());
    assert_eq!(s.gaps, 1);
}

#[test]
fn auto_re_evaluates_when_the_interface_disappears() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut s = sampler(dir.path(), "auto");
    write_dev(dir.path(), &[("eth0", 100, 1), ("eth1", 10, 1)]);
    assert_eq!(s.resolve_interface().as_deref(), Some("eth0"));
    write_dev(dir.path(), &[("eth1", 20, 2)]);
    s.sample(t0);
    assert_eq!(s.interface(), Some("eth1"));
}

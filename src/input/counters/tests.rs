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

/// The §5.7 tables from a fake tree of verbatim 6.18 text: SYN cookies, softnet drops and UDP
/// errors become rates; softnet drops join the offered load; a table that turns malformed is a
/// gap in its own rates only, and the sample goes on.
#[test]
fn kernel_tables_give_rates_and_a_malformed_one_is_a_gap() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_dev(root, &[("eth0", 0, 0)]);
    let copy = |from: &str, to: &str| fs::copy(data.join(from), root.join(to)).unwrap();
    copy("proc-6.18/net/netstat", "net/netstat");
    copy("proc-6.18/net/softnet_stat", "net/softnet_stat");
    copy("proc-6.18/net/snmp", "net/snmp");
    copy("proc-6.18/net/snmp6", "net/snmp6");
    let t0 = Instant::now();
    let mut s = sampler(root, "eth0");
    s.sample(t0);
    write_dev(root, &[("eth0", 100, 10)]);
    copy("proc-6.18-syncookies/net/netstat", "net/netstat");
    fs::write(root.join("net/softnet_stat"), "0000002b 00000064 00000002\n00002017 00000000 00000000\n").unwrap();
    let snmp = fs::read_to_string(data.join("proc-6.18/net/snmp")).unwrap();
    let udp_values = snmp.lines().find(|l| l.starts_with("Udp: ") && !l.contains("InDatagrams")).unwrap();
    // Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors ...: 40 errors, all buffer.
    let mut v: Vec<u64> = udp_values.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
    v[2] += 40;
    v[4] += 40;
    let new_values = format!("Udp: {}", v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" "));
    fs::write(root.join("net/snmp"), snmp.replace(udp_values, &new_values)).unwrap();
    let r = s.sample(t0 + Duration::from_secs(1)).unwrap();
    assert_eq!(r.kernel.syncookies_sent_pps, Some(1643.0));
    assert_eq!(r.kernel.syn_pressure_pps(), Some(1643.0));
    assert_eq!(r.kernel.softnet_dropped_pps, Some(100.0));
    assert_eq!(r.kernel.time_squeeze_per_s, Some(2.0));
    assert_eq!((r.kernel.udp_rcvbuf_errors_pps, r.kernel.udp_in_errors_pps), (Some(40.0), Some(40.0)));
    assert_eq!(r.inbound().dropped_pps, 100.0, "softnet drops are dropped load");
    assert_eq!(r.inbound().pps, 110.0, "and offered load");
    // netstat cut mid-line, softnet garbage: gaps for those two; the sample and UDP go on.
    let cut = fs::read_to_string(root.join("net/netstat")).unwrap();
    fs::write(root.join("net/netstat"), &cut[..cut.find('\n').unwrap() + 30]).unwrap();
    fs::write(root.join("net/softnet_stat"), "not hex at all\n").unwrap();
    write_dev(root, &[("eth0", 200, 20)]);
    let r = s.sample(t0 + Duration::from_secs(2)).unwrap();
    assert_eq!(r.pps, 10.0);
    assert_eq!((r.kernel.syncookies_sent_pps, r.kernel.softnet_dropped_pps), (None, None));
    assert_eq!(r.kernel.udp_in_errors_pps, Some(0.0));
    assert_eq!(s.kernel_logged, vec!["net/netstat", "net/softnet_stat"], "one log line each");
    write_dev(root, &[("eth0", 300, 30)]);
    s.sample(t0 + Duration::from_secs(3)).unwrap();
    assert_eq!(s.kernel_logged.len(), 2, "not logged again");
}

/// Verbatim 6.18 tables around a veth flood that overflowed the per-CPU backlog: the device
/// counted the drops too, so the dropped load is the larger of the two counts, not their sum.
#[test]
fn backlog_drops_counted_twice_by_the_kernel_are_counted_once() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/proc-6.18-backlog/net");
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    fs::create_dir_all(&net).unwrap();
    let put = |from: &str, to: &str| fs::copy(data.join(from), net.join(to)).unwrap();
    put("dev.before", "dev");
    put("softnet_stat.before", "softnet_stat");
    let iface = fs::read_to_string(data.join("dev")).unwrap();
    let iface = iface.lines().find(|l| l.trim_start().starts_with("va")).unwrap().split(':').next().unwrap().trim();
    let t0 = Instant::now();
    let mut s = sampler(dir.path(), iface);
    s.sample(t0);
    put("dev", "dev");
    put("softnet_stat", "softnet_stat");
    let r = s.sample(t0 + Duration::from_secs(1)).unwrap();
    assert_eq!(r.dropped_pps, 2635.0, "the device's count");
    assert_eq!(r.kernel.softnet_dropped_pps, Some(2640.0), "the backlog's count");
    assert_eq!(r.inbound().dropped_pps, 2640.0);
    assert_eq!(r.inbound().pps, 90_921.0 + 2640.0);
}

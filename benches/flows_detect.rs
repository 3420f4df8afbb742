//! Per-address flow detector benchmarks (plain harness; figures go to BENCHMARKS.md):
//! - `memory`: 100 000 tracked addresses with both baselines filled, RSS measured (VmRSS of this
//!   process before and after, /proc/self/status): dense (391 /24s) and sparse (each address in
//!   its own /24, so 100 000 prefixes as well). Bar: ≤ 2 KiB per address.
//! - `throughput`: records/s aggregated on one core (50 000 destinations, random sources, a tick
//!   per simulated second), alone and behind the NetFlow v5 decoder (the collector's own).
//! - `spoofed`: 20 M distinct spoofed destinations into a table of 100 000: time, evictions, and
//!   the peak RSS (VmHWM) staying flat.
//!
//! `cargo bench --bench flows_detect [-- memory|throughput|spoofed]`. Exit 1 when a bar is missed.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use ftagent::config::flows::{FlowsConfig, Prefix};
use ftagent::config::DetectConfig;
use ftagent::detect::hosts::FlowDetector;
use ftagent::input::flows::{Collector, FlowRecord, FlowSource};

const T0: u64 = 1_767_225_600_000;

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok()))
        .unwrap_or(0)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn rec(src: Ipv4Addr, dst: Ipv4Addr, r: u64) -> FlowRecord {
    let udp = r.is_multiple_of(4);
    FlowRecord {
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        src_port: (r >> 8) as u16,
        dst_port: if udp { 53 } else { 443 },
        proto: if udp { 17 } else { 6 },
        tcp_flags: if udp { 0 } else { 0x18 },
        packets: 1 + (r >> 20) % 50,
        bytes: 600 * (1 + (r >> 20) % 50),
        start_ms: T0,
        end_ms: T0 + 900,
        fragment: false,
        ttl: Some(60),
        sampling_rate: 1,
        source: FlowSource::NetflowV9,
        exporter: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        family: None,
    }
}

fn cfg(networks: &[&str], max_hosts: usize) -> FlowsConfig {
    FlowsConfig {
        networks: networks.iter().map(|n| Prefix::parse(n).unwrap()).collect(),
        max_hosts,
        ..FlowsConfig::default()
    }
}

/// 100k addresses, `stride` apart (1 = dense /24s, 256 = one per /24), each with traffic in
/// both directions for 320 s so both baselines fill their window.
fn memory(stride: u32, what: &str) -> bool {
    const N: u32 = 100_000;
    let before = status_kib("VmRSS:");
    let mut d = FlowDetector::new(&DetectConfig::default(), &cfg(&["10.0.0.0/8", "11.0.0.0/8"], N as usize), T0);
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
    let outside = Ipv4Addr::new(203, 0, 113, 9);
    let mut out = Vec::new();
    let mut rng = Rng(7);
    for s in 0..320u64 {
        let now = T0 + s * 1000 + 10;
        for i in 0..N {
            // Every address gets a record every 32 s, both directions; all are tracked from the start.
            if s >= 2 && !(i as u64 + s).is_multiple_of(32) {
                continue;
            }
            let a = Ipv4Addr::from(base + i * stride);
            let r = rng.next();
            if r.is_multiple_of(2) {
                d.record(&rec(outside, a, r), now);
            } else {
                d.record(&rec(a, outside, r), now);
            }
        }
        d.tick(now + 990, &mut out);
        out.clear();
    }
    let st = d.stats();
    let after = status_kib("VmRSS:");
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / N as f64;
    println!(
        "memory/{what}: {} addresses, {} prefixes tracked: RSS {before} -> {after} KiB, {per:.0} bytes per address (bar 2048)",
        st.hosts, st.prefixes
    );
    drop(d);
    per <= 2048.0
}

/// A NetFlow v5 datagram of 30 records: random sources, destinations among `dests` in 10/8.
fn v5_datagram(rng: &mut Rng, dests: u32, seq: u32) -> Vec<u8> {
    let mut d = Vec::with_capacity(24 + 30 * 48);
    d.extend_from_slice(&5u16.to_be_bytes());
    d.extend_from_slice(&30u16.to_be_bytes());
    d.extend_from_slice(&100_000u32.to_be_bytes()); // uptime ms
    d.extend_from_slice(&1_767_225_600u32.to_be_bytes());
    d.extend_from_slice(&0u32.to_be_bytes());
    d.extend_from_slice(&seq.to_be_bytes());
    d.extend_from_slice(&[0, 0, 0, 0]);
    for _ in 0..30 {
        let r = rng.next();
        let src = Ipv4Addr::from(0xcb00_7100 | (r as u32 & 0xff));
        let dst = Ipv4Addr::from(0x0a00_0000 + ((r >> 8) as u32 % dests));
        d.extend_from_slice(&src.octets());
        d.extend_from_slice(&dst.octets());
        d.extend_from_slice(&[0; 4]); // next hop
        d.extend_from_slice(&[0; 4]); // input, output ifindex
        d.extend_from_slice(&(1 + (r >> 40) as u32 % 50).to_be_bytes());
        d.extend_from_slice(&(600 * (1 + (r >> 40) as u32 % 50)).to_be_bytes());
        d.extend_from_slice(&99_000u32.to_be_bytes()); // first
        d.extend_from_slice(&99_900u32.to_be_bytes()); // last
        d.extend_from_slice(&((r >> 16) as u16).to_be_bytes());
        d.extend_from_slice(&443u16.to_be_bytes());
        d.extend_from_slice(&[0, 0x18, 6, 0]); // pad, flags, proto, tos
        d.extend_from_slice(&[0; 8]); // as, masks, pad
    }
    d
}

fn throughput() -> bool {
    const DESTS: u32 = 50_000;
    const RECORDS: u64 = 5_000_000;
    let c = cfg(&["10.0.0.0/8"], 100_000);
    let mut rng = Rng(11);
    let recs: Vec<FlowRecord> = (0..1_000_000u32)
        .map(|_| {
            let r = rng.next();
            rec(
                Ipv4Addr::from(0xcb00_7100 | (r as u32 & 0xff)),
                Ipv4Addr::from(0x0a00_0000 + ((r >> 8) as u32 % DESTS)),
                r,
            )
        })
        .collect();
    let mut runs = Vec::new();
    for _ in 0..3 {
        let mut d = FlowDetector::new(&DetectConfig::default(), &c, T0);
        let mut out = Vec::new();
        let t = Instant::now();
        for n in 0..RECORDS {
            // One simulated second per million records (the goal rate).
            let now = T0 + 10 + n / 1000;
            d.record(&recs[(n % recs.len() as u64) as usize], now);
            if n % 1_000_000 == 999_999 {
                d.tick(T0 + (n / 1_000_000 + 1) * 1000, &mut out);
                out.clear();
            }
        }
        runs.push(RECORDS as f64 / t.elapsed().as_secs_f64());
    }
    runs.sort_by(f64::total_cmp);
    println!(
        "throughput/aggregate: {:.2} M records/s (median of 3; {DESTS} destinations, a tick per 1 M records)",
        runs[1] / 1e6
    );
    // Decode + aggregate: NetFlow v5 datagrams through the collector, records into the detector.
    let grams: Vec<Vec<u8>> = (0..10_000u32).map(|s| v5_datagram(&mut rng, DESTS, s * 30)).collect();
    let exporter = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let mut both = Vec::new();
    for _ in 0..3 {
        let mut col = Collector::new(&c);
        let mut d = FlowDetector::new(&DetectConfig::default(), &c, T0);
        let mut out = Vec::new();
        let mut n = 0u64;
        let t = Instant::now();
        for k in 0..(RECORDS / 30) {
            let now = T0 + 10 + n / 1000;
            for r in col.datagram(exporter, &grams[(k % grams.len() as u64) as usize], now) {
                d.record(r, now);
                n += 1;
            }
            if n % 1_000_000 < 30 {
                d.tick(T0 + (n / 1_000_000 + 1) * 1000, &mut out);
                out.clear();
            }
        }
        both.push(n as f64 / t.elapsed().as_secs_f64());
    }
    both.sort_by(f64::total_cmp);
    println!("throughput/netflow_v5+aggregate: {:.2} M records/s (median of 3, one core)", both[1] / 1e6);
    both[1] >= 1e6
}

fn spoofed() -> bool {
    const N: u64 = 20_000_000;
    let mut d = FlowDetector::new(&DetectConfig::default(), &cfg(&["10.0.0.0/8", "11.0.0.0/8"], 100_000), T0);
    let mut out = Vec::new();
    let mut rng = Rng(3);
    let src = Ipv4Addr::new(203, 0, 113, 9);
    let mut hwm_at_1m = 0;
    let t = Instant::now();
    for n in 0..N {
        let dst = Ipv4Addr::from(0x0a00_0000 + (n as u32 % 33_554_432));
        d.record(&rec(src, dst, rng.next()), T0 + n / 1000);
        if n % 1_000_000 == 999_999 {
            d.tick(T0 + (n / 1000) + 1000, &mut out);
            out.clear();
            if n == 999_999 {
                hwm_at_1m = status_kib("VmHWM:");
            }
        }
    }
    let st = d.stats();
    let hwm = status_kib("VmHWM:");
    println!(
        "spoofed: {N} distinct destinations in {:.1} s: {} hosts, {} prefixes tracked, {} + {} evictions, peak RSS {hwm_at_1m} KiB after 1 M, {hwm} KiB at the end",
        t.elapsed().as_secs_f64(),
        st.hosts,
        st.prefixes,
        st.host_evictions,
        st.prefix_evictions
    );
    st.hosts <= 100_000 && hwm <= hwm_at_1m + hwm_at_1m / 10
}

fn main() {
    let which: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let want = |w: &str| which.is_empty() || which.iter().any(|a| a == w);
    let mut ok = true;
    if want("memory") {
        ok &= memory(1, "dense");
        ok &= memory(256, "sparse");
    }
    if want("throughput") {
        ok &= throughput();
    }
    if want("spoofed") {
        ok &= spoofed();
    }
    if !ok {
        eprintln!("a bar was missed");
        std::process::exit(1);
    }
}

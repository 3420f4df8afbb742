//! Flow decoder throughput on one core (plain harness; figures go to BENCHMARKS.md): the
//! datagrams recorded from softflowd and pmacctd (tests/data/flows) decoded again and again
//! through [`Decoder`] (templates learned from the first datagram), every record handed to a
//! [`FlowSink`]. Bars (§12): ≥ 1 M NetFlow/IPFIX records/s and ≥ 500 k sFlow samples/s.
//!
//! To measure decoding plus aggregation, pass another sink to [`measure`] (anything that
//! implements `FlowSink`): the decode-only figures use [`CountSink`].
//!
//! `cargo bench --bench flows [-- FILTER]`. Exit 1 when a bar is missed.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ftagent::input::flows::{CountSink, Ctx, Decoder, FlowRecord, FlowSink, Summary};

fn datagrams(prefix: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/flows");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/data/flows")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{prefix}-")))
        .collect();
    names.sort();
    names.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Decode `dgs` round after round for about `dur`, records to `sink`; records per second.
pub fn measure<S: FlowSink>(dgs: &[Vec<u8>], sink: &mut S, dur: Duration) -> (f64, u64) {
    let mut d = Decoder::new();
    let mut out: Vec<FlowRecord> = Vec::with_capacity(64);
    let exporter = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut arrived = 1_800_000_000_000u64;
    let mut records = 0u64;
    let start = Instant::now();
    while start.elapsed() < dur {
        for dg in dgs {
            arrived += 1;
            let ctx = Ctx { exporter, arrived_ms: arrived, rate_override: None };
            let mut s = Summary::default();
            out.clear();
            let _ = d.decode(&ctx, dg, &mut s, &mut out);
            for r in &out {
                sink.record(r, arrived);
            }
            sink.flush();
            records += out.len() as u64;
        }
    }
    (records as f64 / start.elapsed().as_secs_f64(), records)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_default();
    let cases: &[(&str, &str, f64)] = &[
        ("netflow_v5", "softflowd-v5-synflood", 1e6),
        ("netflow_v9", "softflowd-v9-snmp-s10", 1e6),
        ("netflow_v9 (pmacct)", "pmacctd-nfprobe-v9-snmp", 1e6),
        ("ipfix", "softflowd-ipfix-dnsfrag", 1e6),
        ("ipfix (pmacct, sampled)", "pmacctd-nfprobe-ipfix-synflood-s10", 1e6),
        ("sflow", "pmacctd-sfprobe-dnsfrag-s10", 5e5),
    ];
    let mut failed = false;
    println!("flow decoding, one core, median of 5 runs of 1 s (records or samples per second)");
    for (name, prefix, bar) in cases {
        if !name.contains(filter.as_str()) {
            continue;
        }
        let dgs = datagrams(prefix);
        let mut runs = Vec::new();
        let mut total = 0;
        for _ in 0..5 {
            let mut sink = CountSink::default();
            let (rate, n) = measure(&dgs, &mut sink, Duration::from_secs(1));
            assert_eq!(sink.records, n);
            runs.push(rate);
            total += n;
        }
        let m = median(runs);
        let ok = m >= *bar;
        failed |= !ok;
        println!(
            "{name:<26} {:>12.0} /s   ({total} records from {} recorded datagrams; bar {:.0}: {})",
            m,
            dgs.len(),
            bar,
            if ok { "met" } else { "MISSED" }
        );
    }
    if failed {
        std::process::exit(1);
    }
}

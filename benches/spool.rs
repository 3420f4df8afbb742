//! Cost of the durable spool on the report worker: push (atomic write + fsync) and remove of a
//! metrics-sized item, in a temp dir on the file system that holds `TMPDIR`.
//! Run: `cargo bench --bench spool` (prints per-item figures; no assertions).

use std::time::Instant;

use ftagent::report::api::spool::{Kind, Spool};

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(&dir.path().join("spool"), 64 << 20).expect("spool");
    let body = serde_json::json!({
        "ts": "2026-11-21T23:00:00.000Z", "pps": 123456.7, "bps": 987654321.0, "avg_pps": 1000.0,
        "tcp_pct": 10.0, "udp_pct": 85.0, "icmp_pct": 5.0, "threshold": 5000.0, "samples": 50
    });
    let n = 500;
    let t = Instant::now();
    for i in 0..n {
        spool.push(Kind::Metrics, None, format!("k{i}"), body.clone()).expect("push");
    }
    let push = t.elapsed() / n;
    let t = Instant::now();
    while let Some(item) = spool.head() {
        spool.remove(item.seq);
    }
    let drain = t.elapsed() / n;
    println!("spool push (write + fsync + rename): {push:?} per item; head + remove: {drain:?} per item ({n} items)");
}

//! Access-log benchmarks (plain harness; figures go to BENCHMARKS.md):
//! - `memory`: 1 M combined-format lines from 1 M distinct client IPs through one aggregation
//!   window; peak RSS (VmHWM) must stay under 64 MiB and the distinct-client estimate within 5 %.
//!   Runs first, so the other phases' buffers do not count in the peak.
//! - `throughput`: parser + aggregation on 1 M generated combined lines (nginx's default format,
//!   realistic user agents, query strings, a flood mix of heavy and one-off clients), lines/s on
//!   one core; then the same bytes end to end through the file follower (page cache).
//!
//! `cargo bench --bench accesslog [-- memory|throughput]`. Exit 1 when a bar is missed.

use std::io::Write;
use std::time::Instant;

use ftagent::input::accesslog::aggregate::Window;
use ftagent::input::accesslog::follow::Follower;
use ftagent::input::accesslog::parse::{parse_line, Format};

const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "wrk/4.2.0",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One combined line; `ip` picks the client.
fn line(out: &mut Vec<u8>, ip: u32, rng: &mut Rng) {
    let r = rng.next();
    let path = ["/", "/index.php", "/wp-login.php", "/api/v1/search", "/static/app.js"][(r % 5) as usize];
    let status = [200, 200, 304, 404, 503][((r >> 8) % 5) as usize];
    let ua = AGENTS[((r >> 16) % AGENTS.len() as u64) as usize];
    let ip = std::net::Ipv4Addr::from(ip);
    let _ = writeln!(
        out,
        "{ip} - - [01/Dec/2026:07:50:{:02} +0000] \"GET {path}?id={} HTTP/1.1\" {status} {} \"https://example.com/\" \"{ua}\"",
        (r >> 24) % 60,
        (r >> 32) % 100_000,
        (r >> 40) % 20_000
    );
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok()))
        .unwrap_or(0)
}

fn memory() -> bool {
    let n = 1_000_000u32;
    let mut w = Window::default();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = Vec::with_capacity(256);
    for i in 0..n {
        buf.clear();
        // Spread the sources over the address space: 1 M distinct IPv4 addresses.
        line(&mut buf, i.wrapping_mul(2_654_435_761) ^ 0x0a00_0000, &mut rng);
        let l = buf.strip_suffix(b"\n").unwrap_or(&buf);
        w.add(&parse_line(Format::Combined, l).expect("generated line parses"));
    }
    let s = w.summary();
    let err = (s.distinct_clients as f64 - f64::from(n)).abs() / f64::from(n);
    let hwm = vm_hwm_kib();
    let ok = hwm < 64 * 1024 && err < 0.05;
    println!(
        "memory: {n} distinct client IPs through one window: peak RSS {:.1} MiB (bar < 64 MiB), \
         distinct estimate {} ({:.2} % off){}",
        hwm as f64 / 1024.0,
        s.distinct_clients,
        err * 100.0,
        if ok { "" } else { "  FAILED" }
    );
    ok
}

fn throughput() -> bool {
    let n = 1_000_000u32;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut data = Vec::with_capacity(n as usize * 220);
    for i in 0..n {
        // A flood mix: 60 % from 200 heavy clients, the rest one-off addresses.
        let ip =
            if rng.next() % 10 < 6 { 0x0a4d_0000 + (rng.next() % 200) as u32 } else { i.wrapping_mul(2_654_435_761) };
        line(&mut data, ip, &mut rng);
    }
    let mb = data.len() as f64 / 1e6;
    let mut best = 0f64;
    for _ in 0..3 {
        let mut w = Window::default();
        let t = Instant::now();
        let mut bad = 0u64;
        for (i, l) in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            match parse_line(Format::Combined, l) {
                Ok(r) => w.add(&r),
                Err(_) => bad += 1,
            }
            if i % 200_000 == 199_999 {
                let _ = std::hint::black_box(w.summary());
                w.reset(); // one "second" of a 200k lines/s flood
            }
        }
        assert_eq!(bad, 0);
        best = best.max(f64::from(n) / t.elapsed().as_secs_f64());
    }
    let ok = best >= 200_000.0;
    println!(
        "throughput: parse + aggregate, combined format, {n} lines ({mb:.0} MB): {:.0} lines/s on one core \
         (best of 3; bar >= 200k){}",
        best,
        if ok { "" } else { "  FAILED" }
    );
    // End to end: the same bytes appended to a file and read through the follower.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    std::fs::write(&path, b"").unwrap();
    let mut f = Follower::new(&path);
    std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&data).unwrap();
    let mut w = Window::default();
    let t = Instant::now();
    let mut lines = 0u64;
    while lines < u64::from(n) {
        let st = f.poll(&mut |l| {
            if let Ok(r) = parse_line(Format::Combined, l) {
                w.add(&r);
            }
        });
        lines += st.lines;
    }
    let e2e = lines as f64 / t.elapsed().as_secs_f64();
    println!("throughput: follower + parse + aggregate from a file (page cache): {e2e:.0} lines/s");
    ok
}

fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    let mut ok = true;
    if run("memory") {
        ok &= memory();
    }
    if run("throughput") {
        ok &= throughput();
    }
    if !ok {
        std::process::exit(1);
    }
}

//! A mutation fuzzer for the flow decoders that runs on stable Rust (no libFuzzer): seeds are the
//! datagrams recorded from real exporters in tests/data/flows, mutated (bit flips, boundary
//! values, length fields, truncation, splices, duplicated regions) and decoded through the
//! collector with its template state kept between inputs, so mutated templates meet mutated
//! data. A panic, a record count beyond what the datagram could hold, a template cache beyond its
//! caps or a record out of time order is a finding: the input is written to `fuzz-findings/` and
//! the run fails. Run with `scripts/fuzz-flows.sh MINUTES`.
//!
//! Usage: fuzz_flows DECODER SECONDS [SEED]   (DECODER: v5 | v9 | ipfix | sflow)

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ftagent::config::flows::FlowsConfig;
use ftagent::input::flows::templates::MAX_TEMPLATES_TOTAL;
use ftagent::input::flows::Collector;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn seeds(decoder: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/flows");
    let want = |name: &str| match decoder {
        "v5" => name.contains("-v5-"),
        "v9" => name.contains("-v9-"),
        "ipfix" => name.contains("-ipfix-"),
        "sflow" => name.contains("sfprobe"),
        _ => false,
    };
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/data/flows")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin") && want(&p.file_name().unwrap().to_string_lossy()))
        .collect();
    names.sort();
    names.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

const INTERESTING16: &[u16] = &[0, 1, 2, 3, 4, 0x7f, 0x80, 0xff, 0x100, 0x3fff, 0x7fff, 0x8000, 0xfffe, 0xffff];
const INTERESTING32: &[u32] = &[0, 1, 2, 4, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff, 0x10000];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    let rounds = 1 + rng.below(6);
    for _ in 0..rounds {
        let len = v.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next() as u8;
            }
            2 if len > 1 => {
                let i = rng.below(len - 1);
                let x = INTERESTING16[rng.below(INTERESTING16.len())].to_be_bytes();
                v[i..i + 2].copy_from_slice(&x);
            }
            3 if len > 3 => {
                let i = rng.below(len - 3);
                let x = INTERESTING32[rng.below(INTERESTING32.len())].to_be_bytes();
                v[i..i + 4].copy_from_slice(&x);
            }
            4 => v.truncate(rng.below(len + 1)),
            5 if len > 0 => {
                // Duplicate a region (repeated sets, samples, records).
                let a = rng.below(len);
                let b = (a + 1 + rng.below(256)).min(len);
                let at = rng.below(len + 1);
                let chunk: Vec<u8> = v[a..b].to_vec();
                v.splice(at..at, chunk);
            }
            6 => {
                // Splice the tail of another seed.
                let other = &seeds[rng.below(seeds.len())];
                let at = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                v.truncate(at);
                v.extend_from_slice(&other[from..]);
            }
            7 if len > 0 => {
                let a = rng.below(len);
                let b = (a + rng.below(64)).min(len);
                v.drain(a..b);
            }
            8 => {
                let n = rng.below(64);
                for _ in 0..n {
                    v.push(rng.next() as u8);
                }
            }
            _ if len > 0 => {
                // Arithmetic on a byte (lengths off by a little).
                let i = rng.below(len);
                v[i] = v[i].wrapping_add((rng.below(9) as u8).wrapping_sub(4));
            }
            _ => {}
        }
        v.truncate(65_535);
    }
    v
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let decoder = args.get(1).map(String::as_str).unwrap_or("v9");
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let seed: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0x9e37_79b9_7f4a_7c15);
    let corpus = seeds(decoder);
    if corpus.is_empty() {
        eprintln!("no seeds for decoder {decoder:?} (v5 | v9 | ipfix | sflow)");
        std::process::exit(2);
    }
    let mut rng = Rng(seed | 1);
    let cfg = FlowsConfig::default();
    let mut c = Collector::new(&cfg);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let (mut iters, mut records, mut errors) = (0u64, 0u64, 0u64);
    let exporters: Vec<IpAddr> = (1..=4).map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i))).collect();
    let t0 = 1_800_000_000_000u64;
    while Instant::now() < deadline {
        for _ in 0..256 {
            iters += 1;
            if iters % 20_000 == 0 {
                c = Collector::new(&cfg);
            }
            let base = &corpus[rng.below(corpus.len())];
            let input = if rng.below(8) == 0 { base.clone() } else { mutate(&mut rng, &corpus, base) };
            let from = exporters[rng.below(exporters.len())];
            let arrived = t0 + iters;
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let recs = c.datagram(from, &input, arrived);
                let n = recs.len();
                let bad = recs.iter().find(|r| r.start_ms > r.end_ms || r.end_ms > arrived || r.sampling_rate == 0);
                (n, bad.map(|r| format!("{r:?}")))
            }));
            let problem = match result {
                Err(_) => Some("panic".to_string()),
                Ok((n, _)) if n > input.len() / 8 + 1 => Some(format!("{n} records from {} bytes", input.len())),
                Ok((_, Some(r))) => Some(format!("record out of order: {r}")),
                Ok((n, None)) => {
                    records += n as u64;
                    None
                }
            };
            let problem = problem.or_else(|| {
                (c.decoder().templates.len() > MAX_TEMPLATES_TOTAL).then(|| "template cache over its cap".to_string())
            });
            if let Some(p) = problem {
                let dir = PathBuf::from("fuzz-findings");
                let _ = std::fs::create_dir_all(&dir);
                let path = dir.join(format!("{decoder}-{iters}.bin"));
                let _ = std::fs::write(&path, &input);
                eprintln!("FINDING in {decoder} after {iters} inputs: {p}; input written to {}", path.display());
                std::process::exit(1);
            }
        }
        errors = c.exporters().iter().map(|e| e.parse_errors).sum::<u64>();
    }
    let el = start.elapsed().as_secs_f64();
    println!(
        "fuzz {decoder}: {iters} inputs in {el:.0} s ({:.0}/s), {records} records decoded, {errors} parse errors counted (last collector), no finding",
        iters as f64 / el
    );
}

//! A fake `/proc` tree whose `net/dev` counters advance at a rate the test sets, rewritten
//! atomically every 20 ms by a feeder thread. The agent reads it with its real reader
//! (`procfs_root`), so incidents happen without root or real traffic.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const IFACE: &str = "fteth0";

pub struct FakeProc {
    pub root: PathBuf,
    pps: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeProc {
    /// Start under `dir` at `pps` packets/s (100 bytes each).
    pub fn start(dir: &Path, pps: u64) -> Self {
        let root = dir.join("proc");
        std::fs::create_dir_all(root.join("net")).unwrap();
        let rate = Arc::new(AtomicU64::new(pps));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, net) = (rate.clone(), stop.clone(), root.join("net"));
        write_dev(&net, 1_000, 100_000);
        let thread = std::thread::spawn(move || {
            let mut packets = 1_000f64;
            let mut last = Instant::now();
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
                let now = Instant::now();
                packets += r.load(Ordering::SeqCst) as f64 * (now - last).as_secs_f64();
                last = now;
                write_dev(&net, packets as u64, packets as u64 * 100);
            }
        });
        FakeProc { root, pps: rate, stop, thread: Some(thread) }
    }

    pub fn set_pps(&self, pps: u64) {
        self.pps.store(pps, Ordering::SeqCst);
    }
}

fn write_dev(net: &Path, packets: u64, bytes: u64) {
    let text = format!(
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
         lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n{IFACE}: {bytes} {packets} 0 0 0 0 0 0 5000 50 0 0 0 0 0 0\n"
    );
    let tmp = net.join(".dev.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, net.join("dev")).unwrap();
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Config keys for a fast agent on the fake tree: fixed 1000 pps threshold, 100 ms samples,
/// no grace period, heartbeats and metrics every second.
pub fn agent_config(fake: &FakeProc) -> serde_json::Value {
    serde_json::json!({
        "procfs_root": fake.root,
        "interface": IFACE,
        "sample_interval_ms": 100,
        "grace_period_s": 0,
        "dynamic_threshold": false,
        "min_pps_threshold": 1000,
        "min_bps_threshold": 1_000_000_000_000u64,
        "confirm_ticks": 2,
        "holddown_ticks": 5,
        "cooldown_s": 0,
        "heartbeat_interval": 1,
        "metrics_interval": 1,
    })
}

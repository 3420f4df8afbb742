//! A fake `/proc/net` tree whose counters advance at a chosen rate, rewritten atomically every
//! 20 ms so the agent always reads a whole file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct FakeProc {
    pub root: PathBuf,
    /// Packets per second on eth0.
    pub pps: Arc<AtomicU64>,
    /// Of which UDP to a closed port (counted by the kernel as Udp NoPorts).
    pub udp_pps: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
}

fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write fake proc");
    std::fs::rename(&tmp, path).expect("rename fake proc");
}

impl FakeProc {
    pub fn start(root: PathBuf, pps: u64) -> Self {
        std::fs::create_dir_all(root.join("net")).unwrap();
        let pps = Arc::new(AtomicU64::new(pps));
        let udp_pps = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, p, u, s) = (root.clone(), pps.clone(), udp_pps.clone(), stop.clone());
        let writer = std::thread::spawn(move || {
            let (mut packets, mut udp, mut tcp) = (0f64, 0f64, 0f64);
            let mut last = Instant::now();
            while !s.load(Ordering::Relaxed) {
                let now = Instant::now();
                let dt = now.duration_since(last).as_secs_f64();
                last = now;
                let (rate, udp_rate) = (p.load(Ordering::Relaxed) as f64, u.load(Ordering::Relaxed) as f64);
                packets += rate * dt;
                udp += udp_rate * dt;
                tcp += (rate - udp_rate).max(0.0) * dt;
                let (pk, by) = (packets as u64, packets as u64 * 90);
                write_atomic(
                    &r.join("net/dev"),
                    &format!(
                        "Inter-|   Receive                                                |  Transmit\n \
                         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                         lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n  \
                         eth0: {by} {pk}    0    0    0     0          0         0   {by} {pk}    0    0    0     0       0          0\n"
                    ),
                );
                write_atomic(
                    &r.join("net/snmp"),
                    &format!(
                        "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs\n\
                         Tcp: 1 200 120000 -1 0 0 0 0 0 {} 0\n\
                         Udp: InDatagrams NoPorts InErrors OutDatagrams\nUdp: 0 {} 0 0\n",
                        tcp as u64, udp as u64
                    ),
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        FakeProc { root, pps, udp_pps, stop, writer: Some(writer) }
    }

    pub fn set(&self, pps: u64, udp_pps: u64) {
        self.pps.store(pps, Ordering::Relaxed);
        self.udp_pps.store(udp_pps, Ordering::Relaxed);
    }
}

impl Drop for FakeProc {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl std::fmt::Debug for FakeProc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FakeProc({})", self.root.display())
    }
}

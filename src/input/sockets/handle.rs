//! The census thread: one dump at most once a second, the latest handed over as an
//! `Arc<Census>`. The sampling thread only clones an `Arc` under a lock held for that clone, so
//! a slow dump (a million sockets, a stalled netlink socket) never delays a tick.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Census, CensusReader, DEFAULT_CAP};

/// The shortest time between two dumps (§5.7).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// How the census runs.
#[derive(Debug, Clone)]
pub struct CensusOptions {
    /// Where `net/tcp{,6}` are read from when netlink is refused.
    pub procfs_root: PathBuf,
    /// Sockets read per dump at most.
    pub cap: usize,
    /// Time between dumps; never under [`MIN_INTERVAL`].
    pub interval: Duration,
    /// Try netlink `sock_diag` first (false: `/proc` only).
    pub netlink: bool,
}

impl Default for CensusOptions {
    fn default() -> Self {
        CensusOptions { procfs_root: "/proc".into(), cap: DEFAULT_CAP, interval: MIN_INTERVAL, netlink: true }
    }
}

type Slot = Arc<Mutex<Option<Arc<Census>>>>;

/// The running census: [`latest`](CensusHandle::latest) is the newest dump; dropping the handle
/// (or [`stop`](CensusHandle::stop)) ends the thread.
pub struct CensusHandle {
    latest: Slot,
    dumps: Arc<AtomicU64>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl CensusHandle {
    /// Start the thread; its first dump is taken at once.
    pub fn start(opts: CensusOptions) -> crate::Result<CensusHandle> {
        let reader = if opts.netlink {
            CensusReader::new(&opts.procfs_root, opts.cap)
        } else {
            CensusReader::proc_only(&opts.procfs_root, opts.cap)
        };
        let latest: Slot = Arc::default();
        let dumps = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        let interval = opts.interval.max(MIN_INTERVAL);
        let (slot, count) = (latest.clone(), dumps.clone());
        let thread = std::thread::Builder::new()
            .name("census".into())
            .spawn(move || run(reader, interval, &slot, &count, &rx))
            .map_err(|source| crate::Error::Thread { what: "socket census", source })?;
        Ok(CensusHandle { latest, dumps, stop: Some(tx), thread: Some(thread) })
    }

    /// The newest census, None before the first dump or when no source can be read.
    pub fn latest(&self) -> Option<Arc<Census>> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Dumps taken so far (for tests and the heartbeat).
    pub fn dumps(&self) -> u64 {
        self.dumps.load(Ordering::Relaxed)
    }

    /// End the thread, waiting at most 2 s (a dump in progress finishes first).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            crate::util::join::join_within(t, Duration::from_secs(2));
        }
    }
}

impl Drop for CensusHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(mut reader: CensusReader, interval: Duration, slot: &Slot, dumps: &AtomicU64, stop: &mpsc::Receiver<()>) {
    let mut next = Instant::now();
    loop {
        if let Some(c) = reader.take() {
            let c = Arc::new(c);
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
            dumps.fetch_add(1, Ordering::Relaxed);
        }
        // A fixed schedule: a slow dump shortens the wait, never adds a second dump.
        next += interval;
        let now = Instant::now();
        if next < now {
            next = now + interval;
        }
        match stop.recv_timeout(next - now) {
            Err(RecvTimeoutError::Timeout) => continue,
            _ => return,
        }
    }
}

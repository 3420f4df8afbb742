//! The census thread: one dump at most once a second, the latest handed over as an
//! `Arc<Census>`. The sampling thread only clones an `Arc` under a lock held for that clone, so
//! a slow dump (a million sockets, a stalled netlink socket) never delays a tick.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Census, CensusReader, DEFAULT_CAP};

/// The shortest time between two dumps (§5.7).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// How long one [`CensusHandle::wake`] keeps the census at its busy cadence.
pub const BUSY_HOLD: Duration = Duration::from_secs(10);

/// How the census runs.
#[derive(Debug, Clone)]
pub struct CensusOptions {
    /// Where `net/tcp{,6}` are read from when netlink is refused.
    pub procfs_root: PathBuf,
    /// Sockets read per dump at most.
    pub cap: usize,
    /// Time between dumps while woken ([`CensusHandle::wake`]); never under [`MIN_INTERVAL`].
    pub interval: Duration,
    /// Time between dumps otherwise. A dump walks the kernel's whole TCP hash table (262,144
    /// buckets on a 24 GiB host, ~2.5 ms of CPU for the two families), so an idle host is
    /// counted seldom and a busy one every `interval`.
    pub idle_interval: Duration,
    /// Try netlink `sock_diag` first (false: `/proc` only).
    pub netlink: bool,
}

impl Default for CensusOptions {
    fn default() -> Self {
        CensusOptions {
            procfs_root: "/proc".into(),
            cap: DEFAULT_CAP,
            interval: MIN_INTERVAL,
            idle_interval: Duration::from_secs(10),
            netlink: true,
        }
    }
}

type Slot = Arc<Mutex<Option<Arc<Census>>>>;

/// The running census: [`latest`](CensusHandle::latest) is the newest dump; dropping the handle
/// (or [`stop`](CensusHandle::stop)) ends the thread.
pub struct CensusHandle {
    latest: Slot,
    dumps: Arc<AtomicU64>,
    /// Wake-ups for the thread; dropping it stops the thread.
    stop: Option<mpsc::Sender<()>>,
    /// A wake-up is on its way (so a tick sends at most one).
    woken: Arc<AtomicBool>,
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
        let idle = opts.idle_interval.max(interval);
        let woken = Arc::new(AtomicBool::new(false));
        let (slot, count, flag) = (latest.clone(), dumps.clone(), woken.clone());
        let thread = std::thread::Builder::new()
            .name("census".into())
            .spawn(move || run(reader, (interval, idle), &slot, &count, &flag, &rx))
            .map_err(|source| crate::Error::Thread { what: "socket census", source })?;
        Ok(CensusHandle { latest, dumps, stop: Some(tx), woken, thread: Some(thread) })
    }

    /// Something is up (TCP traffic, an incident): dump every `interval` for the next
    /// [`BUSY_HOLD`], the first as soon as `interval` has passed since the last. Never blocks.
    pub fn wake(&self) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            if let Some(tx) = &self.stop {
                let _ = tx.send(());
            }
        }
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

fn run(
    mut reader: CensusReader,
    (interval, idle): (Duration, Duration),
    slot: &Slot,
    dumps: &AtomicU64,
    woken: &AtomicBool,
    wake: &mpsc::Receiver<()>,
) {
    let mut busy_until: Option<Instant> = None;
    loop {
        let last = Instant::now();
        if let Some(c) = reader.take() {
            let c = Arc::new(c);
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
            dumps.fetch_add(1, Ordering::Relaxed);
        }
        // Wait for the next dump: `interval` after this one while busy, `idle` otherwise; a
        // wake-up makes it busy (never sooner than `interval` after the last dump).
        loop {
            let now = Instant::now();
            let busy = busy_until.is_some_and(|b| now < b);
            let due = last + if busy { interval } else { idle };
            if now >= due {
                break;
            }
            match wake.recv_timeout(due - now) {
                Ok(()) => {
                    woken.store(false, Ordering::Release);
                    busy_until = Some(Instant::now() + BUSY_HOLD);
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

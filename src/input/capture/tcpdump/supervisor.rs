//! The tcpdump supervisor thread: keeps the ring child running (restart with backoff, the
//! reason logged), prunes the ring to its newest files, applies retention and the disk cap, and
//! runs the incident capture and its merge when the sampling thread asks.
//!
//! It is the only owner of the children; the sampling thread only sends it [`Cmd`]s and reads
//! [`Shared`], so it never waits on a child or on the disk.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use log::{info, warn};

use super::analysis::Analysis;
use super::child::Child;
use super::incident::Incident;
use super::ring;
use super::setup::Setup;
use crate::event::Classification;

/// How often the supervisor wakes up when nothing is asked of it: also how stale the ring's
/// classification may be when an incident opens.
const POLL: Duration = Duration::from_millis(50);
/// Retention and disk cap are checked this often, and whenever tcpdump starts a new ring file
/// (every `-C` size at most), so the directory outgrows the cap by about one ring file.
const RETENTION_EVERY: Duration = Duration::from_secs(1);
/// tcpdump is asked for its drop counters this often.
const STATS_EVERY: Duration = Duration::from_secs(10);

/// What the sampling thread asks for.
#[derive(Debug)]
pub enum Cmd {
    Open {
        id: String,
        wall: SystemTime,
    },
    Resolve {
        id: String,
        file: PathBuf,
    },
    /// New options from the API: the compiled IOC matcher, and whether evidence files are kept.
    Options {
        ioc: Option<Arc<crate::input::capture::IocMatcher>>,
        pcap_enabled: bool,
    },
}

/// State the sampling thread reads without waiting.
#[derive(Debug, Default)]
pub struct Shared {
    pub active: AtomicBool,
    pub dropped: AtomicU64,
    pub classification: Mutex<Option<Classification>>,
}

/// Restart delays: 1 s doubling to 60 s; back to 1 s once a child has run for a minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_secs(1);
    pub const CAP: Duration = Duration::from_secs(60);

    pub fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    /// The delay before the next start, given how long the child that just ended ran.
    pub fn after_exit(&mut self, ran: Duration) -> Duration {
        if ran >= Self::CAP {
            self.next = Self::FIRST;
        }
        let d = self.next;
        self.next = (self.next * 2).min(Self::CAP);
        d
    }
}

pub struct Supervisor {
    setup: Setup,
    shared: Arc<Shared>,
    ring: Option<Child>,
    backoff: Backoff,
    restart_at: Option<Instant>,
    /// Drops reported by children that have since ended.
    dropped_before: u64,
    incident: Option<Incident>,
    next_retention: Instant,
    next_stats: Instant,
    merges: Vec<std::thread::JoinHandle<()>>,
    analysis: Analysis,
    /// The newest ring file at the last retention pass.
    retained_at: Option<PathBuf>,
    /// `pcap_enabled`: false keeps the analysis but merges no evidence file at resolve.
    evidence: bool,
}

impl Supervisor {
    /// `ring` is the child already started (and probed) by the caller.
    pub fn new(setup: Setup, shared: Arc<Shared>, ring: Child, analysis: Analysis) -> Self {
        shared.active.store(true, Ordering::Relaxed);
        let now = Instant::now();
        Supervisor {
            setup,
            shared,
            ring: Some(ring),
            backoff: Backoff::new(),
            restart_at: None,
            dropped_before: 0,
            incident: None,
            next_retention: now,
            next_stats: now + STATS_EVERY,
            merges: Vec::new(),
            analysis,
            retained_at: None,
            evidence: true,
        }
    }

    /// Serve until the sender is dropped, then stop the children and finish a pending merge.
    pub fn run(mut self, rx: Receiver<Cmd>) {
        loop {
            match rx.recv_timeout(POLL) {
                Ok(cmd) => self.handle(cmd),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.housekeeping(Instant::now());
        }
        if let Some(mut c) = self.ring.take() {
            c.stop(Duration::from_secs(2));
        }
        if let Some(inc) = self.incident.take() {
            inc.abandon();
        }
        self.shared.active.store(false, Ordering::Relaxed);
        // The owner bounds how long it waits for this thread, so merges may finish here.
        for h in self.merges.drain(..) {
            let _ = h.join();
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Open { id, wall } => {
                if let Some(old) = self.incident.take() {
                    old.abandon();
                }
                let ring_files = ring::ring_files(&self.setup.ring_dir());
                self.incident = Incident::open(&self.setup, &id, wall, &ring_files);
                if let Some(inc) = &self.incident {
                    self.analysis.open(inc.capture_file());
                }
            }
            Cmd::Options { ioc, pcap_enabled } => {
                self.analysis.set_ioc(ioc);
                self.evidence = pcap_enabled;
            }
            Cmd::Resolve { id, file } => match self.incident.take() {
                Some(inc) if inc.id() == id => {
                    self.analysis.resolve(&ring::ring_files(&self.setup.ring_dir()));
                    self.publish(None);
                    if !self.evidence {
                        info!("incident {id}: \"pcap_enabled\" is off; no evidence file kept");
                        inc.abandon();
                        return;
                    }
                    self.merges.retain(|h| !h.is_finished());
                    self.merges.extend(inc.resolve(&self.setup, &file));
                }
                other => {
                    warn!("incident {id}: no capture was running for it; no evidence file written");
                    self.incident = other;
                }
            },
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        self.supervise_ring(now);
        if let Some(inc) = self.incident.as_mut() {
            inc.poll();
        }
        let files = ring::ring_files(&self.setup.ring_dir());
        let read = self.analysis.poll_ring(&files) | self.analysis.poll_incident();
        let rotate = Duration::from_secs(super::command::RING_ROTATE_S.into());
        ring::remove(ring::prune_ring(&files, ring::ring_keep(&files, rotate, SystemTime::now())), "ring");
        if now >= self.next_retention || files.last() != self.retained_at.as_ref() {
            self.next_retention = now + RETENTION_EVERY;
            self.retained_at = files.last().cloned();
            self.retention(files.last().map(PathBuf::as_path));
        }
        if now >= self.next_stats {
            self.next_stats = now + STATS_EVERY;
            if let Some(c) = &self.ring {
                c.request_stats();
            }
        }
        let current = self.ring.as_ref().map(Child::dropped).unwrap_or(0);
        self.shared.dropped.store(self.dropped_before + current, Ordering::Relaxed);
        if read {
            let c = self.analysis.classification();
            self.publish(c);
        }
    }

    /// Hand a classification to the sampling thread, with the kernel drops as evidence.
    fn publish(&self, class: Option<Classification>) {
        let class = class.map(|mut c| {
            c.evidence.insert("dropped_packets".into(), self.shared.dropped.load(Ordering::Relaxed).into());
            c
        });
        if let Ok(mut slot) = self.shared.classification.lock() {
            *slot = class;
        }
    }

    fn supervise_ring(&mut self, now: Instant) {
        if let Some(c) = self.ring.as_mut() {
            let Some(reason) = c.exit_reason() else { return };
            let ran = c.uptime();
            self.dropped_before += c.dropped();
            self.ring = None;
            self.shared.active.store(false, Ordering::Relaxed);
            let delay = self.backoff.after_exit(ran);
            warn!(
                "tcpdump ring capture ended after {:.1} s ({reason}); restarting in {} s",
                ran.as_secs_f64(),
                delay.as_secs()
            );
            self.restart_at = Some(now + delay);
        }
        if self.restart_at.is_some_and(|t| now >= t) {
            self.restart_at = None;
            let args = self.setup.spec.ring_args(&self.setup.ring_dir());
            match Child::spawn(&self.setup.tools.tcpdump, &args, "ring") {
                Ok(c) => {
                    info!("tcpdump ring capture restarted (pid {})", c.pid());
                    self.shared.active.store(true, Ordering::Relaxed);
                    self.ring = Some(c);
                }
                Err(e) => {
                    let delay = self.backoff.after_exit(Duration::ZERO);
                    warn!("cannot start tcpdump: {e}; retrying in {} s", delay.as_secs());
                    self.restart_at = Some(now + delay);
                }
            }
        }
    }

    fn retention(&self, current_ring: Option<&Path>) {
        let work = self.setup.work_dir();
        let in_use = |p: &Path| p.starts_with(&work) || Some(p) == current_ring;
        let files = ring::scan(&self.setup.pcap_dir, &in_use);
        let r = &self.setup.retention;
        let doomed = crate::input::capture::evidence::over_limits(&files, SystemTime::now(), r.max_age, r.max_bytes);
        ring::remove(&doomed, "pcap_retention_days / pcap_max_disk_mb");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_and_resets_after_a_long_run() {
        let mut b = Backoff::new();
        let quick = Duration::from_millis(10);
        let delays: Vec<u64> = (0..8).map(|_| b.after_exit(quick).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.after_exit(Duration::from_secs(600)), Backoff::FIRST);
        assert_eq!(b.after_exit(quick), Duration::from_secs(2));
    }
}

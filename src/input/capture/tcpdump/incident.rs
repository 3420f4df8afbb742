//! One incident in tcpdump mode: at open a dedicated capture (at most `pcap_max_packets`) into a
//! private work directory, and the ring files of that moment pinned there by hard links so
//! pruning cannot take the pre-attack context away; at resolve the capture is stopped and the
//! merge into `<pcap_dir>/<incident_id>_<UTC>.pcap` runs on its own thread.
//!
//! Called only from the supervisor thread.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use log::{info, warn};

use super::child::Child;
use super::merge;
use super::setup::Setup;

pub struct Incident {
    id: String,
    dir: PathBuf,
    /// Ring files as they were at open, oldest first (hard links inside `dir`).
    pinned: Vec<PathBuf>,
    capture: Option<Child>,
    file: PathBuf,
    opened: SystemTime,
}

impl Incident {
    /// Start the capture and pin the ring. None (logged) when nothing could be started.
    pub fn open(setup: &Setup, id: &str, wall: SystemTime, ring_files: &[PathBuf]) -> Option<Incident> {
        let dir = setup.work_dir().join(id);
        if let Err(e) = crate::util::fs::ensure_private_dir(&dir) {
            warn!("incident {id}: no capture: {e}");
            return None;
        }
        let file = dir.join("incident.pcap");
        let args = setup.spec.incident_args(&file, setup.max_packets);
        let capture = match Child::spawn(&setup.tools.tcpdump, &args, "incident") {
            Ok(c) => Some(c),
            Err(e) => {
                warn!("incident {id}: cannot start tcpdump: {e}; only ring files will be kept");
                None
            }
        };
        let mut pinned = Vec::new();
        for f in pin_within(ring_files, setup.retention.max_bytes / 2) {
            let Some(name) = f.file_name() else { continue };
            let link = dir.join(name);
            match fs::hard_link(f, &link) {
                Ok(()) => pinned.push(link),
                Err(e) => warn!("incident {id}: cannot keep ring file {}: {e}", f.display()),
            }
        }
        info!(
            "incident {id}: capture started (up to {} packets), {} ring file(s) kept",
            setup.max_packets,
            pinned.len()
        );
        Some(Incident { id: id.to_string(), dir, pinned, capture, file, opened: wall })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The dedicated capture's file (growing while the incident lasts).
    pub fn capture_file(&self) -> &Path {
        &self.file
    }

    /// The pinned ring files, oldest first.
    pub fn pinned(&self) -> &[PathBuf] {
        &self.pinned
    }

    /// Notice a capture that ended by itself (`-c` reached, or a failure) and say so once.
    pub fn poll(&mut self) {
        let Some(c) = self.capture.as_mut() else { return };
        if let Some(reason) = c.exit_reason() {
            info!("incident {}: capture finished ({reason})", self.id);
            self.capture = None;
        }
    }

    /// Stop the capture and merge ring + capture into `dest` on a new thread.
    pub fn resolve(mut self, setup: &Setup, dest: &Path) -> Option<JoinHandle<()>> {
        if let Some(mut c) = self.capture.take() {
            c.stop(Duration::from_secs(2));
        }
        let job = merge::Job {
            ring: std::mem::take(&mut self.pinned),
            capture: self.file.clone(),
            dest: dest.to_path_buf(),
            mergecap: setup.tools.mergecap.clone(),
            work: self.dir.clone(),
            opened_ns: self.opened.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0),
        };
        let id = self.id.clone();
        let spawned = std::thread::Builder::new().name("tcpdump-merge".into()).spawn(move || match job.run() {
            Ok(()) => info!("incident {id}: evidence file {}", job.dest.display()),
            Err(e) => warn!("incident {id}: no evidence file: {e}"),
        });
        match spawned {
            Ok(h) => Some(h),
            Err(e) => {
                warn!("incident {}: cannot start the merge: {e}", self.id);
                None
            }
        }
    }

    /// Stop the capture and delete the work files (agent stopping with no resolve, or superseded).
    pub fn abandon(mut self) {
        if let Some(mut c) = self.capture.take() {
            c.stop(Duration::from_secs(2));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The newest ring files whose sizes add up to at most `budget` bytes (at least the newest),
/// oldest first: pinned files cannot be deleted, so they must leave room under the disk cap.
fn pin_within(ring_files: &[PathBuf], budget: u64) -> &[PathBuf] {
    let mut total = 0u64;
    let mut first = ring_files.len();
    for (i, f) in ring_files.iter().enumerate().rev() {
        total = total.saturating_add(fs::metadata(f).map(|m| m.len()).unwrap_or(0));
        if total > budget && i + 1 < ring_files.len() {
            break;
        }
        first = i;
    }
    &ring_files[first..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_only_the_newest_ring_files_that_fit_the_budget() {
        let d = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..4).map(|i| d.path().join(format!("ring_20261121T2230{i}0.pcap"))).collect();
        for f in &files {
            fs::write(f, [0u8; 100]).unwrap();
        }
        assert_eq!(pin_within(&files, 250), &files[2..]);
        assert_eq!(pin_within(&files, 10_000), &files[..]);
        assert_eq!(pin_within(&files, 10), &files[3..], "the newest one always");
        assert!(pin_within(&[], 10).is_empty());
    }
}

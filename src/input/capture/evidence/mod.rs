//! Incident PCAP files (§7.5): `<pcap_dir>/<incident_id>_<UTC yyyymmddThhmmssZ>.pcap`, written
//! by a writer thread so neither the capture thread nor the sampling thread waits on disk;
//! directory 0700, files 0600.
//!
//! Also the one retention policy of both capture modes (§7.5): [`retention`] reads the settings
//! (`pcap_retention_days` 0 = no age limit), [`over_limits`] picks the files to delete; the
//! tcpdump mode's supervisor uses both for its ring and incident files.
//!
//! The capture side only sends messages: control messages always go through, packets are
//! dropped (and counted) when more than [`MAX_IN_FLIGHT`] wait for the disk.

use std::fs::{self, File, OpenOptions};
use std::io::BufWriter;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use log::{info, warn};

use crate::input::capture::inprocess::ring::RingPacket;
use crate::input::capture::pcapfile::PcapWriter;
use crate::util::fs as fsutil;

/// Packets queued for the writer beyond which new ones are dropped.
pub const MAX_IN_FLIGHT: usize = 8192;

/// Where and how capture files are kept.
#[derive(Debug, Clone)]
pub struct Retention {
    pub dir: PathBuf,
    /// None = no age limit (`pcap_retention_days: 0`).
    pub max_age: Option<Duration>,
    /// `pcap_max_disk_mb` over every capture file, those being written included.
    pub max_bytes: u64,
}

/// The retention the settings ask for, in either capture mode.
pub fn retention(settings: &crate::config::Settings) -> Retention {
    let days = u64::from(settings.pcap_retention_days);
    Retention {
        dir: settings.pcap_dir.clone(),
        max_age: (days > 0).then(|| Duration::from_secs(days * 86_400)),
        max_bytes: settings.pcap_max_disk_mb.saturating_mul(1 << 20),
    }
}

/// One capture file as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub path: PathBuf,
    pub modified: SystemTime,
    pub bytes: u64,
    /// Still being written (the current ring file, an open incident's files): counted, never deleted.
    pub in_use: bool,
}

/// The files to delete: those older than `max_age` (None = no age limit), then oldest first
/// until the total of every file, those in use included, is under `max_bytes`.
pub fn over_limits(files: &[FileInfo], now: SystemTime, max_age: Option<Duration>, max_bytes: u64) -> Vec<PathBuf> {
    let mut sorted: Vec<&FileInfo> = files.iter().collect();
    sorted.sort_by_key(|f| f.modified);
    let mut total: u64 = files.iter().map(|f| f.bytes).sum();
    let mut out = Vec::new();
    for f in sorted.into_iter().filter(|f| !f.in_use) {
        let too_old = max_age.is_some_and(|age| now.duration_since(f.modified).is_ok_and(|d| d > age));
        if too_old || total > max_bytes {
            total = total.saturating_sub(f.bytes);
            out.push(f.path.clone());
        }
    }
    out
}

enum Msg {
    Start { path: PathBuf, linktype: u32, snaplen: u32, ring: Vec<RingPacket> },
    Packet(RingPacket),
    Finish,
}

/// The capture side's handle to the writer thread.
pub struct EvidenceWriter {
    tx: Option<Sender<Msg>>,
    in_flight: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
    /// Packets not written because the writer fell behind.
    pub dropped: u64,
}

/// `<dir>/<incident_id>_<UTC yyyymmddThhmmssZ>.pcap`.
pub fn incident_path(dir: &Path, incident_id: &str, wall: SystemTime) -> PathBuf {
    let ts = humantime::format_rfc3339_seconds(wall).to_string(); // 2026-11-21T22:27:20Z
    let compact: String = ts.chars().filter(|c| *c != '-' && *c != ':').collect();
    dir.join(format!("{incident_id}_{compact}.pcap"))
}

impl EvidenceWriter {
    /// Start the writer thread; applies retention once at start.
    pub fn spawn(retention: Retention) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let counter = in_flight.clone();
        let thread = std::thread::Builder::new().name("ftagent-pcap".into()).spawn(move || {
            apply_retention(&retention, SystemTime::now());
            let mut file: Option<(PathBuf, PcapWriter<BufWriter<File>>)> = None;
            for msg in rx {
                match msg {
                    Msg::Start { path, linktype, snaplen, ring } => {
                        finish(file.take(), &retention);
                        file = open(&retention.dir, &path, linktype, snaplen);
                        if let Some((_, w)) = file.as_mut() {
                            for p in &ring {
                                let _ = w.write(p.ts_ns, p.wire_len, &p.data);
                            }
                        }
                    }
                    Msg::Packet(p) => {
                        counter.fetch_sub(1, Ordering::Relaxed);
                        if let Some((path, w)) = file.as_mut() {
                            if let Err(e) = w.write(p.ts_ns, p.wire_len, &p.data) {
                                warn!("{}: cannot write incident capture: {e}", path.display());
                                file = None;
                            }
                        }
                    }
                    Msg::Finish => finish(file.take(), &retention),
                }
            }
            finish(file.take(), &retention);
        })?;
        Ok(EvidenceWriter { tx: Some(tx), in_flight, thread: Some(thread), dropped: 0 })
    }

    /// Begin an incident file with the pre-attack ring.
    pub fn start(&self, path: PathBuf, linktype: u32, snaplen: u32, ring: Vec<RingPacket>) {
        self.send(Msg::Start { path, linktype, snaplen, ring });
    }

    /// Queue one incident packet unless the writer is too far behind.
    pub fn packet(&mut self, ts_ns: u64, wire_len: u32, data: &[u8]) {
        if self.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            self.dropped += 1;
            return;
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.send(Msg::Packet(RingPacket { ts_ns, wire_len, data: data.to_vec() }));
    }

    /// Close the current file (flushed, fsynced) and apply retention.
    pub fn finish(&self) {
        self.send(Msg::Finish);
    }

    fn send(&self, m: Msg) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(m);
        }
    }
}

impl Drop for EvidenceWriter {
    fn drop(&mut self) {
        self.tx = None; // the thread drains what is queued, closes the file and ends
        if let Some(t) = self.thread.take() {
            crate::util::join::join_within(t, Duration::from_secs(3));
        }
    }
}

/// `<dir>/.<name>.partial` while the file is being written.
fn partial_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

fn open(dir: &Path, path: &Path, linktype: u32, snaplen: u32) -> Option<(PathBuf, PcapWriter<BufWriter<File>>)> {
    if let Err(e) = fsutil::ensure_private_dir(dir) {
        warn!("cannot keep incident captures: {e}");
        return None;
    }
    // Written under a partial name and renamed when complete: whoever sees the final name
    // (the API uploader, an operator) sees a whole file.
    let f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(partial_path(path));
    match f.and_then(|f| PcapWriter::new(BufWriter::with_capacity(1 << 16, f), linktype, snaplen)) {
        Ok(w) => Some((path.to_path_buf(), w)),
        Err(e) => {
            warn!("{}: cannot create incident capture: {e}", path.display());
            None
        }
    }
}

fn finish(file: Option<(PathBuf, PcapWriter<BufWriter<File>>)>, retention: &Retention) {
    let Some((path, w)) = file else { return };
    let done = w
        .into_inner()
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .and_then(|()| fs::rename(partial_path(&path), &path));
    match done {
        Ok(()) => info!("incident capture written: {}", path.display()),
        Err(e) => warn!("{}: cannot finish incident capture: {e}", path.display()),
    }
    apply_retention(retention, SystemTime::now());
}

/// Apply [`over_limits`] to the `.pcap`/`.pcapng` files of `r.dir`; a file still being
/// written (`.partial`) counts towards the cap and is kept. Returns the files deleted.
pub fn apply_retention(r: &Retention, now: SystemTime) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(&r.dir) else { return Vec::new() };
    let files: Vec<FileInfo> = rd
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let ext = path.extension()?.to_str()?;
            let in_use = ext == "partial";
            if !(in_use || ext == "pcap" || ext == "pcapng") {
                return None;
            }
            let m = e.metadata().ok()?;
            m.is_file().then(|| FileInfo { modified: m.modified().unwrap_or(now), bytes: m.len(), in_use, path })
        })
        .collect();
    let mut deleted = Vec::new();
    for path in over_limits(&files, now, r.max_age, r.max_bytes) {
        match fs::remove_file(&path) {
            Ok(()) => deleted.push(path),
            Err(e) => warn!("{}: cannot delete old capture: {e}", path.display()),
        }
    }
    if !deleted.is_empty() {
        info!("capture retention: deleted {} file(s) from {}", deleted.len(), r.dir.display());
    }
    deleted
}

#[cfg(test)]
mod tests;

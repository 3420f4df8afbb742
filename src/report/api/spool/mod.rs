//! The durable outbox (§6.3): one JSON file per item under `<state dir>/spool` (written
//! atomically with fsync before anyone tries to send it), sent strictly in order by a sender
//! thread, deleted only after the destination accepted it. Survives crashes and restarts.
//!
//! Owns: the item files, the size cap (oldest metrics/heartbeats dropped first, incident items
//! never), `rejected/` for items a server refused, and `incidents.json` (agent incident id →
//! server uuid). Must not talk to the network; the sampling thread never calls it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use log::{info, warn};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::util::{fs as fsutil, statefile};

/// What an item is; decides the request and whether the size cap may drop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Heartbeat,
    Metrics,
    Open,
    Update,
    Resolve,
    Pcap,
    Webhook,
}

impl Kind {
    /// Only metrics and heartbeats may be dropped when the spool is over its cap.
    pub fn droppable(self) -> bool {
        matches!(self, Kind::Heartbeat | Kind::Metrics)
    }
}

/// One spooled request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub seq: u64,
    pub kind: Kind,
    /// The agent's incident id (open, update, resolve, pcap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    /// Sent as `Idempotency-Key`; stable across retries and restarts.
    pub key: String,
    pub body: Value,
    /// PCAP uploads: chunks the server already acknowledged (resume point).
    #[serde(default)]
    pub done_chunks: u32,
}

/// What the server answered for an incident's open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenAck {
    Uuid(String),
    /// The open was refused (4xx); its updates and resolve cannot be sent.
    Rejected,
}

/// Incident acks kept (the newest); older incidents are long resolved.
const MAX_ACKS: usize = 1000;

#[derive(Debug, Default)]
struct Index {
    /// seq → (file size, kind, stream: see [`stream_of`])
    entries: BTreeMap<u64, (u64, Kind, String)>,
    next_seq: u64,
    bytes: u64,
    dropped: u64,
    acks: Vec<(String, OpenAck)>,
    stopping: bool,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
    cond: Condvar,
    /// Held open with an exclusive flock: one sender per spool, even across processes.
    _lock: std::fs::File,
}

/// Take the spool's lock, or say clearly that another agent owns it.
fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    // SAFETY: flock on a file descriptor we own; non-blocking.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(Error::Refused {
            what: "spool",
            why: format!("{}: another ftagent is already running with this state dir (spool locked)", dir.display()),
        });
    }
    Ok(f)
}

/// The stream an item is ordered in: its incident, else its kind.
fn stream_of(kind: Kind, incident: Option<&str>) -> String {
    match incident {
        Some(i) => format!("incident {i}"),
        None => format!("{kind:?}"),
    }
}

/// One item file; a corrupt one (or one whose `seq` is not its name's, which could never be
/// removed after delivery) is moved aside by [`statefile`].
fn read_item(path: &Path, seq: u64) -> Option<Item> {
    statefile::load_json(path, "spool item", |i: &Item| {
        if i.seq == seq {
            Ok(())
        } else {
            Err(statefile::corrupt(format!("its seq {} is not the {seq} of its name", i.seq)))
        }
    })
}

impl Spool {
    /// Open (creating 0700) and index what a previous run left.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self> {
        fsutil::ensure_private_dir(dir)?;
        let lock = lock_dir(dir)?;
        let mut index = Index::default();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(seq) = name.strip_suffix(".json").and_then(|s| s.parse::<u64>().ok()) else { continue };
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            let Some(item) = read_item(&entry.path(), seq) else { continue };
            index.entries.insert(seq, (size, item.kind, stream_of(item.kind, item.incident.as_deref())));
            index.bytes += size;
            index.next_seq = index.next_seq.max(seq + 1);
        }
        index.acks =
            statefile::load_json(&dir.join("incidents.json"), "spool index", |_: &Vec<(String, OpenAck)>| Ok(()))
                .unwrap_or_default();
        if !index.entries.is_empty() {
            info!("{}: {} spooled item(s) from an earlier run will be sent", dir.display(), index.entries.len());
        }
        Ok(Spool { dir: dir.to_path_buf(), max_bytes, index: Mutex::new(index), cond: Condvar::new(), _lock: lock })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.json"))
    }

    /// Append an item durably; returns its sequence number. Enforces the size cap.
    pub fn push(&self, kind: Kind, incident: Option<String>, key: String, body: Value) -> Result<u64> {
        let mut ix = self.lock();
        let seq = ix.next_seq;
        let item = Item { seq, kind, incident, key, body, done_chunks: 0 };
        let bytes = serde_json::to_vec(&item).map_err(|e| Error::Encode { what: "spool item", source: e })?;
        fsutil::write_atomic(&self.path(seq), &bytes, 0o600)?;
        ix.next_seq += 1;
        ix.entries.insert(seq, (bytes.len() as u64, kind, stream_of(kind, item.incident.as_deref())));
        ix.bytes += bytes.len() as u64;
        self.enforce_cap(&mut ix);
        drop(ix);
        self.cond.notify_all();
        Ok(seq)
    }

    fn enforce_cap(&self, ix: &mut Index) {
        while ix.bytes > self.max_bytes {
            let Some((&seq, &(size, ..))) = ix.entries.iter().find(|(_, (_, k, _))| k.droppable()) else { break };
            let _ = std::fs::remove_file(self.path(seq));
            ix.entries.remove(&seq);
            ix.bytes -= size;
            ix.dropped += 1;
            if ix.dropped == 1 || ix.dropped.is_multiple_of(100) {
                warn!(
                    "{}: spool over spool_max_mb ({} MiB); dropped the oldest metrics/heartbeats ({} so far)",
                    self.dir.display(),
                    self.max_bytes >> 20,
                    ix.dropped
                );
            }
        }
    }

    /// Whether item `seq` is still queued.
    pub fn contains(&self, seq: u64) -> bool {
        self.lock().entries.contains_key(&seq)
    }

    /// Items waiting (the heartbeat's `retry_queue_size`).
    pub fn len(&self) -> u64 {
        self.lock().entries.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Metrics/heartbeats dropped by the size cap since start.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// The oldest item. A file that became unreadable is moved aside (`.corrupt`) and the next
    /// one returned.
    pub fn head(&self) -> Option<Item> {
        self.head_where(|_| false)
    }

    /// The oldest item that may be sent now: not `held` (waiting for its own retry), and not
    /// behind an earlier item of its stream (an incident, or heartbeats, or metrics). So order
    /// holds within each stream while one stuck item holds up nothing else.
    pub fn head_where(&self, held: impl Fn(u64) -> bool) -> Option<Item> {
        loop {
            let seq = {
                let ix = self.lock();
                let mut blocked: Vec<&str> = Vec::new();
                let mut found = None;
                for (&seq, (_, _, stream)) in &ix.entries {
                    if blocked.contains(&stream.as_str()) {
                        continue;
                    }
                    if held(seq) {
                        blocked.push(stream);
                        continue;
                    }
                    found = Some(seq);
                    break;
                }
                found?
            };
            match read_item(&self.path(seq), seq) {
                Some(item) => return Some(item),
                None => self.forget(seq),
            }
        }
    }

    /// The item was delivered: delete it.
    pub fn remove(&self, seq: u64) {
        let _ = std::fs::remove_file(self.path(seq));
        self.forget(seq);
    }

    /// Drop an item from the index (its file is gone or was moved aside).
    fn forget(&self, seq: u64) {
        let mut ix = self.lock();
        if let Some((size, ..)) = ix.entries.remove(&seq) {
            ix.bytes -= size;
        }
    }

    /// Persist progress of an item (PCAP chunks acknowledged).
    pub fn update(&self, item: &Item) -> Result<()> {
        let bytes = serde_json::to_vec(item).map_err(|e| Error::Encode { what: "spool item", source: e })?;
        fsutil::write_atomic(&self.path(item.seq), &bytes, 0o600)
    }

    /// The server refused the item: keep it with the answer under `rejected/`, go on.
    pub fn reject(&self, item: &Item, status: u16, response: &str) {
        let note = serde_json::json!({ "item": item, "status": status, "response": response });
        self.move_to_rejected(item.seq, &note);
    }

    fn move_to_rejected(&self, seq: u64, note: &Value) {
        let dir = self.dir.join("rejected");
        let r = fsutil::ensure_private_dir(&dir).and_then(|_| {
            let bytes = serde_json::to_vec_pretty(note).unwrap_or_default();
            fsutil::write_atomic(&dir.join(format!("{seq:020}.json")), &bytes, 0o600)
        });
        if let Err(e) = r {
            warn!("cannot keep rejected spool item {seq}: {e}");
        }
        self.remove(seq);
    }

    /// The server's answer to an incident's open, if it has been received.
    pub fn ack(&self, incident: &str) -> Option<OpenAck> {
        self.lock().acks.iter().rev().find(|(id, _)| id == incident).map(|(_, a)| a.clone())
    }

    /// Record (durably) the server's answer to an open.
    pub fn record_ack(&self, incident: &str, ack: OpenAck) -> Result<()> {
        let mut ix = self.lock();
        ix.acks.retain(|(id, _)| id != incident);
        ix.acks.push((incident.to_string(), ack));
        let excess = ix.acks.len().saturating_sub(MAX_ACKS);
        ix.acks.drain(..excess);
        let bytes = serde_json::to_vec(&ix.acks).unwrap_or_default();
        fsutil::write_atomic(&self.dir.join("incidents.json"), &bytes, 0o600)
    }

    /// Wait until an item is pushed, [`Spool::stop`] is called, or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        let ix = self.lock();
        if ix.stopping {
            return;
        }
        let _ = self.cond.wait_timeout(ix, timeout);
    }

    /// Wake and stop the sender (shutdown).
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.cond.notify_all();
    }

    pub fn stopping(&self) -> bool {
        self.lock().stopping
    }
}

#[cfg(test)]
mod tests;

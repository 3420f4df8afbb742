//! The local event log (§6.1): JSON Lines appended and flushed per event, and the baseline
//! file. The embedded default sink: it needs no account and no network.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{Outgoing, Sink};
use crate::error::{Error, Result};
use crate::util::fs as fsutil;

pub struct EventLog {
    path: PathBuf,
    file: Option<File>,
    /// The reopen generation last seen: after SIGHUP (logrotate) the file is reopened.
    seen: u64,
}

impl EventLog {
    /// Opens (creating 0600, parents 0700) at start-up so a bad path is a start-up error.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                fsutil::ensure_private_dir(dir)?;
            }
        }
        let file = Self::open_file(path)?;
        Ok(EventLog { path: path.to_path_buf(), file: Some(file), seen: crate::util::reopen::generation() })
    }

    fn open_file(path: &Path) -> Result<File> {
        OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(|e| Error::io(path, e))
    }

    fn append(&mut self, line: &[u8]) -> Result<()> {
        if self.file.is_none() {
            self.file = Some(Self::open_file(&self.path)?);
        }
        let f = self.file.as_mut().expect("opened");
        let r = f.write_all(line).and_then(|_| f.flush());
        if let Err(e) = r {
            // Re-open next time (the file may have been rotated or the disk freed).
            self.file = None;
            return Err(Error::io(&self.path, e));
        }
        Ok(())
    }
}

impl Sink for EventLog {
    fn name(&self) -> String {
        format!("event log {}", self.path.display())
    }

    fn handle(&mut self, msg: &Outgoing) -> Result<()> {
        // Checked on every message (a state snapshot comes each second), so a rotated log is
        // recreated within a second of SIGHUP even when no event follows.
        if crate::util::reopen::generation() != self.seen {
            self.seen = crate::util::reopen::generation();
            self.file = Some(Self::open_file(&self.path)?);
        }
        let Outgoing::Event(e) = msg else { return Ok(()) };
        let mut line = serde_json::to_vec(e).map_err(|e| Error::Encode { what: "event", source: e })?;
        line.push(b'\n');
        self.append(&line)
    }
}

/// Writes `baseline.json` atomically whenever the agent sends a snapshot.
pub struct BaselineFile {
    pub path: PathBuf,
}

impl Sink for BaselineFile {
    fn name(&self) -> String {
        format!("baseline {}", self.path.display())
    }

    fn handle(&mut self, msg: &Outgoing) -> Result<()> {
        let Outgoing::SaveBaseline(s) = msg else { return Ok(()) };
        let bytes = serde_json::to_vec(s).map_err(|e| Error::Encode { what: "baseline", source: e })?;
        fsutil::write_atomic(&self.path, &bytes, 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventBody};
    use std::time::SystemTime;

    #[test]
    fn appends_one_json_line_per_event_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state/events.jsonl");
        let mut log = EventLog::open(&p).unwrap();
        for _ in 0..2 {
            log.handle(&Outgoing::Event(Event::new(SystemTime::now(), EventBody::AgentStop {}))).unwrap();
        }
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["event"], "agent_stop");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn unwritable_path_is_a_clear_error() {
        let err = EventLog::open(Path::new("/proc/ftagent-test/events.jsonl")).err().unwrap();
        assert!(err.to_string().contains("/proc/ftagent-test"), "{err}");
    }

    #[test]
    fn full_disk_is_an_error_not_a_panic() {
        let dev_full = Path::new("/dev/full");
        if !dev_full.exists() {
            return;
        }
        let mut log = EventLog { path: dev_full.into(), file: None, seen: 0 };
        let err = log.handle(&Outgoing::Event(Event::new(SystemTime::now(), EventBody::AgentStop {}))).unwrap_err();
        assert!(err.to_string().contains("/dev/full"), "{err}");
    }
}

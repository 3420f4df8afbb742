//! Reopening log files after rotation (§6.6): SIGHUP bumps a process-wide generation; every
//! file that must follow logrotate (the log file, the event log) compares the generation it saw
//! with the current one before it writes and reopens its path when they differ. No signal
//! handling here (the run loop owns signals); one atomic, so it never blocks a writer.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Ask every reopening file to reopen its path before its next write.
pub fn request() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// The current generation; a writer that saw an older one reopens.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// Open `path` for appending, creating it with `mode`.
pub fn open_append(path: &Path, mode: u32) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(mode).open(path)
}

/// An append-only file that follows rotation: after [`request`], the next write goes to a file
/// freshly opened at the same path. If the reopen fails, writing goes on to the old file.
pub struct ReopeningFile {
    path: PathBuf,
    mode: u32,
    file: File,
    seen: u64,
}

impl ReopeningFile {
    pub fn open(path: &Path, mode: u32) -> std::io::Result<Self> {
        let seen = generation();
        Ok(ReopeningFile { path: path.to_path_buf(), mode, file: open_append(path, mode)?, seen })
    }

    fn follow(&mut self) {
        let now = generation();
        if now != self.seen {
            self.seen = now;
            if let Ok(f) = open_append(&self.path, self.mode) {
                self.file = f;
            }
        }
    }
}

impl Write for ReopeningFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.follow();
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_follow_the_path_after_a_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut f = ReopeningFile::open(&path, 0o640).unwrap();
        f.write_all(b"one\n").unwrap();
        std::fs::rename(&path, dir.path().join("x.log.1")).unwrap();
        f.write_all(b"two\n").unwrap();
        request();
        f.write_all(b"three\n").unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("x.log.1")).unwrap(), "one\ntwo\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
    }
}

//! The only reader of access-log files: follows one path by inode and offset, like `tail -F`.
//! - Starts at the end of a file that exists at start: history is never read.
//! - A file that appears later (or after a rename rotation) is read from its start; while the
//!   path is missing one log line says so.
//! - Rename rotation: the old file is read to its end, then the new one; the old one stays open
//!   for [`DRAIN_POLLS`] more polls for lines its writer adds before reopening (nginx `USR1`).
//! - Copytruncate: a file shorter than the offset, or whose byte before the offset changed, was
//!   truncated: read again from offset 0.
//! - A partial last line waits for its newline (at most [`MAX_LINE`] bytes kept); bytes are
//!   handed on as they are, invalid UTF-8 included.
//!
//! No parsing here: complete lines go to a callback.

use std::fs::File;
use std::io::{ErrorKind, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use log::{info, warn};

/// Polls an old file is still read after a rename rotation.
pub const DRAIN_POLLS: u32 = 3;
/// Longest line kept; longer ones are dropped (and counted) up to their newline.
pub const MAX_LINE: usize = 64 * 1024;
/// Bytes read per poll and file at most, so one poll stays short after a long pause.
pub const MAX_READ_PER_POLL: u64 = 256 * 1024 * 1024;

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollStats {
    pub lines: u64,
    pub bytes: u64,
    /// Lines over [`MAX_LINE`], dropped.
    pub overlong: u64,
    pub rotated: bool,
    pub truncated: bool,
}

struct Open {
    file: File,
    id: (u64, u64),
    offset: u64,
    partial: Vec<u8>,
    /// The partial line grew past MAX_LINE: skip to the next newline.
    skipping: bool,
}

pub struct Follower {
    path: PathBuf,
    current: Option<Open>,
    /// A rotated-away file still being drained, and the polls left.
    old: Option<(Open, u32)>,
    /// Whether the next open starts at the end (only the very first, at start).
    at_start: bool,
    waiting_logged: bool,
    buf: Vec<u8>,
}

impl Follower {
    /// Follow `path`; if it exists now, from its current end.
    pub fn new(path: &Path) -> Self {
        let mut f = Follower {
            path: path.to_path_buf(),
            current: None,
            old: None,
            at_start: true,
            waiting_logged: false,
            buf: vec![0; 256 * 1024],
        };
        f.try_open();
        f.at_start = false;
        f
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file is open (false while waiting for it to appear).
    pub fn is_open(&self) -> bool {
        self.current.is_some()
    }

    fn try_open(&mut self) -> bool {
        match File::open(&self.path).and_then(|f| f.metadata().map(|m| (f, m))) {
            Ok((mut file, meta)) => {
                let offset = if self.at_start { file.seek(SeekFrom::End(0)).unwrap_or(0) } else { 0 };
                if self.waiting_logged {
                    info!("{}: access log appeared; following it", self.path.display());
                }
                self.waiting_logged = false;
                let id = (meta.dev(), meta.ino());
                self.current = Some(Open { file, id, offset, partial: Vec::new(), skipping: false });
                true
            }
            Err(e) => {
                if !self.waiting_logged {
                    if e.kind() == ErrorKind::NotFound {
                        info!("{}: access log not there yet; waiting for it", self.path.display());
                    } else {
                        warn!("{}: cannot open the access log ({e}); retrying every second", self.path.display());
                    }
                    self.waiting_logged = true;
                }
                false
            }
        }
    }

    /// Read what was appended since the last poll and hand each complete line to `line`.
    pub fn poll(&mut self, line: &mut dyn FnMut(&[u8])) -> PollStats {
        let mut st = PollStats::default();
        if let Some((mut old, left)) = self.old.take() {
            read_new(&mut old, &mut self.buf, &mut st, line);
            if left > 1 {
                self.old = Some((old, left - 1));
            }
        }
        if self.current.is_none() && !self.try_open() {
            return st;
        }
        let cur = self.current.as_mut().expect("open");
        if truncated(cur) {
            info!("{}: access log truncated (copytruncate); reading from its start", self.path.display());
            cur.offset = 0;
            cur.partial.clear();
            cur.skipping = false;
            st.truncated = true;
        }
        read_new(cur, &mut self.buf, &mut st, line);
        // A different file at the path: finish the old one (now and while draining), then switch.
        match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) != cur.id => {
                info!("{}: access log rotated; following the new file", self.path.display());
                let old = self.current.take().expect("open");
                self.old = Some((old, DRAIN_POLLS));
                st.rotated = true;
                if self.try_open() {
                    let cur = self.current.as_mut().expect("open");
                    read_new(cur, &mut self.buf, &mut st, line);
                }
            }
            _ => {}
        }
        st
    }
}

/// The file is shorter than what was read, or the byte before the offset is no longer the
/// newline that ended the last line read.
fn truncated(o: &Open) -> bool {
    let Ok(meta) = o.file.metadata() else { return false };
    if meta.len() < o.offset {
        return true;
    }
    if o.offset == 0 || !o.partial.is_empty() || o.skipping {
        return false;
    }
    let mut b = [0u8; 1];
    matches!(o.file.read_at(&mut b, o.offset - 1), Ok(1) if b[0] != b'\n')
}

fn read_new(o: &mut Open, buf: &mut [u8], st: &mut PollStats, line: &mut dyn FnMut(&[u8])) {
    let mut budget = MAX_READ_PER_POLL;
    while budget > 0 {
        let n = match o.file.read_at(buf, o.offset) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                warn!("access log read failed: {e}");
                return;
            }
        };
        o.offset += n as u64;
        budget = budget.saturating_sub(n as u64);
        st.bytes += n as u64;
        split_lines(o, &buf[..n], st, line);
    }
}

fn split_lines(o: &mut Open, mut chunk: &[u8], st: &mut PollStats, line: &mut dyn FnMut(&[u8])) {
    while let Some(nl) = chunk.iter().position(|&b| b == b'\n') {
        let (head, rest) = (&chunk[..nl], &chunk[nl + 1..]);
        if o.skipping {
            o.skipping = false;
        } else if o.partial.is_empty() {
            st.lines += 1;
            line(head);
        } else if o.partial.len() + head.len() <= MAX_LINE {
            o.partial.extend_from_slice(head);
            st.lines += 1;
            line(&o.partial);
            o.partial.clear();
        } else {
            o.partial.clear();
            st.overlong += 1;
        }
        chunk = rest;
    }
    if o.skipping {
        return;
    }
    if o.partial.len() + chunk.len() > MAX_LINE {
        o.partial.clear();
        o.skipping = true;
        st.overlong += 1;
    } else {
        o.partial.extend_from_slice(chunk);
    }
}

#[cfg(test)]
mod tests;

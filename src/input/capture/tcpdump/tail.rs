//! Following a pcap file that tcpdump is still writing (`-U`: one record per write): each
//! [`Tail::poll`] hands the frames appended since the last poll to a callback and remembers the
//! end of the last complete record, so a record caught half-written is read next time.
//!
//! Decoding is the engine's [`CaptureReader`]; this module only keeps the byte position.

use std::cell::Cell;
use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::input::capture::pcapfile::{CaptureReader, FileError, Frame};

/// Size of a classic pcap file header.
const HEADER_LEN: u64 = 24;

#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    header: Vec<u8>,
    /// Byte offset just past the last complete record read.
    offset: u64,
}

/// Counts the bytes the reader has consumed, so the position survives the reader.
struct Counting<R> {
    inner: R,
    n: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let got = self.inner.read(buf)?;
        self.n.set(self.n.get() + got as u64);
        Ok(got)
    }
}

impl Tail {
    /// Follow `path` from its first record.
    pub fn new(path: &Path) -> Self {
        Tail { path: path.to_path_buf(), header: Vec::new(), offset: 0 }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read at most `budget` new bytes; `on_frame` gets every complete frame among them.
    /// Returns the number of frames read. A file that is not (yet) a capture yields 0.
    pub fn poll(&mut self, budget: u64, mut on_frame: impl FnMut(&Frame<'_>)) -> Result<u64, FileError> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(FileError::Io(e)),
        };
        let len = file.metadata().map_err(FileError::Io)?.len();
        if self.header.is_empty() {
            if len < HEADER_LEN {
                return Ok(0);
            }
            let mut h = vec![0u8; HEADER_LEN as usize];
            file.read_exact(&mut h).map_err(FileError::Io)?;
            self.header = h;
            self.offset = HEADER_LEN;
        }
        if len <= self.offset {
            return Ok(0);
        }
        file.seek(SeekFrom::Start(self.offset)).map_err(FileError::Io)?;
        let fresh = file.take((len - self.offset).min(budget));
        let consumed = Rc::new(Cell::new(0u64));
        let counting = Counting { inner: Cursor::new(self.header.clone()).chain(fresh), n: Rc::clone(&consumed) };
        let mut reader = CaptureReader::new(counting)?;
        let mut good = consumed.get();
        let mut frames = 0;
        loop {
            match reader.next_frame() {
                Ok(Some(f)) => {
                    on_frame(&f);
                    frames += 1;
                    good = consumed.get();
                }
                // The end of what is there, or a record still being written.
                Ok(None) | Err(FileError::Truncated { .. }) => break,
                Err(e) => return Err(e),
            }
        }
        self.offset += good - HEADER_LEN;
        Ok(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::capture::pcapfile::PcapWriter;
    use std::io::Write;

    #[test]
    fn follows_a_growing_file_across_half_written_records() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ring_20261121T000000.pcap");
        let mut bytes = Vec::new();
        let mut w = PcapWriter::new(&mut bytes, 1, 0).unwrap();
        for i in 0..5u64 {
            w.write(i * 1_000_000_000, 60, &[i as u8; 60]).unwrap();
        }
        let mut tail = Tail::new(&p);
        assert_eq!(tail.poll(u64::MAX, |_| {}).unwrap(), 0, "missing file");
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(&bytes[..10]).unwrap();
        assert_eq!(tail.poll(u64::MAX, |_| {}).unwrap(), 0, "header not complete");
        // Header, two records and half of the third.
        let cut = 24 + 2 * 76 + 30;
        f.write_all(&bytes[10..cut]).unwrap();
        let mut seen = Vec::new();
        assert_eq!(tail.poll(u64::MAX, |fr| seen.push(fr.data[0])).unwrap(), 2);
        f.write_all(&bytes[cut..]).unwrap();
        // A budget smaller than the rest: one record now, the others on the next polls.
        assert_eq!(tail.poll(80, |fr| seen.push(fr.data[0])).unwrap(), 1);
        assert_eq!(tail.poll(u64::MAX, |fr| seen.push(fr.data[0])).unwrap(), 2);
        assert_eq!(tail.poll(u64::MAX, |_| {}).unwrap(), 0);
        assert_eq!(seen, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_file_that_is_not_a_capture_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.pcap");
        std::fs::write(&p, [7u8; 100]).unwrap();
        assert!(matches!(Tail::new(&p).poll(u64::MAX, |_| {}), Err(FileError::NotCapture)));
    }
}

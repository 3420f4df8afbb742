//! The evidence file of one incident in tcpdump mode: the pinned ring files and the incident
//! capture merged in time order into `<pcap_dir>/<incident_id>_<UTC>.pcap`, by `mergecap` when
//! installed, else by the engine's reader and writer. The newest ring file, which tcpdump kept
//! writing after the open, is first cut where the incident capture begins, so no packet appears
//! twice. Written under a temporary name and renamed, mode 0600; the work files go after.
//!
//! Runs on a merge thread, never on the sampling thread.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::child;
use crate::error::{Error, Result};
use crate::input::capture::pcapfile::{CaptureReader, FileError, PcapWriter};

/// A pcap file with only its 24-byte header holds no packet.
const PCAP_HEADER_LEN: u64 = 24;

/// One merge to do.
#[derive(Debug, Clone)]
pub struct Job {
    /// Ring files pinned at open, oldest first.
    pub ring: Vec<PathBuf>,
    /// The incident capture.
    pub capture: PathBuf,
    pub dest: PathBuf,
    pub mergecap: Option<PathBuf>,
    /// The incident's work directory, removed when done.
    pub work: PathBuf,
    /// When the incident opened (ns since the epoch): the cut when the capture holds nothing.
    pub opened_ns: u64,
}

impl Job {
    /// Merge, then clean up. When the merge fails the incident capture alone becomes the
    /// evidence file, so an incident never ends without one if anything was captured.
    pub fn run(&self) -> Result<()> {
        let mut ring: Vec<PathBuf> = self.ring.iter().filter(|p| has_packets(p)).cloned().collect();
        if let Some(newest) = ring.pop() {
            let cut_ns = first_ts(&self.capture).unwrap_or(self.opened_ns);
            let cut = self.work.join("ring_cut.pcap");
            match cut_before(&newest, &cut, cut_ns) {
                Ok(_) => ring.push(cut),
                Err(e) => log::warn!("{}: ring file left out of the evidence: {e}", newest.display()),
            }
        }
        let inputs: Vec<PathBuf> = ring.into_iter().chain([self.capture.clone()]).filter(|p| has_packets(p)).collect();
        let result = if inputs.is_empty() {
            Err(Error::Invalid { what: "incident capture", why: "no packets were captured".into() })
        } else {
            self.merge(&inputs)
        };
        let result = match result {
            Err(e) if has_packets(&self.capture) => {
                log::warn!("{}: merge failed ({e}); keeping the incident capture alone", self.dest.display());
                fs::rename(&self.capture, &self.dest).map_err(|e| Error::io(&self.dest, e))
            }
            other => other,
        };
        if result.is_ok() {
            let _ = fs::set_permissions(&self.dest, fs::Permissions::from_mode(0o600));
        }
        let _ = fs::remove_dir_all(&self.work);
        result
    }

    fn merge(&self, inputs: &[PathBuf]) -> Result<()> {
        let name = self.dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = self.dest.with_file_name(format!(".{name}.partial"));
        let merged = match &self.mergecap {
            Some(m) => mergecap(m, inputs, &tmp),
            None => merge_by_time(inputs, &tmp)
                .map_err(|e| Error::Invalid { what: "ring file", why: format!("built-in merge: {e}") }),
        };
        match merged.and_then(|()| fs::rename(&tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

fn has_packets(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.len() > PCAP_HEADER_LEN)
}

fn open(p: &Path) -> Result<CaptureReader<BufReader<File>>, FileError> {
    CaptureReader::new(BufReader::new(File::open(p).map_err(FileError::Io)?))
}

/// Timestamp of the first packet of a capture file.
fn first_ts(p: &Path) -> Option<u64> {
    open(p).ok()?.next_frame().ok().flatten().map(|f| f.ts_ns)
}

/// Copy the packets of `src` older than `cut_ns` into `dst`; a record still being written at
/// the end is left out. Returns the number copied.
fn cut_before(src: &Path, dst: &Path, cut_ns: u64) -> Result<u64, FileError> {
    let mut r = open(src)?;
    let linktype = r.linktype().unwrap_or(1);
    let mut w = PcapWriter::new(BufWriter::new(File::create(dst).map_err(FileError::Io)?), linktype, 0)
        .map_err(FileError::Io)?;
    let mut n = 0;
    loop {
        match r.next_frame() {
            Ok(Some(f)) if f.ts_ns < cut_ns => {
                w.write(f.ts_ns, f.orig_len, f.data).map_err(FileError::Io)?;
                n += 1;
            }
            Ok(_) | Err(FileError::Truncated { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    w.into_inner().flush().map_err(FileError::Io)?;
    Ok(n)
}

/// The time-ordered merge used when mergecap is absent: each input is time-ordered, so a k-way
/// merge holding one packet per input suffices.
fn merge_by_time(inputs: &[PathBuf], out: &Path) -> Result<(), FileError> {
    let mut readers = inputs.iter().map(|p| open(p)).collect::<Result<Vec<_>, _>>()?;
    let linktype = readers.first().and_then(|r| r.linktype()).unwrap_or(1);
    let mut heads: Vec<Option<(u64, u32, Vec<u8>)>> = Vec::with_capacity(readers.len());
    for r in readers.iter_mut() {
        heads.push(next_owned(r)?);
    }
    let mut w = PcapWriter::new(BufWriter::new(File::create(out).map_err(FileError::Io)?), linktype, 0)
        .map_err(FileError::Io)?;
    while let Some(i) = (0..heads.len()).filter(|i| heads[*i].is_some()).min_by_key(|i| heads[*i].as_ref().map(|h| h.0))
    {
        if let Some((ts, len, data)) = heads[i].take() {
            w.write(ts, len, &data).map_err(FileError::Io)?;
        }
        heads[i] = next_owned(&mut readers[i])?;
    }
    w.into_inner().flush().map_err(FileError::Io)
}

fn next_owned(r: &mut CaptureReader<BufReader<File>>) -> Result<Option<(u64, u32, Vec<u8>)>, FileError> {
    match r.next_frame() {
        Ok(Some(f)) => Ok(Some((f.ts_ns, f.orig_len, f.data.to_vec()))),
        Ok(None) | Err(FileError::Truncated { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `mergecap -F pcap -w out inputs...`: chronological merge, classic pcap output.
fn mergecap(program: &Path, inputs: &[PathBuf], out: &Path) -> Result<()> {
    let mut args: Vec<OsString> = vec!["-F".into(), "pcap".into(), "-w".into(), out.into()];
    args.extend(inputs.iter().map(|p| p.as_os_str().to_owned()));
    let output = child::command(program, &args)
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| program_failed(program, format!("cannot run {}: {e}", program.display())))?;
    if output.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&output.stderr);
        Err(program_failed(program, format!("mergecap: {}: {}", output.status, err.trim())))
    }
}

/// mergecap could not be run or failed.
fn program_failed(path: &Path, why: String) -> Error {
    Error::Program { program: path.display().to_string(), why }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic pcap (µs, little-endian, Ethernet) with one 60-byte frame per timestamp.
    fn pcap(stamps_us: &[u64]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [0xa1b2c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        for t in stamps_us {
            for x in [(t / 1_000_000) as u32, (t % 1_000_000) as u32, 60, 60] {
                v.extend_from_slice(&x.to_le_bytes());
            }
            v.extend_from_slice(&[0u8; 60]);
        }
        v
    }

    fn job(dir: &Path, mergecap: Option<PathBuf>) -> Job {
        let work = dir.join(".work/id");
        fs::create_dir_all(&work).unwrap();
        fs::write(work.join("ring_a.pcap"), pcap(&[1_000_000, 3_000_000])).unwrap();
        fs::write(work.join("ring_b.pcap"), pcap(&[])).unwrap();
        fs::write(work.join("incident.pcap"), pcap(&[2_000_000, 4_000_000])).unwrap();
        Job {
            ring: vec![work.join("ring_a.pcap"), work.join("ring_b.pcap")],
            capture: work.join("incident.pcap"),
            dest: dir.join("id_20261121T000000Z.pcap"),
            mergecap,
            work,
            opened_ns: 0,
        }
    }

    #[test]
    fn mergecap_merges_in_time_order_into_a_private_file() {
        let Some(m) = super::super::command::which("mergecap") else {
            crate::util::skip::skip("mergecap is not installed (apt-get install wireshark-common)");
            return;
        };
        let d = tempfile::tempdir().unwrap();
        let j = job(d.path(), Some(m));
        j.run().unwrap();
        let out = fs::read(&j.dest).unwrap();
        // Header + 3 records of 16 + 60 bytes: the ring packet at 3 s came after the incident
        // capture began at 2 s, so it is in the capture already and cut from the ring.
        assert_eq!(out.len(), 24 + 3 * 76);
        assert_eq!(stamps(&j.dest), [1, 2, 4]);
        assert_eq!(fs::metadata(&j.dest).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!j.work.exists(), "work files removed");
    }

    fn stamps(p: &Path) -> Vec<u64> {
        let mut r = open(p).unwrap();
        let mut v = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            v.push(f.ts_ns / 1_000_000_000);
        }
        v
    }

    #[test]
    fn without_mergecap_the_built_in_merge_orders_by_time_and_cuts_the_ring() {
        let d = tempfile::tempdir().unwrap();
        let j = job(d.path(), None);
        // The newest non-empty ring file also holds a packet after the capture began (3 s > 2 s).
        j.run().unwrap();
        assert_eq!(stamps(&j.dest), [1, 2, 4]);
        assert_eq!(fs::metadata(&j.dest).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!j.work.exists());
    }

    #[test]
    fn a_failed_merge_keeps_the_incident_capture() {
        let d = tempfile::tempdir().unwrap();
        let j = job(d.path(), Some("/bin/false".into()));
        j.run().unwrap();
        assert_eq!(fs::read(&j.dest).unwrap(), pcap(&[2_000_000, 4_000_000]));
        assert!(!j.work.exists());
    }
}

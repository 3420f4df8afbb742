//! The evidence file of one incident in tcpdump mode: the pinned ring files and the incident
//! capture merged in time order into `<pcap_dir>/<incident_id>_<UTC>.pcap`, by `mergecap` when
//! installed. Written under a temporary name and renamed, mode 0600; the work files go after.
//!
//! Runs on a merge thread, never on the sampling thread.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::child;

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
}

impl Job {
    /// Merge, then clean up. When the merge fails the incident capture alone becomes the
    /// evidence file, so an incident never ends without one if anything was captured.
    pub fn run(&self) -> Result<(), String> {
        let inputs: Vec<PathBuf> =
            self.ring.iter().chain([&self.capture]).filter(|p| has_packets(p)).cloned().collect();
        let result = if inputs.is_empty() { Err("no packets were captured".to_string()) } else { self.merge(&inputs) };
        let result = match result {
            Err(e) if has_packets(&self.capture) => {
                log::warn!("{}: merge failed ({e}); keeping the incident capture alone", self.dest.display());
                fs::rename(&self.capture, &self.dest).map_err(|e| format!("{}: {e}", self.dest.display()))
            }
            other => other,
        };
        if result.is_ok() {
            let _ = fs::set_permissions(&self.dest, fs::Permissions::from_mode(0o600));
        }
        let _ = fs::remove_dir_all(&self.work);
        result
    }

    fn merge(&self, inputs: &[PathBuf]) -> Result<(), String> {
        let name = self.dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = self.dest.with_file_name(format!(".{name}.partial"));
        let merged = match &self.mergecap {
            Some(m) => mergecap(m, inputs, &tmp),
            None => Err("mergecap is not installed".to_string()),
        };
        match merged.and_then(|()| fs::rename(&tmp, &self.dest).map_err(|e| format!("{}: {e}", self.dest.display()))) {
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

/// `mergecap -F pcap -w out inputs...`: chronological merge, classic pcap output.
fn mergecap(program: &Path, inputs: &[PathBuf], out: &Path) -> Result<(), String> {
    let mut args: Vec<OsString> = vec!["-F".into(), "pcap".into(), "-w".into(), out.into()];
    args.extend(inputs.iter().map(|p| p.as_os_str().to_owned()));
    let output = child::command(program, &args)
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&output.stderr);
        Err(format!("mergecap: {}: {}", output.status, err.trim()))
    }
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
        }
    }

    #[test]
    fn mergecap_merges_in_time_order_into_a_private_file() {
        let Some(m) = super::super::command::which("mergecap") else {
            eprintln!("SKIPPED: mergecap is not installed (apt-get install wireshark-common)");
            return;
        };
        let d = tempfile::tempdir().unwrap();
        let j = job(d.path(), Some(m));
        j.run().unwrap();
        let out = fs::read(&j.dest).unwrap();
        // Header + 4 records of 16 + 60 bytes, timestamps 1, 2, 3, 4 s.
        assert_eq!(out.len(), 24 + 4 * 76);
        let secs: Vec<u32> =
            (0..4).map(|i| u32::from_le_bytes(out[24 + i * 76..28 + i * 76].try_into().unwrap())).collect();
        assert_eq!(secs, [1, 2, 3, 4]);
        assert_eq!(fs::metadata(&j.dest).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!j.work.exists(), "work files removed");
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

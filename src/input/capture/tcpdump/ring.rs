//! Files on disk in tcpdump mode: the ring directory (newest 3 slots kept) and the scan of every
//! capture file, ring files included, for the retention policy of [`crate::input::capture::evidence`]
//! (§7.5), which decides what goes.
//!
//! The choice of what to delete is pure ([`prune_ring`], [`over_limits`]); [`scan`] and
//! [`remove`] are the only file-system calls. Nothing here talks to tcpdump.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use log::{info, warn};

pub use crate::input::capture::evidence::{over_limits, FileInfo};

/// Ring slots kept: the one being written and the two before it (60–90 s of context). A slot
/// is one `-G` period; tcpdump also starts a new file in it each time the current one reaches
/// the `-C` size (`ring_<stamp>.pcap`, then `...pcap1`, `...pcap2`, ...).
pub const RING_KEEP: usize = 3;

/// `ring_YYYYmmddTHHMMSS.pcap` plus tcpdump's size-rotation count, if any: (stamp, count).
pub fn ring_key(name: &str) -> Option<(&str, u32)> {
    let rest = name.strip_prefix("ring_")?;
    let (stamp, count) = rest.split_once(".pcap")?;
    let b = stamp.as_bytes();
    let stamp_ok = b.len() == 15 && b[8] == b'T' && b.iter().enumerate().all(|(i, c)| i == 8 || c.is_ascii_digit());
    let count = match count {
        "" => 0,
        c if c.len() <= 9 && c.bytes().all(|x| x.is_ascii_digit()) && !c.starts_with('0') => c.parse().ok()?,
        _ => return None,
    };
    stamp_ok.then_some((stamp, count))
}

/// A ring file's name, as tcpdump makes them from [`super::command::RING_PATTERN`] and `-C`.
pub fn is_ring_name(name: &str) -> bool {
    ring_key(name).is_some()
}

/// Sort key of a ring file path: time order (UTC stamps), then size-rotation order.
pub fn ring_order(p: &Path) -> Option<(String, u32)> {
    p.file_name().and_then(|n| n.to_str()).and_then(ring_key).map(|(s, c)| (s.to_string(), c))
}

/// The ring files in `dir`, oldest first.
pub fn ring_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_ring_name))
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort_by_key(|p| ring_order(p));
    v
}

/// The ring files to delete so that only the newest `keep` slots stay (input sorted oldest first).
pub fn prune_ring(sorted: &[PathBuf], keep: usize) -> &[PathBuf] {
    let mut slots = 0;
    let mut last: Option<String> = None;
    for (i, p) in sorted.iter().enumerate().rev() {
        let stamp = ring_order(p).map(|(s, _)| s);
        if stamp != last {
            slots += 1;
            last = stamp;
            if slots > keep {
                return &sorted[..=i];
            }
        }
    }
    &[]
}

/// When a ring file was started, from its name (`ring_YYYYmmddTHHMMSS.pcap`, UTC).
pub fn ring_started(path: &Path) -> Option<SystemTime> {
    let name = path.file_name()?.to_str()?;
    let (d, _) = ring_key(name)?;
    let text = format!("{}-{}-{}T{}:{}:{}Z", &d[0..4], &d[4..6], &d[6..8], &d[9..11], &d[11..13], &d[13..15]);
    humantime::parse_rfc3339(&text).ok()
}

/// How many ring slots to keep now: [`RING_KEEP`], one fewer in the last second before the
/// newest slot is due to rotate, so tcpdump's next slot never makes it `RING_KEEP + 1` on disk.
pub fn ring_keep(sorted: &[PathBuf], rotate: Duration, now: SystemTime) -> usize {
    let due = sorted.last().and_then(|p| ring_started(p)).map(|t| t + rotate.saturating_sub(Duration::from_secs(1)));
    if due.is_some_and(|d| now >= d) {
        RING_KEEP - 1
    } else {
        RING_KEEP
    }
}

/// Every capture file under `pcap_dir`: incident files, ring files and an open incident's work
/// files. A file hard-linked twice (a ring file pinned by an incident) is counted once, and is
/// in use when any of its names is: deleting one name of it would free nothing.
pub fn scan(pcap_dir: &Path, in_use: &dyn Fn(&Path) -> bool) -> Vec<FileInfo> {
    use std::os::unix::fs::MetadataExt;
    let mut seen: std::collections::HashMap<(u64, u64), usize> = std::collections::HashMap::new();
    let mut out: Vec<FileInfo> = Vec::new();
    let mut dirs = vec![pcap_dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            let p = e.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if meta.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "pcap") || is_ring_name(name) {
                let busy = in_use(&p);
                if let Some(&i) = seen.get(&(meta.dev(), meta.ino())) {
                    out[i].in_use |= busy;
                    continue;
                }
                seen.insert((meta.dev(), meta.ino()), out.len());
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                out.push(FileInfo { in_use: busy, path: p, modified, bytes: meta.len() });
            }
        }
    }
    out
}

/// Delete `paths`, logging each failure once; returns how many went.
pub fn remove(paths: &[PathBuf], why: &str) -> usize {
    let mut n = 0;
    for p in paths {
        match fs::remove_file(p) {
            Ok(()) => n += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!("{}: cannot delete ({why}): {e}", p.display()),
        }
    }
    if n > 0 && why != "ring" {
        info!("deleted {n} capture file(s) under {why}");
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_names_are_recognised_strictly() {
        assert!(is_ring_name("ring_20261121T223000.pcap"));
        for bad in ["ring_20261121T2230.pcap", "ring_20261121X223000.pcap", "ring_2026112aT223000.pcap", "x.pcap"] {
            assert!(!is_ring_name(bad), "{bad}");
        }
    }

    #[test]
    fn size_rotated_ring_files_sort_in_time_then_count_order_and_prune_by_slot() {
        assert_eq!(ring_key("ring_20261121T223000.pcap12"), Some(("20261121T223000", 12)));
        for bad in ["ring_20261121T223000.pcap01", "ring_20261121T223000.pcapx", "ring_20261121T223000.pcap.partial"] {
            assert!(!is_ring_name(bad), "{bad}");
        }
        let d = tempfile::tempdir().unwrap();
        let names = [
            "ring_20261121T223030.pcap",
            "ring_20261121T223000.pcap10",
            "ring_20261121T223000.pcap",
            "ring_20261121T223000.pcap9",
            "ring_20261121T223100.pcap",
            "ring_20261121T223130.pcap2",
            "ring_20261121T223130.pcap",
            "ring_20261121T223130.pcap1",
        ];
        for n in names {
            fs::write(d.path().join(n), "").unwrap();
        }
        let files = ring_files(d.path());
        let order: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(
            order,
            [
                "ring_20261121T223000.pcap",
                "ring_20261121T223000.pcap9",
                "ring_20261121T223000.pcap10",
                "ring_20261121T223030.pcap",
                "ring_20261121T223100.pcap",
                "ring_20261121T223130.pcap",
                "ring_20261121T223130.pcap1",
                "ring_20261121T223130.pcap2",
            ]
        );
        assert_eq!(prune_ring(&files, RING_KEEP).len(), 3, "the whole oldest slot goes");
        assert_eq!(ring_started(&files[2]), ring_started(&files[0]));
        assert_eq!(scan(d.path(), &|_| false).len(), 8, "size-rotated ring files count towards the cap");
    }

    #[test]
    fn a_pinned_ring_file_is_in_use_under_either_name() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("ring")).unwrap();
        fs::create_dir_all(d.path().join(".work/inc")).unwrap();
        let ring = d.path().join("ring/ring_20261121T223000.pcap3");
        fs::write(&ring, [0u8; 50]).unwrap();
        fs::hard_link(&ring, d.path().join(".work/inc/ring_20261121T223000.pcap3")).unwrap();
        let work = d.path().join(".work");
        let found = scan(d.path(), &|p| p.starts_with(&work));
        assert_eq!(found.len(), 1, "counted once");
        assert!(found[0].in_use, "deleting the ring name of a pinned file frees nothing");
    }

    #[test]
    fn ring_keeps_the_newest_three() {
        let d = tempfile::tempdir().unwrap();
        for n in ["ring_20261121T223000.pcap", "ring_20261121T223100.pcap", "ring_20261121T223030.pcap", "other"] {
            fs::write(d.path().join(n), "").unwrap();
        }
        fs::write(d.path().join("ring_20261121T222930.pcap"), "").unwrap();
        let files = ring_files(d.path());
        assert_eq!(files.len(), 4);
        let gone: Vec<String> = prune_ring(&files, RING_KEEP)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(gone, ["ring_20261121T222930.pcap"]);
        assert!(prune_ring(&files[..2], RING_KEEP).is_empty());
    }

    #[test]
    fn the_oldest_ring_file_goes_in_the_second_before_a_rotation() {
        let files: Vec<PathBuf> =
            ["ring_20261121T223000.pcap", "ring_20261121T223030.pcap", "ring_20261121T223100.pcap"]
                .iter()
                .map(PathBuf::from)
                .collect();
        let newest = ring_started(&files[2]).unwrap();
        assert_eq!(humantime::format_rfc3339_seconds(newest).to_string(), "2026-11-21T22:31:00Z");
        let rotate = Duration::from_secs(30);
        assert_eq!(ring_keep(&files, rotate, newest + Duration::from_secs(28)), RING_KEEP);
        assert_eq!(ring_keep(&files, rotate, newest + Duration::from_millis(29_100)), RING_KEEP - 1);
        assert_eq!(ring_keep(&[], rotate, newest), RING_KEEP);
    }

    fn fi(name: &str, age_s: u64, bytes: u64, in_use: bool, now: SystemTime) -> FileInfo {
        FileInfo { path: name.into(), modified: now - Duration::from_secs(age_s), bytes, in_use }
    }

    #[test]
    fn retention_deletes_old_files_then_oldest_first_over_the_cap() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let day = 86_400;
        let files = [
            fi("old-incident", 8 * day, 10, false, now),
            fi("incident-a", 3 * day, 100, false, now),
            fi("ring-1", 60, 300, false, now),
            fi("ring-2", 30, 300, false, now),
            fi("ring-current", 0, 300, true, now),
        ];
        let week = Some(Duration::from_secs(7 * day));
        // Under the cap: only the file past retention goes.
        assert_eq!(over_limits(&files, now, week, 10_000), vec![PathBuf::from("old-incident")]);
        // Cap of 700 bytes: ring files count, so the old incident file and the oldest ring file go.
        assert_eq!(
            over_limits(&files, now, week, 700),
            vec![PathBuf::from("old-incident"), "incident-a".into(), "ring-1".into()]
        );
        // The file being written is never deleted, even when it alone is over the cap.
        assert_eq!(over_limits(&files, now, None, 1).last(), Some(&PathBuf::from("ring-2")));
        assert!(over_limits(&files, now, None, 10_000).is_empty());
    }

    /// tcpdump mode reads `pcap_retention_days` through the same policy: 0 = no age limit.
    #[test]
    fn retention_days_zero_keeps_old_files_in_tcpdump_mode() {
        let d = tempfile::tempdir().unwrap();
        let env = crate::config::paths::Env {
            euid: 1000,
            home: Some(d.path().into()),
            root: "/".into(),
            ..Default::default()
        };
        let mut s = crate::config::Settings::defaults(&crate::config::paths::Paths::resolve(&env, false));
        s.pcap_retention_days = 0;
        let r = crate::input::capture::evidence::retention(&s);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let files = [fi("year-old", 365 * 86_400, 10, false, now), fi("ring-current", 0, 10, true, now)];
        assert!(over_limits(&files, now, r.max_age, r.max_bytes).is_empty());
        s.pcap_retention_days = 7;
        let r = crate::input::capture::evidence::retention(&s);
        assert_eq!(over_limits(&files, now, r.max_age, r.max_bytes), vec![PathBuf::from("year-old")]);
    }

    #[test]
    fn scan_finds_capture_files_in_sub_directories() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("ring")).unwrap();
        fs::write(d.path().join("a_20261121T223000Z.pcap"), "12345").unwrap();
        fs::write(d.path().join("ring/ring_20261121T223000.pcap"), "1").unwrap();
        fs::write(d.path().join("notes.txt"), "x").unwrap();
        let found = scan(d.path(), &|p| p.ends_with("ring/ring_20261121T223000.pcap"));
        assert_eq!(found.len(), 2);
        assert_eq!(found.iter().map(|f| f.bytes).sum::<u64>(), 6);
        assert_eq!(found.iter().filter(|f| f.in_use).count(), 1);
        assert_eq!(remove(&found.iter().map(|f| f.path.clone()).collect::<Vec<_>>(), "test"), 2);
    }
}

//! Reading back the agent's own state files (§9): the saved baseline, the API config cache, the
//! spool's items and index, the update-check stamp. One rule for all of them: a missing file is
//! a fresh start; a file that cannot be read or parsed (empty, truncated, garbage, binary, wrong
//! types, numbers out of range) gets one warning naming it, is moved aside as `<name>.corrupt`
//! for a human to look at, and that part of the agent starts fresh. Never a panic.
//!
//! Owns only the read-validate-quarantine step; the callers own the formats (each passes a
//! parser) and never write through this module.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

use log::warn;

/// Where a corrupt file is moved: `<name>.corrupt` beside it.
pub fn corrupt_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{name}.corrupt"))
}

/// Read `path` and parse it with `parse`. None when the file is missing, or (after one warning
/// and moving it aside) when it cannot be read or parsed. `what` names the file's role in the
/// warning ("saved baseline", "update-check stamp").
pub fn load<T>(path: &Path, what: &str, parse: impl FnOnce(&[u8]) -> Result<T>) -> Option<T> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            quarantine(path, what, &format!("cannot read it: {e}"));
            return None;
        }
    };
    let parsed = if bytes.iter().all(u8::is_ascii_whitespace) { Err(corrupt("it is empty")) } else { parse(&bytes) };
    match parsed {
        Ok(v) => Some(v),
        Err(reason) => {
            quarantine(path, what, &reason.to_string());
            None
        }
    }
}

/// [`load`] for JSON files: `serde_json` then `check` (ranges serde cannot express).
pub fn load_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
    check: impl FnOnce(&T) -> Result<()>,
) -> Option<T> {
    load(path, what, |b| {
        let v: T = serde_json::from_slice(b).map_err(|e| corrupt(format!("not valid: {e}")))?;
        check(&v).map(|()| v)
    })
}

/// What is wrong with a state file's contents (the reason in [`quarantine`]'s warning).
pub fn corrupt(why: impl Into<String>) -> Error {
    Error::Invalid { what: "state file", why: why.into() }
}

/// Log once and move the file aside; a failed move is part of the same warning.
pub fn quarantine(path: &Path, what: &str, reason: &str) {
    let dest = corrupt_path(path);
    match std::fs::rename(path, &dest) {
        Ok(()) => warn!(
            "{}: ignoring the {what}: {reason}; moved aside to {} and starting it fresh",
            path.display(),
            dest.display()
        ),
        Err(e) => warn!(
            "{}: ignoring the {what}: {reason}; it could not be moved aside ({e}); starting it fresh",
            path.display()
        ),
    }
}

/// `secs` after the Unix epoch, or an error naming the field when a `SystemTime` cannot hold it.
pub fn epoch_secs(field: &str, secs: u64) -> Result<std::time::SystemTime> {
    std::time::UNIX_EPOCH
        .checked_add(std::time::Duration::from_secs(secs))
        .ok_or_else(|| corrupt(format!("`{field}` {secs} is out of range for a timestamp")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(b: &[u8]) -> Result<u64> {
        std::str::from_utf8(b).map_err(|e| corrupt(e.to_string()))?.trim().parse().map_err(|e| corrupt(format!("{e}")))
    }

    #[test]
    fn missing_is_silent_and_good_files_stay() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("stamp");
        assert_eq!(load(&p, "stamp", num), None);
        assert!(!corrupt_path(&p).exists());
        std::fs::write(&p, "42\n").unwrap();
        assert_eq!(load(&p, "stamp", num), Some(42));
        assert!(p.exists());
    }

    #[test]
    fn every_kind_of_corruption_is_moved_aside() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("stamp");
        for bad in [&b""[..], b"  \n", b"4x", b"\x00\xff\x13", b"99999999999999999999999"] {
            std::fs::write(&p, bad).unwrap();
            assert_eq!(load(&p, "stamp", num), None, "{bad:?}");
            assert!(!p.exists(), "{bad:?} left in place");
            assert_eq!(std::fs::read(corrupt_path(&p)).unwrap(), bad);
        }
        // A directory where a file belongs cannot be read: moved aside too.
        std::fs::remove_file(corrupt_path(&p)).unwrap();
        std::fs::create_dir(&p).unwrap();
        assert_eq!(load(&p, "stamp", num), None);
        assert!(corrupt_path(&p).is_dir());
    }

    #[test]
    fn json_checks_ranges_serde_cannot() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.json");
        std::fs::write(&p, "[18446744073709551615]").unwrap();
        let check = |v: &Vec<u64>| epoch_secs("saved_at", v[0]).map(|_| ());
        assert_eq!(load_json::<Vec<u64>>(&p, "x", check), None);
        assert!(corrupt_path(&p).exists());
        std::fs::write(&p, "[1800000000]").unwrap();
        assert_eq!(load_json::<Vec<u64>>(&p, "x", check), Some(vec![1_800_000_000]));
        assert_eq!(corrupt_path(Path::new("/s/baseline.json")), Path::new("/s/baseline.json.corrupt"));
    }
}

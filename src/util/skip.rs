//! The one way a test that cannot run here says so, shared by the unit tests (`util::skip`) and
//! the integration binary (`tests/it/util.rs` includes this file). Depends only on std.

#![allow(dead_code)]

/// A test that cannot run here, for `reason`. CI (`CI=true`) runs as root with every tool the
/// tests use installed, so there a skip is a failure (panic). Elsewhere the reason goes to
/// stderr and, when `FTAGENT_SKIP_LOG` names a file (`scripts/test.sh` sets it), to that file,
/// which the script summarises in one line at the end.
pub fn skip(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("skipped under CI=true, where it must run: {reason}");
    }
    note_skip(reason);
}

/// A skip CI cannot avoid either (the build lacks a feature): logged as [`skip`] does, never a
/// failure.
pub fn note_skip(reason: &str) {
    let test = std::thread::current().name().unwrap_or("test").to_string();
    eprintln!("SKIPPED {test}: {reason}");
    if let Some(log) = std::env::var_os("FTAGENT_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = writeln!(f, "{test}: {reason}");
        }
    }
}

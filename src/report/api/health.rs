//! Process-wide record of the last call the Flowtriq API accepted, for the state file (§6.6).
//! Written by the API sender thread, read by the report worker; one atomic, never blocks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static LAST_API_SUCCESS_MS: AtomicU64 = AtomicU64::new(0);

/// The API answered 2xx at `wall`.
pub fn record_api_success(wall: SystemTime) {
    let ms = wall.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    LAST_API_SUCCESS_MS.fetch_max(ms, Ordering::Relaxed);
}

/// When the API last accepted a call in this process, if ever.
pub fn last_api_success() -> Option<SystemTime> {
    match LAST_API_SUCCESS_MS.load(Ordering::Relaxed) {
        0 => None,
        ms => Some(UNIX_EPOCH + Duration::from_millis(ms)),
    }
}

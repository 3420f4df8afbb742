//! The daily update check at start-up (§8.4): at most once a day (a stamp file in the state dir),
//! on its own thread with a timeout, logging only. It never blocks start-up or sampling: the
//! thread is detached, and a process that exits while it waits simply ends it. Skipped with
//! `--no-update-check` or `"auto_update": false`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{debug, info};

use crate::config::Settings;

/// How often the start-up check asks.
pub const EVERY: Duration = Duration::from_secs(24 * 3600);
/// Limit of the background request.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn stamp_path(state_dir: &Path) -> PathBuf {
    state_dir.join("update-check")
}

/// True when no check happened within [`EVERY`] before `now` (a stamp in the future counts as
/// stale, so a clock set back does not silence the check for good).
pub fn due(last: Option<SystemTime>, now: SystemTime) -> bool {
    match last {
        None => true,
        Some(t) => match now.duration_since(t) {
            Ok(age) => age >= EVERY,
            Err(_) => true,
        },
    }
}

/// The last check's time; a corrupt stamp is moved aside with one warning (the check is then due).
fn read_stamp(path: &Path) -> Option<SystemTime> {
    crate::util::statefile::load(path, "update-check stamp", |b| {
        let text = std::str::from_utf8(b).map_err(|_| crate::util::statefile::corrupt("it is not text"))?;
        let secs: u64 = text.trim().parse().map_err(|e| {
            crate::util::statefile::corrupt(format!("{:?} is not a number of seconds: {e}", text.trim()))
        })?;
        crate::util::statefile::epoch_secs("stamp", secs)
    })
}

fn write_stamp(path: &Path, now: SystemTime) {
    let secs = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    if let Err(e) = crate::util::fs::write_atomic(path, format!("{secs}\n").as_bytes(), 0o600) {
        debug!("cannot record the update check: {e}");
    }
}

/// Start the check in the background when it is enabled and due. Returns at once.
pub fn spawn_daily(settings: &Settings, no_update_check: bool) {
    if no_update_check || !settings.auto_update {
        debug!("daily update check off ({})", if no_update_check { "--no-update-check" } else { "auto_update false" });
        return;
    }
    let stamp = stamp_path(&settings.state_dir);
    if !due(read_stamp(&stamp), SystemTime::now()) {
        return;
    }
    let url = settings.update_url.clone();
    let spawned = std::thread::Builder::new().name("ftagent-update".into()).spawn(move || {
        match super::latest(&url, TIMEOUT) {
            Ok((_, latest, true)) => info!(
                "ftagent {latest} is available (running {}); update with `ftagent --update`",
                crate::event::AGENT_VERSION
            ),
            Ok((_, latest, false)) => debug!("ftagent is up to date (latest release {latest})"),
            Err(e) => {
                info!("update check failed: {e}");
                return;
            }
        }
        write_stamp(&stamp, SystemTime::now());
    });
    if let Err(e) = spawned {
        debug!("cannot start the update check: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_once_a_day() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(due(None, t0));
        assert!(!due(Some(t0), t0 + Duration::from_secs(3600)));
        assert!(due(Some(t0), t0 + EVERY));
        assert!(due(Some(t0 + Duration::from_secs(60)), t0), "a stamp in the future is stale");
    }

    #[test]
    fn stamp_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = stamp_path(dir.path());
        assert_eq!(read_stamp(&p), None);
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_123);
        write_stamp(&p, t);
        assert_eq!(read_stamp(&p), Some(t));
    }

    #[test]
    fn a_stamp_past_what_a_timestamp_holds_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let p = stamp_path(dir.path());
        std::fs::write(&p, format!("{}\n", u64::MAX)).unwrap();
        assert_eq!(read_stamp(&p), None);
        assert!(!p.exists() && crate::util::statefile::corrupt_path(&p).exists());
        assert!(due(read_stamp(&p), SystemTime::now()));
    }
}

//! Layer-7 detection from web-server access logs (§11), no root needed: follow each configured
//! log, aggregate its requests per second, learn a requests/s baseline and open `http_flood`
//! incidents. Always built; runs on its own thread beside the counter sampling (and capture in
//! capture builds), never delaying it.
//!
//! - [`parse`]: line parsers (pure). [`follow`]: the only file reader (rotation, truncation).
//! - [`aggregate`]: bounded per-second figures (the sketches of [`crate::util::sketch`]). [`baseline`], [`detect`]: pure,
//!   virtual time. [`events`]: incidents to §6.1 events. [`worker`]: the thread (front door
//!   [`worker::start`]). [`analyze`]: `--analyze` on an access log.

pub mod aggregate;
pub mod analyze;
pub mod baseline;
pub mod detect;
pub mod events;
pub mod follow;
pub mod parse;
pub mod worker;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use parse::Format;

/// Default floor of the requests/s threshold (`http_min_rps_threshold`): well above what most
/// sites serve from one host, well below what takes PHP or a database down.
pub const DEFAULT_MIN_RPS: f64 = 500.0;

/// One `access_logs` entry (§11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    pub path: PathBuf,
    #[serde(default = "default_format")]
    pub format: Format,
}

fn default_format() -> Format {
    Format::Combined
}

/// Why an `access_logs` list is not acceptable, if it is not.
pub fn check(logs: &[AccessLog]) -> Result<(), String> {
    for (i, l) in logs.iter().enumerate() {
        if !l.path.is_absolute() {
            return Err(format!(
                "entry {i}: `path` must be an absolute file path, got {:?}",
                l.path.display().to_string()
            ));
        }
        if logs[..i].iter().any(|o| o.path == l.path) {
            return Err(format!("entry {i}: {} is listed twice", l.path.display()));
        }
    }
    Ok(())
}

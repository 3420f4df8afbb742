//! The `access_logs` entries and `http_min_rps_threshold` default (§11): what the config says
//! about access logs. Reading the logs is `crate::input::accesslog`'s job.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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

/// Why an `access_logs` list is not acceptable, if it is not (the config reader turns it into
/// an error that names the file, the key and its line).
pub fn problem(logs: &[AccessLog]) -> Option<String> {
    for (i, l) in logs.iter().enumerate() {
        if !l.path.is_absolute() {
            return Some(format!(
                "entry {i}: `path` must be an absolute file path, got {:?}",
                l.path.display().to_string()
            ));
        }
        if logs[..i].iter().any(|o| o.path == l.path) {
            return Some(format!("entry {i}: {} is listed twice", l.path.display()));
        }
    }
    None
}

/// The log formats `access_logs[].format` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// nginx/Apache `combined`; also reads `common` lines (no referer or user agent).
    Combined,
    /// Apache/nginx `common`: the same parser as `combined`.
    Common,
    /// nginx `escape=json`.
    Json,
    /// Caddy's JSON access log.
    Caddy,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Combined => "combined",
            Format::Common => "common",
            Format::Json => "json",
            Format::Caddy => "caddy",
        }
    }
}

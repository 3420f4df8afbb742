//! The config file (§3): JSON as written by the operator (or the Python agent) turned into
//! validated, typed [`Settings`]. Unknown keys are kept and warned about; wrong types and
//! out-of-range values are errors naming the file, key, accepted range and line:column.
//!
//! Reading the file is the only I/O here; [`Settings::from_json`] is pure. Each key is read through
//! `config/reader.rs`, which makes those errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::LevelFilter;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::paths::Paths;
use crate::error::{Error, Result};

pub const DEFAULT_API_BASE: &str = "https://flowtriq.com/api/v1";
pub const DEFAULT_UPDATE_URL: &str = "https://api.github.com/repos/flowtriq/ftagent/releases/latest";

/// Every key the agent knows (§3.2), in documentation order.
pub const KNOWN_KEYS: &[&str] = &[
    "api_key",
    "node_uuid",
    "api_base",
    "interface",
    "limited",
    "pcap_enabled",
    "pcap_mode",
    "pcap_dir",
    "pcap_snaplen",
    "pcap_ring_packets",
    "pcap_max_packets",
    "pcap_retention_days",
    "pcap_max_disk_mb",
    "pcap_promiscuous",
    "dynamic_threshold",
    "threshold_multiplier",
    "min_pps_threshold",
    "min_bps_threshold",
    "min_protocol_pps_threshold",
    "min_connections_threshold",
    "min_half_open_threshold",
    "socket_census_max",
    "baseline_window_s",
    "grace_period_s",
    "sample_interval_ms",
    "confirm_ticks",
    "holddown_ticks",
    "cooldown_s",
    "heartbeat_interval",
    "metrics_interval",
    "auto_update",
    "update_url",
    "log_file",
    "log_level",
    "state_dir",
    "events_file",
    "spool_max_mb",
    "webhook_url",
    "prometheus_textfile",
    "ioc_patterns",
    "procfs_root",
    "mitigation",
    "access_logs",
    "http_min_rps_threshold",
    "flows",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PcapMode {
    Scapy,
    Tcpdump,
}

/// One local IOC pattern (§7.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IocPattern {
    pub pattern: String,
    #[serde(default)]
    pub attack_name: String,
    #[serde(default)]
    pub attack_family: String,
}

/// Detection tuning: everything the baseline and the incident state machine read.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectConfig {
    pub dynamic_threshold: bool,
    pub threshold_multiplier: f64,
    pub min_pps_threshold: f64,
    pub min_bits_per_s_threshold: f64,
    /// Floor of each per-protocol threshold (SYN/s, UDP/s, ICMP/s, fragments/s; capture builds).
    pub min_protocol_pps_threshold: f64,
    /// Floor of the established-connections threshold (§5.7; half of it floors distinct peers).
    pub min_connections_threshold: f64,
    /// Floor of the half-open (SYN_RECV) connections threshold (§5.7).
    pub min_half_open_threshold: f64,
    pub baseline_window: Duration,
    pub grace_period: Duration,
    pub sample_interval: Duration,
    pub confirm_ticks: u32,
    pub holddown_ticks: u32,
    pub cooldown: Duration,
    /// Set from the API's `confirm_ticks` (1-second ticks): confirm by time over threshold
    /// instead of by `confirm_ticks` samples (confirmation samples come every quarter interval).
    pub confirm_for: Option<Duration>,
    /// The configured `min_pps_threshold`: no value from the API goes under it (§10.1).
    pub local_floor_pps: f64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            dynamic_threshold: true,
            threshold_multiplier: 3.0,
            min_pps_threshold: 5000.0,
            min_bits_per_s_threshold: 50_000_000.0,
            min_protocol_pps_threshold: 2000.0,
            min_connections_threshold: 1000.0,
            min_half_open_threshold: 256.0,
            baseline_window: Duration::from_secs(300),
            grace_period: Duration::from_secs(90),
            sample_interval: Duration::from_millis(200),
            confirm_ticks: 2,
            holddown_ticks: 50,
            cooldown: Duration::from_secs(60),
            confirm_for: None,
            local_floor_pps: 5000.0,
        }
    }
}

/// Validated settings. Paths are absolute defaults filled in from [`Paths`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file these settings came from, if any.
    pub source: Option<PathBuf>,
    pub api_key: String,
    pub node_uuid: String,
    pub api_base: String,
    pub interface: String,
    pub limited: bool,
    pub pcap_enabled: bool,
    pub pcap_mode: PcapMode,
    pub pcap_dir: PathBuf,
    pub pcap_snaplen: u32,
    pub pcap_ring_packets: usize,
    pub pcap_max_packets: u64,
    pub pcap_retention_days: u32,
    pub pcap_max_disk_mb: u64,
    /// Capture in promiscuous mode (both capture modes); off = only traffic for this host.
    pub pcap_promiscuous: bool,
    pub detect: DetectConfig,
    pub heartbeat_interval: Duration,
    pub metrics_interval: Duration,
    pub auto_update: bool,
    pub update_url: String,
    /// None = stderr only.
    pub log_file: Option<PathBuf>,
    pub log_level: LevelFilter,
    pub state_dir: PathBuf,
    /// None = local event log disabled.
    pub events_file: Option<PathBuf>,
    pub spool_max_mb: u64,
    pub webhook_url: String,
    pub prometheus_textfile: Option<PathBuf>,
    pub ioc_patterns: Vec<IocPattern>,
    pub procfs_root: PathBuf,
    /// Sockets read per socket census at most (§5.7); 0 turns the census off.
    pub socket_census_max: usize,
    /// `metrics_listen`, `webhook_format`, `webhook_secret`, `pagerduty_routing_key` (§6.6).
    pub ops: operator::OpsConfig,
    /// Automatic mitigation (§10).
    pub mitigation: crate::config::mitigation::MitigationConfig,
    /// Web-server access logs to follow (§11).
    pub access_logs: Vec<crate::config::accesslog::AccessLog>,
    /// Floor of the requests/s threshold of access-log detection.
    pub http_min_rps_threshold: f64,
    /// The flow collector and the networks it protects (§12).
    pub flows: flows::FlowsConfig,
    /// Keys present in the file that this version does not know.
    pub unknown_keys: Vec<String>,
    /// The file's JSON object as read, so `--setup` can keep keys it does not ask about.
    pub raw: Map<String, Value>,
}

impl Settings {
    /// All defaults for the given layout: local mode, no API.
    pub fn defaults(paths: &Paths) -> Self {
        Self::from_map(Map::new(), "", None, paths).expect("defaults are valid")
    }

    /// Load from `explicit` (must exist) or the default path (missing = defaults).
    pub fn load(explicit: Option<&Path>, paths: &Paths) -> Result<Self> {
        let path = explicit.unwrap_or(&paths.config);
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_json(&text, Some(path), paths),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => Ok(Self::defaults(paths)),
            Err(source) => Err(Error::ConfigRead { path: path.to_path_buf(), source }),
        }
    }

    /// Parse and validate config text. `path` is used in error messages.
    pub fn from_json(text: &str, path: Option<&Path>, paths: &Paths) -> Result<Self> {
        let shown = path.map(Path::to_path_buf).unwrap_or_else(|| "<config>".into());
        let value: Value = serde_json::from_str(text).map_err(|e| Error::ConfigSyntax {
            path: shown.clone(),
            line: e.line(),
            column: e.column().max(1),
            msg: strip_location(&e.to_string()),
        })?;
        let Value::Object(map) = value else {
            return Err(Error::ConfigSyntax {
                path: shown,
                line: 1,
                column: 1,
                msg: "the config must be a JSON object ({ ... })".into(),
            });
        };
        Self::from_map(map, text, path, paths)
    }

    fn from_map(map: Map<String, Value>, text: &str, path: Option<&Path>, paths: &Paths) -> Result<Self> {
        let r = Reader { map: &map, text, path: path.map(Path::to_path_buf).unwrap_or_else(|| "<config>".into()) };
        let state_dir: PathBuf = r.path_or("state_dir", paths.state_dir.clone())?;
        let d = DetectConfig::default();
        let detect = DetectConfig {
            dynamic_threshold: r.get("dynamic_threshold", d.dynamic_threshold)?,
            threshold_multiplier: r.range("threshold_multiplier", 3.0, 1.0, 1000.0)?,
            min_pps_threshold: r.range("min_pps_threshold", 5000.0, 0.0, 1e12)?,
            min_bits_per_s_threshold: r.range("min_bps_threshold", 50_000_000.0, 0.0, 1e15)?,
            min_protocol_pps_threshold: r.range("min_protocol_pps_threshold", 2000.0, 0.0, 1e12)?,
            min_connections_threshold: r.range("min_connections_threshold", 1000.0, 1.0, 1e9)?,
            min_half_open_threshold: r.range("min_half_open_threshold", 256.0, 1.0, 1e9)?,
            baseline_window: secs(r.range("baseline_window_s", 300, 1, 86_400)?),
            grace_period: secs(r.range("grace_period_s", 90, 0, 86_400)?),
            sample_interval: Duration::from_millis(r.range("sample_interval_ms", 200, 100, 10_000)?),
            confirm_ticks: r.range("confirm_ticks", 2, 1, 10_000)?,
            holddown_ticks: r.range("holddown_ticks", 50, 1, 1_000_000)?,
            cooldown: secs(r.range("cooldown_s", 60, 0, 86_400)?),
            confirm_for: None,
            local_floor_pps: 0.0,
        };
        let detect = DetectConfig { local_floor_pps: detect.min_pps_threshold, ..detect };
        let api_key: String = r.get("api_key", String::new())?;
        let node_uuid: String = r.get("node_uuid", String::new())?;
        if !api_key.is_empty() && node_uuid.trim().is_empty() {
            return Err(r.invalid("node_uuid", "required when `api_key` is set (run `ftagent --setup`)"));
        }
        let api_base: String = r.get("api_base", DEFAULT_API_BASE.to_string())?;
        if !(api_base.starts_with("http://") || api_base.starts_with("https://")) {
            return Err(r.invalid("api_base", "must start with http:// or https://"));
        }
        let interface: String = r.get("interface", "auto".to_string())?;
        if interface.trim().is_empty() || interface.contains(['/', ' ']) {
            return Err(r.invalid("interface", "must be `auto` or an interface name"));
        }
        let log_level = match r.get::<String>("log_level", "INFO".into())?.to_ascii_uppercase().as_str() {
            "ERROR" => LevelFilter::Error,
            "WARN" | "WARNING" => LevelFilter::Warn,
            "INFO" => LevelFilter::Info,
            "DEBUG" => LevelFilter::Debug,
            "TRACE" => LevelFilter::Trace,
            _ => return Err(r.invalid("log_level", "accepted: ERROR, WARN, INFO, DEBUG, TRACE")),
        };
        let access_logs: Vec<crate::config::accesslog::AccessLog> = r.get("access_logs", Vec::new())?;
        if let Some(m) = crate::config::accesslog::problem(&access_logs) {
            return Err(r.invalid("access_logs", &m));
        }
        let mut unknown_keys: Vec<String> = map
            .keys()
            .filter(|k| !KNOWN_KEYS.contains(&k.as_str()) && !operator::KEYS.contains(&k.as_str()))
            .cloned()
            .collect();
        unknown_keys.sort();
        Ok(Settings {
            source: path.map(Path::to_path_buf),
            node_uuid: node_uuid.trim().to_string(),
            api_base: api_base.trim_end_matches('/').to_string(),
            interface,
            limited: r.get("limited", false)?,
            pcap_enabled: r.get("pcap_enabled", true)?,
            pcap_mode: r.get("pcap_mode", PcapMode::Scapy)?,
            pcap_dir: r.path_or("pcap_dir", state_dir.join("pcaps"))?,
            pcap_snaplen: r.range("pcap_snaplen", 0, 0, 262_144)?,
            pcap_ring_packets: r.range("pcap_ring_packets", 1000, 0, 10_000_000)?,
            pcap_max_packets: r.range("pcap_max_packets", 10_000, 1, 1_000_000_000)?,
            pcap_retention_days: r.range("pcap_retention_days", 7, 0, 36_500)?,
            pcap_max_disk_mb: r.range("pcap_max_disk_mb", 2000, 1, 100_000_000)?,
            pcap_promiscuous: r.get("pcap_promiscuous", false)?,
            detect,
            heartbeat_interval: secs(r.range("heartbeat_interval", 30, 1, 86_400)?),
            metrics_interval: secs(r.range("metrics_interval", 10, 1, 86_400)?),
            auto_update: r.get("auto_update", true)?,
            update_url: r.get("update_url", DEFAULT_UPDATE_URL.to_string())?,
            log_file: r.optional_path("log_file", paths.log_file.clone())?,
            log_level,
            events_file: r.optional_path("events_file", state_dir.join("events.jsonl"))?,
            spool_max_mb: r.range("spool_max_mb", 64, 1, 1_000_000)?,
            webhook_url: r.get("webhook_url", String::new())?,
            prometheus_textfile: r.optional_path("prometheus_textfile", PathBuf::new())?,
            ioc_patterns: r.get("ioc_patterns", Vec::new())?,
            procfs_root: r.path_or("procfs_root", PathBuf::from("/proc"))?,
            socket_census_max: r.range("socket_census_max", 65_536, 0, 10_000_000)?,
            ops: operator::read(&r)?,
            mitigation: crate::config::mitigation::parse(map.get("mitigation")).map_err(|(key, msg)| {
                // A `bgp` error points at its own object, the rest at `mitigation`.
                let at = if key.starts_with("mitigation.bgp") { "bgp" } else { "mitigation" };
                r.invalid_nested(at, &key, &msg)
            })?,
            access_logs,
            http_min_rps_threshold: r.range(
                "http_min_rps_threshold",
                crate::config::accesslog::DEFAULT_MIN_RPS,
                1.0,
                1e9,
            )?,
            flows: flows::parse(map.get("flows")).map_err(|(key, msg)| r.invalid_nested("flows", &key, &msg))?,
            api_key,
            state_dir,
            unknown_keys,
            raw: map.clone(),
        })
    }

    /// True when the Flowtriq API is configured.
    pub fn api_enabled(&self) -> bool {
        !self.api_key.is_empty()
    }

    /// The API key as it may be shown: first 8 chars, `...`, last 4 (§3.1).
    pub fn masked_api_key(&self) -> String {
        mask_key(&self.api_key)
    }
}

/// Mask an API key for display; short keys are hidden entirely.
pub fn mask_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 12 {
        return "*".repeat(chars.len().min(8));
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}...{tail}")
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Keys present in a config object, for `--setup` to carry over.
pub fn extra_keys(raw: &Map<String, Value>, asked: &[&str]) -> BTreeMap<String, Value> {
    raw.iter().filter(|(k, _)| !asked.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub mod accesslog;
pub mod bgp;
pub mod flows;
pub mod mitigation;
pub mod operator;
pub mod paths;
mod reader;
use reader::{strip_location, Reader};

#[cfg(test)]
mod tests;

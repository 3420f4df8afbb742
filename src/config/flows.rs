//! The `flows` config block (§12): where the flow collector listens, which exporters it trusts,
//! the networks it protects, host groups with their own thresholds, and the bound on tracked
//! addresses. Parsed and validated here (exit 78 naming `flows.KEY` and where it stands); the
//! collector (`input::flows`) and the per-address detector read the result. Pure.
//!
//! ```json
//! "flows": {
//!   "listen": ["0.0.0.0:2055", "0.0.0.0:6343", "0.0.0.0:4739"],
//!   "exporters": [{"address": "192.0.2.1", "name": "edge1", "sampling_rate": 1000}],
//!   "networks": ["198.51.100.0/24", "2001:db8::/48"],
//!   "hostgroups": [{"name": "web", "networks": ["198.51.100.0/26"],
//!                   "min_pps_threshold": 20000, "min_bps_threshold": 1e9,
//!                   "threshold_multiplier": 4, "mitigation": "bgp"}],
//!   "max_hosts": 100000
//! }
//! ```

use std::net::{IpAddr, SocketAddr};

use serde_json::{Map, Value};

/// Upper bounds on list sizes: a config is operator-written, but still bounded.
pub const MAX_LISTEN: usize = 16;
pub const MAX_EXPORTERS: usize = 4096;
pub const MAX_NETWORKS: usize = 4096;
pub const MAX_HOSTGROUPS: usize = 256;
/// Default bound on addresses tracked by the per-address detector.
pub const DEFAULT_MAX_HOSTS: usize = 100_000;

/// An address prefix: `198.51.100.0/24`, `2001:db8::/48`, or a bare address (/32, /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The network address (host bits cleared).
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    pub fn parse(s: &str) -> Option<Self> {
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|n| *n <= max)?,
            None => max,
        };
        Some(Prefix { addr: mask(addr, len), len })
    }

    /// True when `ip` is inside this prefix (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        self.addr.is_ipv4() == ip.is_ipv4() && mask(ip, self.len) == self.addr
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// `ip` with all but the first `len` bits cleared.
pub fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) };
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len.min(128))) };
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

/// One trusted exporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exporter {
    /// The source address its datagrams come from.
    pub address: IpAddr,
    /// Shown in `--status`, `/metrics` and events; defaults to the address.
    pub name: Option<String>,
    /// Overrides the sampling rate the exporter announces (1 = unsampled).
    pub sampling_rate: Option<u32>,
}

/// A named set of prefixes with its own thresholds and mitigation policy.
#[derive(Debug, Clone, PartialEq)]
pub struct HostGroup {
    pub name: String,
    pub networks: Vec<Prefix>,
    /// None = the global `min_pps_threshold`.
    pub min_pps_threshold: Option<f64>,
    /// None = the global `min_bps_threshold` (bits/s).
    pub min_bps_threshold: Option<f64>,
    /// None = the global `threshold_multiplier`.
    pub threshold_multiplier: Option<f64>,
    /// Mitigation policy name for incidents in this group (`"none"`, `"hook"`, `"bgp"`, ...);
    /// None = the global `mitigation` settings.
    pub mitigation: Option<String>,
}

/// The validated `flows` block. The default (no block) listens nowhere.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowsConfig {
    pub listen: Vec<SocketAddr>,
    /// Empty = datagrams from any source are parsed (warned about once at start).
    pub exporters: Vec<Exporter>,
    pub networks: Vec<Prefix>,
    pub hostgroups: Vec<HostGroup>,
    pub max_hosts: usize,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        FlowsConfig {
            listen: Vec::new(),
            exporters: Vec::new(),
            networks: Vec::new(),
            hostgroups: Vec::new(),
            max_hosts: DEFAULT_MAX_HOSTS,
        }
    }
}

impl FlowsConfig {
    /// True when the collector has somewhere to listen.
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }

    /// The configured exporter sending from `ip`, if any.
    pub fn exporter(&self, ip: IpAddr) -> Option<&Exporter> {
        self.exporters.iter().find(|e| e.address == ip)
    }

    /// Inside one of `networks`?
    pub fn protects(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|p| p.contains(ip))
    }
}

/// A validation failure: the dotted key under `flows` and what is wrong.
pub type KeyError = (String, String);

fn err(key: &str, msg: impl Into<String>) -> KeyError {
    (format!("flows.{key}"), msg.into())
}

const KEYS: &[&str] = &["listen", "exporters", "networks", "hostgroups", "max_hosts"];
const EXPORTER_KEYS: &[&str] = &["address", "name", "sampling_rate"];
const GROUP_KEYS: &[&str] =
    &["name", "networks", "min_pps_threshold", "min_bps_threshold", "threshold_multiplier", "mitigation"];

/// Parse the `flows` value (absent or null = defaults).
pub fn parse(v: Option<&Value>) -> Result<FlowsConfig, KeyError> {
    let map = match v {
        None | Some(Value::Null) => return Ok(FlowsConfig::default()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(("flows".into(), "must be an object { \"listen\": [...], ... }".into())),
    };
    if let Some(k) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(err(k, format!("unknown key; accepted: {}", KEYS.join(", "))));
    }
    let listen = strings(map, "listen", MAX_LISTEN)?
        .iter()
        .enumerate()
        .map(|(i, s)| {
            parse_listen(s).ok_or_else(|| {
                err(&format!("listen[{i}]"), format!("{s:?} is not IP:PORT or :PORT (e.g. \"0.0.0.0:2055\")"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (i, a) in listen.iter().enumerate() {
        if listen[..i].contains(a) {
            return Err(err(&format!("listen[{i}]"), format!("{a} is listed twice")));
        }
    }
    let exporters = exporters(map)?;
    let networks = prefixes(map, "networks", "networks")?;
    let hostgroups = hostgroups(map)?;
    let max_hosts = match map.get("max_hosts") {
        None | Some(Value::Null) => DEFAULT_MAX_HOSTS,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=100_000_000).contains(n))
            .ok_or_else(|| err("max_hosts", "must be an integer in 1..=100000000"))? as usize,
    };
    Ok(FlowsConfig { listen, exporters, networks, hostgroups, max_hosts })
}

/// `IP:PORT`, `[v6]:PORT`, or `:PORT` (all IPv4 addresses). Port 0 is refused.
pub fn parse_listen(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    let addr = match s.strip_prefix(':') {
        Some(port) => SocketAddr::from(([0, 0, 0, 0], port.parse::<u16>().ok()?)),
        None => s.parse::<SocketAddr>().ok()?,
    };
    (addr.port() != 0).then_some(addr)
}

fn list<'a>(map: &'a Map<String, Value>, key: &str, max: usize) -> Result<&'a [Value], KeyError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) if a.len() <= max => Ok(a),
        Some(Value::Array(_)) => Err(err(key, format!("at most {max} entries"))),
        Some(_) => Err(err(key, "must be a list")),
    }
}

fn strings(map: &Map<String, Value>, key: &str, max: usize) -> Result<Vec<String>, KeyError> {
    list(map, key, max)?
        .iter()
        .enumerate()
        .map(|(i, v)| v.as_str().map(str::to_string).ok_or_else(|| err(&format!("{key}[{i}]"), "must be a string")))
        .collect()
}

fn prefixes(map: &Map<String, Value>, key: &str, shown: &str) -> Result<Vec<Prefix>, KeyError> {
    strings(map, key, MAX_NETWORKS)
        .map_err(|(k, m)| (k.replacen(&format!("flows.{key}"), &format!("flows.{shown}"), 1), m))?
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Prefix::parse(s).ok_or_else(|| {
                err(
                    &format!("{shown}[{i}]"),
                    format!("{s:?} is not a prefix (e.g. \"198.51.100.0/24\", \"2001:db8::/48\")"),
                )
            })
        })
        .collect()
}

fn exporters(map: &Map<String, Value>) -> Result<Vec<Exporter>, KeyError> {
    let mut out: Vec<Exporter> = Vec::new();
    for (i, v) in list(map, "exporters", MAX_EXPORTERS)?.iter().enumerate() {
        let at = |k: &str| format!("exporters[{i}].{k}");
        let e = match v {
            // A bare address is accepted as shorthand.
            Value::String(s) => Exporter {
                address: s
                    .trim()
                    .parse()
                    .map_err(|_| err(&format!("exporters[{i}]"), format!("{s:?} is not an IP address")))?,
                name: None,
                sampling_rate: None,
            },
            Value::Object(o) => {
                if let Some(k) = o.keys().find(|k| !EXPORTER_KEYS.contains(&k.as_str())) {
                    return Err(err(&at(k), format!("unknown key; accepted: {}", EXPORTER_KEYS.join(", "))));
                }
                let address = o
                    .get("address")
                    .and_then(Value::as_str)
                    .ok_or_else(|| err(&at("address"), "required: the exporter's source IP address"))?;
                let address = address
                    .trim()
                    .parse()
                    .map_err(|_| err(&at("address"), format!("{address:?} is not an IP address")))?;
                let name = match o.get("name") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 64 => Some(s.trim().to_string()),
                    Some(_) => return Err(err(&at("name"), "must be a non-empty string of at most 64 characters")),
                };
                let sampling_rate = match o.get("sampling_rate") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(
                        v.as_u64()
                            .filter(|n| (1..=u64::from(u32::MAX)).contains(n))
                            .ok_or_else(|| err(&at("sampling_rate"), "must be an integer ≥ 1 (1 = unsampled)"))?
                            as u32,
                    ),
                };
                Exporter { address, name, sampling_rate }
            }
            _ => return Err(err(&format!("exporters[{i}]"), "must be an object {\"address\": ...} or an address")),
        };
        if out.iter().any(|o| o.address == e.address) {
            return Err(err(&at("address"), format!("{} is listed twice", e.address)));
        }
        out.push(e);
    }
    Ok(out)
}

fn hostgroups(map: &Map<String, Value>) -> Result<Vec<HostGroup>, KeyError> {
    let mut out: Vec<HostGroup> = Vec::new();
    for (i, v) in list(map, "hostgroups", MAX_HOSTGROUPS)?.iter().enumerate() {
        let at = |k: &str| format!("hostgroups[{i}].{k}");
        let Value::Object(o) = v else {
            return Err(err(&format!("hostgroups[{i}]"), "must be an object {\"name\": ..., \"networks\": [...]}"));
        };
        if let Some(k) = o.keys().find(|k| !GROUP_KEYS.contains(&k.as_str())) {
            return Err(err(&at(k), format!("unknown key; accepted: {}", GROUP_KEYS.join(", "))));
        }
        let name = match o.get("name") {
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 64 => s.trim().to_string(),
            _ => return Err(err(&at("name"), "required: a non-empty string of at most 64 characters")),
        };
        if out.iter().any(|g| g.name == name) {
            return Err(err(&at("name"), format!("{name:?} is used twice")));
        }
        let networks = prefixes(o, "networks", &format!("hostgroups[{i}].networks"))?;
        if networks.is_empty() {
            return Err(err(&at("networks"), "required: at least one prefix"));
        }
        let num = |k: &str, min: f64, max: f64| -> Result<Option<f64>, KeyError> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .filter(|n| (min..=max).contains(n))
                    .map(Some)
                    .ok_or_else(|| err(&at(k), format!("must be a number in {min}..={max}"))),
            }
        };
        let mitigation = match o.get("mitigation") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(_) => return Err(err(&at("mitigation"), "must be a non-empty string")),
        };
        out.push(HostGroup {
            name,
            networks,
            min_pps_threshold: num("min_pps_threshold", 0.0, 1e12)?,
            min_bps_threshold: num("min_bps_threshold", 0.0, 1e15)?,
            threshold_multiplier: num("threshold_multiplier", 1.0, 1000.0)?,
            mitigation,
        });
    }
    Ok(out)
}

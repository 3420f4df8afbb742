//! The `mitigation` config object (§10): mode, TTL, rule cap, allowlist, actions, hook. Parsed
//! and validated in every build, so a config is judged the same whether or not this build can
//! mitigate. Pure: the gateway and resolvers are added by [`host_allowlist`] from text the
//! caller read; this file opens nothing.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Map, Value};

/// What the agent does with the rules it plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Off,
    DryRun,
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::DryRun => "dry_run",
            Mode::Enforce => "enforce",
        }
    }
}

/// One response the planner can choose for an attack (§10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Drop UDP from the amplifier's source port to the target addresses.
    DropAmplifier,
    /// Drop the few (non-spoofed) sources, in a set with timeouts.
    BlockSources,
    /// Rate-limit SYNs per attacked destination port.
    SynRateLimit,
    /// Rate-limit ICMP to the target addresses.
    IcmpRateLimit,
    /// Drop IP fragments to the target addresses.
    DropFragments,
    /// Plan nothing.
    None,
}

impl Action {
    pub const NAMES: &'static str =
        "drop_amplifier, block_sources, syn_rate_limit, icmp_rate_limit, drop_fragments, none";

    pub fn as_str(self) -> &'static str {
        match self {
            Action::DropAmplifier => "drop_amplifier",
            Action::BlockSources => "block_sources",
            Action::SynRateLimit => "syn_rate_limit",
            Action::IcmpRateLimit => "icmp_rate_limit",
            Action::DropFragments => "drop_fragments",
            Action::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "drop_amplifier" => Action::DropAmplifier,
            "block_sources" => Action::BlockSources,
            "syn_rate_limit" => Action::SynRateLimit,
            "icmp_rate_limit" => Action::IcmpRateLimit,
            "drop_fragments" => Action::DropFragments,
            "none" => Action::None,
            _ => return None,
        })
    }

    /// A protocol rate limit: the only kind counter-only incidents may get (§10).
    pub fn is_rate_limit(self) -> bool {
        matches!(self, Action::SynRateLimit | Action::IcmpRateLimit)
    }
}

/// A CIDR block, v4 or v6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128).
    pub fn parse(s: &str) -> Option<Self> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|n| *n <= max)?,
            None => max,
        };
        Some(Cidr { addr: mask(addr, prefix), prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        self.addr.is_ipv4() == ip.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

/// The local program run on open/update/resolve (§10): an argv, never a shell string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub argv: Vec<String>,
    pub timeout: Duration,
}

/// The validated `mitigation` object.
#[derive(Debug, Clone, PartialEq)]
pub struct MitigationConfig {
    pub mode: Mode,
    pub ttl: Duration,
    pub max_rules: usize,
    /// As configured; [`host_allowlist`] adds the gateway and resolvers at start.
    pub allowlist: Vec<Cidr>,
    /// Overrides by attack subtype or family (`snmp_amplification`, `amplification`, `syn_flood`).
    pub actions: Vec<(String, Action)>,
    /// SYNs per second let through to one attacked port while its rate limit is on.
    pub syn_rate_pps: u32,
    /// ICMP packets per second let through to one target while its rate limit is on.
    pub icmp_rate_pps: u32,
    pub hook: Option<Hook>,
}

impl Default for MitigationConfig {
    fn default() -> Self {
        MitigationConfig {
            mode: Mode::Off,
            ttl: Duration::from_secs(600),
            max_rules: 200,
            allowlist: Vec::new(),
            actions: Vec::new(),
            syn_rate_pps: 1000,
            icmp_rate_pps: 100,
            hook: None,
        }
    }
}

/// Keys of the `mitigation` object.
pub const KEYS: &[&str] =
    &["mode", "ttl_s", "max_rules", "allowlist", "actions", "syn_rate_pps", "icmp_rate_pps", "hook"];

/// A problem with one key: (`mitigation.<key>`, message naming the accepted values).
pub type KeyError = (String, String);

fn err(key: &str, msg: impl Into<String>) -> KeyError {
    (format!("mitigation.{key}"), msg.into())
}

/// Parse the `mitigation` value (absent or null = defaults, mode off).
pub fn parse(v: Option<&Value>) -> Result<MitigationConfig, KeyError> {
    let map = match v {
        None | Some(Value::Null) => return Ok(MitigationConfig::default()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(("mitigation".into(), "must be an object {\"mode\": ...}".into())),
    };
    if let Some(k) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(err(k, format!("unknown key; accepted: {}", KEYS.join(", "))));
    }
    let d = MitigationConfig::default();
    let mode = match map.get("mode").map(|v| v.as_str()) {
        None => d.mode,
        Some(Some("off")) => Mode::Off,
        Some(Some("dry_run")) => Mode::DryRun,
        Some(Some("enforce")) => Mode::Enforce,
        Some(_) => return Err(err("mode", "accepted: \"off\", \"dry_run\", \"enforce\"")),
    };
    Ok(MitigationConfig {
        mode,
        ttl: Duration::from_secs(int(map, "ttl_s", 600, 1, 86_400)?),
        max_rules: int(map, "max_rules", 200, 1, 10_000)? as usize,
        allowlist: allowlist(map)?,
        actions: actions(map)?,
        syn_rate_pps: int(map, "syn_rate_pps", 1000, 1, 10_000_000)? as u32,
        icmp_rate_pps: int(map, "icmp_rate_pps", 100, 1, 10_000_000)? as u32,
        hook: hook(map)?,
    })
}

fn int(map: &Map<String, Value>, key: &str, default: u64, min: u64, max: u64) -> Result<u64, KeyError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| err(key, format!("{v} is out of range; accepted: an integer {min}..={max}"))),
    }
}

fn allowlist(map: &Map<String, Value>) -> Result<Vec<Cidr>, KeyError> {
    let Some(v) = map.get("allowlist").filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let items = v.as_array().ok_or_else(|| err("allowlist", "must be an array of CIDRs (\"192.0.2.0/24\")"))?;
    items
        .iter()
        .map(|i| {
            i.as_str().and_then(Cidr::parse).ok_or_else(|| {
                err(
                    "allowlist",
                    format!("{i} is not a CIDR; accepted: \"192.0.2.0/24\", \"2001:db8::/32\", an address"),
                )
            })
        })
        .collect()
}

fn actions(map: &Map<String, Value>) -> Result<Vec<(String, Action)>, KeyError> {
    let Some(v) = map.get("actions").filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let obj =
        v.as_object().ok_or_else(|| err("actions", "must be an object {\"<family or subtype>\": \"<action>\"}"))?;
    obj.iter()
        .map(|(k, a)| match a.as_str().and_then(Action::parse) {
            Some(act) => Ok((k.clone(), act)),
            None => Err(err(&format!("actions.{k}"), format!("{a} is not an action; accepted: {}", Action::NAMES))),
        })
        .collect()
}

fn hook(map: &Map<String, Value>) -> Result<Option<Hook>, KeyError> {
    let Some(v) = map.get("hook").filter(|v| !v.is_null()) else { return Ok(None) };
    let obj = v.as_object().ok_or_else(|| err("hook", "must be an object {\"argv\": [...], \"timeout_s\": 10}"))?;
    if let Some(k) = obj.keys().find(|k| !["argv", "timeout_s"].contains(&k.as_str())) {
        return Err(err(&format!("hook.{k}"), "unknown key; accepted: argv, timeout_s"));
    }
    let argv: Option<Vec<String>> = obj
        .get("argv")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(|s| s.as_str().map(String::from)).collect());
    let argv = argv
        .filter(|a| !a.is_empty() && !a[0].is_empty())
        .ok_or_else(|| err("hook.argv", "must be a non-empty array of strings, the program first (no shell)"))?;
    let timeout = int(obj, "timeout_s", 10, 1, 3600).map_err(|(_, m)| err("hook.timeout_s", m))?;
    Ok(Some(Hook { argv, timeout: Duration::from_secs(timeout) }))
}

/// The addresses the host depends on, always allowed (§10): the IPv4 default gateway from
/// `net/route` text and the `nameserver` lines of `resolv.conf` text.
pub fn host_allowlist(route: &str, resolv: &str) -> Vec<Cidr> {
    let mut out = Vec::new();
    for line in route.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 8 && f[1] == "00000000" && f[7] == "00000000" {
            if let Ok(gw) = u32::from_str_radix(f[2], 16) {
                // The kernel prints the network-order word as a host integer.
                let ip = std::net::Ipv4Addr::from(gw.to_ne_bytes());
                if !ip.is_unspecified() {
                    out.push(Cidr { addr: IpAddr::V4(ip), prefix: 32 });
                }
            }
        }
    }
    for line in resolv.lines() {
        let mut w = line.split_whitespace();
        if w.next() == Some("nameserver") {
            let addr = w.next().map(|a| a.split('%').next().unwrap_or(a));
            if let Some(c) = addr.and_then(Cidr::parse) {
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;

//! The `mitigation.bgp` object (§10.2): which BGP speaker the agent drives, which communities tag
//! its routes, when a blackhole is allowed, how many routes at most, and which networks it may
//! announce for. Pure: parsed and validated in every build (BGP needs no capture and no
//! privilege); this file opens nothing and knows nothing of the speaker.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::mitigation::{Cidr, KeyError};

/// The BGP speaker the agent drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Gobgp,
}

/// A standard BGP community `ASN:value` (RFC 1997).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Community {
    pub asn: u16,
    pub value: u16,
}

impl Community {
    /// `65535:666`.
    pub fn parse(s: &str) -> Option<Self> {
        let (a, v) = s.trim().split_once(':')?;
        Some(Community { asn: a.parse().ok()?, value: v.parse().ok()? })
    }

    /// The 32-bit number speakers print in JSON.
    pub fn as_u32(self) -> u32 {
        (u32::from(self.asn) << 16) | u32::from(self.value)
    }
}

impl std::fmt::Display for Community {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.asn, self.value)
    }
}

/// The validated `mitigation.bgp` object.
#[derive(Debug, Clone, PartialEq)]
pub struct BgpConfig {
    pub engine: Engine,
    /// GoBGP's gRPC address (`host:port`), handed to its `gobgp` client.
    pub api: String,
    /// The `gobgp` client program (a path or a name found in PATH).
    pub client: String,
    /// Longest wait for one client run; past it the child is killed.
    pub client_timeout: Duration,
    pub flowspec: bool,
    /// Blackhole the target only at or over these rates (None: never on that measure).
    pub rtbh_min_pps: Option<f64>,
    pub rtbh_min_bps: Option<f64>,
    pub rtbh_community: Community,
    /// Ours: on every route we announce, and how we find them again in the speaker's RIB.
    pub community: Community,
    pub max_routes: usize,
    /// The prefixes the agent may announce for, beside the host's own addresses.
    pub networks: Vec<Cidr>,
}

pub const KEYS: &[&str] = &[
    "engine",
    "api",
    "client",
    "client_timeout_s",
    "flowspec",
    "rtbh_min_pps",
    "rtbh_min_bps",
    "rtbh_community",
    "community",
    "max_routes",
    "networks",
];

fn err(key: &str, msg: impl Into<String>) -> KeyError {
    (format!("mitigation.bgp.{key}"), msg.into())
}

/// Parse `mitigation.bgp` (absent or null: no BGP).
pub fn parse(v: Option<&Value>) -> Result<Option<BgpConfig>, KeyError> {
    let map = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err((
                "mitigation.bgp".into(),
                "must be an object {\"engine\": \"gobgp\", \"community\": ...}".into(),
            ))
        }
    };
    if let Some(k) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(err(k, format!("unknown key; accepted: {}", KEYS.join(", "))));
    }
    let engine = match map.get("engine").map(Value::as_str) {
        None | Some(Some("gobgp")) => Engine::Gobgp,
        Some(Some("exabgp")) => {
            return Err(err(
                "engine",
                "\"exabgp\" is not supported: its process API cannot list what it announced, so routes \
                 left by a crashed agent could not be found and withdrawn; use \"gobgp\"",
            ))
        }
        Some(_) => return Err(err("engine", "accepted: \"gobgp\"")),
    };
    let community = match map.get("community") {
        None | Some(Value::Null) => {
            return Err(err(
                "community",
                "required: a community of yours (\"ASN:value\", e.g. \"64512:4242\") tagging every route \
                 the agent announces; at start every route carrying it is withdrawn",
            ))
        }
        Some(v) => community(v, "community")?,
    };
    if community.asn == 0 || community.asn == u16::MAX {
        return Err(err("community", format!("{community} is reserved or well-known; choose one of your own")));
    }
    let rtbh_community = community_or(map, "rtbh_community", Community { asn: 65535, value: 666 })?;
    if rtbh_community == community {
        return Err(err("community", "must differ from rtbh_community"));
    }
    let client_timeout = int(map, "client_timeout_s", 5, 1, 60)?;
    Ok(Some(BgpConfig {
        engine,
        api: string(map, "api", "127.0.0.1:50051")?,
        client: string(map, "client", "gobgp")?,
        client_timeout: Duration::from_secs(client_timeout),
        flowspec: match map.get("flowspec") {
            None | Some(Value::Null) => true,
            Some(v) => v.as_bool().ok_or_else(|| err("flowspec", "accepted: true, false"))?,
        },
        rtbh_min_pps: rate(map, "rtbh_min_pps")?,
        rtbh_min_bps: rate(map, "rtbh_min_bps")?,
        rtbh_community,
        community,
        max_routes: int(map, "max_routes", 100, 1, 10_000)? as usize,
        networks: networks(map)?,
    }))
}

fn string(map: &Map<String, Value>, key: &str, default: &str) -> Result<String, KeyError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(default.into()),
        Some(Value::String(s)) if !s.trim().is_empty() && !s.starts_with('-') => Ok(s.clone()),
        Some(v) => Err(err(key, format!("{v} is not accepted: a non-empty string not starting with '-'"))),
    }
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

fn rate(map: &Map<String, Value>, key: &str) -> Result<Option<f64>, KeyError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|n| n.is_finite() && *n >= 1.0)
            .map(Some)
            .ok_or_else(|| err(key, format!("{v} is out of range; accepted: a number ≥ 1, or null (off)"))),
    }
}

fn community(v: &Value, key: &str) -> Result<Community, KeyError> {
    v.as_str()
        .and_then(Community::parse)
        .ok_or_else(|| err(key, format!("{v} is not a community; accepted: \"ASN:value\" (0-65535 each)")))
}

fn community_or(map: &Map<String, Value>, key: &str, default: Community) -> Result<Community, KeyError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => community(v, key),
    }
}

fn networks(map: &Map<String, Value>) -> Result<Vec<Cidr>, KeyError> {
    let Some(v) = map.get("networks").filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let items = v.as_array().ok_or_else(|| err("networks", "must be an array of CIDRs (\"192.0.2.0/24\")"))?;
    items
        .iter()
        .map(|i| {
            let c = i.as_str().and_then(Cidr::parse).ok_or_else(|| {
                err("networks", format!("{i} is not a CIDR; accepted: \"192.0.2.0/24\", \"2001:db8::/32\""))
            })?;
            if c.prefix == 0 {
                return Err(err("networks", format!("{i}: a default route (/0) is never ours to announce for")));
            }
            Ok(c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Result<Option<BgpConfig>, KeyError> {
        parse(Some(&v))
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = p(json!({"community": "64512:42"})).unwrap().unwrap();
        assert_eq!(c.engine, Engine::Gobgp);
        assert_eq!((c.api.as_str(), c.client.as_str()), ("127.0.0.1:50051", "gobgp"));
        assert!(c.flowspec && c.rtbh_min_pps.is_none() && c.rtbh_min_bps.is_none());
        assert_eq!(c.rtbh_community.to_string(), "65535:666");
        assert_eq!(c.community.as_u32(), (64512 << 16) | 42);
        assert_eq!(c.max_routes, 100);
        assert!(c.networks.is_empty());
        assert!(parse(None).unwrap().is_none());
    }

    #[test]
    fn every_key_is_read() {
        let c = p(json!({"engine": "gobgp", "api": "127.0.0.1:50052", "client": "/usr/bin/gobgp",
            "client_timeout_s": 2, "flowspec": false, "rtbh_min_pps": 1e6, "rtbh_min_bps": 5e9,
            "rtbh_community": "64512:666", "community": "64512:1", "max_routes": 3,
            "networks": ["192.0.2.0/24", "2001:db8::/48"]}))
        .unwrap()
        .unwrap();
        assert_eq!(c.api, "127.0.0.1:50052");
        assert_eq!(c.client_timeout, Duration::from_secs(2));
        assert!(!c.flowspec);
        assert_eq!((c.rtbh_min_pps, c.rtbh_min_bps), (Some(1e6), Some(5e9)));
        assert_eq!((c.rtbh_community.to_string(), c.max_routes), ("64512:666".into(), 3));
        assert_eq!(c.networks.len(), 2);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (v, key) in [
            (json!({"community": "64512:1", "engine": "exabgp"}), "mitigation.bgp.engine"),
            (json!({"community": "64512:1", "engine": "bird"}), "mitigation.bgp.engine"),
            (json!({}), "mitigation.bgp.community"),
            (json!({"community": "65535:1"}), "mitigation.bgp.community"),
            (json!({"community": "65535:666x"}), "mitigation.bgp.community"),
            (json!({"community": "64512:666", "rtbh_community": "64512:666"}), "mitigation.bgp.community"),
            (json!({"community": "64512:1", "networks": ["0.0.0.0/0"]}), "mitigation.bgp.networks"),
            (json!({"community": "64512:1", "networks": ["::/0"]}), "mitigation.bgp.networks"),
            (json!({"community": "64512:1", "networks": "10.0.0.0/8"}), "mitigation.bgp.networks"),
            (json!({"community": "64512:1", "max_routes": 0}), "mitigation.bgp.max_routes"),
            (json!({"community": "64512:1", "rtbh_min_pps": -1}), "mitigation.bgp.rtbh_min_pps"),
            (json!({"community": "64512:1", "client": "--help"}), "mitigation.bgp.client"),
            (json!({"community": "64512:1", "flowspec": "yes"}), "mitigation.bgp.flowspec"),
            (json!({"community": "64512:1", "nexthop": "x"}), "mitigation.bgp.nexthop"),
        ] {
            let (k, msg) = p(v.clone()).unwrap_err();
            assert_eq!(k, key, "{v}: {msg}");
            assert!(!msg.is_empty());
        }
        let (_, why) = p(json!({"community": "64512:1", "engine": "exabgp"})).unwrap_err();
        assert!(why.contains("gobgp"), "{why}");
    }
}

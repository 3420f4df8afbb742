//! Per-interval aggregation of parsed requests (§11): request count, heavy hitters of client
//! IPs, paths and user agents (Space-Saving), status-class mix and a distinct-client estimate
//! (HyperLogLog). Memory is fixed whatever the traffic: the sketches hold at most
//! [`CLIENT_SLOTS`], [`PATH_SLOTS`] and [`AGENT_SLOTS`] keys. Pure; the worker resets the window
//! each second, `--analyze` keeps one for a whole file.

use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::parse::Request;
use crate::util::sketch::{mix64, HyperLogLog, SpaceSaving};

pub const CLIENT_SLOTS: usize = 256;
pub const PATH_SLOTS: usize = 128;
pub const AGENT_SLOTS: usize = 64;
/// 2^12 HyperLogLog registers: 4 KiB per log, about 1.6 % standard error.
const DISTINCT_PRECISION: u32 = 12;
/// How many entries each `top_*` list reports.
pub const TOP_N: usize = 10;

/// One interval's requests.
#[derive(Debug, Clone)]
pub struct Window {
    requests: u64,
    malformed: u64,
    /// Requests per status class, 1xx..5xx.
    status: [u64; 5],
    clients: SpaceSaving<IpAddr>,
    paths: SpaceSaving<Box<[u8]>>,
    agents: SpaceSaving<Box<[u8]>>,
    distinct: HyperLogLog,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            requests: 0,
            malformed: 0,
            status: [0; 5],
            clients: SpaceSaving::new(CLIENT_SLOTS),
            paths: SpaceSaving::new(PATH_SLOTS),
            agents: SpaceSaving::new(AGENT_SLOTS),
            distinct: HyperLogLog::with_precision(DISTINCT_PRECISION),
        }
    }
}

impl Window {
    pub fn add(&mut self, r: &Request<'_>) {
        self.requests += 1;
        if let Some(c) = self.status.get_mut(usize::from(r.status / 100).wrapping_sub(1)) {
            *c += 1;
        }
        self.clients.add(r.client);
        self.paths.add_with(&*r.path, |p: &[u8]| Box::from(p));
        self.agents.add_with(&*r.user_agent, |p: &[u8]| Box::from(p));
        self.distinct.add_hash(ip_hash(r.client));
    }

    pub fn add_malformed(&mut self) {
        self.malformed += 1;
    }

    pub fn requests(&self) -> u64 {
        self.requests
    }

    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// What this window saw, with shares of the requests.
    pub fn summary(&self) -> Summary {
        let total = self.requests.max(1) as f64;
        let top = |s: &SpaceSaving<Box<[u8]>>| -> Vec<(String, u64, f64)> {
            s.top(TOP_N)
                .into_iter()
                .map(|(k, n, _)| (String::from_utf8_lossy(&k).into_owned(), n, n as f64 / total))
                .collect()
        };
        Summary {
            requests: self.requests,
            malformed: self.malformed,
            status: self.status,
            top_clients: self
                .clients
                .top(TOP_N)
                .into_iter()
                .map(|(ip, n, _)| (ip.to_string(), n, n as f64 / total))
                .collect(),
            top_paths: top(&self.paths),
            top_agents: top(&self.agents),
            distinct_clients: self.distinct.estimate().min(self.requests),
        }
    }

    /// Start a new interval, keeping the allocations.
    pub fn reset(&mut self) {
        self.requests = 0;
        self.malformed = 0;
        self.status = [0; 5];
        self.clients.clear();
        self.paths.clear();
        self.agents.clear();
        self.distinct.clear();
    }
}

fn ip_hash(ip: IpAddr) -> u64 {
    let bits = match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6) ^ (1 << 127),
    };
    mix64(mix64(bits as u64) ^ (bits >> 64) as u64)
}

/// A window's figures: (key, count, share) lists, largest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub requests: u64,
    pub malformed: u64,
    pub status: [u64; 5],
    pub top_clients: Vec<(String, u64, f64)>,
    pub top_paths: Vec<(String, u64, f64)>,
    pub top_agents: Vec<(String, u64, f64)>,
    pub distinct_clients: u64,
}

/// One client over this share of the requests: `single_source`.
pub const SINGLE_SOURCE_SHARE: f64 = 0.5;
/// One path over this share: `path_flood` (§11: > 60 %).
pub const PATH_FLOOD_SHARE: f64 = 0.6;
/// At least this many distinct clients, with one user agent over [`BOTNET_UA_SHARE`]: `botnet`.
pub const BOTNET_MIN_CLIENTS: u64 = 50;
pub const BOTNET_UA_SHARE: f64 = 0.8;

impl Summary {
    fn top_share(list: &[(String, u64, f64)]) -> f64 {
        list.first().map(|t| t.2).unwrap_or(0.0)
    }

    /// The `attack_subtype` of a flood with these figures, checked in this order:
    /// `single_source`, `path_flood`, `botnet`; None when none fits.
    pub fn subtype(&self) -> Option<&'static str> {
        if self.requests == 0 {
            None
        } else if Self::top_share(&self.top_clients) > SINGLE_SOURCE_SHARE {
            Some("single_source")
        } else if Self::top_share(&self.top_paths) > PATH_FLOOD_SHARE {
            Some("path_flood")
        } else if self.distinct_clients >= BOTNET_MIN_CLIENTS && Self::top_share(&self.top_agents) > BOTNET_UA_SHARE {
            Some("botnet")
        } else {
            None
        }
    }

    /// `{"2xx": n, ...}` for the classes seen.
    pub fn status_mix(&self) -> Map<String, Value> {
        self.status
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| (format!("{}xx", i + 1), n.into()))
            .collect()
    }

    /// The evidence fields of an `http_flood` event (§11).
    pub fn evidence(&self) -> Map<String, Value> {
        let list = |l: &[(String, u64, f64)], name: &str| -> Value {
            l.iter().map(|(k, n, s)| json!({ name: k, "count": n, "share": round3(*s) })).collect()
        };
        let mut m = Map::new();
        m.insert("top_client_ips".into(), list(&self.top_clients, "ip"));
        m.insert("top_paths".into(), list(&self.top_paths, "path"));
        m.insert("top_user_agents".into(), list(&self.top_agents, "user_agent"));
        m.insert("status_mix".into(), Value::Object(self.status_mix()));
        m.insert("distinct_clients".into(), self.distinct_clients.into());
        m
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn req(ip: &str, path: &str, ua: &str, status: u16) -> Request<'static> {
        Request {
            client: ip.parse().unwrap(),
            path: Cow::Owned(path.as_bytes().to_vec()),
            status,
            user_agent: Cow::Owned(ua.as_bytes().to_vec()),
        }
    }

    fn window(reqs: impl IntoIterator<Item = Request<'static>>) -> Summary {
        let mut w = Window::default();
        reqs.into_iter().for_each(|r| w.add(&r));
        w.summary()
    }

    #[test]
    fn single_source_flood() {
        let s = window((0..1000).map(|i| req(if i % 10 == 0 { "10.0.0.9" } else { "10.0.0.2" }, "/", "wrk", 200)));
        assert_eq!(s.subtype(), Some("single_source"));
        assert_eq!(s.top_clients[0].0, "10.0.0.2");
        assert_eq!(s.top_clients[0].1, 900);
        assert_eq!(s.distinct_clients, 2);
        let ev = s.evidence();
        assert_eq!(ev["top_client_ips"][0], json!({"ip": "10.0.0.2", "count": 900, "share": 0.9}));
        assert_eq!(ev["status_mix"], json!({"2xx": 1000}));
    }

    #[test]
    fn path_flood_from_twenty_sources() {
        let s = window((0..2000).map(|i| {
            let path = if i % 10 == 0 { "/other" } else { "/search" };
            req(&format!("10.0.1.{}", i % 20 + 1), path, "python", if i % 2 == 0 { 200 } else { 503 })
        }));
        assert_eq!(s.subtype(), Some("path_flood"));
        assert_eq!(s.top_paths[0].0, "/search");
        assert_eq!(s.status_mix(), json!({"2xx": 1000, "5xx": 1000}).as_object().unwrap().clone());
    }

    #[test]
    fn botnet_needs_many_clients_and_one_agent() {
        let bots = |ua: fn(u32) -> String| {
            window((0..5000u32).map(move |i| {
                req(&format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256), &format!("/p{}", i % 7), &ua(i), 200)
            }))
        };
        assert_eq!(bots(|_| "Mozilla/5.0 bot".into()).subtype(), Some("botnet"));
        assert_eq!(bots(|i| format!("agent {}", i % 5)).subtype(), None);
    }

    #[test]
    fn memory_stays_bounded_and_reset_empties() {
        let mut w = Window::default();
        for i in 0..300_000u32 {
            let ip = std::net::Ipv4Addr::from(i.wrapping_mul(2_654_435_761));
            w.add(&req(&ip.to_string(), &format!("/{i}"), &format!("ua{i}"), 404));
        }
        assert!(w.clients.top(usize::MAX).len() <= CLIENT_SLOTS);
        assert!(w.paths.top(usize::MAX).len() <= PATH_SLOTS);
        let s = w.summary();
        assert!((s.distinct_clients as f64 - 300_000.0).abs() < 15_000.0, "{}", s.distinct_clients);
        w.reset();
        assert_eq!(w.summary(), Window::default().summary());
    }
}

//! One BGP route of ours (§10.2): a FlowSpec rule (RFC 8955/8956) or a blackhole (RFC 7999), and
//! the exact `gobgp` argv that announces or withdraws it. Pure. The destination is always one
//! address (a /32 or /128): no type here can say a shorter prefix, and [`check_argv`] refuses
//! any argv naming one anyway, so a bug elsewhere can never announce 0/0.

use std::net::IpAddr;

use serde_json::{json, Value};

use crate::config::bgp::Community;

/// Bytes per packet assumed when a packets-per-second limit becomes a FlowSpec traffic-rate,
/// which RFC 8955 counts in bytes per second: a SYN with options (IPv4 20 + TCP 40, padded).
pub const SYN_BYTES: u64 = 64;
/// An echo request as `ping` sends it (84 bytes), rounded up.
pub const ICMP_BYTES: u64 = 128;

/// What a FlowSpec rule matches, beside its destination address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Match {
    /// UDP from the amplifier's service port.
    UdpFrom { src_port: u16 },
    /// TCP SYN (ACK clear), to one port or any.
    Syn { dst_port: Option<u16> },
    /// ICMP (IPv4) or ICMPv6 (next header 58).
    Icmp,
    /// Any fragment.
    Fragments,
}

/// What the router does with matching traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Then {
    Discard,
    RateLimit { bytes_per_s: u64 },
}

/// One route of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    Flow { target: IpAddr, what: Match, then: Then },
    Blackhole { target: IpAddr },
}

/// How the argv reaches the speaker and which communities tag the route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Speaker {
    /// `-u HOST -p PORT`, from the configured `api`.
    pub host: String,
    pub port: String,
    pub ours: Community,
    pub blackhole: Community,
}

impl Speaker {
    /// `127.0.0.1:50051`, `[::1]:50051`, or a bare host (port 50051).
    pub fn new(api: &str, ours: Community, blackhole: Community) -> Self {
        let (host, port) = match api.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() && (!h.contains(':') || h.starts_with('[')) => {
                (h.trim_matches(|c| c == '[' || c == ']').to_string(), p.to_string())
            }
            _ => (api.to_string(), "50051".to_string()),
        };
        Speaker { host, port, ours, blackhole }
    }

    /// The client's connection flags.
    pub fn conn(&self) -> Vec<String> {
        vec!["-u".into(), self.host.clone(), "-p".into(), self.port.clone()]
    }
}

fn host_prefix(ip: IpAddr) -> String {
    format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 })
}

impl Route {
    pub fn target(&self) -> IpAddr {
        match self {
            Route::Flow { target, .. } | Route::Blackhole { target } => *target,
        }
    }

    /// The address family as `gobgp -a` names it.
    pub fn family(&self) -> &'static str {
        match (self, self.target().is_ipv4()) {
            (Route::Flow { .. }, true) => "ipv4-flowspec",
            (Route::Flow { .. }, false) => "ipv6-flowspec",
            (Route::Blackhole { .. }, true) => "ipv4",
            (Route::Blackhole { .. }, false) => "ipv6",
        }
    }

    /// `blackhole`, `discard` or `rate_limit`.
    pub fn action(&self) -> &'static str {
        match self {
            Route::Blackhole { .. } => "blackhole",
            Route::Flow { then: Then::Discard, .. } => "discard",
            Route::Flow { then: Then::RateLimit { .. }, .. } => "rate_limit",
        }
    }

    /// The NLRI's identity, stable across renewals (the action is not part of it: BGP replaces a
    /// route with the same NLRI): `flow:10.0.0.1/32:udp-from:161`, `rtbh:10.0.0.1/32`.
    pub fn key(&self) -> String {
        let t = host_prefix(self.target());
        match self {
            Route::Blackhole { .. } => format!("rtbh:{t}"),
            Route::Flow { what, .. } => match what {
                Match::UdpFrom { src_port } => format!("flow:{t}:udp-from:{src_port}"),
                Match::Syn { dst_port: Some(p) } => format!("flow:{t}:syn:{p}"),
                Match::Syn { dst_port: None } => format!("flow:{t}:syn"),
                Match::Icmp => format!("flow:{t}:icmp"),
                Match::Fragments => format!("flow:{t}:fragments"),
            },
        }
    }

    /// The FlowSpec match as `gobgp` takes it (after `match`).
    fn match_args(&self) -> Vec<String> {
        let Route::Flow { target, what, .. } = self else { return Vec::new() };
        let mut a = vec!["destination".to_string(), host_prefix(*target)];
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        a.extend(match what {
            Match::UdpFrom { src_port } => {
                let mut m = s(&["protocol", "udp", "source-port"]);
                m.push(format!("=={src_port}"));
                m
            }
            Match::Syn { dst_port } => {
                let mut m = s(&["protocol", "tcp"]);
                if let Some(p) = dst_port {
                    m.extend(["destination-port".to_string(), format!("=={p}")]);
                }
                m.extend(s(&["tcp-flags", "=S", "&!=A"]));
                m
            }
            // ICMPv6 by number: this gobgp reads the name `ipv6-icmp` as TCP.
            Match::Icmp if target.is_ipv4() => s(&["protocol", "icmp"]),
            Match::Icmp => s(&["protocol", "58"]),
            Match::Fragments => s(&["fragment", "is-fragment"]),
        });
        a
    }

    /// The argv (after the program name) that announces this route.
    pub fn add_argv(&self, sp: &Speaker) -> Vec<String> {
        let mut a = sp.conn();
        a.extend(["global", "rib", "-a", self.family(), "add"].map(String::from));
        match self {
            Route::Blackhole { target } => {
                a.push(host_prefix(*target));
                a.extend(["community".to_string(), format!("{},{}", sp.blackhole, sp.ours)]);
            }
            Route::Flow { then, .. } => {
                a.push("match".into());
                a.extend(self.match_args());
                a.push("then".into());
                match then {
                    Then::Discard => a.push("discard".into()),
                    Then::RateLimit { bytes_per_s } => a.extend(["rate-limit".to_string(), bytes_per_s.to_string()]),
                }
                a.extend(["community".to_string(), sp.ours.to_string()]);
            }
        }
        a
    }

    /// The argv that withdraws it.
    pub fn del_argv(&self, sp: &Speaker) -> Vec<String> {
        let mut a = sp.conn();
        a.extend(["global", "rib", "-a", self.family(), "del"].map(String::from));
        match self {
            Route::Blackhole { target } => a.push(host_prefix(*target)),
            Route::Flow { .. } => {
                a.push("match".into());
                a.extend(self.match_args());
            }
        }
        a
    }

    /// The route as events show it: family, NLRI, action, communities.
    pub fn describe(&self, sp: &Speaker) -> Value {
        let mut v = json!({
            "family": self.family(),
            "prefix": host_prefix(self.target()),
            "action": self.action(),
        });
        match self {
            Route::Blackhole { .. } => {
                v["communities"] = json!([sp.blackhole.to_string(), sp.ours.to_string()]);
            }
            Route::Flow { then, .. } => {
                v["match"] = json!(self.match_args()[2..].join(" "));
                if let Then::RateLimit { bytes_per_s } = then {
                    v["rate_bytes_per_s"] = json!(bytes_per_s);
                }
                v["communities"] = json!([sp.ours.to_string()]);
            }
        }
        v
    }
}

/// The last word on what reaches the speaker: every prefix in an argv is one address that is not
/// unspecified (never 0/0, never a /24 blackhole), whatever built it.
pub fn check_argv(argv: &[String]) -> crate::Result<()> {
    match argv_problem(argv) {
        Some(why) => Err(crate::Error::Refused { what: "BGP route", why }),
        None => Ok(()),
    }
}

/// What [`check_argv`] refuses in `argv`, said for an operator; None when it may be sent.
pub fn argv_problem(argv: &[String]) -> Option<String> {
    let problem = |argv: &[String]| -> std::result::Result<(), String> {
        let mut found = false;
        for w in argv.iter().filter(|w| w.contains('/')) {
            let (addr, len) = w.split_once('/').ok_or_else(|| format!("bad prefix {w}"))?;
            let ip: IpAddr = addr.parse().map_err(|_| format!("{w} is not a prefix"))?;
            let host = if ip.is_ipv4() { "32" } else { "128" };
            if len != host {
                return Err(format!("{w} is shorter than one address: refused"));
            }
            if ip.is_unspecified() {
                return Err(format!("{w} names no address: refused"));
            }
            found = true;
        }
        if found {
            Ok(())
        } else {
            Err("no destination prefix in the argv: refused".into())
        }
    };
    problem(argv).err()
}

/// A route of ours found in the speaker's RIB: its family and the argv words that withdraw it
/// (rebuilt from the speaker's own text of the NLRI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub family: String,
    pub nlri: String,
}

impl Found {
    /// `gobgp` prints a FlowSpec NLRI as `[destination: 10.0.0.1/32][protocol: ==udp]...` and
    /// takes the same words back after `del match`; an IPv6 prefix prints with its offset
    /// (`2001:db8::1/128/0`), taken back as two words.
    pub fn del_argv(&self, sp: &Speaker) -> Vec<String> {
        let mut a = sp.conn();
        a.extend(["global", "rib", "-a", &self.family, "del"].map(String::from));
        if !self.family.ends_with("flowspec") {
            a.push(self.nlri.clone());
            return a;
        }
        a.push("match".into());
        for part in self.nlri.trim_start_matches('[').trim_end_matches(']').split("][") {
            let Some((name, values)) = part.split_once(": ") else { continue };
            a.push(name.to_string());
            for v in values.split_whitespace() {
                if matches!(name, "destination" | "source") && v.matches('/').count() == 2 {
                    let (p, off) = v.rsplit_once('/').unwrap_or((v, "0"));
                    a.extend([p.to_string(), off.to_string()]);
                } else {
                    // `=S&!=A` was given as `=S` `&!=A`.
                    let mut start = 0;
                    for (i, _) in v.match_indices('&').filter(|(i, _)| *i > 0) {
                        a.push(v[start..i].to_string());
                        start = i;
                    }
                    a.push(v[start..].to_string());
                }
            }
        }
        a
    }
}

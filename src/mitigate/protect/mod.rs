//! The protected set (§10.1): addresses no rule ever blocks, whatever the evidence, because
//! anyone can forge a source. Found afresh at start and every [`REFRESH_EVERY`]: the host's own
//! addresses, its default gateways (v4 and v6), the resolvers it really uses (behind
//! systemd-resolved's 127.0.0.53, the upstreams in `/run/systemd/resolve/resolv.conf`), the
//! addresses of every sink (`api_base`, the webhook, ...), peers of TCP connections established
//! before the incident opened, and `allowlist`. Private and CGNAT ranges are protected unless
//! `mitigation.block_private` is true.
//!
//! Reading is split from deciding: [`Inputs::read`] does the I/O (files under injectable
//! [`Roots`], `getifaddrs`, name resolution), [`ProtectedSet::from_inputs`] is pure. Established
//! peers come from [`established_peers`], one function over `/proc/net/tcp{,6}` so the socket
//! census can replace it. Other backends (BGP) ask [`ProtectedSet::is_protected`].

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::mitigation::Cidr;

/// How often the set is found afresh (established peers: see [`PEERS_EVERY`]).
pub const REFRESH_EVERY: Duration = Duration::from_secs(180);
/// How often established peers are read while no incident is open.
pub const PEERS_EVERY: Duration = Duration::from_secs(1);
/// Most established peers remembered (a host with more keeps the first ones read).
pub const MAX_PEERS: usize = 65_536;
/// Most lines read from one `/proc/net/tcp*` file.
const MAX_TCP_LINES: usize = 262_144;

/// Why an address is never blocked: what the operator reads in `mitigation_apply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// One of the host's own addresses.
    HostAddress,
    /// A default gateway (v4 or v6).
    Gateway,
    /// A resolver the host uses.
    Resolver,
    /// The address of a sink: its config key and host (`api_base (api.example.com)`).
    Sink(String),
    /// A TCP peer established before the incident opened.
    EstablishedPeer,
    /// Inside `mitigation.allowlist`.
    Allowlist(Cidr),
    /// Private or CGNAT range while `block_private` is false.
    Private,
    /// Loopback, link-local, multicast, broadcast, unspecified.
    Special,
}

impl Reason {
    /// The reason string of events and logs.
    pub fn text(&self) -> String {
        match self {
            Reason::HostAddress => "protected: the host's own address".into(),
            Reason::Gateway => "protected: default gateway".into(),
            Reason::Resolver => "protected: a resolver the host uses".into(),
            Reason::Sink(s) => format!("protected: address of sink {s}"),
            Reason::EstablishedPeer => "protected: peer of a TCP connection established before the incident".into(),
            Reason::Allowlist(c) => format!("protected: in mitigation.allowlist ({c})"),
            Reason::Private => "protected: private or CGNAT range (mitigation.block_private is false)".into(),
            Reason::Special => "protected: loopback, link-local, multicast or broadcast address".into(),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

/// Where the files are read from (tests point these at a temp tree).
#[derive(Debug, Clone)]
pub struct Roots {
    /// `/proc` (`net/route`, `net/ipv6_route`, `net/if_inet6`, `net/tcp`, `net/tcp6`).
    pub proc: PathBuf,
    /// `/etc/resolv.conf`.
    pub resolv: PathBuf,
    /// `/run/systemd/resolve/resolv.conf` (the upstreams behind 127.0.0.53).
    pub resolved: PathBuf,
}

impl Roots {
    pub fn system(proc: &Path) -> Self {
        Roots {
            proc: proc.to_path_buf(),
            resolv: "/etc/resolv.conf".into(),
            resolved: "/run/systemd/resolve/resolv.conf".into(),
        }
    }
}

/// What the protected set is made from, already read.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub host: Vec<IpAddr>,
    /// `/proc/net/route` text.
    pub route: String,
    /// `/proc/net/ipv6_route` text.
    pub route6: String,
    /// `/etc/resolv.conf` text.
    pub resolv: String,
    /// `/run/systemd/resolve/resolv.conf` text (empty when absent).
    pub resolved: String,
    /// (sink name, its resolved addresses).
    pub sinks: Vec<(String, Vec<IpAddr>)>,
    pub allowlist: Vec<Cidr>,
    pub block_private: bool,
}

impl Inputs {
    /// Read everything: files under `roots` and the interfaces' addresses; `sinks` are (name,
    /// addresses) as [`SinkResolver`] found them. Nothing missing is an error: it is not there.
    pub fn read(roots: &Roots, sinks: Vec<(String, Vec<IpAddr>)>, allowlist: &[Cidr], block_private: bool) -> Self {
        let text = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let mut host = interface_addresses();
        host.extend(if_inet6(&text(&roots.proc.join("net/if_inet6"))));
        host.sort();
        host.dedup();
        Inputs {
            host,
            route: text(&roots.proc.join("net/route")),
            route6: text(&roots.proc.join("net/ipv6_route")),
            resolv: text(&roots.resolv),
            resolved: text(&roots.resolved),
            sinks,
            allowlist: allowlist.to_vec(),
            block_private,
        }
    }
}

/// The sinks' addresses: address literals at once, host names resolved on a thread of their
/// own (a lookup may take seconds; nothing waits for it), the latest answer kept.
pub struct SinkResolver {
    sinks: Vec<(String, String)>,
    found: std::sync::Arc<std::sync::Mutex<HashMap<String, Vec<IpAddr>>>>,
    busy: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SinkResolver {
    /// `sinks`: (config key, URL).
    pub fn new(sinks: Vec<(String, String)>) -> Self {
        SinkResolver { sinks, found: Default::default(), busy: Default::default() }
    }

    /// Start a lookup of the host names (unless one is still running).
    pub fn lookup(&self) {
        use std::sync::atomic::Ordering;
        let names: Vec<String> = self
            .sinks
            .iter()
            .map(|(_, u)| url_host(u))
            .filter(|h| !h.is_empty() && h.parse::<IpAddr>().is_err())
            .collect();
        if names.is_empty() || self.busy.swap(true, Ordering::SeqCst) {
            return;
        }
        let (found, busy) = (self.found.clone(), self.busy.clone());
        let spawned = std::thread::Builder::new().name("ftagent-protect".into()).spawn(move || {
            for h in names {
                let ips = resolve(&h);
                if let Ok(mut f) = found.lock() {
                    f.insert(h, ips);
                }
            }
            busy.store(false, Ordering::SeqCst);
        });
        if spawned.is_err() {
            self.busy.store(false, Ordering::SeqCst);
        }
    }

    /// (name shown to operators, addresses) of every sink, as far as known now.
    pub fn known(&self) -> Vec<(String, Vec<IpAddr>)> {
        let found = self.found.lock().map(|f| f.clone()).unwrap_or_default();
        self.sinks
            .iter()
            .map(|(k, u)| {
                let h = url_host(u);
                let ips = match h.parse::<IpAddr>() {
                    Ok(ip) => vec![canonical(ip)],
                    Err(_) => found.get(&h).cloned().unwrap_or_default(),
                };
                (format!("{k} ({h})"), ips)
            })
            .collect()
    }
}

/// The addresses never blocked, with why.
#[derive(Debug, Clone, Default)]
pub struct ProtectedSet {
    exact: HashMap<IpAddr, Reason>,
    allow: Vec<Cidr>,
    block_private: bool,
    peers: HashSet<IpAddr>,
}

impl ProtectedSet {
    /// The set from what was read (pure). Established peers are kept as they were.
    pub fn from_inputs(i: &Inputs) -> Self {
        let mut s = ProtectedSet { allow: i.allowlist.clone(), block_private: i.block_private, ..Default::default() };
        s.rebuild(i);
        s
    }

    fn rebuild(&mut self, i: &Inputs) {
        let mut exact = HashMap::new();
        // Least specific first: a later insert of the same address keeps the earlier reason.
        for ip in &i.host {
            exact.entry(canonical(*ip)).or_insert(Reason::HostAddress);
        }
        for ip in gateways_v4(&i.route).into_iter().chain(gateways_v6(&i.route6)) {
            exact.entry(ip).or_insert(Reason::Gateway);
        }
        for ip in resolvers(&i.resolv, &i.resolved) {
            exact.entry(ip).or_insert(Reason::Resolver);
        }
        for (name, ips) in &i.sinks {
            for ip in ips {
                exact.entry(canonical(*ip)).or_insert_with(|| Reason::Sink(name.clone()));
            }
        }
        self.exact = exact;
        self.allow = i.allowlist.clone();
        self.block_private = i.block_private;
    }

    /// Find the set afresh from `i`, keeping the established peers.
    pub fn refresh(&mut self, i: &Inputs) {
        self.rebuild(i);
    }

    /// Replace the established peers (a snapshot taken before the incident opened).
    pub fn set_peers(&mut self, peers: HashSet<IpAddr>) {
        self.peers = peers;
    }

    pub fn peers(&self) -> &HashSet<IpAddr> {
        &self.peers
    }

    /// Why `ip` must never be blocked; None when it may be.
    pub fn is_protected(&self, ip: IpAddr) -> Option<Reason> {
        let ip = canonical(ip);
        if special(ip) {
            return Some(Reason::Special);
        }
        if let Some(r) = self.exact.get(&ip) {
            return Some(r.clone());
        }
        if self.peers.contains(&ip) {
            return Some(Reason::EstablishedPeer);
        }
        if let Some(c) = self.allow.iter().find(|c| c.contains(ip)) {
            return Some(Reason::Allowlist(*c));
        }
        if !self.block_private && private(ip) {
            return Some(Reason::Private);
        }
        None
    }

    /// Every exact address with its reason, sorted (for the start log line and the table).
    pub fn listed(&self) -> Vec<(IpAddr, Reason)> {
        let mut v: Vec<(IpAddr, Reason)> = self.exact.iter().map(|(a, r)| (*a, r.clone())).collect();
        v.extend(self.peers.iter().map(|a| (*a, Reason::EstablishedPeer)));
        v.sort_by_key(|a| a.0);
        v.dedup_by(|a, b| a.0 == b.0);
        v
    }

    /// The CIDRs nftables accepts before every rule: the exact addresses and the allowlist
    /// (private ranges are kept out of drop sets by the planner, not by the table).
    pub fn cidrs(&self) -> Vec<Cidr> {
        let mut v: Vec<Cidr> = self.allow.clone();
        for (ip, _) in self.listed() {
            if !special(ip) {
                v.push(Cidr { addr: ip, prefix: if ip.is_ipv4() { 32 } else { 128 } });
            }
        }
        v
    }
}

/// v4-mapped v6 addresses as v4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Loopback, link-local, multicast, broadcast, unspecified: never a block target.
pub fn special(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            v4.is_link_local() || v4.is_loopback() || v4.is_multicast() || v4.is_unspecified() || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            link_local || v6.is_loopback() || v6.is_multicast() || v6.is_unspecified()
        }
    }
}

/// RFC 1918, CGNAT (100.64.0.0/10) and unique-local v6 (fc00::/7).
pub fn private(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// Default gateways from `/proc/net/route` text.
pub fn gateways_v4(route: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in route.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 8 && f[1] == "00000000" && f[7] == "00000000" {
            if let Ok(gw) = u32::from_str_radix(f[2], 16) {
                // The kernel prints the network-order word as a host integer.
                let ip = Ipv4Addr::from(gw.to_ne_bytes());
                if !ip.is_unspecified() {
                    out.push(IpAddr::V4(ip));
                }
            }
        }
    }
    out
}

/// Default gateways from `/proc/net/ipv6_route` text: destination ::/0, a non-zero next hop.
pub fn gateways_v6(route6: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in route6.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 10 && f[0] == "0".repeat(32) && f[1] == "00" {
            if let Some(ip) = hex_v6(f[4]).filter(|ip| !ip.is_unspecified()) {
                out.push(IpAddr::V6(ip));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn hex_v6(s: &str) -> Option<Ipv6Addr> {
    (s.len() == 32).then_some(())?;
    u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from)
}

/// Addresses from `/proc/net/if_inet6` text (what `getifaddrs` may miss in a restricted build).
pub fn if_inet6(text: &str) -> Vec<IpAddr> {
    text.lines().filter_map(|l| hex_v6(l.split_whitespace().next()?)).map(IpAddr::V6).collect()
}

/// The resolvers really used: `nameserver` lines of resolv.conf; when one is systemd-resolved's
/// stub (127.0.0.53 / 127.0.0.54), also the upstreams of its own resolv.conf.
pub fn resolvers(resolv: &str, resolved: &str) -> Vec<IpAddr> {
    let mut out = nameservers(resolv);
    if out.iter().any(|ip| matches!(ip, IpAddr::V4(v4) if v4.octets()[..3] == [127, 0, 0] && v4.octets()[3] >= 53)) {
        out.extend(nameservers(resolved));
    }
    out.sort();
    out.dedup();
    out
}

fn nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut w = line.split_whitespace();
            (w.next() == Some("nameserver")).then_some(())?;
            let a = w.next()?;
            a.split('%').next()?.parse::<IpAddr>().ok().map(canonical)
        })
        .collect()
}

/// The host part of a URL (`https://user@api.example.com:443/x` → `api.example.com`).
pub fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
    let auth = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    if let Some(v6) = auth.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("").to_string();
    }
    auth.rsplit_once(':').map_or(auth, |(h, _)| h).to_string()
}

/// A host name resolved; empty when it cannot be.
fn resolve(host: &str) -> Vec<IpAddr> {
    (host, 443).to_socket_addrs().map(|it| it.map(|a| canonical(a.ip())).take(32).collect()).unwrap_or_default()
}

/// The interfaces' addresses, v4 and v6 (`getifaddrs`).
pub fn interface_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut p = head;
    while !p.is_null() {
        // SAFETY: `p` walks the list getifaddrs returned; each node is valid until freeifaddrs.
        let ifa = unsafe { &*p };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says its real type.
            let fam = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if fam == libc::AF_INET {
                // SAFETY: AF_INET: a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))));
            } else if fam == libc::AF_INET6 {
                // SAFETY: AF_INET6: a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
        }
        p = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// Remote addresses of ESTABLISHED TCP connections in `/proc/net/tcp` / `tcp6` text (pure).
pub fn parse_established(text: &str, v6: bool) -> Vec<IpAddr> {
    text.lines()
        .skip(1)
        .take(MAX_TCP_LINES)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().take(4).collect();
            (f.len() == 4 && f[3] == "01").then_some(())?;
            let (addr, _port) = f[2].split_once(':')?;
            let ip = if v6 {
                (addr.len() == 32).then_some(())?;
                // Four 32-bit words, each printed as a host-order integer.
                let mut b = [0u8; 16];
                for w in 0..4 {
                    let word = u32::from_str_radix(&addr[8 * w..8 * w + 8], 16).ok()?;
                    b[4 * w..4 * w + 4].copy_from_slice(&word.to_ne_bytes());
                }
                canonical(IpAddr::V6(Ipv6Addr::from(b)))
            } else {
                (addr.len() == 8).then_some(())?;
                IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(addr, 16).ok()?.to_ne_bytes()))
            };
            Some(ip)
        })
        .collect()
}

/// The peers of the host's ESTABLISHED TCP connections, read now. One function so that the
/// socket census can take its place.
pub fn established_peers(proc_root: &Path) -> HashSet<IpAddr> {
    let mut out = HashSet::new();
    for (file, v6) in [("net/tcp", false), ("net/tcp6", true)] {
        let text = std::fs::read_to_string(proc_root.join(file)).unwrap_or_default();
        for ip in parse_established(&text, v6) {
            if out.len() >= MAX_PEERS {
                return out;
            }
            if !special(ip) {
                out.insert(ip);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;

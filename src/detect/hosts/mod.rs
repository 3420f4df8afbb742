//! The per-address flow detector (§12): every address inside `flows.networks` that carries
//! traffic gets its own 1-second rates, baselines and incidents, inbound (as destination) and
//! outbound (as source); every /24 (IPv4) or /48 (IPv6) with traffic and every host group gets
//! its own totals, so carpet bombing — a whole prefix hit, no address over its own threshold —
//! opens one `scope: "prefix"` incident. Pure: records and `now` are passed in; no sockets, no
//! clocks.
//!
//! - Rates: pps, bits/s, flows/s and SYN/UDP/ICMP/fragment pps per 1-second window. A record is
//!   counted in the window open when it arrives; a flow longer than [`RECENT_S`] seconds counts
//!   only the share of its packets that fell in its last [`RECENT_S`] seconds (its rate, spread
//!   over its interval), so an exporter's 60 s active timeout does not turn a steady flow into a
//!   spike at export time. The rest is counted in [`Stats::spread_packets`]; records whose whole
//!   interval lies in an already-closed window go into the current one and are counted in
//!   [`Stats::late_records`].
//! - Memory: at most `max_hosts` addresses and `max_hosts` prefixes ([`table`]), each ~1 KiB
//!   with both baselines ([`baseline`] says what the compact baseline trades), least recently
//!   seen evicted first and counted. Evidence for classification is kept only for addresses
//!   over half their threshold, in at most [`MAX_EVIDENCE`] slots.
//! - One flood, one incident: an address over its own threshold (or in an incident) is taken out
//!   of its prefix's and group's totals for that window, so a flood on one address opens a host
//!   incident and no prefix incident beside it.

pub mod baseline;
mod events;
pub mod evidence;
mod nets;
pub mod table;
mod tick;
pub mod watch;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

use crate::config::flows::{FlowsConfig, Prefix};
use crate::config::DetectConfig;
use crate::event::Direction;
use crate::input::flows::{FlowRecord, FlowSink};
use evidence::Evidence;
use table::{Entry, Table, NO_EVIDENCE};
use watch::Rules;

/// pps, bits/s, flows/s, SYN/s, UDP/s, ICMP/s, fragments/s.
pub const METRICS: usize = 7;
pub const METRIC_NAMES: [&str; METRICS] = ["pps", "bps", "flows", "syn", "udp", "icmp", "fragments"];
pub type Rates = [f32; METRICS];

/// The floor of each rate's threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Floors(pub Rates);

/// Floor of the flows/s threshold (flow records per second, unscaled).
pub const MIN_FLOWS_THRESHOLD: f32 = 2000.0;
/// Default floors of a prefix's or group's totals: this many times a host's. A host group's
/// `min_pps_threshold`/`min_bps_threshold` replace them for its prefixes.
pub const PREFIX_FLOOR_FACTOR: f64 = 10.0;
/// A long flow counts the packets of its last this many seconds in the current window.
pub const RECENT_S: u64 = 2;
/// Evidence slots (addresses or prefixes being classified at once).
pub const MAX_EVIDENCE: usize = 1024;
/// Prefix lengths of the per-prefix totals.
pub const PREFIX_V4: u8 = 24;
pub const PREFIX_V6: u8 = 48;

/// Counters for `/metrics` and `--status`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    pub records: u64,
    /// Records outside `networks` in both directions.
    pub unprotected_records: u64,
    pub late_records: u64,
    /// Packets of long flows outside their last [`RECENT_S`] seconds (not counted).
    pub spread_packets: u64,
    pub host_evictions: u64,
    pub prefix_evictions: u64,
    /// Suspects that found no free evidence slot.
    pub evidence_full: u64,
    /// Windows in which one of this host's own addresses would have opened a host incident
    /// (left to the local detector).
    pub own_incidents: u64,
    pub hosts: usize,
    pub prefixes: usize,
}

/// Floors and multiplier of one scope: index 0 the globals, then one per host group.
#[derive(Debug, Clone)]
struct Tuning {
    floors: Floors,
    multiplier: f32,
}

/// What an incident is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeKey {
    Host(u128),
    Prefix(u128),
    Group(u16),
}

/// An open incident's own data.
#[derive(Debug, Clone)]
struct Open {
    id: String,
    previous_id: Option<String>,
    opened_sec: u32,
    trigger: usize,
    thr: Rates,
    baseline_pps: f32,
    now: Rates,
    peak: Rates,
    last_update: u32,
}

/// One address seen in the last window (for `/metrics`, `--top`).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub ip: IpAddr,
    pub direction: Direction,
    pub pps: f32,
    pub bits_per_s: f32,
}

pub struct FlowDetector {
    networks: nets::Nets,
    groups: Vec<(String, Vec<Prefix>)>,
    /// Per group (0 = none): [hosts, prefixes].
    tuning: Vec<[Tuning; 2]>,
    rules: Rules,
    hosts: Table,
    prefixes: Table,
    group_entries: Vec<Entry>,
    evidence: Vec<Option<Evidence>>,
    free_evidence: Vec<u32>,
    open: HashMap<(ScopeKey, u8), Open>,
    /// Recently resolved: id and second, for `previous_incident_id` within the cooldown.
    resolved: HashMap<(ScopeKey, u8), (String, u32)>,
    /// The window being filled.
    cur_sec: u32,
    stats: Stats,
    top: Vec<Hit>,
    top_n: usize,
    test: bool,
    /// This host's own addresses: watched by its local detector, so no host incident here.
    own: std::collections::HashSet<u128>,
}

/// Addresses as u128 keys: IPv4 as IPv4-mapped IPv6.
pub fn key_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

pub fn ip_of(key: u128) -> IpAddr {
    let v6 = Ipv6Addr::from(key);
    v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6))
}

fn is_v4(key: u128) -> bool {
    key >> 32 == 0xffff
}

/// The /24 or /48 holding `key`.
pub fn prefix_key(key: u128) -> u128 {
    if is_v4(key) {
        key & !0xff
    } else {
        key & !((1u128 << (128 - PREFIX_V6)) - 1)
    }
}

pub fn prefix_text(key: u128) -> String {
    let len = if is_v4(key) { PREFIX_V4 } else { PREFIX_V6 };
    format!("{}/{len}", ip_of(key))
}

impl FlowDetector {
    pub fn new(detect: &DetectConfig, flows: &FlowsConfig, now_ms: u64) -> Self {
        let sec = (now_ms / 1000) as u32;
        let floors = |pps: f64, bps: f64, factor: f64| {
            let p = (detect.min_protocol_pps_threshold * factor) as f32;
            Floors([pps as f32, bps as f32, MIN_FLOWS_THRESHOLD * factor as f32, p, p, p, p])
        };
        let (pps, bps, mult) = (detect.min_pps_threshold, detect.min_bits_per_s_threshold, detect.threshold_multiplier);
        let f = PREFIX_FLOOR_FACTOR;
        let mut tuning = vec![[
            Tuning { floors: floors(pps, bps, 1.0), multiplier: mult as f32 },
            Tuning { floors: floors(pps * f, bps * f, f), multiplier: mult as f32 },
        ]];
        for g in &flows.hostgroups {
            let m = g.threshold_multiplier.unwrap_or(mult) as f32;
            let prefix = floors(
                g.min_pps_threshold.unwrap_or(pps * f),
                g.min_bps_threshold.unwrap_or(bps * f),
                if g.min_pps_threshold.is_some() { 1.0 } else { f },
            );
            tuning.push([
                Tuning { floors: floors(pps, bps, 1.0), multiplier: m },
                Tuning { floors: prefix, multiplier: m },
            ]);
        }
        let group_entries = (0..flows.hostgroups.len()).map(|i| Entry::new(i as u128, i as u16 + 1)).collect();
        FlowDetector {
            networks: nets::Nets::new(&flows.networks),
            groups: flows.hostgroups.iter().map(|g| (g.name.clone(), g.networks.clone())).collect(),
            tuning,
            rules: Rules::from_config(detect, sec),
            hosts: Table::new(flows.max_hosts),
            prefixes: Table::new(flows.max_hosts),
            group_entries,
            evidence: Vec::new(),
            free_evidence: Vec::new(),
            open: HashMap::new(),
            resolved: HashMap::new(),
            cur_sec: sec,
            stats: Stats::default(),
            top: Vec::new(),
            top_n: 10,
            test: false,
            own: Default::default(),
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            host_evictions: self.hosts.evictions,
            prefix_evictions: self.prefixes.evictions,
            hosts: self.hosts.len(),
            prefixes: self.prefixes.len(),
            ..self.stats
        }
    }

    /// The most-hit addresses of the last window, largest pps first.
    pub fn top(&self) -> &[Hit] {
        &self.top
    }

    /// This host's addresses: their floods are the local detector's incidents (one flood, one
    /// incident). They are still counted, and their traffic still feeds their prefix's totals.
    pub fn set_own(&mut self, ips: &[IpAddr]) {
        self.own = ips.iter().map(|ip| key_of(*ip)).collect();
    }

    pub fn set_top_n(&mut self, n: usize) {
        self.top_n = n;
    }

    /// Thresholds in force for an address (None if it is not tracked).
    pub fn host_thresholds(&self, ip: IpAddr, dir: Direction) -> Option<Rates> {
        let e = &self.hosts.entries[self.hosts.get(key_of(ip))? as usize];
        let t = &self.tuning[e.group as usize][0];
        Some(e.watch[dir as usize].thresholds(&t.floors, t.multiplier, &self.rules))
    }

    /// Thresholds in force for the /24 or /48 holding `ip`.
    pub fn prefix_thresholds(&self, ip: IpAddr, dir: Direction) -> Option<Rates> {
        let e = &self.prefixes.entries[self.prefixes.get(prefix_key(key_of(ip)))? as usize];
        let t = &self.tuning[e.group as usize][1];
        Some(e.watch[dir as usize].thresholds(&t.floors, t.multiplier, &self.rules))
    }

    fn group_of(&self, ip: IpAddr) -> u16 {
        self.groups.iter().position(|(_, nets)| nets.iter().any(|p| p.contains(ip))).map_or(0, |i| i as u16 + 1)
    }

    /// The share of `r` counted in the current window: (packets, bytes), and whether it is late.
    fn share(&mut self, r: &FlowRecord) -> (f32, f32) {
        let window_start = u64::from(self.cur_sec) * 1000;
        if r.end_ms < window_start {
            self.stats.late_records += 1;
        }
        let dur = r.end_ms.saturating_sub(r.start_ms);
        let recent = RECENT_S * 1000;
        if dur <= recent {
            return (r.packets as f32, r.bytes as f32);
        }
        let f = recent as f64 / dur as f64;
        let packets = r.packets as f64 * f;
        self.stats.spread_packets += r.packets.saturating_sub(packets as u64);
        (packets as f32, (r.bytes as f64 * f) as f32)
    }

    /// Count one record that arrived at `arrived_ms`.
    pub fn record(&mut self, r: &FlowRecord, arrived_ms: u64) {
        self.stats.records += 1;
        let (packets, bytes) = self.share(r);
        let syn = r.proto == 6 && r.tcp_flags & 0x12 == 0x02;
        let add: Rates = [
            packets,
            bytes * 8.0,
            1.0,
            if syn { packets } else { 0.0 },
            if r.proto == 17 { packets } else { 0.0 },
            if matches!(r.proto, 1 | 58) { packets } else { 0.0 },
            if r.fragment { packets } else { 0.0 },
        ];
        let mut any = false;
        for (dir, ip) in [(0usize, r.dst), (1, r.src)] {
            let key = key_of(ip);
            let i = match self.hosts.get(key) {
                Some(i) => i,
                None if self.networks.contains(ip) => {
                    let g = self.group_of(ip);
                    let (i, gone) = self.hosts.insert(Entry::new(key, g));
                    if let Some(e) = gone {
                        self.forget(&e);
                    }
                    i
                }
                None => continue,
            };
            any = true;
            self.hosts.touch(i);
            let e = &mut self.hosts.entries[i as usize];
            let group = e.group;
            feed(e, dir, &add, r, arrived_ms, &mut self.evidence, &mut self.free_evidence, &mut self.stats);
            let pkey = prefix_key(key);
            let p = match self.prefixes.get(pkey) {
                Some(p) => p,
                None => {
                    let (p, gone) = self.prefixes.insert(Entry::new(pkey, group));
                    if let Some(e) = gone {
                        self.forget(&e);
                    }
                    p
                }
            };
            self.prefixes.touch(p);
            let e = &mut self.prefixes.entries[p as usize];
            feed(e, dir, &add, r, arrived_ms, &mut self.evidence, &mut self.free_evidence, &mut self.stats);
            if group > 0 {
                let e = &mut self.group_entries[group as usize - 1];
                feed(e, dir, &add, r, arrived_ms, &mut self.evidence, &mut self.free_evidence, &mut self.stats);
            }
        }
        if !any {
            self.stats.unprotected_records += 1;
        }
    }

    /// An evicted entry: free its evidence; an incident it had is dropped with it.
    fn forget(&mut self, e: &Entry) {
        for ev in e.ev {
            release(ev, &mut self.evidence, &mut self.free_evidence);
        }
    }
}

impl FlowSink for FlowDetector {
    fn record(&mut self, rec: &FlowRecord, arrived_ms: u64) {
        FlowDetector::record(self, rec, arrived_ms)
    }
}

/// Add a record's rates to one direction of an entry, and to its evidence once it is suspect.
#[allow(clippy::too_many_arguments)]
fn feed(
    e: &mut Entry,
    dir: usize,
    add: &Rates,
    r: &FlowRecord,
    arrived_ms: u64,
    pool: &mut Vec<Option<Evidence>>,
    free: &mut Vec<u32>,
    stats: &mut Stats,
) {
    let acc = &mut e.acc[dir];
    for (a, v) in acc.iter_mut().zip(add) {
        *a += v;
    }
    if e.ev[dir] == NO_EVIDENCE {
        let trip = e.trip[dir];
        if acc[0] <= trip[0] && acc[1] <= trip[1] && !e.watch[dir].open {
            return;
        }
        match claim(pool, free, r) {
            Some(s) => e.ev[dir] = s,
            None => {
                stats.evidence_full += 1;
                return;
            }
        }
    }
    if let Some(Some(ev)) = pool.get_mut(e.ev[dir] as usize) {
        ev.add(r, f64::from(add[0]), f64::from(add[1]) / 8.0, arrived_ms);
    }
}

fn claim(pool: &mut Vec<Option<Evidence>>, free: &mut Vec<u32>, r: &FlowRecord) -> Option<u32> {
    if let Some(s) = free.pop() {
        pool[s as usize] = Some(Evidence::new(r));
        return Some(s);
    }
    if pool.len() >= MAX_EVIDENCE {
        return None;
    }
    pool.push(Some(Evidence::new(r)));
    Some((pool.len() - 1) as u32)
}

fn release(slot: u32, pool: &mut [Option<Evidence>], free: &mut Vec<u32>) {
    if let Some(s) = pool.get_mut(slot as usize) {
        if s.take().is_some() {
            free.push(slot);
        }
    }
}

#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod tests;

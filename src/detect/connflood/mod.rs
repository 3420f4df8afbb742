//! Connection floods from the socket census (§5.7): many established or half-open TCP sockets
//! on the host's listening ports, or many distinct peers holding them, against their own learned
//! normal. The evidence names the peers holding the most sockets (`top_src_ips`) and the ports
//! they hold (`top_dst_ports`): source analysis without root.
//!
//! Pure: [`tally`] counts one [`Census`]; [`ConnWatch`] learns and decides with the same
//! baseline, settle horizon and incident state machine as the traffic counters ([`Watch`]),
//! under the same rules (§5.4), with floors of its own so an idle host does not alert on twenty
//! connections. Established sockets count only on listening ports (connections the host opened
//! are its own business, §5.8); loopback peers never count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::config::DetectConfig;
use crate::detect::detector::{Change, Direction, Incident, Trigger};
use crate::detect::learn::Watch;
use crate::input::counters::Sample;
use crate::input::sockets::{Census, TcpState, Via};

/// Peers and ports named in the evidence.
pub const TOP_N: usize = 10;
/// One census a second: the learning and hold-down run on that cadence.
pub const CENSUS_INTERVAL: Duration = Duration::from_secs(1);

/// Sockets on one listening port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortCount {
    pub port: u16,
    pub established: u32,
    pub half_open: u32,
}

/// What one census holds of inbound connections.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Established sockets on listening ports, from peers other than loopback.
    pub established: u32,
    /// Half-open sockets (`SYN_RECV`), from peers other than loopback.
    pub half_open: u32,
    /// Distinct peer addresses holding those sockets.
    pub peers: u32,
    /// The peers holding the most sockets, most first.
    pub top_peers: Vec<(IpAddr, u32)>,
    /// Per listening port, the most sockets first.
    pub top_ports: Vec<PortCount>,
    /// The census hit its cap: every count is a lower bound.
    pub truncated: bool,
    pub via: Option<Via>,
}

/// Count one census.
pub fn tally(census: &Census) -> Tally {
    let mut listening: Vec<u16> =
        census.sockets.iter().filter(|s| s.state == TcpState::Listen).map(|s| s.local.port()).collect();
    listening.sort_unstable();
    listening.dedup();
    let mut t = Tally { truncated: census.truncated, via: Some(census.via), ..Tally::default() };
    let mut by_peer: HashMap<IpAddr, u32> = HashMap::new();
    let mut by_port: HashMap<u16, PortCount> = HashMap::new();
    for s in &census.sockets {
        let peer = s.remote.ip();
        if peer.is_loopback() || peer.is_unspecified() {
            continue;
        }
        let port = s.local.port();
        let half_open = match s.state {
            TcpState::SynRecv => true,
            TcpState::Established if listening.binary_search(&port).is_ok() => false,
            _ => continue,
        };
        let pc = by_port.entry(port).or_insert(PortCount { port, established: 0, half_open: 0 });
        if half_open {
            t.half_open += 1;
            pc.half_open += 1;
        } else {
            t.established += 1;
            pc.established += 1;
        }
        *by_peer.entry(peer).or_default() += 1;
    }
    t.peers = by_peer.len() as u32;
    let mut peers: Vec<(IpAddr, u32)> = by_peer.into_iter().collect();
    peers.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    peers.truncate(TOP_N);
    t.top_peers = peers;
    let mut ports: Vec<PortCount> = by_port.into_values().collect();
    ports.sort_unstable_by(|a, b| {
        (b.established + b.half_open).cmp(&(a.established + a.half_open)).then(a.port.cmp(&b.port))
    });
    ports.truncate(TOP_N);
    t.top_ports = ports;
    t
}

impl Tally {
    /// The counts as the detector's sample: established as `pps`, half-open as `bits_per_s`,
    /// distinct peers as the first class. The other classes are not measured here (NaN).
    fn sample(&self) -> Sample {
        Sample {
            pps: f64::from(self.established),
            bits_per_s: f64::from(self.half_open),
            dropped_pps: 0.0,
            proto: None,
            classes: Some([f64::from(self.peers), f64::NAN, f64::NAN, f64::NAN]),
        }
    }
}

/// The tuning of the connection detector, from the agent's: the floors are the connection
/// floors, and ticks come once a census (so the hold-down lasts as many seconds as the
/// traffic's does).
pub fn config(base: &DetectConfig) -> DetectConfig {
    let ticks_per_s = 1.0 / base.sample_interval.as_secs_f64().max(0.001);
    DetectConfig {
        min_pps_threshold: base.min_connections_threshold,
        min_bits_per_s_threshold: base.min_half_open_threshold,
        min_protocol_pps_threshold: base.min_connections_threshold / 2.0,
        sample_interval: CENSUS_INTERVAL,
        holddown_ticks: ((f64::from(base.holddown_ticks) / ticks_per_s).ceil() as u32).max(1),
        ..base.clone()
    }
}

/// What a trigger of this detector means.
pub fn trigger_name(t: Trigger) -> &'static str {
    match t {
        Trigger::Pps => "established_connections",
        Trigger::Bps => "half_open_connections",
        Trigger::Class(_) => "distinct_peers",
    }
}

/// The connection detector: learns the normal counts, opens `connection_flood` incidents.
#[derive(Debug, Clone)]
pub struct ConnWatch {
    cfg: DetectConfig,
    watch: Watch,
    last_census: Option<Instant>,
    last: Tally,
    /// The tally with the most sockets while the incident is open (its evidence).
    peak: Tally,
}

impl ConnWatch {
    pub fn new(base: &DetectConfig, now: Instant, wall: SystemTime) -> Self {
        let cfg = config(base);
        let watch = Watch::new(&cfg, Direction::Inbound, now, wall, None);
        ConnWatch { cfg, watch, last_census: None, last: Tally::default(), peak: Tally::default() }
    }

    pub fn set_config(&mut self, base: &DetectConfig) {
        self.cfg = config(base);
        self.watch.set_config(&self.cfg);
    }

    /// Step on a census; a census already seen (same `taken_at`) changes nothing.
    pub fn step(&mut self, now: Instant, wall: SystemTime, census: &Census) -> Option<Change> {
        if self.last_census == Some(census.taken_at) {
            return None;
        }
        self.last_census = Some(census.taken_at);
        self.last = tally(census);
        let change = self.watch.step(now, wall, Some(&self.last.sample()), &self.cfg);
        let open = self.watch.detector.incident().is_some();
        let bigger = self.last.established + self.last.half_open > self.peak.established + self.peak.half_open;
        if change == Some(Change::Opened) || (open && bigger) {
            self.peak = self.last.clone();
        }
        change
    }

    pub fn incident(&self) -> Option<&Incident> {
        self.watch.detector.incident()
    }

    /// The latest census's counts.
    pub fn last(&self) -> &Tally {
        &self.last
    }

    /// The counts that name the sources of the open (or just resolved) incident.
    pub fn peak(&self) -> &Tally {
        &self.peak
    }

    /// The thresholds in force: (established, half-open, distinct peers).
    pub fn thresholds(&self) -> (f64, f64, f64) {
        let t = self.watch.thresholds();
        (t.pps, t.bits_per_s, t.classes[0])
    }

    /// Mean established sockets of the learned window (for the evidence).
    pub fn baseline_established(&self) -> f64 {
        self.watch.thresholds().baseline_pps
    }

    /// The last counts are over a quarter of a threshold in force (the census should look often).
    pub fn near_threshold(&self) -> bool {
        let (est, half, peers) = self.thresholds();
        let t = &self.last;
        f64::from(t.established) * 4.0 > est || f64::from(t.half_open) * 4.0 > half || f64::from(t.peers) * 4.0 > peers
    }

    /// The agent stops: resolve an open incident.
    pub fn stop(&mut self) -> Option<Change> {
        self.watch.detector.stop()
    }
}

#[cfg(test)]
mod tests;

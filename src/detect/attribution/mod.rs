//! Traffic the host asked for (§5.8): inbound traffic of TCP connections the host takes part in
//! is counted and reported, and taken out of what can open a volumetric attack incident. Pure:
//! the caller passes the time, the socket census and the counters.
//!
//! **What is attributed.** From two consecutive socket censuses (at most one a second), every
//! established socket's inbound in-sequence data: the delta of `tcp_info.bytes_received` (data
//! the kernel accepted in order, which a forger who knows a 4-tuple cannot raise) and of
//! `segs_in`, matched by socket cookie. A socket that was not in the previous, complete census was
//! opened since; all of its data arrived in the interval. Loopback peers are not the NIC's traffic
//! and are skipped. The result is a rate for the census interval ([`Interval`]).
//!
//! **Never attributed.** Per tick, from the host's counters, a lower bound of the packets no
//! connection asked for ([`unsolicited_pps`]): every UDP datagram and ICMP message, every TCP
//! segment answered by a reset (`OutRsts`: an ACK flood, a scan) and every bad segment (`InErrs`).
//! What is judged is `max(received − attributed, unsolicited)`, so however much a transfer carries,
//! a flood beside it is judged on its own packets, from the tick it starts.
//!
//! **Per tick.** A census interval gives the attributed *share* of what the NIC received over
//! that interval (packets not known to be unsolicited, and bits); each tick attributes that share
//! of what the NIC receives now. A transfer that ended attributes nothing, one that speeds up
//! stays attributed, and a 200 ms tick is not compared with a one-second mean. When the NIC counts
//! coalesced super-packets (veth, LRO: `segs_in` runs ahead of the NIC's packet count) the
//! attributed packet rate is also bounded by the solicited TCP segments of the tick, which are
//! then in the NIC's unit.
//!
//! **Waiting for the census.** A transfer that starts between two censuses is over the threshold
//! before the census can name it. When the excess over the threshold is TCP that was neither
//! reset nor bad, and a census is running, the verdict on that TCP waits up to [`HOLD_MAX`] for a
//! census taken after it began (and, when that census found newly opened connections, for the next
//! one, which sees them for a whole interval); meanwhile the unsolicited part is judged as usual and
//! nothing is learned. If a census does not attribute it, it is judged at once; after a hold that
//! found nothing, the next one needs [`HOLD_REARM`] of traffic under the threshold.
//!
//! **Real-connection floods.** Many new peers opening connections and pushing data are not the
//! host's business: when the peers of young connections (opened within [`NEW_WINDOW`]) that sent
//! data in an interval are more than [`NEW_PEERS_FACTOR`] × their learned p99 (and over
//! [`NEW_PEERS_FLOOR`]), young connections are not attributed, the volumetric detector sees them,
//! and the incident is labelled `tcp_data_flood` with the new peers as `top_src_ips`. While the
//! flood lasts (until [`FLOOD_HOLD`] without an interval over the limit), "young" is measured from
//! its start: its connections never age into attributed ones. Connections already there when the
//! agent started are not young.
//!
//! **Learning (§5.4).** The baseline learns what the detector judges: the remainder. A backup
//! neither opens an incident nor raises the thresholds that catch floods beside it. Samples held
//! for a census are not learned. Attributed traffic has its own short history, only to tell when
//! it is far over normal ([`Surge`]: an informational `traffic_surge` event, no incident).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::detect::baseline::Thresholds;
use crate::input::counters::{Rates, Sample};

/// An attribution older than this (no census since) is not used.
pub const STALE: Duration = Duration::from_millis(4000);
/// A census this recent means the census thread is alive, so holding for its next dump makes
/// sense: longer than its idle cadence (one dump in 10 s while TCP is quiet; busy TCP wakes it
/// to one a second).
pub const ALIVE: Duration = Duration::from_secs(15);
/// The longest a TCP excess waits for a census that may attribute it.
pub const HOLD_MAX: Duration = Duration::from_millis(4000);
/// After a hold that attributed nothing, how long the traffic must stay under the threshold
/// before the next hold.
pub const HOLD_REARM: Duration = Duration::from_secs(5);
/// Top connections reported.
pub const TOP_CONNECTIONS: usize = 5;
/// New peers reported for a real-connection flood.
pub const TOP_NEW_PEERS: usize = 10;
/// New data-sending peers per census interval never judged a flood under this.
pub const NEW_PEERS_FLOOR: u32 = 64;
/// New data-sending peers over this × their learned p99 are a real-connection flood.
pub const NEW_PEERS_FACTOR: f64 = 4.0;
/// Census intervals of new-peer counts kept (about 10 minutes).
pub const NEW_PEERS_HISTORY: usize = 600;
/// A connection opened within this long is young: its peer counts as a new peer.
pub const NEW_WINDOW: Duration = Duration::from_secs(5);
/// A real-connection flood ends this long after the last interval over the limit.
pub const FLOOD_HOLD: Duration = Duration::from_secs(10);
/// Sockets tracked per census at most (the census itself is capped too).
pub const MAX_TRACKED: usize = 65_536;
/// Ethernet + IP + TCP (with timestamps) header bytes per segment, added to payload bytes for a
/// bit rate as the NIC counts it.
pub const HEADER_BYTES: u64 = 66;

/// One TCP socket of a census, as attribution needs it. Only sockets whose handshake completed
/// (established, or closing after it) with `tcp_info` counters are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    pub cookie: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub bytes_received: u64,
    pub segs_in: u32,
}

/// One of the connections carrying the most attributed traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopConn {
    pub remote: SocketAddr,
    pub local_port: u16,
    pub pps: f64,
    /// Bits per second.
    pub bps: f64,
}

impl TopConn {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ip": self.remote.ip().to_string(),
            "port": self.remote.port(),
            "local_port": self.local_port,
            "pps": (self.pps * 10.0).round() / 10.0,
            "bps": self.bps.round(),
        })
    }
}

/// What one census interval attributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interval {
    /// When the later census was taken.
    pub at: Option<Instant>,
    pub secs: f64,
    /// `segs_in` per second of the attributed connections.
    pub pps: f64,
    /// Bits per second: in-sequence data plus headers.
    pub bps: f64,
    pub top: Vec<TopConn>,
    /// Established connections that received data in the interval.
    pub connections: u32,
    /// Connections opened during the interval, with data or not yet (0 during a flood).
    pub new_connections: u32,
    /// Peers of young connections (opened within [`NEW_WINDOW`]) that sent data.
    pub new_peers: u32,
    /// The new peers are a real-connection flood: their traffic is not attributed.
    pub data_flood: bool,
    /// The new peers that sent the most, bytes in the interval (for `top_src_ips`).
    pub flood_peers: Vec<(IpAddr, u64)>,
}

/// The verdict on one inbound sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    /// What the detector judges and the baseline may learn: received minus attributed.
    pub sample: Sample,
    pub attributed_pps: f64,
    pub attributed_bps: f64,
    /// Packets no connection asked for (a lower bound), per second.
    pub unsolicited_pps: f64,
    /// TCP over the threshold waits for a census: nothing may be learned from this sample.
    pub held: bool,
}

impl Judged {
    pub fn learnable(&self) -> bool {
        !self.held
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Prev {
    bytes: u64,
    segs: u32,
    /// The census that first saw the socket; None when it was there at the first census.
    first_seen: Option<Instant>,
}

/// Packets per second no TCP connection asked for: UDP, ICMP, TCP answered by a reset or
/// dropped as bad. None without protocol counters.
pub fn unsolicited_pps(r: &Rates) -> Option<f64> {
    let secs = r.interval.as_secs_f64();
    let p = r.proto?;
    if secs <= 0.0 {
        return None;
    }
    let tcp_bad = r.tcp_unsolicited.map(|u| u.total()).unwrap_or(0);
    Some((p.udp + p.icmp + tcp_bad) as f64 / secs + syn_pressure(r))
}

/// SYNs answered with a cookie or dropped at the listen queue, per second: a SYN flood.
fn syn_pressure(r: &Rates) -> f64 {
    r.kernel.syn_pressure_pps().unwrap_or(0.0)
}

/// TCP segments per second neither reset nor bad: the most the host's connections received.
fn solicited_tcp_pps(r: &Rates) -> Option<f64> {
    let secs = r.interval.as_secs_f64();
    let p = r.proto?;
    if secs <= 0.0 {
        return None;
    }
    let tcp_bad = r.tcp_unsolicited.map(|u| u.total()).unwrap_or(0);
    Some((p.tcp.saturating_sub(tcp_bad) as f64 / secs - syn_pressure(r)).max(0.0))
}

/// A census's connections as attribution reads them: sockets whose handshake completed, with
/// `tcp_info` (a `/proc` census has none: nothing is attributed from it).
pub fn conns(census: &crate::input::sockets::Census) -> impl Iterator<Item = Conn> + '_ {
    use crate::input::sockets::TcpState as S;
    census.sockets.iter().filter_map(|s| {
        let done =
            matches!(s.state, S::Established | S::FinWait1 | S::FinWait2 | S::CloseWait | S::Closing | S::LastAck);
        if !done {
            return None;
        }
        Some(Conn {
            cookie: s.cookie,
            local: s.local,
            remote: s.remote,
            bytes_received: s.bytes_received?,
            segs_in: s.segs_in.unwrap_or(0),
        })
    })
}

/// The host's established peers as of a census taken before `before` (§10.1, §5.8): the one
/// notion of "established" that attribution and mitigation share.
pub fn established_peers_of(census: &crate::input::sockets::Census, before: Instant) -> HashSet<IpAddr> {
    use crate::input::sockets::TcpState as S;
    if census.taken_at > before {
        return HashSet::new();
    }
    census
        .sockets
        .iter()
        .filter(|s| matches!(s.state, S::Established | S::FinWait1 | S::FinWait2 | S::CloseWait))
        .map(|s| s.remote.ip())
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .collect()
}

/// The peers of connections established before `before` (by the census taken then), the host's
/// own established peers: mitigation never blocks them (§10.1), attribution credits their data.
/// One notion of "established" for both: the handshake completed (`established`, or closing
/// after it) and the census was taken before `before`.
pub fn established_peers<'a>(
    taken_at: Instant,
    conns: impl IntoIterator<Item = &'a Conn>,
    before: Instant,
) -> HashSet<IpAddr> {
    if taken_at > before {
        return HashSet::new();
    }
    conns.into_iter().map(|c| c.remote.ip()).filter(|ip| !ip.is_loopback() && !ip.is_unspecified()).collect()
}

/// Hold state: since when a TCP excess waits for a census.
#[derive(Debug, Clone, Copy, Default)]
struct Hold {
    since: Option<Instant>,
    /// A hold found nothing: no new hold before this.
    spent_until: Option<Instant>,
}

/// Attribution state: the previous census, the latest interval, the new-peer history, the hold.
#[derive(Debug, Default)]
pub struct Attributor {
    prev: HashMap<u64, Prev>,
    next: HashMap<u64, Prev>,
    new_peer_bytes: HashMap<IpAddr, u64>,
    prev_at: Option<Instant>,
    /// A real-connection flood is on since this census, and was last over the limit at that one.
    flood_since: Option<Instant>,
    flood_last: Option<Instant>,
    /// The census before the latest one (the start of the latest interval).
    prev_at_before: Option<Instant>,
    prev_complete: bool,
    last: Interval,
    new_peers_seen: VecDeque<u32>,
    hold: Hold,
    /// NIC packets (not known unsolicited) and bits over the ticks since the last census (rate × s).
    /// The last ticks: (end, seconds, NIC packets not known unsolicited, bits), to measure what
    /// the NIC received over exactly a census interval.
    ticks: VecDeque<(Instant, f64, f64, f64)>,
    /// Their means over the last census interval.
    ref_nic: f64,
    ref_bits: f64,
    /// The attributed share of what the NIC received over the last census interval: packets
    /// (of the part not known to be unsolicited) and bits.
    share_pps: f64,
    share_bps: f64,
    /// A census with `tcp_info` arrived: holding for one makes sense.
    census_at: Option<Instant>,
}

impl Attributor {
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest census interval's attribution.
    pub fn last(&self) -> &Interval {
        &self.last
    }

    /// The new-peer count over which an interval is a real-connection flood.
    pub fn new_peers_limit(&self) -> f64 {
        let p99 = p99(&self.new_peers_seen);
        (NEW_PEERS_FACTOR * p99).max(NEW_PEERS_FLOOR as f64)
    }

    /// A new census: `conns` its established sockets with `tcp_info`, `truncated` when it hit
    /// its cap. Allocates only while the connection tables grow; runs at most once a second.
    pub fn observe(&mut self, taken_at: Instant, truncated: bool, conns: impl IntoIterator<Item = Conn>) {
        let secs =
            self.prev_at.and_then(|p| taken_at.checked_duration_since(p)).map(|d| d.as_secs_f64()).filter(|s| *s > 0.0);
        if self.prev_at.is_some() && secs.is_none() {
            return; // an older or same-instant census: nothing new
        }
        self.next.clear();
        self.new_peer_bytes.clear();
        // Sockets opened after this are young; during a real-connection flood the horizon stays
        // where the flood began, so the flood's connections never age into attributed ones.
        let horizon = self.flood_since.unwrap_or(taken_at).checked_sub(NEW_WINDOW);
        let (mut old_bytes, mut old_segs, mut new_bytes, mut new_segs) = (0u64, 0u64, 0u64, 0u64);
        let mut top_old: Vec<(SocketAddr, u16, u64, u64)> = Vec::with_capacity(TOP_CONNECTIONS + 1);
        let mut top_new: Vec<(SocketAddr, u16, u64, u64)> = Vec::with_capacity(TOP_CONNECTIONS + 1);
        let (mut connections, mut new_connections) = (0u32, 0u32);
        for c in conns.into_iter().take(MAX_TRACKED) {
            let ip = c.remote.ip();
            if ip.is_loopback() || ip.is_unspecified() {
                continue;
            }
            let known = self.prev.get(&c.cookie).copied();
            let first_seen = match known {
                Some(p) => p.first_seen,
                None => self.prev_at.map(|_| taken_at),
            };
            self.next.insert(c.cookie, Prev { bytes: c.bytes_received, segs: c.segs_in, first_seen });
            if secs.is_none() {
                continue;
            }
            let (db, ds, new) = match known {
                Some(p) => match c.bytes_received.checked_sub(p.bytes) {
                    Some(db) => (db, c.segs_in.wrapping_sub(p.segs) as u64, false),
                    None => continue, // a reused cookie or a broken reading: not evidence
                },
                None if self.prev_complete => (c.bytes_received, c.segs_in as u64, true),
                None => continue,
            };
            let young = first_seen.is_some_and(|f| horizon.is_none_or(|h| f >= h));
            // Opened since the last census, with data or not yet: a census that sees it speaks for
            // part of its interval only.
            new_connections += new as u32;
            if db == 0 {
                continue; // no in-sequence data: segments alone (ACKs, junk) are not attributed
            }
            connections += 1;
            let entry = (c.remote, c.local.port(), db, ds);
            if young {
                new_bytes += db;
                new_segs += ds;
                *self.new_peer_bytes.entry(ip).or_default() += db;
                push_top(&mut top_new, entry);
            } else {
                old_bytes += db;
                old_segs += ds;
                push_top(&mut top_old, entry);
            }
        }
        std::mem::swap(&mut self.prev, &mut self.next);
        self.prev_at_before = self.prev_at;
        self.prev_at = Some(taken_at);
        self.prev_complete = !truncated;
        self.census_at = Some(taken_at);
        (self.ref_nic, self.ref_bits) = match (self.prev_at_before, secs) {
            (Some(from), Some(_)) => nic_rates(&self.ticks, from, taken_at),
            _ => (0.0, 0.0),
        };
        let Some(secs) = secs else { return };
        let new_peers = self.new_peer_bytes.len() as u32;
        // A flood lasts until FLOOD_HOLD passes without an interval over the limit: its senders
        // stalling for a second (a busy host) must not age its connections into attributed ones.
        if new_peers > NEW_PEERS_FLOOR && new_peers as f64 > self.new_peers_limit() {
            self.flood_last = Some(taken_at);
            self.flood_since.get_or_insert(taken_at);
        }
        let data_flood = self.flood_last.is_some_and(|l| taken_at.saturating_duration_since(l) < FLOOD_HOLD);
        if !data_flood {
            (self.flood_since, self.flood_last) = (None, None);
        }
        if !data_flood {
            self.new_peers_seen.push_back(new_peers);
            if self.new_peers_seen.len() > NEW_PEERS_HISTORY {
                self.new_peers_seen.pop_front();
            }
            old_bytes += new_bytes;
            old_segs += new_segs;
            for e in top_new {
                push_top(&mut top_old, e);
            }
        }
        let mut flood_peers: Vec<(IpAddr, u64)> = Vec::new();
        if data_flood {
            flood_peers = self.new_peer_bytes.iter().map(|(ip, b)| (*ip, *b)).collect();
            flood_peers.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            flood_peers.truncate(TOP_NEW_PEERS);
        }
        let pps = old_segs as f64 / secs;
        let bps = (old_bytes + old_segs * HEADER_BYTES) as f64 * 8.0 / secs;
        let share = |a: f64, total: f64| if total > 0.0 { (a / total).min(1.0) } else { 0.0 };
        (self.share_pps, self.share_bps) = (share(pps, self.ref_nic), share(bps, self.ref_bits));
        self.last = Interval {
            at: Some(taken_at),
            secs,
            pps: old_segs as f64 / secs,
            bps: (old_bytes + old_segs * HEADER_BYTES) as f64 * 8.0 / secs,
            top: top_old
                .iter()
                .map(|&(remote, local_port, db, ds)| TopConn {
                    remote,
                    local_port,
                    pps: ds as f64 / secs,
                    bps: (db + ds * HEADER_BYTES) as f64 * 8.0 / secs,
                })
                .collect(),
            connections,
            new_connections: if data_flood { 0 } else { new_connections },
            new_peers,
            data_flood,
            flood_peers,
        };
    }

    /// The latest interval, when a census came recently enough to speak for `now`.
    fn fresh(&self, now: Instant) -> Option<&Interval> {
        let at = self.last.at?;
        (now.saturating_duration_since(at) <= STALE).then_some(&self.last)
    }

    /// A real-connection flood is under way (the latest interval said so, and is fresh).
    pub fn data_flood(&self, now: Instant) -> Option<&Interval> {
        self.fresh(now).filter(|i| i.data_flood)
    }

    /// The attributed rates for this tick: the share the census interval attributed, of what
    /// the NIC receives now (less what is known to be unsolicited). A share, not a rate: a
    /// transfer that speeds up or slows down within a second stays attributed, one that ended
    /// attributes nothing, and the noise of a 200 ms tick against a one-second mean is gone.
    fn attributed(&self, now: Instant, s: &Sample, solicited: Option<f64>, unsolicited: f64) -> (f64, f64) {
        let Some(i) = self.fresh(now) else { return (0.0, 0.0) };
        let mut pps = self.share_pps * (s.pps - unsolicited).max(0.0);
        // segs_in ahead of the NIC's packets: the NIC counts super-packets, as InSegs does.
        if self.ref_nic > 0.0 && i.pps > 1.05 * self.ref_nic {
            if let Some(tcp) = solicited {
                pps = pps.min(tcp);
            }
        }
        (pps.max(0.0), (self.share_bps * s.bits_per_s).max(0.0))
    }

    /// Judge one inbound sample (`s`, offered load) taken with `rates`, against `thr`.
    pub fn judge(&mut self, now: Instant, s: &Sample, rates: &Rates, thr: &Thresholds) -> Judged {
        let solicited = solicited_tcp_pps(rates);
        let unsolicited = unsolicited_pps(rates).unwrap_or(0.0).min(s.pps);
        let secs = rates.interval.as_secs_f64();
        if self.ticks.len() == TICKS_KEPT {
            self.ticks.pop_front();
        }
        self.ticks.push_back((now, secs, (s.pps - unsolicited).max(0.0) * secs, s.bits_per_s * secs));
        let (a_pps, a_bps) = self.attributed(now, s, solicited, unsolicited);
        let pps = (s.pps - a_pps).max(unsolicited);
        let bps = (s.bits_per_s - a_bps).max(0.0);
        let remainder = Sample { pps, bits_per_s: bps, proto: judged_mix(s, rates, a_pps), ..*s };
        let mut judged = Judged {
            sample: remainder,
            attributed_pps: a_pps,
            attributed_bps: a_bps,
            unsolicited_pps: unsolicited,
            held: false,
        };
        let over = |p: f64, b: f64| p > thr.pps || b > thr.bits_per_s;
        if !over(pps, bps) {
            // Rearmed once the traffic stayed under the threshold for HOLD_REARM.
            if self.hold.spent_until.is_some_and(|u| now >= u) {
                self.hold.spent_until = None;
            }
            self.hold.since = None;
            return judged;
        }
        if let Some(u) = self.hold.spent_until.as_mut() {
            *u = now + HOLD_REARM;
        }
        // Over: is it TCP that a census may yet attribute?
        let Some(tcp) = solicited else { return judged };
        let unverified = (tcp - a_pps).max(0.0).min(pps - unsolicited);
        let held_pps = (pps - unverified).max(unsolicited);
        // While the TCP waits, the bits judged are at most what the unsolicited packets can carry.
        let held_bps = bps.min(unsolicited * MAX_PACKET_BITS);
        // Something to wait for: TCP not known unsolicited, in the packets or in the bits.
        let waiting = unverified > 0.0 || (tcp > 0.0 && bps > held_bps);
        let census_running = self.census_at.is_some_and(|c| now.saturating_duration_since(c) <= ALIVE);
        // The last census interval already carried this much that it did not attribute: the
        // census has spoken on it, there is nothing to wait for.
        // (Unless it found newly opened connections, seen for part of the interval only.)
        let declined = self.ref_nic * (1.0 - self.share_pps) > thr.pps && self.last.new_connections == 0;
        if !waiting || !census_running || declined || over(held_pps, held_bps) || self.hold.spent_until.is_some() {
            self.hold.since = None;
            return judged;
        }
        let since = *self.hold.since.get_or_insert(now);
        // A census after the onset that found newly opened connections saw them for part of its
        // interval only: the next one speaks for them fully (within HOLD_MAX).
        let progress = self.last.at.is_some_and(|c| c > since) && self.last.new_connections > 0;
        let answered = self.census_at.is_some_and(|c| c > since) && !progress;
        if answered || now.saturating_duration_since(since) >= HOLD_MAX {
            // The census after the onset did not attribute it (or none came): judge it now.
            self.hold.since = None;
            self.hold.spent_until = Some(now + HOLD_REARM);
            return judged;
        }
        judged.sample =
            Sample { pps: held_pps, bits_per_s: held_bps, proto: judged_mix(s, rates, a_pps + unverified), ..*s };
        judged.held = true;
        judged
    }
}

/// The protocol mix of what is judged: the TCP segments of the attributed traffic taken out
/// (never below the resets and bad segments), so a UDP flood beside a transfer is `udp_flood`.
fn judged_mix(s: &Sample, rates: &Rates, taken_pps: f64) -> Option<crate::input::counters::ProtoCounters> {
    let mut p = s.proto?;
    let floor = rates.tcp_unsolicited.map(|u| u.total()).unwrap_or(0);
    let taken = (taken_pps * rates.interval.as_secs_f64()).round() as u64;
    p.tcp = p.tcp.saturating_sub(taken).max(floor.min(p.tcp));
    Some(p)
}

/// Bits of the largest ordinary packet (a 1514-byte Ethernet frame).
const MAX_PACKET_BITS: f64 = 1514.0 * 8.0;

/// Ticks kept to measure a census interval (a second at the fastest confirmation pace, and more).
const TICKS_KEPT: usize = 64;

/// What the NIC received per second over `(from, to]`: the ticks overlapping it, pro rata.
fn nic_rates(ticks: &VecDeque<(Instant, f64, f64, f64)>, from: Instant, to: Instant) -> (f64, f64) {
    let rel = |t: Instant| match t.checked_duration_since(from) {
        Some(d) => d.as_secs_f64(),
        None => -from.duration_since(t).as_secs_f64(),
    };
    let width = rel(to);
    let (mut pkts, mut bits, mut covered) = (0.0, 0.0, 0.0);
    for &(end, secs, p, b) in ticks {
        if secs <= 0.0 {
            continue;
        }
        let (e, s) = (rel(end), rel(end) - secs);
        let overlap = e.min(width) - s.max(0.0);
        if overlap > 0.0 {
            pkts += p * overlap / secs;
            bits += b * overlap / secs;
            covered += overlap;
        }
    }
    if covered > 0.0 {
        (pkts / covered, bits / covered)
    } else {
        (0.0, 0.0)
    }
}

/// Keep the `TOP_CONNECTIONS` entries with the most bytes.
fn push_top(top: &mut Vec<(SocketAddr, u16, u64, u64)>, e: (SocketAddr, u16, u64, u64)) {
    if top.len() == TOP_CONNECTIONS && top.last().is_some_and(|l| l.2 >= e.2) {
        return;
    }
    let at = top.iter().position(|t| t.2 < e.2).unwrap_or(top.len());
    top.insert(at, e);
    top.truncate(TOP_CONNECTIONS);
}

fn p99(v: &VecDeque<u32>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s: Vec<u32> = v.iter().copied().collect();
    s.sort_unstable();
    s[((s.len() - 1) as f64 * 0.99).round() as usize] as f64
}

mod surge;
pub use surge::{Surge, SURGE_FACTOR};

#[cfg(test)]
mod tests;

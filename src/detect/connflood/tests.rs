use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::input::sockets::Socket;

fn sock(state: TcpState, local: (u8, u16), remote: ([u8; 4], u16)) -> Socket {
    Socket {
        state,
        local: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, local.0)), local.1),
        remote: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(remote.0)), remote.1),
        cookie: 0,
        bytes_received: None,
        segs_in: None,
        bytes_acked: None,
        segs_out: None,
    }
}

/// A web server on :443 and :80 with `clients` established from distinct peers, one outgoing
/// connection of its own, a loopback pair, plus `flood` connections from `sources` addresses
/// (round robin) in `state` on :443.
fn census(at: Instant, clients: u32, flood: u32, sources: u32, state: TcpState) -> Census {
    let mut s = vec![
        sock(TcpState::Listen, (1, 443), ([0, 0, 0, 0], 0)),
        sock(TcpState::Listen, (1, 80), ([0, 0, 0, 0], 0)),
        // The host's own: outgoing to a database, and loopback.
        sock(TcpState::Established, (1, 40000), ([10, 9, 9, 9], 5432)),
        sock(TcpState::Established, (1, 443), ([127, 0, 0, 1], 50000)),
    ];
    for i in 0..clients {
        let port = if i % 2 == 0 { 443 } else { 80 };
        s.push(sock(TcpState::Established, (1, port), ([192, 0, (i / 250) as u8, (i % 250) as u8], 30000)));
    }
    for i in 0..flood {
        let src = i % sources;
        s.push(sock(state, (1, 443), ([203, 0, 113, (src % 250) as u8 + 1], 1024 + (i / sources) as u16)));
    }
    Census { taken_at: at, sockets: s, truncated: false, via: Via::SockDiag }
}

#[test]
fn tally_counts_inbound_sockets_on_listening_ports_only() {
    let t = tally(&census(Instant::now(), 20, 300, 3, TcpState::Established));
    assert_eq!((t.established, t.half_open, t.peers), (320, 0, 23));
    assert_eq!(t.top_peers[0], (IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)), 100));
    assert_eq!(t.top_peers.len(), TOP_N);
    assert_eq!(t.top_ports[0], PortCount { port: 443, established: 310, half_open: 0 });
    assert_eq!(t.top_ports[1], PortCount { port: 80, established: 10, half_open: 0 });
    let h = tally(&census(Instant::now(), 0, 40, 40, TcpState::SynRecv));
    assert_eq!((h.established, h.half_open, h.peers), (0, 40, 40));
    // Half-open on a port with no listener left (a closed listener's requests) still counts.
    let mut c = census(Instant::now(), 0, 5, 5, TcpState::SynRecv);
    c.sockets.retain(|s| s.state != TcpState::Listen);
    assert_eq!(tally(&c).half_open, 5);
    assert_eq!(tally(&c).established, 0, "no listener: no inbound established");
}

fn base() -> DetectConfig {
    DetectConfig { grace_period: Duration::from_secs(30), ..DetectConfig::default() }
}

/// One census a second from `traffic(second)`; the events as (second, change, trigger).
fn run(secs: u32, traffic: impl Fn(u32, Instant) -> Census) -> (ConnWatch, Vec<(u32, &'static str, Trigger)>) {
    let t0 = Instant::now();
    let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    let mut w = ConnWatch::new(&base(), t0, w0);
    let mut seen = Vec::new();
    for n in 1..=secs {
        let now = t0 + Duration::from_secs(u64::from(n));
        let c = traffic(n, now);
        // The sampling thread ticks five times per census: repeats change nothing.
        for _ in 0..5 {
            if let Some(ch) = w.step(now, w0 + Duration::from_secs(u64::from(n)), &c) {
                let what = match &ch {
                    Change::Opened => "open",
                    Change::Updated => "update",
                    Change::Resolved(..) => "resolve",
                };
                let trig = match &ch {
                    Change::Resolved(i, _) => i.trigger,
                    _ => w.incident().unwrap().trigger,
                };
                seen.push((n, what, trig));
            }
        }
    }
    (w, seen)
}

#[test]
fn an_idle_host_with_twenty_connections_never_alerts() {
    let (w, seen) = run(400, |n, at| census(at, if n % 60 < 30 { 20 } else { 2 }, 0, 1, TcpState::Established));
    assert!(seen.is_empty(), "{seen:?}");
    let (est, half, peers) = w.thresholds();
    assert_eq!((est, half, peers), (1000.0, 256.0, 500.0), "the floors");
}

#[test]
fn fifty_sources_holding_thousands_of_connections_open_a_connection_flood() {
    let flood = |n: u32| (200..260).contains(&n);
    let (w, seen) = run(400, |n, at| {
        let normal = 300 + (n % 7) * 10;
        census(at, normal, if flood(n) { 3000 } else { 0 }, 50, TcpState::Established)
    });
    let opens: Vec<_> = seen.iter().filter(|e| e.1 == "open").collect();
    assert_eq!(opens.len(), 1, "{seen:?}");
    assert!(opens[0].0 <= 202, "opened {} s after onset: {seen:?}", opens[0].0 - 200);
    assert_eq!(opens[0].2, Trigger::Pps, "established connections");
    let top: Vec<_> = w.peak().top_peers.iter().map(|(ip, _)| ip.to_string()).collect();
    assert!(top.iter().all(|ip| ip.starts_with("203.0.113.")), "{top:?}");
    assert_eq!(w.peak().top_peers[0].1, 60, "3000 over 50 sources");
    let resolve = seen.iter().find(|e| e.1 == "resolve").expect("resolves");
    assert!((260..=275).contains(&resolve.0), "{seen:?}");
    // Nothing of the flood was learned: the threshold is still 3x the normal p99 (360).
    assert_eq!(w.thresholds().0, 1080.0);
}

#[test]
fn a_half_open_flood_opens_on_half_open_sockets() {
    let (w, seen) = run(200, |n, at| {
        let half = if (100..130).contains(&n) { 900 } else { 0 };
        census(at, 50, half, 900, TcpState::SynRecv)
    });
    let open = seen.iter().find(|e| e.1 == "open").expect("opens");
    assert!(open.0 <= 102, "{seen:?}");
    assert_eq!(open.2, Trigger::Bps, "half-open sockets");
    assert!(w.peak().half_open >= 900);
}

#[test]
fn config_keeps_the_hold_down_in_seconds() {
    let c = config(&DetectConfig::default());
    assert_eq!(c.holddown_ticks, 10, "50 samples of 200 ms = 10 censuses");
    assert_eq!((c.min_pps_threshold, c.min_bits_per_s_threshold, c.min_protocol_pps_threshold), (1000.0, 256.0, 500.0));
    assert_eq!(c.sample_interval, CENSUS_INTERVAL);
}

//! The attack-scenario library for traffic the host asked for (§5.8, §9 "traffic the host asked
//! for"): each scenario is the host's traffic as data — normal traffic, the host's own
//! connections, floods — run through the real agent (`Agent::tick_with` every 200 ms, a socket
//! census every second, `Agent::observe_connections`) at default settings on virtual time.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::agent::{Agent, CaptureStatus};
use crate::config::paths::{Env, Paths};
use crate::config::Settings;
use crate::detect::attribution::Conn;
use crate::input::counters::{ProcSource, ProtoCounters, Rates, Sampler, TcpUnsolicited};
use crate::report::Outgoing;

const TICK: Duration = Duration::from_millis(200);
/// Past the 90 s grace period, with a settled baseline.
const WARM: f64 = 120.0;
/// Payload bytes per data segment of a bulk transfer.
const MSS: f64 = 1448.0;

/// One of the host's connections receiving data: `segs` segments/s of `MSS` bytes.
#[derive(Debug, Clone, Copy)]
struct Flow {
    cookie: u64,
    remote: SocketAddr,
    local_port: u16,
    segs: f64,
}

/// What the host receives at one moment.
#[derive(Debug, Clone, Default)]
struct Host {
    /// The host's own connections carrying data to it.
    flows: Vec<Flow>,
    /// UDP flood packets/s (64 bytes).
    udp_flood: f64,
    /// Forged TCP ACKs/s (60 bytes), each answered by a reset.
    ack_flood: f64,
}

/// Normal traffic: ~2000 pps of 400 bytes (10 % UDP), with deterministic jitter.
fn normal_pps(t: f64) -> f64 {
    2000.0 * (1.0 + 0.1 * ((t * 7.3).sin() * 0.6 + (t * 1.9).cos() * 0.4))
}

fn rates(t: f64, h: &Host) -> Rates {
    let secs = TICK.as_secs_f64();
    let n = normal_pps(t);
    let flow_segs: f64 = h.flows.iter().map(|f| f.segs).sum();
    let pps = n + flow_segs + h.udp_flood + h.ack_flood;
    let bytes = n * 400.0 + flow_segs * (MSS + 52.0) + h.udp_flood * 64.0 + h.ack_flood * 60.0;
    let c = |v: f64| (v * secs).round() as u64;
    Rates {
        pps,
        bits_per_s: bytes * 8.0,
        dropped_pps: 0.0,
        tx_pps: 0.75 * n + flow_segs / 2.0 + h.ack_flood,
        tx_bits_per_s: (0.75 * n * 600.0 + flow_segs / 2.0 * 52.0 + h.ack_flood * 40.0) * 8.0,
        proto: Some(ProtoCounters {
            tcp: c(0.9 * n + flow_segs + h.ack_flood),
            udp: c(0.1 * n + h.udp_flood),
            icmp: 0,
        }),
        proto_tx: Some(ProtoCounters { tcp: c(0.75 * n + flow_segs / 2.0 + h.ack_flood), udp: 0, icmp: 0 }),
        tcp_unsolicited: Some(TcpUnsolicited { out_rsts: c(h.ack_flood), in_errs: 0 }),
        kernel: Default::default(),
        interval: TICK,
    }
}

#[derive(Debug)]
struct Seen {
    t: f64,
    event: &'static str,
    body: Value,
}

struct Outcome {
    events: Vec<Seen>,
    rx_threshold_pps: f64,
    rx_threshold_bps: f64,
}

impl Outcome {
    fn named(&self, event: &str) -> Vec<&Seen> {
        self.events.iter().filter(|e| e.event == event).collect()
    }

    fn opens(&self) -> Vec<&Seen> {
        self.named("incident_open")
    }

    /// Seconds from `at` to the first incident opened at or after it.
    fn latency(&self, at: f64) -> Option<f64> {
        self.opens().iter().map(|e| e.t - at).filter(|d| *d >= -0.001).reduce(f64::min)
    }

    fn summary(&self) -> Vec<String> {
        self.events.iter().map(|e| format!("{:.1} {} {}", e.t, e.event, e.body["attack_family"])).collect()
    }
}

fn settings() -> Settings {
    let env = Env { euid: 1000, home: Some("/nonexistent".into()), root: "/".into(), ..Env::default() };
    Settings::defaults(&Paths::resolve(&env, false))
}

/// Run `host` (a function of seconds) for `secs` seconds; the census is taken every second at
/// `.5`, so transfers that start on whole seconds start between two censuses.
fn run(secs: f64, host: impl Fn(f64) -> Host) -> Outcome {
    let (t0, wall0) = (Instant::now(), SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600));
    let sampler = Sampler::new(Box::new(ProcSource::new("/nonexistent")), "eth0");
    let cap = CaptureStatus { mode: "limited".into(), reason: None };
    let mut agent = Agent::new(settings(), sampler, None, cap, None, t0, wall0);
    // Per connection: bytes and segments received so far.
    let mut counters: std::collections::BTreeMap<u64, (Flow, f64, f64)> = Default::default();
    let mut events = Vec::new();
    let ticks = (secs / TICK.as_secs_f64()) as u32;
    for k in 1..=ticks {
        let t = (TICK * k).as_secs_f64();
        let h = host(t);
        for f in &h.flows {
            let e = counters.entry(f.cookie).or_insert((*f, 0.0, 0.0));
            e.1 += f.segs * MSS * TICK.as_secs_f64();
            e.2 += f.segs * TICK.as_secs_f64();
        }
        // Connections that carried nothing this tick have closed.
        counters.retain(|c, _| h.flows.iter().any(|f| f.cookie == *c));
        if k % 5 == 3 {
            let conns: Vec<Conn> = counters
                .values()
                .map(|(f, b, s)| Conn {
                    cookie: f.cookie,
                    local: SocketAddr::new("10.0.0.1".parse().unwrap(), f.local_port),
                    remote: f.remote,
                    bytes_received: *b as u64,
                    segs_in: *s as u32,
                })
                .collect();
            agent.observe_connections(t0 + TICK * k, false, conns);
        }
        for m in agent.tick_with(t0 + TICK * k, wall0 + TICK * k, Some(rates(t, &h))) {
            if let Outgoing::Event(e) = m {
                let body = serde_json::to_value(&e).expect("event serialises");
                let event = e.name();
                if event.starts_with("incident_") || event == "traffic_surge" {
                    events.push(Seen { t, event, body });
                }
            }
        }
    }
    let (rx, _) = agent.thresholds();
    Outcome { events, rx_threshold_pps: rx.pps, rx_threshold_bps: rx.bits_per_s }
}

fn quiet(_: f64) -> Host {
    Host::default()
}

/// A bulk download from one server at `bits` per second (data on the wire).
fn download(bits: f64) -> Flow {
    Flow { cookie: 1, remote: "192.0.2.10:873".parse().unwrap(), local_port: 40_112, segs: bits / 8.0 / (MSS + 52.0) }
}

/// The threshold after the run is within 10 % of the one learned from normal traffic alone.
fn assert_unpoisoned(out: &Outcome, secs: f64) {
    let clean = run(secs, quiet);
    assert!(clean.events.is_empty(), "{:?}", clean.summary());
    for (what, a, c) in
        [("pps", out.rx_threshold_pps, clean.rx_threshold_pps), ("bps", out.rx_threshold_bps, clean.rx_threshold_bps)]
    {
        assert!((a - c).abs() <= 0.1 * c, "{what} threshold {a:.0} vs {c:.0} from normal traffic alone");
    }
}

#[test]
fn a_nightly_backup_is_no_incident_and_no_lesson() {
    // A 1 Gbit/s backup for an hour; the next night's (compressed to 10 minutes later, and
    // shortened) is the same traffic again.
    let secs = WARM + 3600.0 + 600.0 + 900.0 + 60.0;
    let night = |t: f64| {
        let x = t - WARM;
        (0.0..3600.0).contains(&x) || (4200.0..5100.0).contains(&x)
    };
    let out =
        run(secs, move |t| if night(t) { Host { flows: vec![download(1e9)], ..Host::default() } } else { quiet(t) });
    assert!(out.opens().is_empty(), "{:?}", out.summary());
    let surges = out.named("traffic_surge");
    assert_eq!(surges.len(), 2, "one informational event a night: {:?}", out.summary());
    assert!(surges[0].body["attributed_bps"].as_f64().unwrap() > 0.5e9, "{:?}", surges[0].body);
    assert_eq!(surges[0].body["attributed_connections"][0]["ip"], "192.0.2.10");
    assert_unpoisoned(&out, secs);
}

#[test]
fn a_speedtest_burst_is_no_incident() {
    // 12 s at 900 Mbit/s over 8 parallel connections, opened together.
    let out = run(WARM + 60.0, |t| {
        if (WARM..WARM + 12.0).contains(&t) {
            let flows = (0..8u64)
                .map(|k| Flow {
                    cookie: 100 + k,
                    remote: SocketAddr::new("203.0.113.7".parse().unwrap(), 8080),
                    local_port: 50_000 + k as u16,
                    segs: 900e6 / 8.0 / 8.0 / (MSS + 52.0),
                })
                .collect();
            Host { flows, ..Host::default() }
        } else {
            quiet(t)
        }
    });
    assert!(out.opens().is_empty(), "{:?}", out.summary());
}

#[test]
fn a_large_upload_to_the_hosts_own_server_is_no_incident() {
    // A client pushes 2 Gbit/s to the host's server (port 443) for two minutes.
    let up =
        Flow { cookie: 9, remote: "198.51.100.20:51000".parse().unwrap(), local_port: 443, segs: 2e9 / 8.0 / 1500.0 };
    let out = run(WARM + 180.0, move |t| {
        if (WARM..WARM + 120.0).contains(&t) {
            Host { flows: vec![up], ..Host::default() }
        } else {
            quiet(t)
        }
    });
    assert!(out.opens().is_empty(), "{:?}", out.summary());
}

/// Seconds from a 20k pps UDP flood's onset at `WARM + 30` to its incident, with or without a
/// 1 Gbit/s download running since `WARM`.
fn udp_flood_latency(with_transfer: bool) -> (f64, Outcome) {
    let out = run(WARM + 60.0, move |t| {
        let x = t - WARM;
        Host {
            flows: if with_transfer && (0.0..50.0).contains(&x) { vec![download(1e9)] } else { vec![] },
            udp_flood: if (30.0..40.0).contains(&x) { 20_000.0 } else { 0.0 },
            ..Host::default()
        }
    });
    (out.latency(WARM + 30.0).unwrap_or(f64::INFINITY), out)
}

#[test]
fn a_udp_flood_in_the_middle_of_a_transfer_is_caught_as_fast_as_on_an_idle_host() {
    let (idle, _) = udp_flood_latency(false);
    let (busy, out) = udp_flood_latency(true);
    assert!(idle <= 1.0, "idle: {idle}");
    assert!(busy <= idle + 0.001, "during the transfer {busy} s, idle {idle} s: {:?}", out.summary());
    let opens = out.opens();
    assert_eq!(opens.len(), 1, "{:?}", out.summary());
    assert!(opens[0].body["attributed_bps"].as_f64().unwrap() > 0.9e9, "{}", opens[0].body);
    assert_eq!(opens[0].body["attack_family"], "udp_flood");
}

#[test]
fn an_ack_flood_at_the_transfers_packet_rate_is_caught() {
    let transfer = download(1e9);
    let out = run(WARM + 60.0, move |t| {
        let x = t - WARM;
        Host {
            flows: if (0.0..50.0).contains(&x) { vec![transfer] } else { vec![] },
            ack_flood: if (30.0..40.0).contains(&x) { transfer.segs } else { 0.0 },
            ..Host::default()
        }
    });
    let l = out.latency(WARM + 30.0);
    assert!(l.is_some_and(|l| l <= 1.0), "{l:?} {:?}", out.summary());
    assert_eq!(out.opens().len(), 1, "the transfer itself opens nothing: {:?}", out.summary());
}

#[test]
fn a_500_peer_real_connection_data_flood_is_caught() {
    // 500 new peers, each opening a connection and pushing 200 segments/s (100k pps in all).
    let out = run(WARM + 60.0, |t| {
        let x = t - WARM;
        if !(0.0..20.0).contains(&x) {
            return quiet(t);
        }
        let flows = (0..500u64)
            .map(|k| Flow {
                cookie: 1000 + k,
                remote: SocketAddr::new(format!("10.66.{}.{}", k / 250, k % 250 + 1).parse().unwrap(), 40_000),
                local_port: 80,
                segs: 200.0,
            })
            .collect();
        Host { flows, ..Host::default() }
    });
    let l = out.latency(WARM);
    assert!(l.is_some_and(|l| l <= 3.0), "{l:?} {:?}", out.summary());
    let open = out.opens()[0];
    assert_eq!(open.body["attack_family"], "tcp_data_flood", "{}", open.body);
    assert_eq!(open.body["new_peers"], 500);
    assert_eq!(open.body["top_src_ips"].as_array().map(|a| a.len()), Some(10));
}

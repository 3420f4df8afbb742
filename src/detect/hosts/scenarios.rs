//! The attack-scenario library (§5.4, §9) on the per-address detector, on virtual time: each
//! scenario is traffic as a function of the second, turned into flow records the way an
//! exporter with a 1 s active timeout sends them (each second's flows arrive just after the
//! second ends), at default detection settings. Each test says what must be detected, how soon
//! after the first record of the flood arrived, and that the thresholds in force at the end are
//! within 10 % of those of the same run without the attack.

use std::net::IpAddr;

use serde_json::Value;

use super::*;
use crate::config::flows::HostGroup;
use crate::event::Event;
use crate::input::flows::FlowSource;

const T0_MS: u64 = 1_767_225_600_000;
const TARGET: &str = "198.51.100.10";

/// One second of traffic towards one address.
#[derive(Debug, Clone, Copy)]
pub(super) struct Traffic {
    pub pps: f64,
    pub bytes_per_packet: f64,
    /// Share of packets that are UDP (the rest TCP ACKs).
    pub udp_share: f64,
    /// Flow records carrying it.
    pub flows: u32,
}

/// ~2000 pps with ±10 % deterministic jitter, 10 % UDP, in 20 flows.
pub(super) fn normal(t: f64) -> Traffic {
    let jitter = 1.0 + 0.1 * ((t * 7.3).sin() * 0.6 + (t * 1.9).cos() * 0.4);
    Traffic { pps: 2000.0 * jitter, bytes_per_packet: 400.0, udp_share: 0.1, flows: 20 }
}

/// Normal traffic plus a UDP flood of `pps` packets of `bytes` (in 50 more flows).
fn with_flood(t: f64, pps: f64, bytes: f64) -> Traffic {
    let n = normal(t);
    let total = n.pps + pps;
    Traffic {
        pps: total,
        bytes_per_packet: (n.pps * n.bytes_per_packet + pps * bytes) / total,
        udp_share: (n.pps * n.udp_share + pps) / total,
        flows: n.flows + 50,
    }
}

/// Normal traffic plus a TCP ACK flood of `pps` packets of `bytes`: no per-protocol rate moves.
fn with_ack_flood(t: f64, pps: f64, bytes: f64) -> Traffic {
    let n = normal(t);
    let total = n.pps + pps;
    Traffic { udp_share: n.pps * n.udp_share / total, ..with_flood(t, pps, bytes) }
}

/// The records of one second `sec` of `t` towards `dst`, arriving at `arrived_ms`.
pub(super) fn records(dst: IpAddr, t: &Traffic, sec: u64, out: &mut Vec<FlowRecord>) {
    let start_ms = T0_MS + sec * 1000;
    let per = t.pps / t.flows.max(1) as f64;
    let udp_flows = (t.udp_share * t.flows as f64).round() as u32;
    for f in 0..t.flows {
        let udp = f < udp_flows;
        let packets = per.round().max(0.0) as u64;
        out.push(FlowRecord {
            src: IpAddr::from([203, 0, 113, (f % 250) as u8 + 1]),
            dst,
            src_port: 40000 + f as u16,
            dst_port: if udp { 10_000 + f as u16 } else { 443 },
            proto: if udp { 17 } else { 6 },
            tcp_flags: if udp { 0 } else { 0x10 },
            packets,
            bytes: (packets as f64 * t.bytes_per_packet) as u64,
            start_ms,
            end_ms: start_ms + 990,
            fragment: false,
            ttl: Some(57),
            sampling_rate: 1,
            source: FlowSource::NetflowV9,
            exporter: "192.0.2.1".parse().unwrap(),
            family: None,
        });
    }
}

/// One incident event at virtual second `t` (the tick that emitted it).
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub t: f64,
    pub event: &'static str,
    pub body: Value,
}

pub(super) struct Outcome {
    pub events: Vec<Seen>,
    /// Inbound thresholds of the target address and of its /24 at the end.
    pub host: Rates,
    pub prefix: Rates,
}

impl Outcome {
    pub fn opens(&self) -> Vec<&Seen> {
        self.events.iter().filter(|e| e.event == "incident_open").collect()
    }

    /// Latency of the open following onset second `at`, from the arrival of the first record of
    /// the flood (the end of second `at`).
    fn latency(&self, at: f64) -> Option<f64> {
        self.opens().iter().map(|e| e.t - (at + 1.0)).filter(|d| *d >= -0.001).reduce(f64::min)
    }

    fn assert_caught(&self, onsets: &[f64], within: f64) {
        for &at in onsets {
            let l = self.latency(at);
            assert!(
                l.is_some_and(|l| l <= within),
                "flood at {at} s: opened after {l:?} s (bar {within} s): {:#?}",
                self.summary()
            );
        }
    }

    pub fn summary(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| {
                format!("{:.1} {} {} {} {}", e.t, e.event, e.body["scope"], e.body["direction"], e.body["target_ips"])
            })
            .collect()
    }
}

pub(super) fn flows_config(max_hosts: usize) -> FlowsConfig {
    FlowsConfig {
        networks: vec![Prefix::parse("198.51.100.0/24").unwrap(), Prefix::parse("2001:db8::/32").unwrap()],
        max_hosts,
        ..FlowsConfig::default()
    }
}

/// Run `traffic` (records of second n) for `secs` seconds; a tick closes each second.
pub(super) fn run_records(cfg: &FlowsConfig, secs: u64, traffic: impl FnMut(u64, &mut Vec<FlowRecord>)) -> Outcome {
    run_tuned(&DetectConfig::default(), cfg, secs, traffic)
}

fn run_tuned(
    detect: &DetectConfig,
    cfg: &FlowsConfig,
    secs: u64,
    mut traffic: impl FnMut(u64, &mut Vec<FlowRecord>),
) -> Outcome {
    let mut d = FlowDetector::new(detect, cfg, T0_MS);
    let mut events = Vec::new();
    let mut out: Vec<Event> = Vec::new();
    let mut recs = Vec::new();
    for n in 0..secs {
        recs.clear();
        traffic(n, &mut recs);
        // Second n's flows arrive 10 ms after it ends, in window n + 1.
        let arrived = T0_MS + (n + 1) * 1000 + 10;
        d.tick(arrived, &mut out);
        for r in &recs {
            d.record(r, arrived);
        }
        d.tick(T0_MS + (n + 2) * 1000, &mut out);
        for e in out.drain(..) {
            let body = serde_json::to_value(&e).expect("event serialises");
            events.push(Seen { t: (n + 2) as f64, event: e.name(), body });
        }
    }
    let ip: IpAddr = TARGET.parse().unwrap();
    Outcome {
        events,
        host: d.host_thresholds(ip, Direction::Inbound).unwrap_or_default(),
        prefix: d.prefix_thresholds(ip, Direction::Inbound).unwrap_or_default(),
    }
}

fn run(secs: u64, traffic: impl Fn(f64) -> Traffic) -> Outcome {
    let ip: IpAddr = TARGET.parse().unwrap();
    run_records(&flows_config(1000), secs, |n, out| records(ip, &traffic(n as f64), n, out))
}

fn assert_close(what: &str, a: f32, c: f32) {
    assert!((a - c).abs() <= 0.1 * c, "{what} threshold {a:.0} after the attack vs {c:.0} from normal traffic alone");
}

/// The same run without the attack ends within 10 % of the attacked run (pps, bps, UDP/s).
fn assert_unpoisoned(attacked: &Outcome, secs: u64) {
    let clean = run(secs, normal);
    assert!(clean.events.is_empty(), "normal traffic alone opens nothing: {:?}", clean.summary());
    for (i, name) in [(0, "pps"), (1, "bps"), (4, "UDP/s")] {
        assert_close(name, attacked.host[i], clean.host[i]);
    }
}

/// Past the 90 s grace period and a little more.
const WARM: f64 = 120.0;

#[test]
fn normal_traffic_learns_a_threshold_over_the_floor() {
    let out = run(400, normal);
    assert!(out.events.is_empty(), "{:?}", out.summary());
    // p99 ≈ 2200 pps → 3× ≈ 6600 pps, over the 5000 floor.
    assert!((6000.0..8000.0).contains(&out.host[0]), "{:?}", out.host);
}

#[test]
fn heavy_then_moderate_right_after_the_resolve() {
    let secs = (WARM + 400.0) as u64;
    let f = |t: f64| match t - WARM {
        x if (0.0..30.0).contains(&x) => with_flood(t, 100_000.0, 60.0),
        x if (42.0..72.0).contains(&x) => with_flood(t, 20_000.0, 60.0),
        _ => normal(t),
    };
    let out = run(secs, f);
    out.assert_caught(&[WARM, WARM + 42.0], 1.0);
    let opens = out.opens();
    assert_eq!(opens.len(), 2, "{:?}", out.summary());
    assert_eq!(opens[1].body["previous_incident_id"], opens[0].body["incident_id"], "linked within the cooldown");
    assert_eq!(opens[0].body["scope"], "host");
    assert_eq!(opens[0].body["target_ips"][0], TARGET);
    assert_eq!(opens[0].body["source"], "netflow_v9");
    assert_eq!(opens[0].body["exporter"], "192.0.2.1");
    assert_eq!(opens[0].body["attack_family"], "udp_flood");
    assert!(opens[0].body["top_src_ips"].as_array().is_some_and(|a| !a.is_empty()), "{}", opens[0].body);
    assert_unpoisoned(&out, secs);
}

#[test]
fn ramp_samples_before_a_flood_are_not_learned_even_with_a_short_window() {
    // A 12 s window, where one learned ramp second would be the p99. Each flood starts with a
    // second at ~0.95x the threshold, then the flood; the second starts right after the first
    // resolves.
    let detect = DetectConfig { baseline_window: std::time::Duration::from_secs(12), ..DetectConfig::default() };
    let ip: IpAddr = TARGET.parse().unwrap();
    let cfg = flows_config(1000);
    let go = |secs: u64, f: &dyn Fn(f64) -> Traffic| {
        run_tuned(&detect, &cfg, secs, |n, out| records(ip, &f(n as f64), n, out))
    };
    // Over the floor: 4000 pps normal, so the threshold (~3x p99) is the learned one.
    let base = |t: f64| Traffic { pps: 2.0 * normal(t).pps, ..normal(t) };
    let thr = go(WARM as u64, &base).host[0] as f64;
    let ramped = move |t: f64, x: f64, pps: f64| {
        if x < 1.0 {
            Traffic { pps: 0.95 * thr, ..base(t) }
        } else {
            with_flood(t, pps, 60.0)
        }
    };
    let secs = WARM as u64 + 200;
    let f = move |t: f64| match t - WARM {
        x if (0.0..20.0).contains(&x) => ramped(t, x, 100_000.0),
        x if (32.0..50.0).contains(&x) => ramped(t, x - 32.0, 30_000.0),
        _ => base(t),
    };
    let out = go(secs, &f);
    out.assert_caught(&[WARM + 1.0, WARM + 33.0], 1.0);
    for open in out.opens() {
        let at_open = open.body["threshold_pps"].as_f64().unwrap_or(f64::NAN);
        assert!((at_open - thr).abs() <= 0.1 * thr, "threshold {at_open:.0} at {:.1} s, normal {thr:.0}", open.t);
    }
    let clean = go(secs, &base);
    assert_close("pps", out.host[0], clean.host[0]);
}

#[test]
fn flood_under_twice_in_the_cooldown_is_caught_and_not_learned() {
    let secs = (WARM + 500.0) as u64;
    let f = |t: f64| match t - WARM {
        x if (0.0..30.0).contains(&x) => with_flood(t, 100_000.0, 60.0),
        // ~1.5x the pps threshold, TCP: only the cooldown's wave rule opens it.
        x if (45.0..65.0).contains(&x) => with_ack_flood(t, 8_000.0, 60.0),
        x if (150.0..170.0).contains(&x) => with_flood(t, 10_000.0, 60.0),
        _ => normal(t),
    };
    let out = run(secs, f);
    out.assert_caught(&[WARM], 1.0);
    out.assert_caught(&[WARM + 45.0], 3.0);
    out.assert_caught(&[WARM + 150.0], 1.0);
    assert_unpoisoned(&out, secs);
}

#[test]
fn pulse_waves_are_each_caught() {
    for (on, off) in [(4.0, 11.0), (2.0, 30.0)] {
        let period = on + off;
        let secs = (WARM + 6.0 * period + 60.0) as u64;
        let f = move |t: f64| {
            let x = t - WARM;
            if x >= 0.0 && x < 5.0 * period && x % period < on {
                with_flood(t, 20_000.0, 60.0)
            } else {
                normal(t)
            }
        };
        let out = run(secs, f);
        let onsets: Vec<f64> = (0..5).map(|k| WARM + k as f64 * period).collect();
        out.assert_caught(&onsets, 1.0);
        let opens = out.opens();
        assert_eq!(opens.len(), 5, "{on}/{off}: {:?}", out.summary());
        for w in opens.windows(2) {
            assert_eq!(w[1].body["previous_incident_id"], w[0].body["incident_id"], "{on}/{off}: linked");
        }
        assert_unpoisoned(&out, secs);
    }
}

#[test]
fn slow_ramp_opens_before_twice_the_threshold_it_started_under() {
    let ramp = 600.0;
    let secs = (WARM + ramp + 700.0) as u64;
    let f = move |t: f64| {
        let x = t - WARM;
        if (0.0..ramp).contains(&x) {
            with_flood(t, 38_000.0 * x / ramp, 400.0)
        } else {
            normal(t)
        }
    };
    let before = run(WARM as u64, normal).host[0] as f64;
    let out = run(secs, f);
    let open = out.opens().first().map(|e| e.body["pps"].as_f64().unwrap_or(f64::NAN));
    let pps = open.unwrap_or_else(|| panic!("the ramp opened nothing: {:?}", out.summary()));
    assert!(pps < 2.0 * before, "opened at {pps:.0} pps, threshold at the start {before:.0}");
    assert_unpoisoned(&out, secs);
}

#[test]
fn start_under_attack_opens_when_grace_ends_and_learns_nothing_of_it() {
    let secs = 150 + 400;
    // 15k pps of UDP: 3.4x the pps floor, under 10x the UDP/s floor.
    let f = |t: f64| if t < 150.0 { with_flood(t, 15_000.0, 60.0) } else { normal(t) };
    let out = run(secs, f);
    let first = out.opens().first().map(|e| e.t).unwrap_or_else(|| panic!("nothing opened: {:?}", out.summary()));
    assert!((90.0..=91.0).contains(&first), "the flood opens when the 90 s grace ends: {first}");
    assert_unpoisoned(&out, secs);
}

#[test]
fn grace_learns_nothing_over_the_floors() {
    // From 20 s to 85 s, 4000 more pps of TCP: ~6000 pps, over the 5000 floor but under the
    // ~6600 threshold the first samples taught. The grace period must not learn it.
    let f = |t: f64| {
        let n = normal(t);
        if (20.0..85.0).contains(&t) {
            Traffic { pps: n.pps + 4000.0, udp_share: n.udp_share * n.pps / (n.pps + 4000.0), ..n }
        } else {
            n
        }
    };
    let out = run(100, f);
    assert!(out.events.is_empty(), "{:?}", out.summary());
    let clean = run(100, normal);
    assert_close("pps", out.host[0], clean.host[0]);
}

#[test]
fn start_under_a_flood_over_ten_times_the_floor_opens_at_once() {
    let secs = 60 + 400;
    let f = |t: f64| if t < 60.0 { with_flood(t, 60_000.0, 60.0) } else { normal(t) };
    let out = run(secs, f);
    out.assert_caught(&[0.0], 1.0);
    assert_unpoisoned(&out, secs);
}

/// Every address of 198.51.100.0/24 gets ~100 pps; during the attack each also gets
/// `extra` pps of UDP, under its own floors.
fn carpet(extra: f64, from: u64, to: u64) -> impl FnMut(u64, &mut Vec<FlowRecord>) {
    move |n, out| {
        for h in 0..=255u8 {
            let dst = IpAddr::from([198, 51, 100, h]);
            let j = 1.0 + 0.1 * ((n as f64 * 7.3 + h as f64).sin());
            let mut t = Traffic { pps: 100.0 * j, bytes_per_packet: 400.0, udp_share: 0.1, flows: 2 };
            if (from..to).contains(&n) {
                t = Traffic {
                    pps: t.pps + extra,
                    bytes_per_packet: 100.0,
                    udp_share: (10.0 + extra) / (100.0 + extra),
                    flows: 4,
                };
            }
            records(dst, &t, n, out);
        }
    }
}

#[test]
fn carpet_bombing_a_24_opens_one_prefix_incident() {
    let cfg = flows_config(1000);
    let (from, to, secs) = (WARM as u64, WARM as u64 + 30, WARM as u64 + 400);
    let out = run_records(&cfg, secs, carpet(1500.0, from, to));
    let opens = out.opens();
    assert_eq!(opens.len(), 1, "one incident for the whole /24: {:?}", out.summary());
    let o = &opens[0].body;
    assert_eq!(o["scope"], "prefix", "{o}");
    assert_eq!(o["prefix"], "198.51.100.0/24", "{o}");
    assert!(opens[0].t - (from as f64 + 1.0) <= 1.0, "opened at {}", opens[0].t);
    assert!(o["target_ips"].as_array().is_some_and(|a| a.len() >= 10), "{o}");
    assert_eq!(o["attack_family"], "udp_flood", "{o}");
    let clean = run_records(&cfg, secs, carpet(0.0, 0, 0));
    assert!(clean.events.is_empty(), "{:?}", clean.summary());
    assert_close("prefix pps", out.prefix[0], clean.prefix[0]);
    assert_close("host pps", out.host[0], clean.host[0]);
}

#[test]
fn a_flood_on_one_address_is_one_host_incident_not_a_prefix_one_too() {
    let cfg = flows_config(1000);
    let target: IpAddr = TARGET.parse().unwrap();
    let out = run_records(&cfg, WARM as u64 + 60, |n, out| {
        carpet(0.0, 0, 0)(n, out);
        if (WARM as u64..WARM as u64 + 20).contains(&n) {
            records(target, &with_flood(n as f64, 200_000.0, 60.0), n, out);
        }
    });
    let opens = out.opens();
    assert_eq!(opens.len(), 1, "{:?}", out.summary());
    assert_eq!(opens[0].body["scope"], "host");
}

#[test]
fn hostgroups_give_prefixes_their_own_floors() {
    // The same carpet under a group whose floor is far above it opens nothing.
    let mut cfg = flows_config(1000);
    cfg.hostgroups.push(HostGroup {
        name: "cdn".into(),
        networks: vec![Prefix::parse("198.51.100.0/24").unwrap()],
        min_pps_threshold: Some(5e6),
        min_bps_threshold: Some(1e12),
        threshold_multiplier: Some(20.0),
        mitigation: None,
    });
    let out = run_records(&cfg, WARM as u64 + 60, carpet(1500.0, WARM as u64, WARM as u64 + 30));
    let prefix_pps = out.opens().iter().filter(|e| e.body["trigger"] == "pps").count();
    assert_eq!(prefix_pps, 0, "{:?}", out.summary());
    assert!(out.prefix[0] >= 5e6, "{:?}", out.prefix);
}

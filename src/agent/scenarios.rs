//! The attack-scenario library (§5.4, §5.5, §9): each scenario is traffic as a function of
//! virtual time, run through the real agent pipeline (`Agent::tick_with`) at default detection
//! settings. Each test says what must be detected, when, and that the threshold in force at the
//! end is within 10 % of the one learned from the scenario's normal traffic alone.

use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::agent::{Agent, CaptureStatus};
use crate::config::paths::{Env, Paths};
use crate::config::Settings;
use crate::input::counters::kernel::KernelRates;
use crate::input::counters::{ProcSource, ProtoCounters, Rates, Sampler};
use crate::report::Outgoing;

const TICK: Duration = Duration::from_millis(200);

/// What the host sees in one second, per direction. `rx_pps` is what the NIC delivered,
/// `dropped_pps` what it dropped; bytes per packet set the bit rate.
#[derive(Debug, Clone, Copy)]
struct Traffic {
    rx_pps: f64,
    rx_bytes_per_packet: f64,
    dropped_pps: f64,
    tx_pps: f64,
    tx_bytes_per_packet: f64,
    /// Share of received packets that are UDP (the rest TCP).
    udp_share: f64,
    /// What packet capture counts per class (SYN/s, UDP/s, ICMP/s, fragments/s), in scenarios
    /// of capture builds; None = a build without capture.
    classes: Option<[f64; 4]>,
    /// The kernel's SYN-cookie, listen-drop, softnet and UDP-error rates (§5.7).
    kernel: KernelRates,
}

/// Normal traffic: ~2000 pps in, ~1500 out, with deterministic jitter of ±10 %.
fn normal(t: f64) -> Traffic {
    let jitter = 1.0 + 0.1 * ((t * 7.3).sin() * 0.6 + (t * 1.9).cos() * 0.4);
    Traffic {
        rx_pps: 2000.0 * jitter,
        rx_bytes_per_packet: 400.0,
        dropped_pps: 0.0,
        tx_pps: 1500.0 * jitter,
        tx_bytes_per_packet: 600.0,
        udp_share: 0.1,
        classes: None,
        kernel: quiet_kernel(),
    }
}

/// An idle host's kernel counters: nothing dropped, no cookies, no UDP errors.
fn quiet_kernel() -> KernelRates {
    KernelRates {
        syncookies_sent_pps: Some(0.0),
        listen_overflows_pps: Some(0.0),
        listen_drops_pps: Some(0.0),
        req_q_full_drops_pps: Some(0.0),
        softnet_dropped_pps: Some(0.0),
        time_squeeze_per_s: Some(0.0),
        udp_rcvbuf_errors_pps: Some(0.0),
        udp_in_errors_pps: Some(0.0),
    }
}

/// Normal traffic as a capture build sees it: a few SYN/s, the UDP share, a little ICMP.
fn captured(t: f64) -> Traffic {
    let n = normal(t);
    Traffic { classes: Some([0.02 * n.rx_pps, n.udp_share * n.rx_pps, 5.0, 0.0]), ..n }
}

/// Normal traffic plus a UDP flood of `pps` received packets of `bytes`.
fn with_flood(t: f64, pps: f64, bytes: f64) -> Traffic {
    let n = normal(t);
    let total = n.rx_pps + pps;
    Traffic {
        rx_pps: total,
        rx_bytes_per_packet: (n.rx_pps * n.rx_bytes_per_packet + pps * bytes) / total,
        udp_share: (n.rx_pps * n.udp_share + pps) / total,
        ..n
    }
}

fn rates(t: &Traffic) -> Rates {
    let secs = TICK.as_secs_f64();
    let rx = (t.rx_pps * secs).round() as u64;
    let udp = (t.rx_pps * t.udp_share * secs).round() as u64;
    Rates {
        pps: t.rx_pps,
        bits_per_s: t.rx_pps * t.rx_bytes_per_packet * 8.0,
        dropped_pps: t.dropped_pps,
        tx_pps: t.tx_pps,
        tx_bits_per_s: t.tx_pps * t.tx_bytes_per_packet * 8.0,
        proto: Some(ProtoCounters { tcp: rx - udp, udp, icmp: 0 }),
        proto_tx: Some(ProtoCounters { tcp: (t.tx_pps * secs).round() as u64, udp: 0, icmp: 0 }),
        tcp_unsolicited: None,
        kernel: t.kernel,
        interval: TICK,
    }
}

/// One incident event seen during a run, at virtual second `t`.
#[derive(Debug, Clone)]
struct Seen {
    t: f64,
    event: &'static str,
    body: Value,
}

/// What a run produced: incident events and the thresholds in force at the end.
struct Outcome {
    events: Vec<Seen>,
    rx_threshold_pps: f64,
    tx_threshold_pps: f64,
    rx_threshold_bps: f64,
    rx_threshold_classes: [f64; 4],
}

impl Outcome {
    fn opens(&self, direction: &str) -> Vec<&Seen> {
        self.events.iter().filter(|e| e.event == "incident_open" && e.body["direction"] == direction).collect()
    }

    /// The open that follows onset `at` (seconds), and how long after the onset it came.
    fn latency(&self, direction: &str, at: f64) -> Option<f64> {
        self.opens(direction).iter().map(|e| e.t - at).filter(|d| *d >= -0.001).reduce(f64::min)
    }

    fn assert_caught(&self, direction: &str, onsets: &[f64], within: f64) {
        for &at in onsets {
            let l = self.latency(direction, at);
            assert!(
                l.is_some_and(|l| l <= within),
                "{direction} flood at {at} s: opened after {l:?} s (bar {within} s); events: {:#?}",
                self.summary()
            );
        }
    }

    fn summary(&self) -> Vec<String> {
        self.events.iter().map(|e| format!("{:.1} {} {}", e.t, e.event, e.body["direction"])).collect()
    }
}

fn settings() -> Settings {
    let env = Env { euid: 1000, home: Some("/nonexistent".into()), root: "/".into(), ..Env::default() };
    Settings::defaults(&Paths::resolve(&env, false))
}

/// Run `traffic` (a function of seconds) for `secs` seconds at default settings.
fn run(secs: f64, traffic: impl Fn(f64) -> Traffic) -> Outcome {
    run_with(settings(), secs, traffic)
}

/// Packet capture as the agent sees it through its seam: running per-class totals.
struct CountingCapture(std::sync::Arc<std::sync::Mutex<[u64; 4]>>);

impl crate::input::capture::handle::PacketInsight for CountingCapture {
    fn mode(&self) -> &'static str {
        "capture-scapy"
    }
    fn incident_opened(&mut self, _: &str, _: SystemTime) {}
    fn classify(&mut self) -> Option<crate::event::Classification> {
        None
    }
    fn incident_resolved(&mut self, _: &str, _: SystemTime) -> Option<String> {
        None
    }
    fn dropped_packets(&self) -> u64 {
        0
    }
    fn active(&self) -> bool {
        true
    }
    fn class_totals(&self) -> Option<[u64; 4]> {
        Some(*self.0.lock().unwrap())
    }
    fn set_options(&mut self, _: bool, _: &[crate::config::IocPattern]) {}
}

fn run_with(s: Settings, secs: f64, traffic: impl Fn(f64) -> Traffic) -> Outcome {
    let (t0, wall0) = (Instant::now(), SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600));
    let sampler = Sampler::new(Box::new(ProcSource::new("/nonexistent")), "eth0");
    let cap = CaptureStatus { mode: "limited".into(), reason: None };
    let totals = std::sync::Arc::new(std::sync::Mutex::new([0u64; 4]));
    let insight = traffic(0.0)
        .classes
        .map(|_| Box::new(CountingCapture(totals.clone())) as Box<dyn crate::input::capture::handle::PacketInsight>);
    let mut agent = Agent::new(s, sampler, insight, cap, None, t0, wall0);
    let mut events = Vec::new();
    let ticks = (secs / TICK.as_secs_f64()) as u32;
    for n in 1..=ticks {
        let t = (TICK * n).as_secs_f64();
        let now = traffic(t);
        if let Some(c) = now.classes {
            let mut tot = totals.lock().unwrap();
            for i in 0..4 {
                tot[i] += (c[i] * TICK.as_secs_f64()).round() as u64;
            }
        }
        for m in agent.tick_with(t0 + TICK * n, wall0 + TICK * n, Some(rates(&now))) {
            if let Outgoing::Event(e) = m {
                let body = serde_json::to_value(&e).expect("event serialises");
                let event = e.name();
                if event.starts_with("incident_") {
                    events.push(Seen { t, event, body });
                }
            }
        }
    }
    let (rx, tx) = agent.thresholds();
    Outcome {
        events,
        rx_threshold_pps: rx.pps,
        tx_threshold_pps: tx.pps,
        rx_threshold_bps: rx.bits_per_s,
        rx_threshold_classes: rx.classes,
    }
}

/// The same run with the attack taken out must end within 10 % of the attacked run.
fn assert_threshold_unpoisoned(attacked: &Outcome, secs: f64) {
    assert_threshold_unpoisoned_with(settings(), attacked, secs)
}

fn assert_threshold_unpoisoned_with(s: Settings, attacked: &Outcome, secs: f64) {
    assert_unpoisoned_against(s, attacked, secs, normal)
}

fn assert_unpoisoned_against(s: Settings, attacked: &Outcome, secs: f64, normal: impl Fn(f64) -> Traffic) {
    let clean = run_with(s, secs, normal);
    assert!(clean.events.is_empty(), "normal traffic alone opens nothing: {:?}", clean.summary());
    for (what, a, c) in [
        ("inbound pps", attacked.rx_threshold_pps, clean.rx_threshold_pps),
        ("outbound pps", attacked.tx_threshold_pps, clean.tx_threshold_pps),
        ("inbound bps", attacked.rx_threshold_bps, clean.rx_threshold_bps),
        ("SYN/s", attacked.rx_threshold_classes[0], clean.rx_threshold_classes[0]),
        ("UDP/s", attacked.rx_threshold_classes[1], clean.rx_threshold_classes[1]),
    ] {
        assert!(
            (a - c).abs() <= 0.1 * c,
            "{what} threshold {a:.0} after the attack vs {c:.0} from normal traffic alone"
        );
    }
}

/// Past the 90 s grace period and a little more, so the baseline has settled.
const WARM: f64 = 120.0;

#[test]
fn heavy_then_moderate_right_after_the_resolve() {
    // 100k pps for 30 s, resolved ~10 s after it ends; 20k pps (~3x) starts 2 s after that.
    let secs = WARM + 400.0;
    let f = |t: f64| match t - WARM {
        x if (0.0..30.0).contains(&x) => with_flood(t, 100_000.0, 60.0),
        x if (42.0..72.0).contains(&x) => with_flood(t, 20_000.0, 60.0),
        _ => normal(t),
    };
    let out = run(secs, f);
    out.assert_caught("inbound", &[WARM, WARM + 42.0], 1.0);
    let opens = out.opens("inbound");
    assert_eq!(opens.len(), 2, "{:?}", out.summary());
    assert_eq!(opens[1].body["previous_incident_id"], opens[0].body["incident_id"], "linked within the cooldown");
    assert!(opens[0].body.get("previous_incident_id").is_none());
    assert_threshold_unpoisoned(&out, secs);
}

#[test]
fn ramp_samples_before_a_flood_are_not_learned_even_with_a_short_window() {
    // A 10 s window (50 samples), where one learned ramp sample is the p99. Each flood starts
    // with one sample that caught only its first moment (~0.95x the threshold), then the flood;
    // the second starts right after the first resolves.
    let mut s = settings();
    s.detect.baseline_window = Duration::from_secs(10);
    let thr = run_with(s.clone(), WARM, normal).rx_threshold_pps;
    let ramped = move |t: f64, x: f64, pps: f64| {
        if x < 0.2 {
            Traffic { rx_pps: 0.95 * thr, ..normal(t) }
        } else {
            with_flood(t, pps, 60.0)
        }
    };
    let secs = WARM + 200.0;
    let f = move |t: f64| match t - WARM {
        x if (0.0..20.0).contains(&x) => ramped(t, x, 100_000.0),
        x if (32.0..50.0).contains(&x) => ramped(t, x - 32.0, 20_000.0),
        _ => normal(t),
    };
    let out = run_with(s.clone(), secs, f);
    out.assert_caught("inbound", &[WARM, WARM + 32.0], 1.0);
    for open in out.opens("inbound") {
        let at_open = open.body["threshold_pps"].as_f64().unwrap_or(f64::NAN);
        assert!((at_open - thr).abs() <= 0.1 * thr, "threshold {at_open:.0} at {:.1} s, normal {thr:.0}", open.t);
    }
    assert_threshold_unpoisoned_with(s, &out, secs);
}

#[test]
fn flood_under_twice_in_the_cooldown_is_caught_and_not_learned() {
    // After a heavy flood: 1.6x the threshold for 20 s inside the cooldown, then after the
    // cooldown 2.4x the floor. Both are caught; neither teaches the baseline.
    let secs = WARM + 500.0;
    let f = |t: f64| match t - WARM {
        x if (0.0..30.0).contains(&x) => with_flood(t, 100_000.0, 60.0),
        x if (45.0..65.0).contains(&x) => with_flood(t, 8_000.0, 60.0),
        x if (150.0..170.0).contains(&x) => with_flood(t, 10_000.0, 60.0),
        _ => normal(t),
    };
    let out = run(secs, f);
    out.assert_caught("inbound", &[WARM], 1.0);
    out.assert_caught("inbound", &[WARM + 45.0], 2.5);
    out.assert_caught("inbound", &[WARM + 150.0], 1.0);
    assert_threshold_unpoisoned(&out, secs);
}

#[test]
fn pulse_waves_are_each_caught() {
    // 4 s on / 11 s off (longer than the 10 s hold-down) and 2 s on / 30 s off.
    for (on, off) in [(4.0, 11.0), (2.0, 30.0)] {
        let period = on + off;
        let secs = WARM + 6.0 * period + 60.0;
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
        out.assert_caught("inbound", &onsets, 1.0);
        let opens = out.opens("inbound");
        assert_eq!(opens.len(), 5, "{on}/{off}: {:?}", out.summary());
        for w in opens.windows(2) {
            let linked = w[1].body["previous_incident_id"] == w[0].body["incident_id"];
            assert_eq!(linked, off < 60.0, "{on}/{off}: pulses within the cooldown are linked");
        }
        assert_threshold_unpoisoned(&out, secs);
    }
}

#[test]
fn slow_ramp_opens_before_twice_the_threshold_it_started_under() {
    // From normal to 20x normal over 10 minutes, then back to normal for two windows.
    let ramp = 600.0;
    let secs = WARM + ramp + 700.0;
    let f = move |t: f64| {
        let x = t - WARM;
        if (0.0..ramp).contains(&x) {
            with_flood(t, 38_000.0 * x / ramp, 400.0)
        } else {
            normal(t)
        }
    };
    let before = run(WARM, normal).rx_threshold_pps;
    let out = run(secs, f);
    let open = out.opens("inbound").first().map(|e| (e.t, e.body["pps"].as_f64().unwrap_or(f64::NAN)));
    let (_, pps) = open.unwrap_or_else(|| panic!("the ramp opened nothing: {:?}", out.summary()));
    assert!(pps < 2.0 * before, "opened at {pps:.0} pps, threshold at the start {before:.0}");
    assert_threshold_unpoisoned(&out, secs);
}

#[test]
fn start_under_attack_opens_when_grace_ends_and_learns_nothing_of_it() {
    // No saved baseline; a 30k pps flood runs from the first second for 150 s.
    let secs = 150.0 + 400.0;
    let f = |t: f64| if t < 150.0 { with_flood(t, 30_000.0, 60.0) } else { normal(t) };
    let out = run(secs, f);
    out.assert_caught("inbound", &[90.0], 1.0);
    assert!(out.opens("inbound")[0].t >= 90.0, "30k pps (6x the floor) waits for the grace period");
    assert_threshold_unpoisoned(&out, secs);
}

#[test]
fn start_under_a_flood_over_ten_times_the_floor_opens_at_once() {
    let secs = 60.0 + 400.0;
    let f = |t: f64| if t < 60.0 { with_flood(t, 60_000.0, 60.0) } else { normal(t) };
    let out = run(secs, f);
    out.assert_caught("inbound", &[0.0], 1.0);
    assert_threshold_unpoisoned(&out, secs);
}

#[test]
fn traffic_flapping_around_the_threshold_is_one_incident_and_not_learned() {
    // 2 s at ~1.3x, 2 s at ~0.8x the threshold, for a minute; then per-sample flapping.
    let thr = run(WARM, normal).rx_threshold_pps;
    let secs = WARM + 60.0 + 60.0 + 400.0;
    let f = move |t: f64| {
        let x = t - WARM;
        let n = normal(t);
        let level = if (0.0..60.0).contains(&x) {
            if x % 4.0 < 2.0 {
                1.3
            } else {
                0.8
            }
        } else if (70.0..130.0).contains(&x) {
            if ((x / 0.2).round() as i64) % 2 == 0 {
                1.2
            } else {
                0.9
            }
        } else {
            return n;
        };
        Traffic { rx_pps: level * thr, ..n }
    };
    let out = run(secs, f);
    let opens = out.opens("inbound");
    assert!(!opens.is_empty() && opens[0].t - WARM <= 1.0, "{:?}", out.summary());
    let resolves_while_flapping =
        out.events.iter().filter(|e| e.event == "incident_resolve" && e.t < WARM + 60.0).count();
    assert_eq!(resolves_while_flapping, 0, "no flapping: {:?}", out.summary());
    assert_threshold_unpoisoned(&out, secs);
}

#[test]
fn bps_only_flood_of_large_packets_opens_on_bps_and_stays_open() {
    // 6000 pps of 1500-byte packets: under the PPS threshold, 72 Mbit/s over the 50 Mbit/s floor.
    let secs = WARM + 60.0 + 400.0;
    let f = |t: f64| {
        let x = t - WARM;
        if (0.0..60.0).contains(&x) {
            Traffic { rx_pps: 6000.0, rx_bytes_per_packet: 1500.0, ..normal(t) }
        } else {
            normal(t)
        }
    };
    let out = run(secs, f);
    out.assert_caught("inbound", &[WARM], 1.0);
    let opens = out.opens("inbound");
    assert_eq!(opens.len(), 1, "one incident for the whole flood: {:?}", out.summary());
    assert_eq!(opens[0].body["trigger"], "bps");
    assert_threshold_unpoisoned(&out, secs);
}

#[test]
fn outbound_flood_opens_an_outbound_incident() {
    // The host itself sends 50k pps of small UDP packets for 30 s.
    let secs = WARM + 30.0 + 400.0;
    let f = |t: f64| {
        let x = t - WARM;
        if (0.0..30.0).contains(&x) {
            Traffic { tx_pps: 50_000.0, tx_bytes_per_packet: 60.0, ..normal(t) }
        } else {
            normal(t)
        }
    };
    let out = run(secs, f);
    out.assert_caught("outbound", &[WARM], 1.0);
    assert!(out.opens("inbound").is_empty(), "received traffic was normal: {:?}", out.summary());
    assert_eq!(out.opens("outbound").len(), 1);
    let resolve = out.events.iter().find(|e| e.event == "incident_resolve").expect("resolved");
    assert_eq!(resolve.body["direction"], "outbound");
    assert_threshold_unpoisoned(&out, secs);
}

#[test]
fn saturated_nic_drops_count_as_offered_load() {
    // The NIC delivers no more than it did (RX packets flat) while drops rise to 40k/s.
    let secs = WARM + 30.0 + 400.0;
    let f = |t: f64| {
        let x = t - WARM;
        if (0.0..30.0).contains(&x) {
            Traffic { dropped_pps: 40_000.0, ..normal(t) }
        } else {
            normal(t)
        }
    };
    let out = run(secs, f);
    out.assert_caught("inbound", &[WARM], 1.0);
    let open = &out.opens("inbound")[0].body;
    assert!(open["dropped_pps"].as_f64().unwrap_or(0.0) >= 39_000.0, "{open}");
    assert!(open["pps"].as_f64().unwrap_or(0.0) >= 41_000.0, "pps is the offered load: {open}");
    assert_threshold_unpoisoned(&out, secs);
}

#[test]
fn syn_flood_under_the_total_floor_opens_on_the_syn_threshold() {
    // Capture build: 2500 SYN/s on top of ~2000 pps of normal traffic. Total PPS (~4500) stays
    // under its 5000 floor; SYN/s is over its 2000 floor. A second flood during the cooldown.
    let secs = WARM + 400.0;
    let syn = |t: f64, extra: f64| {
        let n = captured(t);
        let c = n.classes.unwrap_or_default();
        Traffic { rx_pps: n.rx_pps + extra, classes: Some([c[0] + extra, c[1], c[2], c[3]]), ..n }
    };
    let f = move |t: f64| match t - WARM {
        x if (0.0..20.0).contains(&x) => syn(t, 2500.0),
        x if (35.0..50.0).contains(&x) => syn(t, 5000.0),
        _ => captured(t),
    };
    let out = run(secs, f);
    out.assert_caught("inbound", &[WARM, WARM + 35.0], 1.0);
    let open = &out.opens("inbound")[0].body;
    assert_eq!(open["trigger"], "syn", "{open}");
    assert!(open["pps"].as_f64().unwrap_or(0.0) < 5000.0, "total under its floor: {open}");
    assert_eq!(open["protocol_threshold_pps"]["syn"], 2000.0, "{open}");
    assert_unpoisoned_against(settings(), &out, secs, captured);
}

#[test]
fn sub_second_bursts_are_caught_by_their_excess() {
    // 8000 pps on average, sent as one 200 ms burst at 40k pps every second (8x the threshold,
    // never two samples over in a row), for 30 s.
    let secs = WARM + 30.0 + 400.0;
    let f = |t: f64| {
        let x = t - WARM;
        if (0.0..30.0).contains(&x) && x % 1.0 < 0.19 {
            with_flood(t, 40_000.0, 60.0)
        } else {
            normal(t)
        }
    };
    let out = run(secs, f);
    out.assert_caught("inbound", &[WARM], 5.0);
    assert_eq!(out.opens("inbound").len(), 1, "one incident for the whole burst train: {:?}", out.summary());
    assert_threshold_unpoisoned(&out, secs);
}

#[test]
fn replies_to_an_inbound_flood_are_no_outbound_incident() {
    // A SYN flood answered packet for packet (RST or SYN-ACK): the host sends as much as it gets.
    let secs = WARM + 30.0 + 400.0;
    let f = |t: f64| {
        let x = t - WARM;
        if (0.0..30.0).contains(&x) {
            let n = with_flood(t, 50_000.0, 60.0);
            Traffic { tx_pps: n.tx_pps + 50_000.0, tx_bytes_per_packet: 60.0, ..n }
        } else {
            normal(t)
        }
    };
    let out = run(secs, f);
    out.assert_caught("inbound", &[WARM], 1.0);
    assert!(out.opens("outbound").is_empty(), "{:?}", out.summary());
    assert_threshold_unpoisoned(&out, secs);
}

/// Limited mode (§5.7): a 3,000 SYN/s flood with SYN cookies firing, total PPS under its floor.
/// The SYN class comes from the kernel's cookies and listen drops: `syn_flood`, classified by
/// the counters, within a second; learned nothing; a second wave in the cooldown caught too.
#[test]
fn limited_syn_flood_opens_on_syn_cookies_under_the_total_floor() {
    let secs = WARM + 400.0;
    let syn = |t: f64, extra: f64| {
        let n = normal(t);
        Traffic {
            rx_pps: n.rx_pps + extra,
            kernel: KernelRates { syncookies_sent_pps: Some(extra), ..quiet_kernel() },
            ..n
        }
    };
    let f = move |t: f64| match t - WARM {
        x if (0.0..20.0).contains(&x) => syn(t, 3000.0),
        x if (35.0..50.0).contains(&x) => syn(t, 5000.0),
        _ => normal(t),
    };
    let out = run(secs, f);
    out.assert_caught("inbound", &[WARM, WARM + 35.0], 1.0);
    let open = &out.opens("inbound")[0].body;
    assert_eq!((&open["trigger"], &open["attack_family"]), (&"syn".into(), &"syn_flood".into()), "{open}");
    assert_eq!(open["classified_by"], "counters", "{open}");
    assert!(open["pps"].as_f64().unwrap_or(0.0) < 5000.0, "total under its floor: {open}");
    assert_eq!(open["protocol_pps"].as_object().map(|m| m.len()), Some(1), "only SYN is measured: {open}");
    assert_eq!(open["protocol_threshold_pps"]["syn"], 2000.0, "{open}");
    assert_eq!(open["kernel_counters"]["syn_cookies_sent_pps"], 3000.0, "{open}");
    assert_eq!(out.rx_threshold_classes[0], 2000.0, "the flood was not learned");
    assert_unpoisoned_against(settings(), &out, secs, normal);
}

/// Normal SYN-cookie noise (a busy server's queue overflowing now and then) is learned: its
/// threshold rises above the floor, and only a flood over it opens.
#[test]
fn limited_syn_threshold_learns_normal_cookie_noise() {
    let noisy = |t: f64| {
        let n = normal(t);
        let cookies = 1000.0 * (1.0 + 0.1 * (t * 3.1).sin());
        Traffic { kernel: KernelRates { syncookies_sent_pps: Some(cookies), ..quiet_kernel() }, ..n }
    };
    let secs = WARM + 200.0;
    let f = move |t: f64| {
        let n = noisy(t);
        if (0.0..10.0).contains(&(t - WARM)) {
            Traffic { kernel: KernelRates { syncookies_sent_pps: Some(2500.0), ..n.kernel }, ..n }
        } else {
            n
        }
    };
    let out = run(secs, f);
    assert!(out.opens("inbound").is_empty(), "2.5k/s is under 3x the learned 1.1k/s: {:?}", out.summary());
    assert!(out.rx_threshold_classes[0] > 3000.0, "{:?}", out.rx_threshold_classes);
}

/// Softnet drops (the kernel's backlog overflowing before any interface counter sees the
/// packets) are offered load: the NIC counters stay flat, the incident opens with them in
/// `dropped_pps`; UDP receive-buffer errors are reported beside it.
#[test]
fn limited_softnet_drops_are_dropped_load_and_udp_errors_are_reported() {
    let secs = WARM + 30.0 + 200.0;
    let f = |t: f64| {
        let n = normal(t);
        if (0.0..30.0).contains(&(t - WARM)) {
            let kernel = KernelRates {
                softnet_dropped_pps: Some(30_000.0),
                time_squeeze_per_s: Some(40.0),
                udp_rcvbuf_errors_pps: Some(1200.0),
                udp_in_errors_pps: Some(1250.0),
                ..quiet_kernel()
            };
            Traffic { kernel, ..n }
        } else {
            n
        }
    };
    let out = run(secs, f);
    out.assert_caught("inbound", &[WARM], 1.0);
    let open = &out.opens("inbound")[0].body;
    assert!(open["dropped_pps"].as_f64().unwrap_or(0.0) >= 30_000.0, "{open}");
    assert_eq!(open["kernel_counters"]["softnet_dropped_pps"], 30_000.0, "{open}");
    assert_eq!(open["kernel_counters"]["udp_rcvbuf_errors_pps"], 1200.0, "{open}");
    assert_ne!(open["attack_family"], "syn_flood", "{open}");
    assert_threshold_unpoisoned(&out, secs);
}

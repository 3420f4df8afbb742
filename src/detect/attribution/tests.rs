use std::time::{Duration, Instant};

use super::*;
use crate::detect::baseline::Thresholds;
use crate::input::counters::{ProtoCounters, Rates, Sample, TcpUnsolicited};

const TICK: Duration = Duration::from_millis(200);

fn thr() -> Thresholds {
    Thresholds { pps: 5000.0, bits_per_s: 200e6, baseline_pps: 2000.0, classes: [f64::INFINITY; 4] }
}

fn conn(cookie: u64, remote: &str, bytes: u64, segs: u32) -> Conn {
    Conn {
        cookie,
        local: "10.0.0.1:5201".parse().unwrap(),
        remote: remote.parse().unwrap(),
        bytes_received: bytes,
        segs_in: segs,
    }
}

/// One tick's counters: NIC packets/s and bits/s; TCP, UDP segments/s; TCP resets sent/s.
fn tick(pps: f64, bps: f64, tcp: f64, udp: f64, rsts: f64) -> (Sample, Rates) {
    let secs = TICK.as_secs_f64();
    let n = |v: f64| (v * secs).round() as u64;
    let r = Rates {
        pps,
        bits_per_s: bps,
        proto: Some(ProtoCounters { tcp: n(tcp), udp: n(udp), icmp: 0 }),
        tcp_unsolicited: Some(TcpUnsolicited { out_rsts: n(rsts), in_errs: 0 }),
        interval: TICK,
        ..Rates::default()
    };
    (r.inbound(), r)
}

/// A 1 Gbit/s download: 85k segments/s of 1448 bytes, the NIC counting every packet.
const SEGS: f64 = 85_000.0;
const BYTES: f64 = 1448.0;

/// A download for `secs` seconds: its packets on the NIC every tick, a census every second.
fn transfer(a: &mut Attributor, t0: Instant, secs: u32) {
    let wire = SEGS * (BYTES + 52.0) * 8.0;
    let (smp, r) = tick(SEGS, wire, SEGS, 0.0, 0.0);
    for s in 0..=secs {
        if s > 0 {
            for k in 1..5u32 {
                a.judge(t0 + Duration::from_secs(s as u64 - 1) + TICK * k, &smp, &r, &thr());
            }
        }
        let bytes = (SEGS * BYTES) as u64 * s as u64;
        let segs = (SEGS as u32) * s;
        a.observe(t0 + Duration::from_secs(s as u64), false, [conn(7, "192.0.2.10:40000", bytes, segs)]);
    }
}

#[test]
fn a_download_is_attributed_and_leaves_nothing_to_judge() {
    let mut a = Attributor::new();
    let t0 = Instant::now();
    transfer(&mut a, t0, 3);
    let i = a.last();
    assert!((i.pps - SEGS).abs() < 1.0, "{i:?}");
    assert!((i.bps - SEGS * (BYTES + HEADER_BYTES as f64) * 8.0).abs() < 1e3, "{i:?}");
    assert_eq!(i.top.len(), 1);
    assert_eq!(i.top[0].remote.ip().to_string(), "192.0.2.10");
    let wire = SEGS * (BYTES + 52.0) * 8.0;
    let (s, r) = tick(SEGS + 300.0, wire + 3e6, SEGS + 300.0, 0.0, 0.0);
    let j = a.judge(t0 + Duration::from_millis(3100), &s, &r, &thr());
    assert!(j.sample.pps <= 301.0 && j.sample.bits_per_s <= 3.1e6, "{j:?}");
    assert!(!j.held && j.learnable());
    assert!(j.attributed_pps >= SEGS, "{j:?}");
}

#[test]
fn an_ack_flood_beside_a_transfer_is_judged_on_its_own_packets() {
    let mut a = Attributor::new();
    let t0 = Instant::now();
    transfer(&mut a, t0, 3);
    // Forged ACKs at the transfer's packet rate: each answered by a reset.
    let (s, r) = tick(2.0 * SEGS, 1.1e9, 2.0 * SEGS, 0.0, SEGS);
    let j = a.judge(t0 + Duration::from_millis(3100), &s, &r, &thr());
    assert!(j.sample.pps >= SEGS - 1.0, "the flood is what is judged: {j:?}");
    assert!(!j.held, "reset-answered TCP never waits for a census");
    // Break the rule (no resets counted) and the flood hides: the test can fail.
    let (s, r) = tick(2.0 * SEGS, 1.1e9, 2.0 * SEGS, 0.0, 0.0);
    let hidden = a.judge(t0 + Duration::from_millis(3300), &s, &r, &thr());
    assert!(hidden.sample.pps < SEGS, "{hidden:?}");
}

#[test]
fn a_udp_flood_beside_a_transfer_is_judged_at_once() {
    let mut a = Attributor::new();
    let t0 = Instant::now();
    transfer(&mut a, t0, 3);
    let (s, r) = tick(SEGS + 20_000.0, 1.1e9, SEGS, 20_000.0, 0.0);
    let j = a.judge(t0 + Duration::from_millis(3100), &s, &r, &thr());
    assert!(j.sample.pps >= 20_000.0 && !j.held, "{j:?}");
}

#[test]
fn super_packets_bound_the_attributed_rate_by_solicited_segments() {
    // veth: the NIC counts 64 KiB super-packets (2k/s) while segs_in counts 85k segments/s.
    let mut a = Attributor::new();
    let t0 = Instant::now();
    for s in 0..=3u32 {
        let (smp, r) = tick(2000.0, 1e9, 2000.0, 0.0, 0.0);
        for k in 0..5u32 {
            a.judge(t0 + Duration::from_secs(s as u64) + TICK * k, &smp, &r, &thr());
        }
        let bytes = (SEGS * BYTES) as u64 * s as u64;
        a.observe(t0 + Duration::from_secs(s as u64 + 1), false, [conn(7, "192.0.2.10:1", bytes, SEGS as u32 * s)]);
    }
    // 2k/s RST-less junk (not answered) joins: it is bounded by what TCP delivered, not hidden
    // by the 85k segs_in.
    let (s, r) = tick(4000.0, 1e9, 4000.0, 0.0, 2000.0);
    let j = a.judge(t0 + Duration::from_millis(4100), &s, &r, &thr());
    assert!(j.sample.pps >= 1999.0, "{j:?}");
}

#[test]
fn a_socket_new_since_a_complete_census_counts_whole_but_not_after_a_truncated_one() {
    let t0 = Instant::now();
    let mut a = Attributor::new();
    a.observe(t0, false, []);
    a.observe(t0 + Duration::from_secs(1), false, [conn(1, "192.0.2.1:1", 1_000_000, 700)]);
    assert_eq!(a.last().pps, 700.0);
    let mut b = Attributor::new();
    b.observe(t0, true, []);
    b.observe(t0 + Duration::from_secs(1), false, [conn(1, "192.0.2.1:1", 1_000_000, 700)]);
    assert_eq!(b.last().pps, 0.0, "the socket may have been in the part the cap cut off");
}

#[test]
fn segments_without_data_and_counters_that_go_back_are_not_attributed() {
    let t0 = Instant::now();
    let mut a = Attributor::new();
    a.observe(t0, false, [conn(1, "192.0.2.1:1", 5000, 10), conn(2, "192.0.2.2:1", 9000, 10)]);
    // Forged segments into a known 4-tuple raise segs_in, never bytes_received; a reused cookie
    // has a smaller byte count.
    a.observe(
        t0 + Duration::from_secs(1),
        false,
        [conn(1, "192.0.2.1:1", 5000, 90_000), conn(2, "192.0.2.2:1", 10, 11)],
    );
    assert_eq!((a.last().pps, a.last().connections), (0.0, 0));
}

#[test]
fn loopback_is_not_the_nics_traffic() {
    let t0 = Instant::now();
    let mut a = Attributor::new();
    a.observe(t0, false, []);
    a.observe(t0 + Duration::from_secs(1), false, [conn(1, "127.0.0.1:1", 1_000_000, 700)]);
    assert_eq!(a.last().pps, 0.0);
}

#[test]
fn many_new_peers_pushing_data_are_a_flood_not_attributed() {
    let t0 = Instant::now();
    let mut a = Attributor::new();
    // A quiet normal: a few new peers a second.
    for s in 0..60u64 {
        let conns: Vec<Conn> =
            (0..3).map(|k| conn(s * 10 + k, &format!("198.51.100.{}:1", (s * 3 + k) % 250 + 1), 2000, 3)).collect();
        a.observe(t0 + Duration::from_secs(s), false, conns);
    }
    assert!(!a.last().data_flood);
    let conns: Vec<Conn> = (0..500u64)
        .map(|k| conn(10_000 + k, &format!("10.9.{}.{}:2000", k / 250, k % 250 + 1), 200_000 + k, 150))
        .collect();
    a.observe(t0 + Duration::from_secs(60), false, conns);
    let i = a.last();
    assert!(i.data_flood && i.new_peers == 500, "{:?}", (i.data_flood, i.new_peers));
    assert_eq!(i.pps, 0.0, "the flood's connections are not attributed");
    assert_eq!(i.flood_peers.len(), TOP_NEW_PEERS);
    assert_eq!(i.flood_peers[0].0.to_string(), "10.9.1.250", "the peer that sent the most first");
    assert!(a.data_flood(t0 + Duration::from_secs(61)).is_some());
    assert!(a.data_flood(t0 + Duration::from_secs(60) + STALE + TICK).is_none(), "stale");
}

#[test]
fn a_transfer_starting_between_censuses_waits_for_the_census_then_is_attributed() {
    let t0 = Instant::now();
    let mut a = Attributor::new();
    let quiet = tick(300.0, 3e6, 280.0, 20.0, 0.0);
    a.observe(t0, false, []);
    for k in 1..=4u32 {
        assert!(!a.judge(t0 + TICK * k, &quiet.0, &quiet.1, &thr()).held);
    }
    a.observe(t0 + Duration::from_secs(1), false, []);
    // 1.1 s: the download starts; the census of 2 s will see its socket.
    let (s, r) = tick(SEGS, 1.0e9, SEGS, 0.0, 0.0);
    let mut at = t0 + Duration::from_millis(1100);
    for _ in 0..5 {
        let j = a.judge(at, &s, &r, &thr());
        assert!(j.held && !j.learnable() && j.sample.pps < thr().pps, "{j:?}");
        at += TICK;
    }
    let seen = |secs: f64| conn(9, "192.0.2.10:5201", (secs * SEGS * BYTES) as u64, (secs * SEGS) as u32);
    a.observe(t0 + Duration::from_millis(2050), false, [seen(1.05)]);
    let j = a.judge(t0 + Duration::from_millis(2100), &s, &r, &thr());
    assert!(!j.held && j.sample.pps < thr().pps && j.sample.bits_per_s < thr().bits_per_s, "{j:?}");
    // The census that saw the socket for part of its interval only: the verdict waits for the
    // next, which sees a whole second.
    let mut b = Attributor::new();
    b.observe(t0, false, []);
    for k in 1..=5u32 {
        b.judge(t0 + TICK * k, &s, &r, &thr());
    }
    b.observe(t0 + Duration::from_secs(1), false, [seen(0.6)]);
    let j = b.judge(t0 + Duration::from_millis(1100), &s, &r, &thr());
    assert!(j.held, "{j:?}");
    for k in 1..5u32 {
        b.judge(t0 + Duration::from_millis(1100) + TICK * k, &s, &r, &thr());
    }
    b.observe(t0 + Duration::from_secs(2), false, [seen(1.6)]);
    let j = b.judge(t0 + Duration::from_millis(2100), &s, &r, &thr());
    assert!(!j.held && j.sample.pps < thr().pps && j.sample.bits_per_s < thr().bits_per_s, "{j:?}");
}

#[test]
fn tcp_no_census_attributes_is_judged_after_the_census_and_not_held_again_at_once() {
    let t0 = Instant::now();
    let mut a = Attributor::new();
    a.observe(t0, false, []);
    let (s, r) = tick(SEGS, 1.0e9, SEGS, 0.0, 0.0);
    let j = a.judge(t0 + TICK, &s, &r, &thr());
    assert!(j.held);
    a.observe(t0 + Duration::from_millis(900), false, []);
    let j = a.judge(t0 + TICK * 5, &s, &r, &thr());
    assert!(!j.held && j.sample.pps >= SEGS - 1.0, "the census named nothing: judged now {j:?}");
    let j = a.judge(t0 + TICK * 6, &s, &r, &thr());
    assert!(!j.held, "spent until the traffic has been under the threshold a while");
}

#[test]
fn without_a_census_nothing_waits() {
    let t0 = Instant::now();
    let mut a = Attributor::new();
    let (s, r) = tick(SEGS, 1.0e9, SEGS, 0.0, 0.0);
    let j = a.judge(t0, &s, &r, &thr());
    assert!(!j.held && j.sample.pps == SEGS);
}

#[test]
fn a_hold_never_lasts_past_its_bound() {
    let t0 = Instant::now();
    let mut a = Attributor::new();
    a.observe(t0, false, []);
    let (s, r) = tick(SEGS, 1.0e9, SEGS, 0.0, 0.0);
    assert!(a.judge(t0 + TICK, &s, &r, &thr()).held);
    let j = a.judge(t0 + TICK + HOLD_MAX, &s, &r, &thr());
    assert!(!j.held);
}

#[test]
fn a_transfer_that_ended_attributes_nothing_after_the_next_census() {
    let t0 = Instant::now();
    let mut a = Attributor::new();
    transfer(&mut a, t0, 3);
    // The download stopped at 3 s; other TCP arrives (40k/s): the census of 4 s names nothing.
    let (s, r) = tick(40_000.0, 40_000.0 * 480.0, 40_000.0, 0.0, 0.0);
    for k in 1..5u32 {
        a.judge(t0 + Duration::from_secs(3) + TICK * k, &s, &r, &thr());
    }
    a.observe(t0 + Duration::from_secs(4), false, []);
    let j = a.judge(t0 + Duration::from_millis(4100), &s, &r, &thr());
    assert!(j.attributed_pps == 0.0 && j.sample.pps == 40_000.0, "{j:?}");
}

#[test]
fn syns_the_listen_queue_could_not_take_are_never_attributed() {
    let t0 = Instant::now();
    let mut a = Attributor::new();
    transfer(&mut a, t0, 3);
    // A SYN flood to an open port beside the transfer: answered with cookies, not resets.
    let (s, mut r) = tick(SEGS + 30_000.0, 1.1e9, SEGS + 30_000.0, 0.0, 0.0);
    r.kernel.syncookies_sent_pps = Some(30_000.0);
    r.kernel.listen_drops_pps = Some(0.0);
    let j = a.judge(t0 + Duration::from_millis(3100), &s, &r, &thr());
    assert!(j.sample.pps >= 30_000.0 && !j.held, "{j:?}");
}

#[test]
fn stale_attribution_is_not_used() {
    let t0 = Instant::now();
    let mut a = Attributor::new();
    transfer(&mut a, t0, 2);
    let (s, r) = tick(SEGS, 1e9, SEGS, 0.0, 0.0);
    let j = a.judge(t0 + Duration::from_secs(2) + STALE + TICK, &s, &r, &thr());
    assert_eq!(j.attributed_pps, 0.0);
}

#[test]
fn established_peers_are_those_of_a_census_taken_before() {
    let t0 = Instant::now();
    let c = [conn(1, "192.0.2.1:1", 1, 1), conn(2, "127.0.0.1:2", 1, 1), conn(3, "[2001:db8::1]:3", 1, 1)];
    let peers = established_peers(t0, &c, t0 + Duration::from_secs(1));
    assert_eq!(peers.len(), 2);
    assert!(peers.contains(&"2001:db8::1".parse().unwrap()));
    assert!(established_peers(t0 + Duration::from_secs(2), &c, t0 + Duration::from_secs(1)).is_empty());
}

#[test]
fn a_surge_is_one_event_per_surge() {
    let t0 = Instant::now();
    let mut s = Surge::default();
    let mut fired = 0;
    for k in 0..300u32 {
        let bps = if (100..200).contains(&k) { 1e9 } else { 1e6 };
        fired += s.step(t0 + TICK * k, 1000.0, bps, &thr()) as u32;
    }
    assert_eq!(fired, 1, "one event however long the surge");
    assert!(s.active(), "still within the quiet period");
    for k in 300..500u32 {
        fired += s.step(t0 + TICK * k, 1000.0, 1e6, &thr()) as u32;
    }
    assert_eq!(fired, 1);
    assert!(!s.active());
    assert!(s.step(t0 + TICK * 500, 1000.0, 1e9, &thr()), "the next surge is an event again");
}

#[test]
fn a_flood_that_connects_first_and_pushes_later_stays_a_flood() {
    let t0 = Instant::now();
    let mut a = Attributor::new();
    a.observe(t0, false, [conn(1, "192.0.2.1:1", 0, 1)]);
    let peers = |bytes: u64| -> Vec<Conn> {
        (0..200u64).map(|k| conn(100 + k, &format!("10.9.{}.{}:2000", k / 250, k % 250 + 1), bytes, 1)).collect()
    };
    // Census 1: 200 idle connections. Census 2..12: they push 1 MB a second each.
    a.observe(t0 + Duration::from_secs(1), false, peers(0));
    for s in 2..12u64 {
        a.observe(t0 + Duration::from_secs(s), false, peers((s - 1) * 1_000_000));
        let i = a.last();
        assert!(i.data_flood && i.pps == 0.0, "second {s}: {:?}", (i.data_flood, i.new_peers, i.pps));
    }
    // The backup server that was there at the first census is never a new peer.
    let mut b = Attributor::new();
    b.observe(t0, false, peers(0));
    b.observe(t0 + Duration::from_secs(1), false, peers(1_000_000));
    assert!(!b.last().data_flood && b.last().bps > 0.0, "{:?}", b.last());
}

#[test]
fn a_flood_whose_senders_stall_for_a_second_stays_a_flood() {
    let t0 = Instant::now();
    let mut a = Attributor::new();
    a.observe(t0, false, []);
    let peers = |bytes: u64| -> Vec<Conn> {
        (0..200u64).map(|k| conn(100 + k, &format!("10.9.{}.{}:2000", k / 250, k % 250 + 1), bytes, 1)).collect()
    };
    a.observe(t0 + Duration::from_secs(1), false, peers(1_000_000));
    assert!(a.last().data_flood);
    a.observe(t0 + Duration::from_secs(2), false, peers(1_000_000)); // nothing sent this second
    a.observe(t0 + Duration::from_secs(9), false, peers(2_000_000));
    assert!(a.last().data_flood && a.last().bps == 0.0, "{:?}", a.last());
}

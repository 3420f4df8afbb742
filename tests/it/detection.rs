//! Detection an attacker cannot teach (§5.4, §5.5), against real floods across a veth pair:
//! the agent at default detection settings except a 3 s grace period, reading the real
//! `/proc/net/dev` of its namespace. hping3 for the heavy floods, a paced UDP sender for set rates.

use std::process::Child;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::util::{self, Home, NetnsPair, Side};

/// The default PPS floor, which an idle veth's threshold sits at.
const FLOOR_PPS: f64 = 5000.0;

struct Rig {
    pair: NetnsPair,
    home: Home,
    agent: Option<Child>,
    /// Held for the whole test, see [`util::flood_lock`]; the last field, so released last.
    _flood: std::sync::MutexGuard<'static, ()>,
}

impl Rig {
    fn start() -> Option<Rig> {
        let flood = util::flood_lock();
        let pair = NetnsPair::create()?;
        assert!(util::have("hping3"), "hping3 is needed (apt-get install hping3)");
        let home = Home::new();
        let cfg = home.write_config(serde_json::json!({
            "interface": pair.veth_a,
            "grace_period_s": 3,
            // Capture builds run as root would classify from packets; this is about counters.
            "limited": true,
        }));
        let agent = pair.spawn_agent(&home, &cfg);
        let started = util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(10));
        assert!(started.is_some(), "agent_start");
        std::thread::sleep(Duration::from_millis(3500)); // past the grace period
        Some(Rig { pair, home, agent: Some(agent), _flood: flood })
    }

    /// Start `flood`, wait for incident_open number `n` (1-based); (onset, the open event).
    fn expect_open<F: Flood>(&self, n: usize, flood: impl FnOnce(&NetnsPair) -> F) -> (SystemTime, Value, F) {
        let onset = SystemTime::now();
        let child = flood(&self.pair);
        let opens = util::wait_for_events(&self.home.events_file(), "incident_open", n, Duration::from_secs(8));
        let open = opens.get(n - 1).cloned().unwrap_or_else(|| panic!("incident_open #{n} never came: {opens:?}"));
        (onset, open, child)
    }

    fn wait_resolves(&self, n: usize) -> Value {
        let r = util::wait_for_events(&self.home.events_file(), "incident_resolve", n, Duration::from_secs(40));
        r.get(n - 1).cloned().unwrap_or_else(|| panic!("incident_resolve #{n} never came: {r:?}"))
    }

    fn stop(mut self) {
        let mut agent = self.agent.take().expect("running");
        let status = util::terminate(&mut agent, Duration::from_secs(5));
        assert!(status.is_some_and(|s| s.success()), "agent exits 0 on SIGTERM");
    }
}

impl Drop for Rig {
    /// A failed assertion must not leave the agent running (it would outlive the test).
    fn drop(&mut self) {
        if let Some(mut a) = self.agent.take() {
            let _ = a.kill();
            let _ = a.wait();
        }
    }
}

/// hping3 children and paced senders, waited for alike.
trait Flood {
    fn finish(&mut self);
}

impl Flood for Child {
    fn finish(&mut self) {
        let _ = self.wait();
    }
}

impl Flood for util::Paced {
    fn finish(&mut self) {
        self.wait();
    }
}

fn assert_within(what: &str, onset: SystemTime, open: &Value, bar: Duration) -> Duration {
    let l = util::latency_since(onset, open);
    assert!(l < bar, "{what}: incident_open {l:?} after onset (bar {bar:?}): {open}");
    eprintln!("{what}: incident_open {l:?} after onset at {} pps", open["pps"]);
    l
}

#[test]
fn heavy_flood_then_at_once_a_20k_flood_both_caught_within_a_second() {
    let Some(rig) = Rig::start() else { return };
    let (onset, first, mut f) = rig.expect_open(1, |p| p.udp_flood(3, 9));
    assert_within("heavy flood", onset, &first, Duration::from_secs(1));
    f.finish();
    rig.wait_resolves(1);
    let (onset, second, mut f) = rig.expect_open(2, |p| p.paced_udp(Side::Outside, 20_000, 3));
    assert_within("20k pps flood right after the resolve", onset, &second, Duration::from_secs(1));
    f.finish();
    assert_eq!(second["previous_incident_id"], first["incident_id"], "linked to the flood before it");
    assert_eq!(second["threshold_pps"], FLOOR_PPS, "nothing of the first flood was learned");
    assert_eq!(second["direction"], "inbound");
    rig.stop();
}

#[test]
fn flood_in_the_cooldown_is_not_learned_and_a_later_12k_flood_is_caught() {
    let Some(rig) = Rig::start() else { return };
    let (_, _, mut f) = rig.expect_open(1, |p| p.udp_flood(3, 9));
    f.finish();
    let first_resolve = util::event_time(&rig.wait_resolves(1));
    // 8k pps (1.6x the floor) for 20 s inside the 60 s cooldown: sustained, so it opens after 2 s.
    let (onset, second, mut f) = rig.expect_open(2, |p| p.paced_udp(Side::Outside, 8_000, 20));
    assert_within("8k pps flood in the cooldown", onset, &second, Duration::from_secs(3));
    f.finish();
    // After the first cooldown: 12k pps (2.4x the floor).
    let after_cooldown = first_resolve + Duration::from_secs(61);
    if let Ok(wait) = after_cooldown.duration_since(SystemTime::now()) {
        std::thread::sleep(wait);
    }
    let (onset, third, mut f) = rig.expect_open(3, |p| p.paced_udp(Side::Outside, 12_000, 3));
    assert_within("12k pps flood after the cooldown", onset, &third, Duration::from_secs(1));
    f.finish();
    for open in util::wait_for_events(&rig.home.events_file(), "incident_open", 3, Duration::ZERO) {
        assert_eq!(open["threshold_pps"], FLOOR_PPS, "the threshold never left the floor: {open}");
    }
    rig.stop();
}

#[test]
fn outbound_flood_from_the_agents_host_opens_an_outbound_incident() {
    let Some(rig) = Rig::start() else { return };
    let (onset, open, mut f) = rig.expect_open(1, |p| p.outbound_flood(3));
    assert_within("outbound flood", onset, &open, Duration::from_secs(1));
    f.finish();
    assert_eq!(open["direction"], "outbound", "{open}");
    let resolve = rig.wait_resolves(1);
    assert_eq!(resolve["direction"], "outbound");
    let inbound =
        rig.home.events().into_iter().filter(|e| e["event"] == "incident_open" && e["direction"] == "inbound");
    assert_eq!(inbound.count(), 0, "the replies are no inbound flood");
    rig.stop();
}

#[test]
fn five_pulses_of_four_seconds_are_each_caught_within_a_second() {
    let Some(rig) = Rig::start() else { return };
    let mut latencies = Vec::new();
    let t0 = SystemTime::now();
    for n in 1..=5usize {
        // 15 s from pulse start to pulse start: 11 s off, longer than the 10 s hold-down.
        let start = t0 + Duration::from_secs(15 * (n as u64 - 1));
        if let Ok(wait) = start.duration_since(SystemTime::now()) {
            std::thread::sleep(wait);
        }
        let (onset, open, mut f) = rig.expect_open(n, |p| p.paced_udp(Side::Outside, 20_000, 4));
        latencies.push(assert_within(&format!("pulse {n}"), onset, &open, Duration::from_secs(1)));
        f.finish();
    }
    let opens = util::wait_for_events(&rig.home.events_file(), "incident_open", 5, Duration::ZERO);
    for w in opens.windows(2) {
        assert_eq!(w[1]["previous_incident_id"], w[0]["incident_id"], "pulses are linked");
    }
    rig.stop();
}

#[test]
fn bursty_flood_that_never_gives_two_samples_in_a_row_is_caught() {
    let Some(rig) = Rig::start() else { return };
    assert!(util::have("trafgen"), "trafgen is needed (apt-get install netsniff-ng)");
    // 8000 pps on average, each second's packets in one ~50 ms burst.
    let (onset, open, mut f) = rig.expect_open(1, |p| p.bursty_udp(8000, 8));
    assert_within("bursty 8k pps flood", onset, &open, Duration::from_secs(5));
    f.finish();
    let opens = util::wait_for_events(&rig.home.events_file(), "incident_open", 2, Duration::from_secs(2));
    assert_eq!(opens.len(), 1, "one incident for the whole flood: {opens:?}");
    rig.stop();
}

//! Mitigation (§10) end to end: the capture build's agent in one namespace, real floods from the
//! other across a veth pair (the SNMP amplification capture replayed by `tcpreplay-edit`, hping3
//! floods), the rules checked in the namespace's real nftables and the kernel's own counters.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::util::{self, Home, NetnsPair};

/// Namespaces (None off CI when they cannot be made; `util::skip` fails the test under CI) and
/// the tools these tests drive.
pub fn pair() -> Option<NetnsPair> {
    let p = NetnsPair::create();
    if p.is_some() {
        for t in ["nft", "hping3", "tcpreplay-edit"] {
            assert!(util::have(t), "needs {t} (packages nftables, hping3, tcpreplay)");
        }
    }
    p
}

pub struct Running {
    pub home: Home,
    pub child: Child,
    pub log: PathBuf,
}

impl Running {
    pub fn events(&self) -> Vec<Value> {
        self.home.events()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait for an event matching `pred`.
    pub fn wait(&self, what: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| e["event"] == what && pred(e)) {
                return e;
            }
            assert!(Instant::now() < deadline, "no {what} within {limit:?}: {}\n{:#?}", self.stderr(), self.events());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(mut self) -> Vec<Value> {
        let st = util::terminate(&mut self.child, Duration::from_secs(8));
        assert!(st.is_some_and(|s| s.success()), "agent exits 0 on SIGTERM: {}", self.stderr());
        self.events()
    }
}

impl Drop for Running {
    /// A failed test must not leave its agent running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the agent in `a` with this `mitigation` object; returns once its grace period is over.
pub fn start(pair: &NetnsPair, home: Home, mitigation: Value) -> Running {
    let cfg = home.write_config(json!({
        "interface": pair.veth_a,
        "baseline_window_s": 10,
        "grace_period_s": 2,
        "holddown_ticks": 10,
        "cooldown_s": 0,
        "pcap_enabled": false,
        "mitigation": mitigation,
    }));
    let log = home.path().join("stderr.log");
    let child = NetnsPair::exec(&pair.ns_a, &util::bin())
        .args(["--no-update-check", "--config"])
        .arg(&cfg)
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn agent");
    let r = Running { home, child, log };
    let st = r.wait("agent_start", Duration::from_secs(10), |_| true);
    assert_eq!(st["mode"], "capture-scapy", "{}", r.stderr());
    let ready = util::event_time(&st) + Duration::from_millis(3000);
    if let Ok(d) = ready.duration_since(SystemTime::now()) {
        std::thread::sleep(d);
    }
    r
}

/// `nft -j list table inet ftagent` in namespace `ns`; None when the table does not exist.
pub fn table(ns: &str) -> Option<Value> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-j", "list", "table", "inet", "ftagent"])
        .output()
        .unwrap();
    out.status.success().then(|| serde_json::from_slice(&out.stdout).expect("nft JSON"))
}

/// Elements of set `name` (their values), from a listing.
pub fn elements(t: &Value, name: &str) -> Vec<Value> {
    let items = t["nftables"].as_array().cloned().unwrap_or_default();
    let set = items.iter().find(|i| i["set"]["name"] == name);
    let elems = set.and_then(|s| s["set"]["elem"].as_array().cloned()).unwrap_or_default();
    elems.iter().map(|e| e["elem"]["val"].clone()).collect()
}

pub fn chain_rules(t: &Value) -> Vec<Value> {
    t["nftables"].as_array().unwrap().iter().filter_map(|i| i.get("rule").cloned()).collect()
}

/// Poll the table until `pred` holds; the time it took.
pub fn until_table(ns: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if table(ns).is_some_and(|t| pred(&t)) {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// (UDP datagrams the stack saw: InDatagrams + NoPorts + InErrors, RX packets of `iface`) in `ns`.
pub fn udp_and_rx(ns: &str, iface: &str) -> (u64, u64) {
    let cat = |f: &str| {
        String::from_utf8(Command::new("ip").args(["netns", "exec", ns, "cat", f]).output().unwrap().stdout).unwrap()
    };
    let snmp = cat("/proc/net/snmp");
    let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
    let (names, vals): (Vec<&str>, Vec<&str>) =
        (udp[0].split_whitespace().collect(), udp[1].split_whitespace().collect());
    let get = |n: &str| vals[names.iter().position(|x| *x == n).unwrap()].parse::<u64>().unwrap();
    let stack = get("InDatagrams") + get("NoPorts") + get("InErrors");
    let dev = cat("/proc/net/dev");
    let line = dev.lines().find(|l| l.trim_start().starts_with(&format!("{iface}:"))).unwrap();
    let rx = line.split(':').nth(1).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    (stack, rx)
}

/// Replay the SNMP amplification capture from `b` at `pps`, rewritten to `a`'s MAC and address.
pub fn replay_snmp(pair: &NetnsPair, pps: u32, loops: u32) -> Child {
    let pcap = util::captures().expect("the attack captures (tests/data)").join("amp.UDP.snmp.src161.pcapng");
    let link = Command::new("ip").args(["-n", &pair.ns_a, "-j", "link", "show", &pair.veth_a]).output().unwrap();
    let v: Value = serde_json::from_slice(&link.stdout).unwrap();
    let mac = v[0]["address"].as_str().unwrap().to_string();
    Command::new("ip")
        .args(["netns", "exec", &pair.ns_b, "tcpreplay-edit", "-q", "--fixcsum"])
        .arg(format!("--intf1={}", pair.veth_b))
        .arg(format!("--pps={pps}"))
        .arg(format!("--loop={loops}"))
        .arg(format!("--enet-dmac={mac}"))
        .arg(format!("--dstipmap=10.10.10.10/32:{}/32", pair.addr_a))
        .arg(pcap)
        .stdout(Stdio::null())
        .spawn()
        .expect("tcpreplay-edit")
}

/// hping3 from `b` for `secs`: `args` before the target (e.g. `--udp -p 9999`, `-S --rand-source`).
pub fn hping(pair: &NetnsPair, secs: u32, args: &[&str]) -> Child {
    Command::new("timeout")
        .args([&secs.to_string(), "ip", "netns", "exec", &pair.ns_b, "hping3", "--flood", "-q"])
        .args(args)
        .arg(&pair.addr_a)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hping3")
}

fn amp_rule(pair: &NetnsPair) -> Value {
    json!({"concat": [pair.addr_a, 161]})
}

#[test]
fn snmp_amplification_is_dropped_within_a_second_then_nothing_is_left() {
    let _flood = util::flood_lock();
    let Some(pair) = pair() else { return };
    let r = start(&pair, Home::new(), json!({"mode": "enforce", "ttl_s": 3}));
    let (udp0, rx0) = udp_and_rx(&pair.ns_a, &pair.veth_a);
    let onset = Instant::now();
    let mut replay = replay_snmp(&pair, 30_000, 40);
    let want = amp_rule(&pair);
    let took = until_table(&pair.ns_a, Duration::from_secs(5), |t| elements(t, "amp4").contains(&want))
        .map(|_| onset.elapsed());
    let (udp1, rx1) = udp_and_rx(&pair.ns_a, &pair.veth_a);
    let took = took.unwrap_or_else(|| panic!("no amp4 element for {want}: {}\n{:#?}", r.stderr(), r.events()));
    assert!(took <= Duration::from_secs(1), "rule in force {took:?} after onset");
    let _ = replay.wait();
    let (udp2, rx2) = udp_and_rx(&pair.ns_a, &pair.veth_a);
    let (before, after) =
        ((udp1 - udp0) as f64 / (rx1 - rx0).max(1) as f64, (udp2 - udp1) as f64 / (rx2 - rx1).max(1) as f64);
    eprintln!(
        "SNMP replay: rule in force {} ms after onset; UDP stack saw {:.1} % of RX before the rule, {:.2} % after ({} of {} packets)",
        took.as_millis(),
        100.0 * before,
        100.0 * after,
        udp2 - udp1,
        rx2 - rx1
    );
    assert!(before > 0.5, "the measurement sees the flood reach the UDP stack without a rule ({before})");
    assert!(rx2 - rx1 > 50_000, "the flood went on after the rule ({} packets)", rx2 - rx1);
    assert!(after <= 0.05, "{:.2} % of the flood reached the UDP stack with the rule in force", 100.0 * after);
    let apply = r.wait("mitigation_apply", Duration::from_secs(1), |_| true);
    assert_eq!((apply["mode"].as_str(), apply["reason"].as_str()), (Some("enforce"), Some("incident_open")), "{apply}");
    assert_eq!(apply["rules"][0]["rule"], format!("amp:{}:161", pair.addr_a));
    let resolve = r.wait("incident_resolve", Duration::from_secs(15), |_| true);
    let removed = r.wait("mitigation_remove", Duration::from_secs(6), |_| true);
    assert_eq!(removed["reason"], "resolved");
    assert!(removed["rules"][0]["dropped_packets"].as_u64() > Some(50_000), "{removed}");
    let gone = util::event_time(&removed).duration_since(util::event_time(&resolve)).unwrap();
    assert!(gone <= Duration::from_secs(3 + 1), "removed {gone:?} after the resolve (ttl 3 s)");
    assert_eq!(table(&pair.ns_a), None, "after resolve + TTL nothing of ours is left in nftables");
    let events = r.stop();
    assert!(events.iter().any(|e| e["event"] == "incident_open" && e["target_ips"][0]["ip"] == pair.addr_a.as_str()));
}

#[test]
fn dry_run_reports_the_exact_rules_and_applies_nothing() {
    let _flood = util::flood_lock();
    let Some(pair) = pair() else { return };
    let r = start(&pair, Home::new(), json!({"mode": "dry_run", "ttl_s": 3}));
    let (udp0, rx0) = udp_and_rx(&pair.ns_a, &pair.veth_a);
    let mut replay = replay_snmp(&pair, 30_000, 30);
    let apply = r.wait("mitigation_apply", Duration::from_secs(5), |_| true);
    assert_eq!(apply["mode"], "dry_run");
    let rules = apply["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{apply}");
    assert_eq!(rules[0]["rule"], format!("amp:{}:161", pair.addr_a));
    assert_eq!(
        rules[0]["nft"],
        json!([{"add": {"element": {"family": "inet", "table": "ftagent", "name": "amp4",
            "elem": [{"elem": {"val": amp_rule(&pair), "timeout": 3, "comment": apply["incident_id"]}}]}}}])
    );
    let _ = replay.wait();
    let (udp1, rx1) = udp_and_rx(&pair.ns_a, &pair.veth_a);
    assert_eq!(table(&pair.ns_a), None, "dry run: nftables holds nothing of ours");
    let names: Vec<Value> = r.events().iter().map(|e| e["event"].clone()).collect();
    let pos = |n: &str| names.iter().position(|e| e == n).unwrap();
    assert!(pos("incident_open") < pos("mitigation_apply"), "the open is reported first: {names:?}");
    assert!((udp1 - udp0) as f64 > 0.8 * (rx1 - rx0) as f64 * 0.9, "the flood was not dropped");
    r.stop();
}

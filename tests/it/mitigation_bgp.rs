//! BGP mitigation (§10.2) end to end with real speakers: the capture build's agent drives a real
//! `gobgpd` in its own namespace, which peers over the veth with a second real `gobgpd` in the
//! other namespace acting as the router (ipv4-unicast and ipv4-flowspec). The floods are the SNMP
//! amplification capture replayed across the veth. Every check reads the ROUTER's RIB.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::mitigation::{pair, replay_snmp, start, Running};
use crate::util::{self, Home, NetnsPair};

const OURS: &str = "64512:42";
/// 64512:42 and 65535:666 as GoBGP prints communities in JSON.
const OURS_N: u64 = (64512 << 16) | 42;
const BLACKHOLE_N: u64 = (65535 << 16) | 666;

/// A daemon in its own process group, stopped (group and all) on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this test created.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGTERM) };
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: as above.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn daemon(ns: &str, argv: &[&str], log: &Path) -> Daemon {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(argv).process_group(0);
    c.stdin(Stdio::null()).stdout(std::fs::File::create(log).unwrap()).stderr(Stdio::null());
    Daemon(c.spawn().unwrap_or_else(|e| panic!("{argv:?}: {e}")))
}

fn gobgpd_conf(asn: u32, me: &str, peer: &str, peer_as: u32) -> String {
    let mut s = format!(
        "[global.config]\n  as = {asn}\n  router-id = \"{me}\"\n[[neighbors]]\n  [neighbors.config]\n    \
         neighbor-address = \"{peer}\"\n    peer-as = {peer_as}\n"
    );
    for f in ["ipv4-unicast", "ipv4-flowspec", "ipv6-unicast", "ipv6-flowspec"] {
        s += &format!("  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{f}\"\n");
    }
    s
}

/// The agent's speaker in `a`, the router in `b`, session established.
struct Speakers {
    _speaker: Daemon,
    _router: Daemon,
}

fn speakers(pair: &NetnsPair, dir: &Path) -> Speakers {
    for t in ["gobgpd", "gobgp"] {
        assert!(util::have(t), "needs {t} (package gobgpd)");
    }
    let (a, b) = (dir.join("speaker.toml"), dir.join("router.toml"));
    std::fs::write(&a, gobgpd_conf(65001, &pair.addr_a, &pair.addr_b, 65002)).unwrap();
    std::fs::write(&b, gobgpd_conf(65002, &pair.addr_b, &pair.addr_a, 65001)).unwrap();
    let run = |ns: &str, conf: &Path, log: &str| {
        let c = conf.to_string_lossy().to_string();
        daemon(ns, &["gobgpd", "-f", &c, "--api-hosts", "127.0.0.1:50051", "--pprof-disable"], &dir.join(log))
    };
    let s = Speakers { _speaker: run(&pair.ns_a, &a, "speaker.log"), _router: run(&pair.ns_b, &b, "router.log") };
    let t0 = Instant::now();
    while !router(pair, &["neighbor"]).contains("Establ") {
        assert!(t0.elapsed() < Duration::from_secs(30), "BGP session never came up: {}", router(pair, &["neighbor"]));
        std::thread::sleep(Duration::from_millis(200));
    }
    s
}

fn gobgp(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip").args(["netns", "exec", ns, "gobgp"]).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn router(pair: &NetnsPair, args: &[&str]) -> String {
    gobgp(&pair.ns_b, args)
}

/// The router's RIB of `family`: NLRI text → its paths.
fn rib(pair: &NetnsPair, family: &str) -> serde_json::Map<String, Value> {
    let text = router(pair, &["global", "rib", "-a", family, "-j"]);
    match serde_json::from_str(text.trim()) {
        Ok(Value::Object(m)) => m,
        _ => Default::default(),
    }
}

fn communities(paths: &Value) -> Vec<u64> {
    let attrs = paths[0]["attrs"].as_array().cloned().unwrap_or_default();
    attrs
        .iter()
        .filter(|a| a["type"] == 8)
        .flat_map(|a| a["communities"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_u64())
        .collect()
}

/// Every route in the router's RIB (both families we use), as `family NLRI`.
fn routes(pair: &NetnsPair) -> Vec<String> {
    let mut out = Vec::new();
    for f in ["ipv4-flowspec", "ipv4"] {
        out.extend(rib(pair, f).keys().map(|k| format!("{f} {k}")));
    }
    out
}

/// Poll the router until `pred` holds; the wall time it first held.
fn until(pair: &NetnsPair, limit: Duration, pred: impl Fn(&[String]) -> bool) -> Option<SystemTime> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if pred(&routes(pair)) {
            return Some(SystemTime::now());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

fn bgp(extra: Value) -> Value {
    let mut v = json!({"engine": "gobgp", "community": OURS});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn flow_of(addr: &str) -> String {
    format!("ipv4-flowspec [destination: {addr}/32][protocol: ==udp][source-port: ==161]")
}

fn after(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

fn bgp_events(r: &Running, name: &str) -> Vec<Value> {
    r.events().into_iter().filter(|e| e["event"] == name && e["backend"] == "bgp").collect()
}

#[test]
fn a_flood_puts_flowspec_and_the_blackhole_in_the_routers_rib_then_both_go_at_expiry() {
    let _flood = util::FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let Some(pair) = pair() else { return };
    let home = Home::new();
    let _bgp = speakers(&pair, home.path());
    let r = start(&pair, home, json!({"mode": "enforce", "ttl_s": 2, "bgp": bgp(json!({"rtbh_min_pps": 1000}))}));
    let (flow, hole) = (flow_of(&pair.addr_a), format!("ipv4 {}/32", pair.addr_a));
    let mut replay = replay_snmp(&pair, 30_000, 20);
    let open = r.wait("incident_open", Duration::from_secs(5), |_| true);
    let seen = until(&pair, Duration::from_secs(3), |rs| rs.contains(&flow) && rs.contains(&hole));
    let seen = seen.unwrap_or_else(|| panic!("not in the router's RIB: {:?}\n{}", routes(&pair), r.stderr()));
    let took = after(seen, util::event_time(&open));
    eprintln!("BGP: FlowSpec and blackhole in the router's RIB {} ms after the incident opened", took.as_millis());
    assert!(took <= Duration::from_secs(1), "routes in the router's RIB {took:?} after the decision");
    // The expected match and action, and our community on each.
    let fs = rib(&pair, "ipv4-flowspec");
    let paths = &fs[flow.trim_start_matches("ipv4-flowspec ")];
    assert!(paths.to_string().contains(r#""subtype":6"#), "traffic-rate 0 = discard: {paths}");
    assert!(communities(paths).contains(&OURS_N), "{paths}");
    let uni = rib(&pair, "ipv4");
    let c = communities(&uni[&format!("{}/32", pair.addr_a)]);
    assert!(c.contains(&BLACKHOLE_N) && c.contains(&OURS_N), "{c:?}");
    let apply = bgp_events(&r, "mitigation_apply");
    assert!(!apply.is_empty(), "{:#?}", r.events());
    let actions: Vec<&str> =
        apply[0]["rules"].as_array().unwrap().iter().map(|x| x["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["discard", "blackhole"], "FlowSpec first, blackhole last");
    let _ = replay.wait();
    let remove = r.wait("mitigation_remove", Duration::from_secs(20), |e| e["backend"] == "bgp");
    let expiry = util::event_time(&json!({"ts": remove["expires_at"]}));
    let gone = until(&pair, Duration::from_secs(3), |rs| !rs.contains(&flow) && !rs.contains(&hole));
    let gone = gone.unwrap_or_else(|| panic!("still in the router's RIB: {:?}", routes(&pair)));
    let late = after(gone, expiry);
    eprintln!("BGP: routes gone from the router's RIB {} ms after their expiry", late.as_millis());
    assert!(late <= Duration::from_secs(1), "gone {late:?} after expiry");
    r.stop();
    assert!(routes(&pair).is_empty(), "nothing of ours left: {:?}", routes(&pair));
}

#[test]
fn after_sigkill_the_restarted_agent_withdraws_what_the_dead_one_announced() {
    let _flood = util::FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let Some(pair) = pair() else { return };
    let home = Home::new();
    let _bgp = speakers(&pair, home.path());
    let cfg = json!({"mode": "enforce", "ttl_s": 600, "bgp": bgp(json!({}))});
    let mut r = start(&pair, home, cfg.clone());
    let flow = flow_of(&pair.addr_a);
    let mut replay = replay_snmp(&pair, 30_000, 10);
    assert!(until(&pair, Duration::from_secs(5), |rs| rs.contains(&flow)).is_some(), "{}", r.stderr());
    let _ = r.child.kill();
    let _ = r.child.wait();
    let _ = replay.wait();
    assert!(routes(&pair).contains(&flow), "a SIGKILLed agent cannot withdraw: the route is stale");
    let home = std::mem::replace(&mut r.home, Home::new());
    drop(r);
    let r = start(&pair, home, cfg);
    let stale = r.wait("mitigation_remove", Duration::from_secs(10), |e| e["reason"] == "stale_at_start");
    assert!(stale["rules"].to_string().contains("source-port: ==161"), "{stale:#}");
    assert!(!routes(&pair).contains(&flow), "stale route still announced after restart: {:?}", routes(&pair));
    r.stop();
}

#[test]
fn outside_the_networks_protected_and_past_max_routes_nothing_is_announced_and_the_event_says_why() {
    let _flood = util::FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let Some(pair) = pair() else { return };
    let home = Home::new();
    let _bgp = speakers(&pair, home.path());
    // Three targets at once: this host (allowlisted), another address of `networks` (announced,
    // as a flow collector's incident would be), and one outside them.
    let net = pair.addr_a.rsplit_once('.').unwrap().0.to_string();
    let (inside, outside) = (format!("{net}.99"), "10.66.0.99".to_string());
    let cfg = json!({"mode": "enforce", "ttl_s": 600, "allowlist": [pair.addr_a],
        "bgp": bgp(json!({"rtbh_min_pps": 1000, "max_routes": 1, "networks": [format!("{inside}/32")]}))});
    let r = start(&pair, home, cfg);
    let mut replays: Vec<Child> = [&pair.addr_a, &inside, &outside].iter().map(|t| replay_to(&pair, t)).collect();
    // The incident may open on the first target seen; the others come with its next update.
    let apply = r.wait("mitigation_apply", Duration::from_secs(12), |e| {
        e["backend"] == "bgp" && e["rules"].as_array().is_some_and(|a| !a.is_empty())
    });
    for c in &mut replays {
        let _ = c.wait();
    }
    let announced: Vec<&str> = apply["rules"].as_array().unwrap().iter().map(|x| x["rule"].as_str().unwrap()).collect();
    assert_eq!(announced, [format!("flow:{inside}/32:udp-from:161")], "{apply:#}");
    let reasons: Vec<String> = bgp_events(&r, "mitigation_apply")
        .iter()
        .flat_map(|e| e["refused"].as_array().cloned().unwrap_or_default())
        .map(|x| format!("{} {} {}", x["target"], x["route"], x["reason"]))
        .collect();
    let has = |target: &str, why: &str| reasons.iter().any(|x| x.contains(target) && x.contains(why));
    assert!(has(&pair.addr_a, "protected"), "{reasons:#?}");
    assert!(has(&outside, "outside the configured networks"), "{reasons:#?}");
    assert!(has(&format!("rtbh:{inside}/32"), "max_routes (1)"), "{reasons:#?}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(routes(&pair), [flow_of(&inside)], "only the one allowed route reaches the router");
    r.stop();
    assert!(routes(&pair).is_empty(), "withdrawn at stop: {:?}", routes(&pair));
}

/// The SNMP amplification capture replayed from `b` to `target` (any address: the frames carry
/// `a`'s MAC, so `a`'s capture sees them).
fn replay_to(pair: &NetnsPair, target: &str) -> Child {
    let pcap = util::captures().expect("the attack captures (tests/data)").join("amp.UDP.snmp.src161.pcapng");
    let link = Command::new("ip").args(["-n", &pair.ns_a, "-j", "link", "show", &pair.veth_a]).output().unwrap();
    let v: Value = serde_json::from_slice(&link.stdout).unwrap();
    let mac = v[0]["address"].as_str().unwrap().to_string();
    Command::new("ip")
        .args(["netns", "exec", &pair.ns_b, "tcpreplay-edit", "-q", "--fixcsum"])
        .arg(format!("--intf1={}", pair.veth_b))
        .args(["--pps=10000", "--loop=20", &format!("--enet-dmac={mac}")])
        .arg(format!("--dstipmap=10.10.10.10/32:{target}/32"))
        .arg(pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpreplay-edit")
}

//! BGP (§10.2) against real speakers: the agent drives a real `gobgpd` in its own namespace,
//! which peers over the veth with a second real `gobgpd` in the other namespace acting as the
//! router (ipv4/ipv6 unicast and FlowSpec). Every check reads the ROUTER's RIB. Here: the helpers
//! and what every build does (limited mode, counters only: the blackhole past the floor);
//! `mitigation_bgp.rs` has the capture build's FlowSpec tests.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::util::{self, Home, NetnsPair};

pub const OURS: &str = "64512:42";
/// 64512:42 and 65535:666 as GoBGP prints communities in JSON.
pub const OURS_N: u64 = (64512 << 16) | 42;
pub const BLACKHOLE_N: u64 = (65535 << 16) | 666;

/// A daemon in its own process group, stopped (group and all) on drop.
pub struct Daemon(Child);

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

pub fn daemon(ns: &str, argv: &[&str], log: &Path) -> Daemon {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(argv).process_group(0);
    c.stdin(Stdio::null()).stdout(std::fs::File::create(log).unwrap()).stderr(Stdio::null());
    Daemon(c.spawn().unwrap_or_else(|e| panic!("{argv:?}: {e}")))
}

pub fn gobgpd_conf(asn: u32, me: &str, peer: &str, peer_as: u32) -> String {
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
pub struct Speakers {
    _speaker: Daemon,
    _router: Daemon,
}

pub fn speakers(pair: &NetnsPair, dir: &Path) -> Speakers {
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

pub fn gobgp(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip").args(["netns", "exec", ns, "gobgp"]).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn router(pair: &NetnsPair, args: &[&str]) -> String {
    gobgp(&pair.ns_b, args)
}

/// The router's RIB of `family`: NLRI text → its paths.
pub fn rib(pair: &NetnsPair, family: &str) -> serde_json::Map<String, Value> {
    let text = router(pair, &["global", "rib", "-a", family, "-j"]);
    match serde_json::from_str(text.trim()) {
        Ok(Value::Object(m)) => m,
        _ => Default::default(),
    }
}

pub fn communities(paths: &Value) -> Vec<u64> {
    let attrs = paths[0]["attrs"].as_array().cloned().unwrap_or_default();
    attrs
        .iter()
        .filter(|a| a["type"] == 8)
        .flat_map(|a| a["communities"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_u64())
        .collect()
}

/// Every route in the router's RIB (both families we use), as `family NLRI`.
pub fn routes(pair: &NetnsPair) -> Vec<String> {
    let mut out = Vec::new();
    for f in ["ipv4-flowspec", "ipv4"] {
        out.extend(rib(pair, f).keys().map(|k| format!("{f} {k}")));
    }
    out
}

/// Poll the router until `pred` holds; the wall time it first held.
pub fn until(pair: &NetnsPair, limit: Duration, pred: impl Fn(&[String]) -> bool) -> Option<SystemTime> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if pred(&routes(pair)) {
            return Some(SystemTime::now());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

pub fn bgp(extra: Value) -> Value {
    let mut v = json!({"engine": "gobgp", "community": OURS});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

pub fn after(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

#[test]
fn an_ordinary_user_in_limited_mode_blackholes_the_host_past_the_floor() {
    let _flood = util::flood_lock();
    let Some(pair) = NetnsPair::create() else { return };
    assert!(util::have("hping3"), "needs hping3");
    let home = Home::new();
    let _bgp = speakers(&pair, home.path());
    let cfg = home.write_config(json!({
        "interface": pair.veth_a,
        "sample_interval_ms": 200,
        "baseline_window_s": 10,
        "grace_period_s": 3,
        "holddown_ticks": 5,
        "cooldown_s": 0,
        // Counters only, in every build: no capture, no nftables, BGP all the same.
        "limited": true,
        "mitigation": {"mode": "enforce", "ttl_s": 1, "bgp": bgp(json!({"rtbh_min_pps": 1000}))},
    }));
    let log = home.path().join("stderr.log");
    std::fs::File::create(&log).unwrap();
    // An ordinary user: BGP needs no privilege in the agent (the speaker holds it).
    util::chown_tree(home.path(), 65534);
    let mut agent = Command::new("ip")
        .args(["netns", "exec", &pair.ns_a, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--"])
        .arg(util::bin())
        .args(["--no-update-check", "--config"])
        .arg(&cfg)
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::OpenOptions::new().append(true).open(&log).unwrap())
        .spawn()
        .expect("spawn agent");
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(10)).is_some(),
        "{}",
        stderr()
    );
    std::thread::sleep(Duration::from_millis(3500));
    let hole = format!("ipv4 {}/32", pair.addr_a);
    let mut flood = pair.udp_flood(3, 9);
    let open = util::wait_for_event(&home.events_file(), "incident_open", Duration::from_secs(5));
    let open = open.unwrap_or_else(|| panic!("no incident: {}", stderr()));
    assert_eq!(open["classified_by"], "counters");
    let seen = until(&pair, Duration::from_secs(3), |rs| rs.contains(&hole));
    let seen = seen.unwrap_or_else(|| panic!("no blackhole in the router's RIB: {:?}\n{}", routes(&pair), stderr()));
    let took = after(seen, util::event_time(&open));
    eprintln!("BGP (limited): blackhole in the router's RIB {} ms after the incident opened", took.as_millis());
    assert!(took <= Duration::from_secs(1), "{took:?}");
    let c = communities(&rib(&pair, "ipv4")[&format!("{}/32", pair.addr_a)]);
    assert!(c.contains(&BLACKHOLE_N) && c.contains(&OURS_N), "{c:?}");
    assert!(stderr().contains("nftables mitigation off"), "{}", stderr());
    let _ = flood.wait();
    let gone = until(&pair, Duration::from_secs(20), |rs| !rs.contains(&hole));
    assert!(gone.is_some(), "still announced after resolve + hold: {:?}", routes(&pair));
    let status = util::terminate(&mut agent, Duration::from_secs(8));
    assert!(status.is_some_and(|s| s.success()), "{}", stderr());
    let events = util::read_events(&home.events_file());
    let removed = events.iter().find(|e| e["event"] == "mitigation_remove" && e["backend"] == "bgp");
    assert_eq!(removed.map(|e| e["reason"].clone()), Some(json!("resolved")), "{events:#?}");
}

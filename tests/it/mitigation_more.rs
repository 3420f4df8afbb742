//! Mitigation (§10) choices and lifecycle with real floods: a single real source goes into the
//! timed set, an allowlisted one never does, a spoofed SYN flood gets the per-port rate limit
//! while an allowlisted client still connects, SIGKILL + restart leaves no stale or duplicate
//! rule, `max_rules` holds, and a hanging hook is killed without delaying detection.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::mitigation::{chain_rules, elements, hping, pair, start, table, until_table};
use crate::util::{self, Home};

fn udp_flood(pair: &util::NetnsPair, secs: u32) -> std::process::Child {
    hping(pair, secs, &["--udp", "-p", "9999"])
}

#[test]
fn a_single_real_source_goes_into_the_timed_set() {
    let _flood = util::flood_lock();
    let Some(pair) = pair() else { return };
    let r = start(&pair, Home::new(), json!({"mode": "enforce", "ttl_s": 30}));
    let mut flood = udp_flood(&pair, 3);
    let src = json!(pair.addr_b);
    let took = until_table(&pair.ns_a, Duration::from_secs(3), |t| elements(t, "block4").contains(&src));
    let _ = flood.wait();
    let took = took.unwrap_or_else(|| panic!("{} never in block4: {}", pair.addr_b, r.stderr()));
    eprintln!("single-source UDP flood: source in the timed set {} ms after onset", took.as_millis());
    let t = table(&pair.ns_a).unwrap();
    let items = t["nftables"].as_array().unwrap();
    let set = items.iter().find(|i| i["set"]["name"] == "block4").unwrap();
    let timeout = set["set"]["elem"][0]["elem"]["timeout"].as_u64();
    assert_eq!(timeout, Some(30), "kernel-side timeout on the element: {set}");
    let apply = r.wait("mitigation_apply", Duration::from_secs(1), |_| true);
    assert_eq!(apply["rules"][0]["rule"], format!("src:{}", pair.addr_b));
    r.stop();
}

#[test]
fn an_allowlisted_source_is_never_blocked() {
    let _flood = util::flood_lock();
    let Some(pair) = pair() else { return };
    let r = start(
        &pair,
        Home::new(),
        json!({"mode": "enforce", "ttl_s": 30, "allowlist": [format!("{}/32", pair.addr_b)]}),
    );
    let mut flood = udp_flood(&pair, 3);
    let src = json!(pair.addr_b);
    let blocked = until_table(&pair.ns_a, Duration::from_secs(4), |t| elements(t, "block4").contains(&src));
    let _ = flood.wait();
    assert_eq!(blocked, None, "the allowlisted source was put in the set");
    r.wait("incident_open", Duration::from_secs(1), |_| true);
    let events = r.stop();
    assert!(!events.iter().any(|e| e["event"] == "mitigation_apply"), "no rule for an allowlisted source: {events:?}");
}

/// A TCP listener on `port` in namespace `ns` (accepting nothing: the kernel completes handshakes).
fn listener(ns: &str, port: u16) -> std::process::Child {
    let code = format!(
        "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('0.0.0.0',{port}))\ns.listen(1024)\ntime.sleep(60)"
    );
    Command::new("ip").args(["netns", "exec", ns, "/usr/bin/python3", "-c", &code]).spawn().expect("listener")
}

fn connects(ns: &str, addr: &str, port: u16) -> bool {
    let script = format!("exec 3<>/dev/tcp/{addr}/{port}");
    Command::new("ip")
        .args(["netns", "exec", ns, "timeout", "5", "bash", "-c", &script])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn spoofed_syn_flood_is_rate_limited_while_an_allowlisted_client_connects() {
    let _flood = util::flood_lock();
    let Some(pair) = pair() else { return };
    let mut server = listener(&pair.ns_a, 80);
    let cfg =
        json!({"mode": "enforce", "ttl_s": 30, "syn_rate_pps": 200, "allowlist": [format!("{}/32", pair.addr_b)]});
    let r = start(&pair, Home::new(), cfg);
    let mut flood = hping(&pair, 5, &["-S", "--rand-source", "-p", "80"]);
    let has_limit = |t: &Value| chain_rules(t).iter().any(|x| x["comment"] == "syn:80");
    let took = until_table(&pair.ns_a, Duration::from_secs(3), has_limit);
    let took = took.unwrap_or_else(|| panic!("no SYN rate limit on port 80: {}", r.stderr()));
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let ok = connects(&pair.ns_b, &pair.addr_a, 80);
    let connect_ms = t0.elapsed().as_millis();
    let t = table(&pair.ns_a).unwrap();
    let _ = flood.wait();
    let _ = server.kill();
    let _ = server.wait();
    let rule = chain_rules(&t).into_iter().find(|x| x["comment"] == "syn:80").unwrap();
    let dropped = rule["expr"].as_array().unwrap().iter().find_map(|e| e["counter"]["packets"].as_u64()).unwrap();
    eprintln!("spoofed SYN flood: rate limit {} ms after onset, {dropped} SYNs dropped; allowlisted client connected in {connect_ms} ms", took.as_millis());
    assert!(ok, "the allowlisted client could not connect to port 80 during the flood");
    assert!(dropped > 1000, "the rate limit's counter shows the drops ({dropped})");
    let apply = r.wait("mitigation_apply", Duration::from_secs(1), |_| true);
    assert_eq!(apply["rules"][0]["action"], "syn_rate_limit");
    r.stop();
}

#[test]
fn sigkill_then_restart_adopts_live_rules_and_leaves_nothing_stale() {
    let _flood = util::flood_lock();
    let Some(pair) = pair() else { return };
    let mut r = start(&pair, Home::new(), json!({"mode": "enforce", "ttl_s": 20}));
    let mut flood = udp_flood(&pair, 2);
    let src = json!(pair.addr_b);
    assert!(
        until_table(&pair.ns_a, Duration::from_secs(3), |t| elements(t, "block4").contains(&src)).is_some(),
        "{}",
        r.stderr()
    );
    let _ = flood.wait();
    r.child.kill().unwrap();
    let _ = r.child.wait();
    // What else a crash can leave: an element about to expire and a rate-limit rule whose guard
    // element is long gone.
    let nft = |cmd: &str| {
        let ok = Command::new("ip").args(["netns", "exec", &pair.ns_a, "nft", cmd]).status().unwrap().success();
        assert!(ok, "nft {cmd}");
    };
    nft("add element inet ftagent block4 { 10.77.99.9 timeout 1s comment \"old\" }");
    nft("add rule inet ftagent pre tcp dport 81 tcp dport @syn_ports limit rate over 5/second counter drop comment \"syn:81\"");
    std::thread::sleep(Duration::from_millis(1500));
    let r2 = start(&pair, Home::new(), json!({"mode": "enforce", "ttl_s": 20}));
    let adopted = r2.wait("mitigation_apply", Duration::from_secs(3), |e| e["reason"] == "adopted");
    assert_eq!(adopted["rules"].as_array().unwrap().len(), 1, "{adopted}");
    assert_eq!(adopted["rules"][0]["rule"], format!("src:{}", pair.addr_b));
    let t = table(&pair.ns_a).expect("the live rule is still in force");
    assert_eq!(elements(&t, "block4"), vec![src], "live one adopted once, expired one gone");
    let rules = chain_rules(&t);
    assert_eq!(rules.len(), 8, "only the fixed rules, none twice: {rules:#?}");
    assert!(!rules.iter().any(|x| x["comment"] == "syn:81"), "stale rate limit removed");
    r2.stop();
}

#[test]
fn max_rules_is_honoured() {
    let _flood = util::flood_lock();
    let Some(pair) = pair() else { return };
    let r = start(&pair, Home::new(), json!({"mode": "enforce", "ttl_s": 30, "max_rules": 2}));
    let third = pair.addr_b.replace(".2", ".3");
    let fourth = pair.addr_b.replace(".2", ".4");
    let mut floods = vec![
        udp_flood(&pair, 3),
        hping(&pair, 3, &["--udp", "-p", "9999", "-a", &third]),
        hping(&pair, 3, &["--udp", "-p", "9999", "-a", &fourth]),
    ];
    let t0 = Instant::now();
    let mut most = 0;
    while t0.elapsed() < Duration::from_secs(4) {
        if let Some(t) = table(&pair.ns_a) {
            most = most.max(elements(&t, "block4").len());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for f in &mut floods {
        let _ = f.wait();
    }
    let open = r.wait("incident_open", Duration::from_secs(1), |_| true);
    let sources = open["top_src_ips"].as_array().map(|a| a.len()).unwrap_or(0);
    eprintln!("max_rules 2: {sources} sources in the incident, at most {most} rules in force");
    assert!(most >= 1, "some rule was applied: {}", r.stderr());
    assert!(most <= 2, "{most} rules in force with max_rules 2");
    assert!(r.stderr().contains("max_rules (2) reached"), "{}", r.stderr());
    r.stop();
}

#[test]
fn a_hanging_hook_is_killed_and_delays_no_detection() {
    let _flood = util::flood_lock();
    let Some(pair) = pair() else { return };
    let hook = json!({"argv": ["/bin/sleep", "60"], "timeout_s": 6});
    let r = start(&pair, Home::new(), json!({"mode": "enforce", "ttl_s": 2, "hook": hook}));
    let mut first = udp_flood(&pair, 2);
    let _ = first.wait();
    r.wait("incident_resolve", Duration::from_secs(6), |_| true);
    // The hook run for the first open still hangs (6 s timeout): a second flood now.
    let onset = SystemTime::now();
    let mut second = udp_flood(&pair, 2);
    let open = r.wait("incident_open", Duration::from_secs(3), |e| util::event_time(e) > onset);
    let _ = second.wait();
    let latency = util::event_time(&open).duration_since(onset).unwrap();
    eprintln!("hanging hook: second incident opened {} ms after onset", latency.as_millis());
    assert!(latency <= Duration::from_secs(1), "incident opened {latency:?} after onset");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !r.stderr().contains("killed after 6 s") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(r.stderr().contains("killed after 6 s (timeout)"), "{}", r.stderr());
    r.stop();
}

//! BGP mitigation (§10.2) end to end with real speakers: the capture build's agent drives a real
//! `gobgpd` in its own namespace, which peers over the veth with a second real `gobgpd` in the
//! other namespace acting as the router (ipv4-unicast and ipv4-flowspec). The floods are the SNMP
//! amplification capture replayed across the veth. Every check reads the ROUTER's RIB.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::bgp::{after, bgp, communities, rib, routes, speakers, until, BLACKHOLE_N, OURS_N};
use crate::mitigation::{pair, replay_snmp, start, start_with, Running};
use crate::util::{self, Home, NetnsPair};

#[test]
fn a_flood_puts_flowspec_and_the_blackhole_in_the_routers_rib_then_both_go_at_expiry() {
    let _flood = util::flood_lock();
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
    let _flood = util::flood_lock();
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
    let _flood = util::flood_lock();
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

pub fn bgp_events(r: &Running, name: &str) -> Vec<Value> {
    r.events().into_iter().filter(|e| e["event"] == name && e["backend"] == "bgp").collect()
}

fn flow_of(addr: &str) -> String {
    format!("ipv4-flowspec [destination: {addr}/32][protocol: ==udp][source-port: ==161]")
}

/// A flow collector's incident (§12) about another address of `flows.networks` reaches BGP
/// (whose allowed networks include `flows.networks`: `bgp.networks` is not set here) and never
/// nftables. softflowd (NetFlow v9) watches the agent's veth and exports to the agent on loopback;
/// hping3 sends SNMP-sized UDP from port 161 to an address nobody owns.
#[test]
fn a_flow_incident_about_another_address_is_announced_by_bgp_and_gets_no_nftables_rule() {
    if !util::have("softflowd") {
        util::skip("softflowd is needed (Debian package softflowd)");
        return;
    }
    let _flood = util::flood_lock();
    let Some(pair) = pair() else { return };
    let home = Home::new();
    let _bgp = speakers(&pair, home.path());
    let net = pair.addr_a.rsplit_once('.').unwrap().0.to_string();
    let target = format!("{net}.50");
    let mac = crate::flows_detect::mac_of(&pair.ns_a, &pair.veth_a).expect("veth mac");
    let neigh = ["-n", &pair.ns_b, "neigh", "replace", &target, "lladdr", &mac, "dev", &pair.veth_b];
    assert!(util::run(Command::new("ip").args(neigh)).status.success());
    let port = 20_000 + (std::process::id() % 20_000) as u16 + 1;
    // The host's own detector stays quiet (thresholds far above the flood): the incident is the
    // flow detector's alone, its host group's thresholds low enough for hping3.
    let group = json!({"name": "lab", "networks": [format!("{net}.0/24")], "min_pps_threshold": 1000,
        "min_bps_threshold": 1_000_000});
    let flows = json!({"listen": [format!("127.0.0.1:{port}")], "networks": [format!("{net}.0/24")],
        "exporters": ["127.0.0.1"], "hostgroups": [group]});
    let quiet = json!({"flows": flows, "min_pps_threshold": 1e9, "min_bps_threshold": 1e14,
        "min_protocol_pps_threshold": 1e9});
    let hook_log = home.path().join("hook-runs");
    let script = format!("cat >> {}; echo >> {}", hook_log.display(), hook_log.display());
    let hook = json!({"argv": ["/bin/sh", "-c", script], "timeout_s": 2});
    let m = json!({"mode": "enforce", "ttl_s": 600, "bgp": bgp(json!({})), "hook": hook});
    let r = start_with(&pair, home, m, quiet);
    let ctl = r.home.path().join("softflowd.ctl");
    let mut sfd = crate::flows_detect::softflowd(&pair.ns_a, &pair.veth_a, port, &ctl);
    std::thread::sleep(Duration::from_secs(2));
    let mut flood = Command::new("timeout")
        .args(["5", "ip", "netns", "exec", &pair.ns_b, "hping3", "--udp", "--flood", "-q", "-s", "161", "-k"])
        .args(["-p", "9", "-d", "400", &target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hping3");
    let open = r.wait("incident_open", Duration::from_secs(8), |e| {
        e["interface"] == "flows" && e["direction"] == "inbound" && e["target_ips"][0] == target.as_str()
    });
    let flow = flow_of(&target);
    let seen = until(&pair, Duration::from_secs(5), |rs| rs.contains(&flow));
    let _ = flood.wait();
    let _ = sfd.kill();
    let _ = sfd.wait();
    let seen =
        seen.unwrap_or_else(|| panic!("{flow} not in the router's RIB: {:?}\n{open:#}\n{}", routes(&pair), r.stderr()));
    eprintln!(
        "flows → BGP: in the router's RIB {} ms after the flow incident opened",
        after(seen, util::event_time(&open)).as_millis()
    );
    let id = open["incident_id"].clone();
    let apply = r.wait("mitigation_apply", Duration::from_secs(2), |e| e["backend"] == "bgp" && e["incident_id"] == id);
    assert!(apply["rules"].to_string().contains(&format!("flow:{target}/32:udp-from:161")), "{apply:#}");
    // nftables never acts on it: no apply of another backend for this incident, no rule naming it.
    let nft_apply: Vec<Value> = r
        .events()
        .into_iter()
        .filter(|e| e["event"] == "mitigation_apply" && e["backend"] != "bgp" && e["incident_id"] == id)
        .collect();
    assert!(nft_apply.is_empty(), "{nft_apply:#?}");
    let local: Vec<Value> =
        r.events().into_iter().filter(|e| e["event"] == "incident_open" && e["interface"] != "flows").collect();
    assert!(local.is_empty(), "the host's own detector was to stay quiet: {local:#?}");
    let table = Command::new("ip").args(["netns", "exec", &pair.ns_a, "nft", "list", "ruleset"]).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(!table.contains(&target), "an nftables rule names {target}:\n{table}");
    // The hook got the flow incident, with no nftables rule planned for it.
    let runs = || std::fs::read_to_string(&hook_log).unwrap_or_default();
    let t0 = std::time::Instant::now();
    while !runs().contains(id.as_str().unwrap()) && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let payload: Value = runs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|p| p["incident"]["incident_id"] == id)
        .unwrap_or_else(|| panic!("the hook never got the flow incident: {}\n{}", runs(), r.stderr()));
    assert_eq!(payload["event"], "incident_open", "{payload:#}");
    assert_eq!(payload["rules"], json!([]), "{payload:#}");
    r.stop();
    assert!(!routes(&pair).contains(&flow), "withdrawn at stop: {:?}", routes(&pair));
}

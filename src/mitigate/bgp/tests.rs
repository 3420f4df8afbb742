//! The BGP planner, the argv it becomes, the RIB reader, and dry-run against enforce: the argv a
//! dry run reports is the argv enforce runs (a real program records what it was run with).

use std::net::IpAddr;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::gobgp::{parse_rib, Gobgp};
use super::lifecycle::State;
use super::plan::{plan, Incident, Plan, Scope};
use super::route::{check_argv, Found, Match, Route, Speaker, Then};
use crate::config::bgp::{parse as parse_bgp, BgpConfig, Community};
use crate::config::mitigation::{Action, Cidr, MitigationConfig, Mode};
use crate::event::{Classification, Direction, Event, EventBody, IncidentOpen, IncidentResolve};
use crate::report::Outgoing;

fn bgp(extra: Value) -> BgpConfig {
    let mut v = json!({"community": "64512:42", "networks": ["192.0.2.0/24", "2001:db8::/48"]});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    parse_bgp(Some(&v)).unwrap().unwrap()
}

fn sp() -> Speaker {
    Speaker::new("127.0.0.1:50051", Community::parse("64512:42").unwrap(), Community::parse("65535:666").unwrap())
}

fn class(family: &str, subtype: Option<&str>, evidence: Value) -> Classification {
    let Value::Object(evidence) = evidence else { panic!() };
    Classification {
        attack_family: family.into(),
        attack_subtype: subtype.map(String::from),
        classified_by: "packets".into(),
        confidence: Some(90),
        evidence,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn amp(target: &str) -> Classification {
    class(
        "udp_flood",
        Some("snmp_amplification"),
        json!({"total_packets": 1000, "target_ips": [{"ip": target, "count": 990, "share": 0.99}],
               "top_src_ports": [{"port": 161, "count": 990}, {"port": 40000, "count": 10}]}),
    )
}

fn run(c: &Classification, pps: f64, b: &BgpConfig, allow: &[Cidr]) -> Plan {
    let own = [ip("198.51.100.7")];
    let scope = Scope { networks: &b.networks, own: &own, protected: allow };
    let inc = Incident { class: c, pps, bps: pps * 1000.0, host_targets: &own };
    plan(&inc, b, &MitigationConfig::default(), &scope, &sp())
}

#[test]
fn amplification_is_a_flowspec_discard_of_the_amplifier_port_to_the_target() {
    let p = run(&amp("192.0.2.10"), 1e4, &bgp(json!({})), &[]);
    assert_eq!(
        p.routes,
        [Route::Flow { target: ip("192.0.2.10"), what: Match::UdpFrom { src_port: 161 }, then: Then::Discard }]
    );
    let argv = p.routes[0].add_argv(&sp()).join(" ");
    assert_eq!(
        argv,
        "-u 127.0.0.1 -p 50051 global rib -a ipv4-flowspec add match destination 192.0.2.10/32 protocol udp \
         source-port ==161 then discard community 64512:42"
    );
    assert!(p.refused.is_empty());
}

#[test]
fn the_ladder_puts_the_blackhole_last_and_only_over_the_floor() {
    let b = bgp(json!({"rtbh_min_pps": 50000}));
    assert!(run(&amp("192.0.2.10"), 49_999.0, &b, &[]).routes.iter().all(|r| !matches!(r, Route::Blackhole { .. })));
    let p = run(&amp("192.0.2.10"), 50_000.0, &b, &[]);
    assert_eq!(p.routes.len(), 2);
    assert!(matches!(p.routes[0], Route::Flow { .. }));
    assert_eq!(p.routes[1], Route::Blackhole { target: ip("192.0.2.10") });
    assert_eq!(
        p.routes[1].add_argv(&sp()).join(" "),
        "-u 127.0.0.1 -p 50051 global rib -a ipv4 add 192.0.2.10/32 community 65535:666,64512:42"
    );
    let bps = bgp(json!({"rtbh_min_bps": 1e9}));
    assert_eq!(run(&amp("192.0.2.10"), 1e6, &bps, &[]).routes.len(), 2, "1e9 bps floor reached");
    let no_flowspec = bgp(json!({"rtbh_min_pps": 1, "flowspec": false}));
    assert_eq!(
        run(&amp("192.0.2.10"), 10.0, &no_flowspec, &[]).routes,
        [Route::Blackhole { target: ip("192.0.2.10") }]
    );
}

#[test]
fn syn_fragment_and_icmp_floods_get_their_flowspec_rules() {
    let b = bgp(json!({}));
    let syn = class(
        "syn_flood",
        None,
        json!({"total_packets": 100, "target_ips": [{"ip": "192.0.2.9", "count": 100}],
               "top_dst_ports": [{"port": 443, "count": 95}, {"port": 22, "count": 5}]}),
    );
    let p = run(&syn, 1e4, &b, &[]);
    assert_eq!(
        p.routes,
        [Route::Flow {
            target: ip("192.0.2.9"),
            what: Match::Syn { dst_port: Some(443) },
            then: Then::RateLimit { bytes_per_s: 1000 * 64 }
        }]
    );
    assert!(p.routes[0]
        .add_argv(&sp())
        .join(" ")
        .contains("protocol tcp destination-port ==443 tcp-flags =S &!=A then rate-limit 64000"));
    let frag = class("fragment_flood", None, json!({"target_ips": [{"ip": "2001:db8::5", "share": 1.0}]}));
    let p = run(&frag, 1e4, &b, &[]);
    assert_eq!(p.routes[0].family(), "ipv6-flowspec");
    assert!(p.routes[0]
        .add_argv(&sp())
        .join(" ")
        .contains("destination 2001:db8::5/128 fragment is-fragment then discard"));
    let icmp6 = class("icmp_flood", None, json!({"target_ips": [{"ip": "2001:db8::5", "share": 1.0}]}));
    let argv = run(&icmp6, 1e4, &b, &[]).routes[0].add_argv(&sp()).join(" ");
    assert!(argv.contains("protocol 58 then rate-limit 12800"), "ICMPv6 by number: {argv}");
}

#[test]
fn multi_vector_attacks_get_a_rule_per_strong_vector_most_specific_first() {
    let c = class(
        "multi_vector",
        None,
        json!({"total_packets": 100, "target_ips": [{"ip": "192.0.2.3", "share": 1.0}],
               "top_src_ports": [{"port": 53, "count": 50}],
               "vectors": [{"family": "icmp_flood", "share": 0.4}, {"family": "udp_flood", "subtype": "dns_amplification", "share": 0.5},
                           {"family": "fragment_flood", "share": 0.1}]}),
    );
    let keys: Vec<String> = run(&c, 1.0, &bgp(json!({})), &[]).routes.iter().map(|r| r.key()).collect();
    assert_eq!(keys, ["flow:192.0.2.3/32:udp-from:53", "flow:192.0.2.3/32:icmp"]);
}

#[test]
fn counter_only_incidents_target_the_host_and_get_only_what_the_operator_asked_for() {
    let mut c = class("icmp_flood", None, json!({}));
    c.classified_by = "counters".into();
    let b = bgp(json!({"rtbh_min_pps": 100}));
    let p = run(&c, 10.0, &b, &[]);
    assert!(p.routes.is_empty() && p.refused.is_empty(), "{p:?}");
    assert_eq!(run(&c, 100.0, &b, &[]).routes, [Route::Blackhole { target: ip("198.51.100.7") }]);
    let own = [ip("198.51.100.7")];
    let scope = Scope { networks: &b.networks, own: &own, protected: &[] };
    let inc = Incident { class: &c, pps: 1.0, bps: 1.0, host_targets: &own };
    let m = MitigationConfig { actions: vec![("icmp_flood".into(), Action::IcmpRateLimit)], ..Default::default() };
    let p = plan(&inc, &b, &m, &scope, &sp());
    assert_eq!(p.routes[0].key(), "flow:198.51.100.7/32:icmp");
}

#[test]
fn never_outside_the_networks_never_protected_never_a_non_unicast_target() {
    let b = bgp(json!({"rtbh_min_pps": 1}));
    for (target, why) in [
        ("203.0.113.5", "outside the configured networks"),
        ("0.0.0.0", "not a unicast"),
        ("224.0.0.1", "not a unicast"),
        ("127.0.0.1", "not a unicast"),
        ("fe80::1", "not a unicast"),
        ("192.0.2.53", "protected"),
    ] {
        let p = run(&amp(target), 1e9, &b, &[Cidr::parse("192.0.2.53").unwrap()]);
        assert!(p.routes.is_empty(), "{target}: {p:?}");
        assert_eq!(p.refused.len(), 1, "{target}");
        assert!(p.refused[0].reason.contains(why), "{target}: {}", p.refused[0].reason);
    }
    // The host's own address is always in scope.
    assert_eq!(run(&amp("198.51.100.7"), 1e9, &b, &[]).routes.len(), 2);
}

#[test]
fn the_argv_check_refuses_anything_but_one_address() {
    let ok = |s: &str| check_argv(&s.split(' ').map(String::from).collect::<Vec<_>>());
    assert!(ok("global rib -a ipv4 add 192.0.2.1/32 community 65535:666").is_ok());
    assert!(ok("global rib -a ipv6 add 2001:db8::1/128").is_ok());
    for bad in [
        "global rib -a ipv4 add 0.0.0.0/0 community 65535:666",
        "global rib -a ipv4 add 192.0.2.0/24",
        "global rib -a ipv6 add ::/0",
        "global rib -a ipv6 add 2001:db8::/64",
        "global rib -a ipv4 add 0.0.0.0/32",
        "global rib -a ipv4 add",
    ] {
        assert!(ok(bad).is_err(), "{bad}");
    }
}

#[test]
fn our_routes_are_found_in_the_rib_by_our_community_and_withdrawn_by_their_own_text() {
    // Verbatim from `gobgp global rib -a ipv4-flowspec -j` (GoBGP 3.10), a second path added
    // without our community.
    let text = r#"{"[destination: 10.0.0.1/32][protocol: ==udp][source-port: ==161]":[{"nlri":{"value":[]},"age":1796531655,"best":true,"attrs":[{"type":1,"value":2},{"type":8,"communities":[4227858474]},{"type":16,"value":[{"type":128,"subtype":6,"as":0,"rate":0}]}],"stale":false}],
                   "[destination: 10.0.0.2/32][protocol: ==tcp][tcp-flags: =S&!=A]":[{"attrs":[{"type":8,"communities":[4227858474]}]}],
                   "[destination: 10.0.0.3/32]":[{"attrs":[{"type":8,"communities":[4227858433]}]}]}"#;
    let ours = Community::parse("64512:42").unwrap();
    let found = parse_rib(text, "ipv4-flowspec", ours).unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(
        found[0].del_argv(&sp()).join(" "),
        "-u 127.0.0.1 -p 50051 global rib -a ipv4-flowspec del match destination 10.0.0.1/32 protocol ==udp source-port ==161"
    );
    assert!(found[1].del_argv(&sp()).join(" ").ends_with("tcp-flags =S &!=A"));
    let v6 = Found { family: "ipv6-flowspec".into(), nlri: "[destination: 2001:db8::1/128/0][protocol: ==58]".into() };
    assert!(v6.del_argv(&sp()).join(" ").ends_with("match destination 2001:db8::1/128 0 protocol ==58"));
    assert!(parse_rib("", "ipv4", ours).unwrap().is_empty());
    assert!(parse_rib("null", "ipv4", ours).unwrap().is_empty());
    assert!(parse_rib("{not json", "ipv4", ours).is_err());
    assert!(parse_rib("[1]", "ipv4", ours).is_err());
}

fn open(id: &str, c: Classification) -> Event {
    open_at(id, c, 1e5)
}

fn open_at(id: &str, c: Classification, pps: f64) -> Event {
    Event::new(
        SystemTime::now(),
        EventBody::IncidentOpen(IncidentOpen {
            incident_id: id.into(),
            direction: Direction::Inbound,
            previous_incident_id: None,
            interface: "eth0".into(),
            pps,
            bps: 1e8,
            dropped_pps: 0.0,
            threshold_pps: 1.0,
            threshold_bps: 1.0,
            baseline_pps: 1.0,
            severity: "high".into(),
            trigger: "pps".into(),
            protocol: None,
            test: false,
            started_at: String::new(),
            class: c,
        }),
    )
}

fn resolve(id: &str) -> Event {
    Event::new(
        SystemTime::now(),
        EventBody::IncidentResolve(IncidentResolve {
            incident_id: id.into(),
            direction: Direction::Inbound,
            peak_pps: 1.0,
            peak_bps: 1.0,
            duration_s: 1.0,
            severity: "high".into(),
            reason: "traffic_normal".into(),
            test: false,
            pcap_file: None,
            class: Classification::unknown(),
        }),
    )
}

fn events(rx: &mpsc::Receiver<Outgoing>) -> Vec<Value> {
    rx.try_iter()
        .filter_map(|o| match o {
            Outgoing::Event(e) => Some(serde_json::to_value(&e).unwrap()),
            _ => None,
        })
        .collect()
}

/// A real program as the client: it appends its argv, one line per run, to a file.
fn recorder(dir: &std::path::Path) -> String {
    let script = dir.join("gobgp");
    let log = dir.join("argv.log");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$0 $*\" >> {}\n", log.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script.to_string_lossy().into_owned()
}

fn state(mode: Mode, client: &str) -> (State, mpsc::Receiver<Outgoing>) {
    let mut m = MitigationConfig { mode, ttl: Duration::from_secs(30), ..Default::default() };
    let b = bgp(json!({"rtbh_min_pps": 1000, "client": client, "max_routes": 2}));
    m.bgp = Some(b.clone());
    let driver = (mode == Mode::Enforce).then(|| Gobgp::new(&b));
    let (tx, rx) = mpsc::sync_channel(64);
    let own = vec![("eth0".to_string(), ip("198.51.100.7"))];
    (State::new(m, b, driver, own, vec![Cidr::parse("192.0.2.53").unwrap()], tx), rx)
}

#[test]
fn dry_run_reports_exactly_the_argv_enforce_runs() {
    let dir = std::env::temp_dir().join(format!("ftagent-bgp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let client = recorder(&dir);
    let now = SystemTime::now();
    let (mut dry, dry_rx) = state(Mode::DryRun, &client);
    let (mut enforce, enforce_rx) = state(Mode::Enforce, &client);
    for s in [&mut dry, &mut enforce] {
        s.on_event(&open("inc-1", amp("192.0.2.10")), now);
    }
    let ran: Vec<String> = std::fs::read_to_string(dir.join("argv.log")).unwrap().lines().map(String::from).collect();
    let (dry_ev, enforce_ev) = (events(&dry_rx), events(&enforce_rx));
    let argv = |evs: &[Value]| -> Vec<String> {
        evs[0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["argv"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(argv(&dry_ev), ran, "the dry run reports what enforce ran, word for word");
    assert_eq!(argv(&enforce_ev), ran);
    assert_eq!(ran.len(), 2, "FlowSpec then blackhole: {ran:?}");
    assert!(ran[0].contains("ipv4-flowspec add") && ran[1].contains("ipv4 add 192.0.2.10/32"));
    assert_eq!((dry_ev[0]["mode"].as_str(), enforce_ev[0]["mode"].as_str()), (Some("dry_run"), Some("enforce")));
    assert_eq!(enforce_ev[0]["backend"], "bgp");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn routes_live_until_resolve_plus_hold_and_refusals_are_reported_once() {
    let (mut s, rx) = state(Mode::DryRun, "gobgp");
    let t0 = SystemTime::now();
    let two = class(
        "udp_flood",
        Some("dns_amplification"),
        json!({"total_packets": 100, "top_src_ports": [{"port": 53, "count": 100}],
               "target_ips": [{"ip": "192.0.2.10", "share": 0.5}, {"ip": "203.0.113.1", "share": 0.3}, {"ip": "192.0.2.53", "share": 0.2}]}),
    );
    s.on_event(&open("inc-1", two.clone()), t0);
    let ev = events(&rx);
    assert_eq!(ev.len(), 1);
    assert_eq!(s.active().len(), 2, "max_routes 2: FlowSpec and blackhole of 192.0.2.10");
    let refused: Vec<&str> =
        ev[0]["refused"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().any(|r| r.contains("outside the configured networks")), "{refused:?}");
    assert!(refused.iter().any(|r| r.contains("protected")), "{refused:?}");
    // A third route does not fit under max_routes.
    let syn = class("syn_flood", None, json!({"target_ips": [{"ip": "192.0.2.11", "share": 1.0}]}));
    s.on_event(&open("inc-2", syn.clone()), t0);
    let ev = events(&rx);
    assert!(ev[0]["rules"].as_array().unwrap().is_empty());
    assert!(ev[0]["refused"][0]["reason"].as_str().unwrap().contains("max_routes (2)"), "{ev:?}");
    s.on_event(&open("inc-2", syn), t0);
    assert!(events(&rx).is_empty(), "a refusal is reported once per incident");
    // Live and updated: renewed, not withdrawn, past the TTL.
    s.on_event(&open("inc-1", two), t0 + Duration::from_secs(14));
    s.tick(t0 + Duration::from_secs(16));
    assert_eq!(s.active().len(), 2);
    assert!(events(&rx).iter().any(|e| e["reason"] == "renewed"));
    // Silent for longer than RECENT: no renewal; the routes run out at their TTL.
    s.tick(t0 + Duration::from_secs(40));
    s.tick(t0 + Duration::from_secs(47));
    assert_eq!(s.active().len(), 0, "a live incident that stopped updating loses its routes at TTL");
    let ev = events(&rx);
    assert_eq!(ev.last().unwrap()["event"], "mitigation_remove");
    assert_eq!(ev.last().unwrap()["reason"], "expired");
    // Resolve: withdrawn at resolve + hold.
    s.on_event(&open("inc-3", amp("192.0.2.20")), t0 + Duration::from_secs(50));
    s.on_event(&resolve("inc-3"), t0 + Duration::from_secs(51));
    s.tick(t0 + Duration::from_secs(80));
    assert_eq!(s.active().len(), 2, "held until resolve + ttl");
    s.tick(t0 + Duration::from_secs(81));
    assert!(s.active().is_empty());
    assert_eq!(events(&rx).last().unwrap()["reason"], "resolved");
}

#[test]
fn stop_withdraws_everything() {
    let (mut s, rx) = state(Mode::DryRun, "gobgp");
    s.on_event(&open("inc-1", amp("192.0.2.10")), SystemTime::now());
    s.stop();
    let ev = events(&rx);
    let last = ev.last().unwrap();
    assert_eq!((last["event"].as_str(), last["reason"].as_str()), (Some("mitigation_remove"), Some("agent_stopped")));
    assert_eq!(last["rules"].as_array().unwrap().len(), 2);
    assert!(s.active().is_empty());
}

#[test]
fn a_young_incident_is_planned_again_from_the_capture_each_tick() {
    let (mut s, rx) = state(Mode::DryRun, "gobgp");
    s.set_classify(Some(std::sync::Arc::new(|| Some(amp("192.0.2.10")))));
    let t0 = SystemTime::now();
    let thin = class("udp_flood", None, json!({"target_ips": [{"ip": "192.0.2.10", "share": 1.0}]}));
    s.on_event(&open_at("inc-1", thin, 10.0), t0);
    assert!(s.active().is_empty() && events(&rx).is_empty(), "nothing precise yet, under the RTBH floor");
    s.tick(t0 + Duration::from_millis(100));
    assert_eq!(s.active().len(), 1);
    assert_eq!(s.active()[0].route.key(), "flow:192.0.2.10/32:udp-from:161");
    let ev = events(&rx);
    assert_eq!(ev[0]["reason"], "reclassified");
    s.tick(t0 + Duration::from_millis(200));
    assert!(events(&rx).is_empty(), "nothing new to announce");
    // Past its first seconds the incident's own updates carry the classification.
    s.set_classify(Some(std::sync::Arc::new(|| Some(amp("192.0.2.11")))));
    s.tick(t0 + Duration::from_secs(6));
    assert_eq!(s.active().len(), 1, "no re-plan from the capture after the first update is due");
}

#[test]
fn the_blackhole_waits_briefly_for_the_flowspec_rule_of_its_target() {
    let thin = || class("udp_flood", None, json!({"target_ips": [{"ip": "192.0.2.10", "share": 1.0}]}));
    let t0 = SystemTime::now();
    // The capture names the amplifier one tick later: FlowSpec and blackhole go together, in order.
    let (mut s, rx) = state(Mode::DryRun, "gobgp");
    s.set_classify(Some(std::sync::Arc::new(|| Some(amp("192.0.2.10")))));
    s.on_event(&open_at("inc-1", thin(), 1e5), t0);
    assert!(s.active().is_empty(), "no blackhole before the capture had its chance");
    s.tick(t0 + Duration::from_millis(100));
    let ev = events(&rx);
    let actions: Vec<&str> = ev[0]["rules"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["discard", "blackhole"]);
    // Nothing more precise comes: the blackhole goes alone once the wait is over.
    let (mut s, rx) = state(Mode::DryRun, "gobgp");
    s.set_classify(Some(std::sync::Arc::new(move || Some(thin()))));
    s.on_event(&open_at("inc-1", thin(), 1e5), t0);
    s.tick(t0 + Duration::from_millis(400));
    assert!(s.active().is_empty());
    s.tick(t0 + Duration::from_millis(600));
    assert_eq!(s.active().len(), 1);
    assert_eq!(events(&rx)[0]["rules"][0]["action"], "blackhole");
}

#[test]
fn a_flow_collector_incident_gets_flowspec_for_its_addresses_inside_the_networks() {
    // As the flow detector writes them: `scope`, `target_ips` as plain addresses, `classified_by: flows`.
    let mut c = class(
        "syn_flood",
        None,
        json!({"scope": "prefix", "target_ips": ["192.0.2.20", "192.0.2.21", "203.0.113.9"], "source": "sflow"}),
    );
    c.classified_by = "flows".into();
    let p = run(&c, 1e4, &bgp(json!({})), &[]);
    let keys: Vec<String> = p.routes.iter().map(|r| r.key()).collect();
    assert_eq!(keys, ["flow:192.0.2.20/32:syn", "flow:192.0.2.21/32:syn"]);
    assert_eq!(p.refused.len(), 1);
    assert!(p.refused[0].reason.contains("outside the configured networks"), "{:?}", p.refused);
}

#[test]
fn allowed_networks_are_bgp_and_flows_networks_each_once() {
    use crate::config::flows::Prefix;
    let b = bgp(json!({}));
    let flows = [Prefix::parse("198.51.100.0/24").unwrap(), Prefix::parse("192.0.2.0/24").unwrap()];
    let got: Vec<String> = super::allowed_networks(&b.networks, &flows).iter().map(|c| c.to_string()).collect();
    assert_eq!(got, ["192.0.2.0/24", "2001:db8::/48", "198.51.100.0/24"]);
    let only_flows: Vec<String> = super::allowed_networks(&[], &flows[..1]).iter().map(|c| c.to_string()).collect();
    assert_eq!(only_flows, ["198.51.100.0/24"]);
}

//! The `mitigation` object: defaults, every key, errors naming the key, CIDRs, host allowlist.

use super::*;
use serde_json::json;

fn p(v: Value) -> Result<MitigationConfig, KeyError> {
    parse(Some(&v))
}

#[test]
fn absent_is_off_with_documented_defaults() {
    let c = parse(None).unwrap();
    assert_eq!(c.mode, Mode::Off);
    assert_eq!(c.ttl, Duration::from_secs(600));
    assert_eq!(c.max_rules, 200);
    assert!(c.allowlist.is_empty() && c.actions.is_empty() && c.hook.is_none());
}

#[test]
fn every_key_is_read() {
    let c = p(
        json!({"mode": "enforce", "ttl_s": 5, "max_rules": 3, "allowlist": ["10.1.2.3/8", "2001:db8::1", "192.0.2.7"],
        "actions": {"udp_flood": "block_sources", "icmp_flood": "none"}, "syn_rate_pps": 50, "icmp_rate_pps": 7,
        "hook": {"argv": ["/usr/bin/true", "x"], "timeout_s": 2}}),
    )
    .unwrap();
    assert_eq!(c.mode, Mode::Enforce);
    assert_eq!((c.ttl, c.max_rules, c.syn_rate_pps, c.icmp_rate_pps), (Duration::from_secs(5), 3, 50, 7));
    let shown: Vec<String> = c.allowlist.iter().map(|c| c.to_string()).collect();
    assert_eq!(shown, ["10.0.0.0/8", "2001:db8::1/128", "192.0.2.7/32"]);
    assert_eq!(c.actions, vec![("icmp_flood".into(), Action::None), ("udp_flood".into(), Action::BlockSources)]);
    assert_eq!(c.hook, Some(Hook { argv: vec!["/usr/bin/true".into(), "x".into()], timeout: Duration::from_secs(2) }));
    assert_eq!(p(json!({"mode": "dry_run"})).unwrap().mode, Mode::DryRun);
}

#[test]
fn bad_values_name_the_key_and_what_is_accepted() {
    let cases = [
        (json!({"mode": "on"}), "mitigation.mode", "enforce"),
        (json!({"ttl_s": 0}), "mitigation.ttl_s", "1..=86400"),
        (json!({"max_rules": -1}), "mitigation.max_rules", "1..=10000"),
        (json!({"allowlist": ["10.0.0.0/33"]}), "mitigation.allowlist", "CIDR"),
        (json!({"allowlist": "10.0.0.0/8"}), "mitigation.allowlist", "array"),
        (json!({"actions": {"syn_flood": "nuke"}}), "mitigation.actions.syn_flood", "syn_rate_limit"),
        (json!({"hook": {"argv": "rm -rf /"}}), "mitigation.hook.argv", "no shell"),
        (json!({"hook": {"argv": []}}), "mitigation.hook.argv", "non-empty"),
        (json!({"hook": {"argv": ["x"], "timeout_s": 0}}), "mitigation.hook.timeout_s", "1..=3600"),
        (json!({"hook": {"argv": ["x"], "shell": true}}), "mitigation.hook.shell", "argv, timeout_s"),
        (json!({"ttl": 5}), "mitigation.ttl", "ttl_s"),
    ];
    for (v, key, hint) in cases {
        let (k, msg) = p(v.clone()).unwrap_err();
        assert_eq!(k, key, "{v}");
        assert!(msg.contains(hint), "{v}: {msg}");
    }
    assert_eq!(p(json!(true)).unwrap_err().0, "mitigation");
}

#[test]
fn cidr_matching_covers_v4_v6_and_mapped_addresses() {
    let net = Cidr::parse("10.77.0.0/16").unwrap();
    assert!(net.contains("10.77.3.2".parse().unwrap()));
    assert!(!net.contains("10.78.0.1".parse().unwrap()));
    assert!(net.contains("::ffff:10.77.1.1".parse().unwrap()));
    let v6 = Cidr::parse("2001:db8::/32").unwrap();
    assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
    assert!(!v6.contains("10.77.0.1".parse().unwrap()));
    assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("203.0.113.9".parse().unwrap()));
}

#[test]
fn gateway_and_resolvers_come_from_real_proc_and_resolv_text() {
    // /proc/net/route as the kernel prints it: default route via 192.168.2.1.
    let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 enp0s31f6\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                 enp0s31f6\t0002A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n";
    let resolv = "# generated\nnameserver 10.255.255.53\nnameserver fe80::1%eth0\nsearch example.org\n";
    let got: Vec<String> = host_allowlist(route, resolv).iter().map(|c| c.to_string()).collect();
    assert_eq!(got, ["192.168.2.1/32", "10.255.255.53/32", "fe80::1/128"]);
}

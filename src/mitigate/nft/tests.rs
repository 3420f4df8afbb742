//! The batches as nft reads them: shapes checked as data, then applied to a real nftables in a
//! network namespace of their own (root; CI runs as root) and read back.

use std::process::Command;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn every_rule() -> Vec<Applied> {
    [
        Rule::DropAmplifier { target: ip("10.9.9.9"), src_port: 161 },
        Rule::DropAmplifier { target: ip("2001:db8::9"), src_port: 53 },
        Rule::BlockSource { source: ip("192.0.2.7") },
        Rule::BlockSource { source: ip("2001:db8::7") },
        Rule::SynRateLimit { port: Some(80), pps: 500 },
        Rule::SynRateLimit { port: None, pps: 900 },
        Rule::IcmpRateLimit { v6: false, pps: 100 },
        Rule::IcmpRateLimit { v6: true, pps: 50 },
        Rule::DropFragments { target: ip("10.9.9.9") },
        Rule::DropFragments { target: ip("2001:db8::9") },
    ]
    .into_iter()
    .map(|rule| Applied { rule, incident: "inc-1".into(), timeout_s: 60 })
    .collect()
}

#[test]
fn a_rule_is_a_timed_element_with_its_incident() {
    let a = Applied {
        rule: Rule::DropAmplifier { target: ip("10.9.9.9"), src_port: 161 },
        incident: "i".into(),
        timeout_s: 30,
    };
    let cmds = rule_commands(&a);
    assert_eq!(
        cmds,
        vec![json!({"add": {"element": {"family": "inet", "table": "ftagent", "name": "amp4",
            "elem": [{"elem": {"val": {"concat": ["10.9.9.9", 161]}, "timeout": 30, "comment": "i"}}]}}})]
    );
    let rl = rule_commands(&Applied {
        rule: Rule::SynRateLimit { port: Some(80), pps: 5 },
        incident: "i".into(),
        timeout_s: 30,
    });
    assert_eq!(rl.len(), 2, "guard element and chain rule");
    assert_eq!(rl[1]["add"]["rule"]["comment"], "syn:80");
}

#[test]
fn rebuild_touches_only_our_table_and_merges_nested_allowlist_blocks() {
    let allow =
        [Cidr::parse("10.0.0.0/8").unwrap(), Cidr::parse("10.1.2.3").unwrap(), Cidr::parse("2001:db8::/32").unwrap()];
    assert_eq!(normalise(&allow), vec![allow[0], allow[2]]);
    let b = rebuild(&allow, &every_rule());
    for c in &b {
        let (_, obj) = c.as_object().unwrap().iter().next().unwrap();
        let (_, inner) = obj.as_object().unwrap().iter().next().unwrap();
        assert_eq!(inner["family"], "inet", "{c}");
        let table = inner.get("table").or_else(|| inner.get("name")).unwrap();
        assert!(table == "ftagent" || inner.get("table").is_some_and(|t| t == "ftagent"), "{c}");
    }
}

/// A network namespace for one test, deleted on drop; None (and why) when not root.
struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Option<Ns> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            crate::util::skip::skip("nftables tests need root and network namespaces");
            return None;
        }
        let name = format!("ftut-{}-{tag}", std::process::id());
        let ok = Command::new("ip").args(["netns", "add", &name]).status().is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name}");
        Some(Ns(name))
    }

    fn nft(&self) -> Nft {
        Nft {
            argv: ["ip", "netns", "exec", &self.0, "nft"].map(String::from).to_vec(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn every_rule_applies_to_real_nftables_and_reads_back() {
    let Some(ns) = Ns::new("all") else { return };
    let nft = ns.nft();
    assert_eq!(nft.list().unwrap(), None, "no table before");
    let allow = [Cidr::parse("10.255.255.53").unwrap(), Cidr::parse("fe80::/10").unwrap()];
    nft.apply(rebuild(&allow, &every_rule())).unwrap();
    let listing = parse_listing(&nft.list().unwrap().unwrap(), 1, 1).unwrap();
    let mut got: Vec<Rule> = listing.rules.iter().map(|l| l.rule).collect();
    let mut want: Vec<Rule> = every_rule().into_iter().map(|a| a.rule).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "rate limits read back with their configured rates");
    assert!(listing.rules.iter().all(|l| l.incident == "inc-1" && (55..=60).contains(&l.expires_s)), "{listing:?}");
    assert_eq!(listing.handles.len(), 4, "one chain rule per rate limit");
    // Rebuilding again gives the same table, not twice the rules.
    nft.apply(rebuild(&allow, &every_rule())).unwrap();
    let again = parse_listing(&nft.list().unwrap().unwrap(), 1, 1).unwrap();
    assert_eq!((again.rules.len(), again.chain_rules), (listing.rules.len(), listing.chain_rules));
}

#[test]
fn renew_and_remove_work_whether_or_not_the_element_is_still_there() {
    let Some(ns) = Ns::new("life") else { return };
    let nft = ns.nft();
    let rules = every_rule();
    nft.apply(rebuild(&[], &rules)).unwrap();
    let mut a = rules[0].clone();
    a.timeout_s = 3000;
    nft.apply(renew_commands(&a)).unwrap();
    let l = parse_listing(&nft.list().unwrap().unwrap(), 1, 1).unwrap();
    let renewed = l.rules.iter().find(|x| x.rule == a.rule).unwrap();
    assert!(renewed.expires_s > 2900, "{renewed:?}");
    for _ in 0..2 {
        nft.apply(remove_commands(&a.rule, &l.handles)).unwrap();
    }
    let syn = rules.iter().find(|x| matches!(x.rule, Rule::SynRateLimit { port: Some(_), .. })).unwrap();
    nft.apply(remove_commands(&syn.rule, &l.handles)).unwrap();
    let after = parse_listing(&nft.list().unwrap().unwrap(), 1, 1).unwrap();
    assert_eq!(after.rules.len(), rules.len() - 2);
    assert!(!after.handles.contains_key("syn:80"));
    // Renewing an element that is gone puts it back.
    nft.apply(renew_commands(&a)).unwrap();
    assert!(parse_listing(&nft.list().unwrap().unwrap(), 1, 1).unwrap().rules.iter().any(|x| x.rule == a.rule));
    for _ in 0..2 {
        nft.apply(delete_table()).unwrap();
    }
    assert_eq!(nft.list().unwrap(), None);
}

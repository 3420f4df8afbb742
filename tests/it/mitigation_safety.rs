//! Mitigation safety (§10.1, §9 "mitigation safety") against real nftables: forged floods that
//! name the gateway, a resolver, the API, the host itself and an established peer as sources
//! block none of them, and an established session keeps working through the rule; amplification
//! rules for source ports 53 and 123 leave the host's own DNS and NTP working (conntrack first);
//! a SYN rate limit under a forged SYN flood leaves a real client connecting; a rule whose
//! resolve never reaches the mitigation worker is gone by its kernel-side timeout.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::mitigation::{elements, pair, replay_snmp, start, start_with, table, udp_and_rx, until_table, Running};
use crate::util::{self, Home, NetnsPair};

/// Run `f` on a thread inside namespace `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        let file = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns file");
        // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread.
        assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {ns}");
        f()
    })
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("ip");
    assert!(st.success(), "ip {args:?}");
}

/// The /24 prefix of the pair (`10.77.N`).
fn net(pair: &NetnsPair) -> String {
    pair.addr_a.rsplit_once('.').unwrap().0.to_string()
}

/// `/etc/netns/<ns>/resolv.conf`: what `ip netns exec` shows the agent as /etc/resolv.conf.
struct Resolv(std::path::PathBuf);

impl Resolv {
    fn new(ns: &str, text: &str) -> Self {
        let dir = std::path::PathBuf::from(format!("/etc/netns/{ns}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("resolv.conf"), text).unwrap();
        Resolv(dir)
    }
}

impl Drop for Resolv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// hping3 from `b` with a forged source, `pps` per second, for `secs` seconds.
fn forged(pair: &NetnsPair, secs: u32, pps: u32, args: &[&str]) -> Child {
    Command::new("timeout")
        .args([&secs.to_string(), "ip", "netns", "exec", &pair.ns_b, "hping3", "-q", "-i"])
        .arg(format!("u{}", 1_000_000 / pps))
        .args(args)
        .arg(&pair.addr_a)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hping3")
}

/// A TCP echo session from `b` to `a`:7000, opened now; `rounds` counts (ok, failed) 8-byte
/// round trips, one every 100 ms, with their times, until `stop`.
struct Session {
    stop: Arc<AtomicBool>,
    client: Option<std::thread::JoinHandle<Vec<(Instant, bool)>>>,
}

impl Session {
    fn open(pair: &NetnsPair) -> Self {
        let addr = pair.addr_a.clone();
        let listening = Arc::new(AtomicBool::new(false));
        let l2 = listening.clone();
        in_ns(&pair.ns_a, move || {
            let l = TcpListener::bind((addr.as_str(), 7000)).expect("listen");
            l2.store(true, Ordering::SeqCst);
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 8];
                while s.read_exact(&mut buf).is_ok() {
                    if s.write_all(&buf).is_err() {
                        break;
                    }
                }
            }
        });
        while !listening.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, addr) = (stop.clone(), pair.addr_a.clone());
        let client = in_ns(&pair.ns_b, move || {
            let mut c = TcpStream::connect((addr.as_str(), 7000)).expect("connect");
            c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            let mut rounds = Vec::new();
            while !s2.load(Ordering::SeqCst) {
                let mut buf = [0u8; 8];
                let ok = c.write_all(b"pingpong").is_ok() && c.read_exact(&mut buf).is_ok() && &buf == b"pingpong";
                rounds.push((Instant::now(), ok));
                std::thread::sleep(Duration::from_millis(100));
            }
            rounds
        });
        Session { stop, client: Some(client) }
    }

    fn close(mut self) -> Vec<(Instant, bool)> {
        self.stop.store(true, Ordering::SeqCst);
        self.client.take().unwrap().join().unwrap()
    }
}

/// Every `refused` entry of the `mitigation_apply` events so far: source → reason.
fn refusals(r: &Running) -> std::collections::HashMap<String, String> {
    r.events()
        .iter()
        .filter(|e| e["event"] == "mitigation_apply")
        .flat_map(|e| e["refused"].as_array().cloned().unwrap_or_default())
        .map(|x| {
            (x["source"].as_str().unwrap_or_default().to_string(), x["reason"].as_str().unwrap_or_default().into())
        })
        .collect()
}

#[test]
fn forged_floods_naming_protected_sources_block_none_and_an_established_session_keeps_working() {
    let _flood = util::flood_lock();
    let Some(pair) = pair() else { return };
    let n = net(&pair);
    let (gw, resolver, api, real) = (format!("{n}.254"), format!("{n}.53"), format!("{n}.80"), format!("{n}.66"));
    ip(&["-n", &pair.ns_b, "addr", "add", &format!("{gw}/24"), "dev", &pair.veth_b]);
    ip(&["-n", &pair.ns_a, "route", "add", "default", "via", &gw]);
    let _resolv = Resolv::new(&pair.ns_a, &format!("nameserver {resolver}\n"));
    let extra = json!({"api_key": "k", "node_uuid": "00000000-0000-4000-8000-000000000001",
        "api_base": format!("http://{api}:9")});
    // Private sources blockable: here every protection must come from its own reason.
    let r = start_with(&pair, Home::new(), json!({"mode": "enforce", "ttl_s": 10, "block_private": true}), extra);
    let session = Session::open(&pair);
    // The peer must be established before the incident: the agent reads peers every second.
    std::thread::sleep(Duration::from_millis(2500));
    let protected = [gw.as_str(), resolver.as_str(), api.as_str(), pair.addr_a.as_str(), pair.addr_b.as_str()];
    let mut floods: Vec<Child> = protected
        .iter()
        .chain([&real.as_str()])
        .map(|src| forged(&pair, 6, 5000, &["--udp", "-a", src, "-p", "9999", "-d", "40"]))
        .collect();
    let blocked =
        until_table(&pair.ns_a, Duration::from_secs(4), |t| elements(t, "block4").iter().any(|e| e == &json!(real)));
    let in_force = Instant::now();
    assert!(blocked.is_some(), "the real source {real} was never blocked: {}\n{:#?}", r.stderr(), r.events());
    std::thread::sleep(Duration::from_millis(1500));
    let t = table(&pair.ns_a).expect("table");
    let dropped: Vec<Value> = ["block4", "block6"].iter().flat_map(|s| elements(&t, s)).collect();
    for p in protected {
        assert!(!dropped.contains(&json!(p)), "{p} is in a drop set: {dropped:?}");
    }
    for f in &mut floods {
        let _ = f.wait();
    }
    let rounds = session.close();
    let during: Vec<bool> = rounds.iter().filter(|(t, _)| *t >= in_force).map(|(_, ok)| *ok).collect();
    eprintln!(
        "safety: blocked {real} only; established session {} of {} round trips ok while the rule was in force",
        during.iter().filter(|ok| **ok).count(),
        during.len()
    );
    assert!(during.len() >= 10 && during.iter().all(|ok| *ok), "the established session broke: {during:?}");
    let why = refusals(&r);
    let want = [
        (gw.as_str(), "protected: default gateway"),
        (resolver.as_str(), "protected: a resolver the host uses"),
        (api.as_str(), "protected: address of sink api_base"),
        (pair.addr_a.as_str(), "protected: the host's own address"),
        (pair.addr_b.as_str(), "protected: peer of a TCP connection established before the incident"),
    ];
    for (a, reason) in want {
        assert!(
            why.get(a).is_some_and(|w| w.starts_with(reason)),
            "{a}: want {reason:?}, got {:?} in {why:?}",
            why.get(a)
        );
    }
    // The first apply that put a rule in force (one that only lists refusals can come first).
    let apply = r
        .events()
        .into_iter()
        .find(|e| e["event"] == "mitigation_apply" && e["rules"].as_array().is_some_and(|r| !r.is_empty()))
        .unwrap();
    assert_eq!(apply["conntrack"], true, "{apply}");
    r.stop();
}

/// A UDP responder on `addr:port` in `ns`: sends every datagram back (a tiny DNS/NTP stand-in:
/// the point is the reply coming from the service port).
fn responder(ns: &str, addr: String, port: u16, stop: Arc<AtomicBool>) {
    in_ns(ns, move || {
        let s = UdpSocket::bind((addr.as_str(), port)).expect("bind responder");
        s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let mut buf = [0u8; 1500];
        while !stop.load(Ordering::SeqCst) {
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                buf[2] |= 0x80; // DNS: QR (an answer); NTP: harmless.
                let _ = s.send_to(&buf[..n], from);
            }
        }
    });
}

/// `tries` queries from `a` to `server:port`, each from a fresh socket (as a resolver library
/// does); how many were answered within 500 ms.
fn queries(pair: &NetnsPair, server: &str, port: u16, tries: u32) -> u32 {
    let server = server.to_string();
    in_ns(&pair.ns_a, move || {
        let mut ok = 0;
        for i in 0..tries {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
            let q = [0x12, i as u8, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'f', b't', b'a', 0, 0, 1, 0, 1];
            let mut pkt = q.to_vec();
            pkt.resize(48, 0);
            let _ = s.send_to(&pkt, (server.as_str(), port));
            let mut buf = [0u8; 1500];
            if s.recv_from(&mut buf).is_ok_and(|(n, _)| n == pkt.len()) {
                ok += 1;
            }
        }
        ok
    })
    .join()
    .unwrap()
}

#[test]
fn amplification_rules_for_ports_53_and_123_leave_the_hosts_own_dns_and_ntp_working() {
    let _flood = util::flood_lock();
    let Some(pair) = pair() else { return };
    let n = net(&pair);
    // The resolver the host uses, another DNS server it asks directly, an NTP server: all in `b`.
    let (resolver, other_dns, ntp) = (format!("{n}.53"), format!("{n}.54"), format!("{n}.123"));
    for a in [&resolver, &other_dns, &ntp] {
        ip(&["-n", &pair.ns_b, "addr", "add", &format!("{a}/24"), "dev", &pair.veth_b]);
    }
    let _resolv = Resolv::new(&pair.ns_a, &format!("nameserver {resolver}\n"));
    let stop = Arc::new(AtomicBool::new(false));
    responder(&pair.ns_b, resolver.clone(), 53, stop.clone());
    responder(&pair.ns_b, other_dns.clone(), 53, stop.clone());
    responder(&pair.ns_b, ntp.clone(), 123, stop.clone());
    std::thread::sleep(Duration::from_millis(200));
    let r = start(&pair, Home::new(), json!({"mode": "enforce", "ttl_s": 5}));
    assert_eq!(queries(&pair, &other_dns, 53, 5), 5, "the DNS stand-in answers before any rule");
    for (round, (port, servers)) in
        [(53u16, vec![resolver.clone(), other_dns.clone()]), (123, vec![ntp.clone()])].into_iter().enumerate()
    {
        // Forged "answers" from the service port, from random sources, at 10k/s.
        let mut f = forged(
            &pair,
            6,
            10_000,
            &["--udp", "--rand-source", "-s", &port.to_string(), "-k", "-p", "3000", "-d", "300"],
        );
        let want = json!({"concat": [pair.addr_a, port]});
        let took = until_table(&pair.ns_a, Duration::from_secs(4), |t| elements(t, "amp4").contains(&want));
        assert!(took.is_some(), "no amp4 element for port {port}: {}\n{:#?}", r.stderr(), r.events());
        for s in &servers {
            let ok = queries(&pair, s, port, 10);
            eprintln!("safety: {ok}/10 queries to {s}:{port} answered while UDP from port {port} is dropped");
            assert_eq!(ok, 10, "the host's own queries to {s}:{port} failed under the rule");
        }
        let t = table(&pair.ns_a).unwrap();
        let counted = t["nftables"].as_array().unwrap().iter().find(|i| i["set"]["name"] == "amp4").cloned();
        assert!(counted.is_some_and(|s| s.to_string().contains("packets")), "the forged flood is dropped");
        let _ = f.wait();
        // Let the incident resolve before the next vector.
        let deadline = Instant::now() + Duration::from_secs(15);
        while r.events().iter().filter(|e| e["event"] == "incident_resolve").count() <= round {
            assert!(Instant::now() < deadline, "no resolve after the port-{port} flood: {:#?}", r.events());
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(1500));
    }
    stop.store(true, Ordering::SeqCst);
    r.stop();
}

/// trafgen from `b`: TCP SYNs to `a`:`port` from random forged sources, one every `1/pps` s
/// (`-t`, a steady stream: `-b` would send each second's packets in one burst and leave a
/// global bucket idle in between), for `secs` seconds.
fn forged_syn_flood(pair: &NetnsPair, pps: u32, secs: u32, port: u16) -> Child {
    let mac = |ns: &str, dev: &str| {
        let out = Command::new("ip").args(["-n", ns, "-br", "link", "show", "dev", dev]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let m = text.split_whitespace().nth(2).unwrap().to_string();
        m.split(':').map(|b| format!("0x{b}")).collect::<Vec<_>>().join(", ")
    };
    let cfg = format!(
        "{{ {}, {}, c16(0x0800), 0x45, 0x00, c16(40), drnd(2), c16(0x4000), 64, 6, csumip(14, 33), \
         203, drnd(3), {}, drnd(2), c16({port}), drnd(4), c32(0), 0x50, 0x02, c16(64240), csumtcp(14, 34), c16(0) }}\n",
        mac(&pair.ns_a, &pair.veth_a),
        mac(&pair.ns_b, &pair.veth_b),
        pair.addr_a.replace('.', ", "),
    );
    let path = std::env::temp_dir().join(format!("{}-syn.cfg", pair.veth_b));
    std::fs::write(&path, cfg).unwrap();
    Command::new("timeout")
        .arg(secs.to_string())
        .args(["ip", "netns", "exec", &pair.ns_b, "trafgen", "-o", &pair.veth_b, "-i"])
        .arg(&path)
        .args(["-t", &format!("{}ns", 1_000_000_000 / pps), "-P", "1", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("trafgen (netsniff-ng)")
}

/// A real client's connection attempts from `b` to `a`:`port` for `secs` seconds, one every
/// 50 ms, each given 1 s: (succeeded, attempted).
fn client_attempts(pair: &NetnsPair, port: u16, secs: u64) -> (u32, u32) {
    let addr = pair.addr_a.clone();
    in_ns(&pair.ns_b, move || {
        let sa: std::net::SocketAddr = format!("{addr}:{port}").parse().unwrap();
        let (mut ok, mut all) = (0, 0);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(secs) {
            all += 1;
            if TcpStream::connect_timeout(&sa, Duration::from_secs(1)).is_ok() {
                ok += 1;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (ok, all)
    })
    .join()
    .unwrap()
}

/// A forged SYN flood at 100k/s against port 22 with SYN cookies on: a real client's share of
/// successful connects with the SYN rule in force is no worse than without any rule (a global
/// bucket would starve it; the per-source meter does not).
#[test]
fn a_forged_syn_flood_under_the_syn_rule_still_lets_a_real_client_connect() {
    let _flood = util::flood_lock();
    let Some(pair) = pair() else { return };
    if !util::have("trafgen") {
        return util::skip("trafgen (netsniff-ng) is not installed");
    }
    let sysctl = |kv: &str| {
        let ok =
            Command::new("ip").args(["netns", "exec", &pair.ns_a, "sysctl", "-qw", kv]).status().unwrap().success();
        assert!(ok, "sysctl {kv}");
    };
    sysctl("net.ipv4.tcp_syncookies=1");
    sysctl("net.ipv4.tcp_max_syn_backlog=128");
    let addr = pair.addr_a.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    in_ns(&pair.ns_a, move || {
        let l = TcpListener::bind((addr.as_str(), 22)).expect("listen 22");
        l.set_nonblocking(true).unwrap();
        while !s2.load(Ordering::SeqCst) {
            match l.accept() {
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    // Without any rule (no agent).
    let mut f = forged_syn_flood(&pair, 100_000, 6, 22);
    std::thread::sleep(Duration::from_millis(500));
    let (ok0, all0) = client_attempts(&pair, 22, 4);
    let _ = f.wait();
    // With the agent and its SYN rule.
    let r = start(&pair, Home::new(), json!({"mode": "enforce", "ttl_s": 10}));
    let mut f = forged_syn_flood(&pair, 100_000, 8, 22);
    let has_rule =
        |t: &Value| t["nftables"].as_array().is_some_and(|a| a.iter().any(|i| i["rule"]["comment"] == "syn:22"));
    let took = until_table(&pair.ns_a, Duration::from_secs(3), has_rule);
    assert!(took.is_some(), "no SYN rule for port 22: {}\n{:#?}", r.stderr(), r.events());
    let (ok1, all1) = client_attempts(&pair, 22, 4);
    let t = table(&pair.ns_a).unwrap();
    let _ = f.wait();
    stop.store(true, Ordering::SeqCst);
    let (share0, share1) = (f64::from(ok0) / f64::from(all0), f64::from(ok1) / f64::from(all1));
    eprintln!(
        "forged SYN flood 100k/s on port 22, SYN cookies on: real client connected {ok0}/{all0} ({:.0} %) without a rule, \
         {ok1}/{all1} ({:.0} %) with the SYN rule in force",
        100.0 * share0,
        100.0 * share1
    );
    let rule = t["nftables"].as_array().unwrap().iter().find(|i| i["rule"]["comment"] == "syn:22").cloned().unwrap();
    assert!(rule.to_string().contains("syn_meter4"), "a per-source meter: {rule}");
    assert!(share1 >= 0.9, "the real client was starved under the rule: {ok1}/{all1}");
    assert!(share1 + 0.1 >= share0, "the rule made the client worse off: {share0} → {share1}");
    r.stop();
}

/// A resolve that never reaches the mitigation worker (§10.1 "rules can live forever"): the agent
/// is frozen with SIGSTOP while its amplification rule is in force and the flood goes on, so
/// nothing of it runs any more (no resolve, no renewal, no removal). The kernel alone must take
/// the rule out: its element is gone within `ttl_s` + 1 s of the freeze, and the flood reaches
/// the UDP stack again.
#[test]
fn a_rule_whose_resolve_never_reaches_the_worker_is_gone_by_its_ttl() {
    let _flood = util::flood_lock();
    let Some(pair) = pair() else { return };
    const TTL_S: u64 = 3;
    let r = start(&pair, Home::new(), json!({"mode": "enforce", "ttl_s": TTL_S}));
    // ~8 s of flood at 20k/s (4373 packets a loop): it outlasts the freeze and the expiry.
    let _replay = util::Reap(replay_snmp(&pair, 20_000, 40));
    let want = json!({"concat": [pair.addr_a, 161]});
    let has = |t: &Value| elements(t, "amp4").contains(&want);
    let took = until_table(&pair.ns_a, Duration::from_secs(5), has);
    assert!(took.is_some(), "no amp4 element for {want}: {}\n{:#?}", r.stderr(), r.events());
    // Let one renewal (at half the TTL) happen, so the frozen element is a renewed one.
    std::thread::sleep(Duration::from_millis(1600));
    let pid = r.child.id() as i32;
    // SAFETY: kill(2) on the agent's own pid (`ip netns exec` execs it) with a valid signal.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0, "SIGSTOP the agent");
    let frozen = Instant::now();
    let t = table(&pair.ns_a).expect("our table while the agent is frozen");
    assert!(has(&t), "the rule is in force when the agent freezes: {t:#}");
    let gone = until_table(&pair.ns_a, Duration::from_secs(TTL_S + 2), |t| !has(t)).map(|_| frozen.elapsed());
    let (udp0, rx0) = udp_and_rx(&pair.ns_a, &pair.veth_a);
    std::thread::sleep(Duration::from_millis(300));
    let (udp1, rx1) = udp_and_rx(&pair.ns_a, &pair.veth_a);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0, "SIGCONT the agent");
    let gone = gone.unwrap_or_else(|| panic!("the rule outlived the frozen agent by more than ttl_s + 2 s"));
    eprintln!(
        "agent frozen with the rule in force: element gone {} ms later (ttl_s {TTL_S}); then the UDP stack saw {} of {} packets",
        gone.as_millis(),
        udp1 - udp0,
        rx1 - rx0
    );
    assert!(gone <= Duration::from_secs(TTL_S + 1), "the rule outlived the frozen agent by {gone:?} (ttl_s {TTL_S})");
    assert!(rx1 - rx0 > 1_000, "the flood still ran after the expiry ({} packets)", rx1 - rx0);
    assert!(
        (udp1 - udp0) as f64 > 0.5 * (rx1 - rx0) as f64,
        "after the expiry the flood reaches the UDP stack again ({} of {})",
        udp1 - udp0,
        rx1 - rx0
    );
    drop(_replay);
    r.stop();
}

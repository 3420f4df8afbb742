//! Traffic the host asked for (§5.8, §9) with real traffic across a veth pair: `iperf3` transfers
//! the agent's namespace pulls (`-R`) and receives (a client pushing to its server) open no
//! incident and keep their speed; forged floods started during a transfer are caught within a
//! second; many real connections from many addresses pushing data are a flood.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::util::{self, Home, NetnsPair};

/// The agent in `a`, as a new user runs it (default detection, a 3 s grace period).
struct Rig {
    pair: NetnsPair,
    home: Home,
    agent: Child,
}

impl Rig {
    fn start(extra: Value) -> Option<Rig> {
        Some(Rig::on(pair()?, extra))
    }

    /// The agent started on an existing pair.
    fn on(pair: NetnsPair, extra: Value) -> Rig {
        // Replies to forged sources (resets, unreachables) leave by a route, as on a real host.
        let gw = pair.addr_b.clone();
        assert!(Command::new("ip")
            .args(["-n", &pair.ns_a, "route", "add", "default", "via", &gw])
            .status()
            .unwrap()
            .success());
        let home = Home::new();
        let mut cfg = json!({ "interface": pair.veth_a, "grace_period_s": 3 });
        if let (Value::Object(c), Value::Object(e)) = (&mut cfg, extra) {
            c.extend(e);
        }
        let cfg = home.write_config(cfg);
        let agent = pair.spawn_agent(&home, &cfg);
        let started = util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(10));
        assert!(started.is_some(), "agent_start");
        std::thread::sleep(Duration::from_millis(4000)); // past the grace period, quiet
        Rig { pair, home, agent }
    }

    fn events(&self, name: &str) -> Vec<Value> {
        self.home.events().into_iter().filter(|e| e["event"] == name).collect()
    }

    fn stop(mut self) -> Vec<Value> {
        let st = util::terminate(&mut self.agent, Duration::from_secs(8));
        assert!(st.is_some_and(|s| s.success()), "agent exits 0 on SIGTERM");
        self.home.events()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = self.agent.kill();
        let _ = self.agent.wait();
    }
}

/// A namespace pair with the tools these tests drive.
fn pair() -> Option<NetnsPair> {
    let pair = NetnsPair::create()?;
    for t in ["iperf3", "hping3"] {
        assert!(util::have(t), "needs {t} (apt-get install {t})");
    }
    Some(pair)
}

/// An `iperf3` transfer of `secs` seconds between the namespaces; returns the receiver's bits/s.
/// `pull`: the agent's namespace `a` is the client and receives (`-R`); else `b` pushes to a
/// server in `a`.
fn iperf(pair: &NetnsPair, port: u16, secs: u32, pull: bool) -> f64 {
    let (server_ns, client_ns, server_addr) =
        if pull { (&pair.ns_b, &pair.ns_a, &pair.addr_b) } else { (&pair.ns_a, &pair.ns_b, &pair.addr_a) };
    let server = util::Reap(
        Command::new("ip")
            .args(["netns", "exec", server_ns, "iperf3", "-s", "-1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf3 server"),
    );
    let mut out = None;
    for _ in 0..50 {
        let mut c = Command::new("timeout");
        c.args([&(secs + 10).to_string(), "ip", "netns", "exec", client_ns, "iperf3", "-J", "-c", server_addr]);
        c.args(["-p", &port.to_string(), "-t", &secs.to_string()]);
        if pull {
            c.arg("-R");
        }
        let o = c.output().expect("iperf3 client");
        let measured = serde_json::from_slice::<Value>(&o.stdout)
            .is_ok_and(|v| v["end"]["sum_received"]["bits_per_second"].is_f64());
        if o.status.success() && measured {
            out = Some(o);
            break;
        }
        std::thread::sleep(Duration::from_millis(100)); // the server was not listening yet
    }
    drop(server);
    let out = out.expect("iperf3 ran");
    let v: Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    v["end"]["sum_received"]["bits_per_second"].as_f64().expect("bits_per_second")
}

fn assert_nothing_opened(events: &[Value]) {
    let bad: Vec<&Value> =
        events.iter().filter(|e| e["event"] == "incident_open" || e["event"] == "mitigation_apply").collect();
    assert!(bad.is_empty(), "the host's own transfer opened: {bad:#?}");
}

/// Both transfers at full speed after a quiet period: nothing opens; with `min_share`, each keeps
/// at least that share of its speed without the agent.
fn transfers_open_nothing(extra: Value, min_share: Option<f64>) {
    let _flood = util::flood_lock();
    let Some(pair) = pair() else { return };
    // The same transfers without the agent first, on the same pair, in the same run.
    // Each speed is the better of two 3 s runs, with and without alike: one run on a shared
    // 2-core machine can lose a third of its speed to a neighbour, which says nothing of the agent.
    let best =
        |pair: &NetnsPair, port: u16, pull: bool| iperf(pair, port, 3, pull).max(iperf(pair, port + 10, 3, pull));
    let without: Vec<f64> =
        [true, false].iter().enumerate().map(|(k, &pull)| best(&pair, 5205 + 2 * k as u16, pull)).collect();
    let rig = Rig::on(pair, extra);
    let mut speeds = Vec::new();
    for (k, pull) in [true, false].into_iter().enumerate() {
        let with = best(&rig.pair, 5201 + 2 * k as u16, pull);
        std::thread::sleep(Duration::from_millis(1500));
        speeds.push((pull, with));
    }
    let events = rig.stop();
    assert_nothing_opened(&events);
    for ((pull, with), without) in speeds.into_iter().zip(without) {
        eprintln!(
            "iperf3 {}: {:.2} Gbit/s with the agent, {:.2} without",
            if pull { "-R" } else { "push" },
            with / 1e9,
            without / 1e9
        );
        if let Some(share) = min_share {
            assert!(with >= share * without, "pull {pull}: {with:.3e} with the agent, {without:.3e} without");
        }
    }
}

#[test]
fn transfers_the_host_asked_for_open_nothing_in_limited_mode() {
    transfers_open_nothing(json!({ "limited": true }), Some(0.7));
}

#[cfg(feature = "capture-scapy")]
#[test]
fn transfers_the_host_asked_for_open_nothing_and_block_nothing_with_mitigation_enforced() {
    // The speed is printed, not asserted: on a 2-core machine the capture agent analysing every
    // packet of a 20-30 Gbit/s transfer takes a core from iperf3 (64-69 % of the speed measured
    // here under load); README "Known gaps".
    transfers_open_nothing(json!({ "pcap_enabled": false, "mitigation": { "mode": "enforce" } }), None);
}

/// A forged-source hping3 flood (`kind`: `--udp` or `-A`) from `b` for `secs` seconds.
fn forged(pair: &NetnsPair, kind: &str, secs: u32) -> util::Reap {
    util::Reap(
        Command::new("timeout")
            .args([
                &secs.to_string(),
                "ip",
                "netns",
                "exec",
                &pair.ns_b,
                "hping3",
                kind,
                "--flood",
                "--rand-source",
                "-q",
            ])
            .args(["-p", "9", &pair.addr_a])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("hping3"),
    )
}

/// A forged flood started two seconds into a download the host pulls is an incident ≤ 1 s after
/// its start; the download alone opened nothing.
fn flood_during_a_transfer(kind: &str) {
    let _flood = util::flood_lock();
    let Some(rig) = Rig::start(json!({ "limited": true })) else { return };
    let pair = &rig.pair;
    let transfer = std::thread::scope(|s| {
        let t = s.spawn(|| iperf(pair, 5201, 5, true));
        std::thread::sleep(Duration::from_millis(2500));
        assert!(rig.events("incident_open").is_empty(), "the transfer alone opened: {:?}", rig.events("incident_open"));
        let onset = SystemTime::now();
        let mut flood = forged(pair, kind, 2);
        let open = util::wait_for_event(&rig.home.events_file(), "incident_open", Duration::from_secs(4));
        let _ = flood.0.wait();
        let open = open.unwrap_or_else(|| panic!("{kind} flood during a transfer: no incident"));
        let latency = util::latency_since(onset, &open);
        eprintln!(
            "{kind} flood during a transfer: incident after {latency:?}, attributed {} bit/s",
            open["attributed_bps"]
        );
        assert!(latency <= Duration::from_secs(1), "{kind}: {latency:?} {open}");
        t.join().unwrap()
    });
    assert!(transfer > 0.0);
    rig.stop();
}

#[test]
fn a_forged_udp_flood_during_a_transfer_is_caught_within_a_second() {
    flood_during_a_transfer("--udp");
}

#[test]
fn a_forged_ack_flood_during_a_transfer_is_caught_within_a_second() {
    flood_during_a_transfer("-A");
}

/// Run `f` on a thread inside namespace `ns` (setns(2) affects only the calling thread).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("netns file");
        // SAFETY: setns(2) with an open namespace fd; it changes this thread only.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}");
        f()
    })
}

/// A TCP connection from `src` (a bound local address) to `dst`.
fn connect_from(src: SocketAddr, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let (SocketAddr::V4(s), SocketAddr::V4(d)) = (src, dst) else { unreachable!("v4 only") };
    let sa = |a: std::net::SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor we own; it is closed on error or owned by the
    // returned stream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let (a, b) = (sa(s), sa(d));
        if libc::bind(fd, &a as *const _ as *const libc::sockaddr, len) != 0
            || libc::connect(fd, &b as *const _ as *const libc::sockaddr, len) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

#[test]
fn many_real_connections_from_many_addresses_pushing_data_are_a_flood() {
    const PEERS: u32 = 120;
    let _flood = util::flood_lock();
    let Some(rig) = Rig::start(json!({ "limited": true })) else { return };
    let net = rig.pair.addr_b.rsplit_once('.').unwrap().0.to_string();
    for k in 0..PEERS {
        let a = format!("{net}.{}/24", 10 + k);
        assert!(Command::new("ip")
            .args(["-n", &rig.pair.ns_b, "addr", "add", &a, "dev", &rig.pair.veth_b])
            .status()
            .unwrap()
            .success());
    }
    // A server in `a` that reads and discards; one thread each side, round robin, so that the
    // test's own threads do not starve the agent.
    let dst: SocketAddr = format!("{}:8080", rig.pair.addr_a).parse().unwrap();
    let server = in_netns(&rig.pair.ns_a, move || {
        let l = TcpListener::bind(dst).expect("listen");
        l.set_nonblocking(true).unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        let mut conns: Vec<TcpStream> = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while Instant::now() < end {
            while let Ok((c, _)) = l.accept() {
                c.set_nonblocking(true).unwrap();
                conns.push(c);
            }
            let mut idle = true;
            for c in &mut conns {
                if matches!(c.read(&mut buf), Ok(k) if k > 0) {
                    idle = false;
                }
            }
            if idle {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let onset = SystemTime::now();
    let clients = in_netns(&rig.pair.ns_b, move || {
        let mut conns: Vec<TcpStream> =
            (0..PEERS).filter_map(|k| connect_from(format!("{net}.{}:0", 10 + k).parse().unwrap(), dst).ok()).collect();
        for c in &conns {
            c.set_nonblocking(true).unwrap();
        }
        let buf = vec![7u8; 1 << 16];
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            for c in &mut conns {
                let _ = c.write(&buf);
            }
        }
        conns.len()
    });
    let state = rig.home.state().join("status.json");
    let watch = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..25 {
            if let Ok(Ok(v)) = std::fs::read_to_string(&state).map(|t| serde_json::from_str::<Value>(&t)) {
                seen.push(v["attribution"].to_string());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        seen
    });
    let open = util::wait_for_event(&rig.home.events_file(), "incident_open", Duration::from_secs(8));
    let seen = watch.join().unwrap();
    let connected = clients.join().unwrap();
    let _ = server.join();
    assert_eq!(connected, PEERS as usize, "every peer connected");
    let open = open.expect("a real-connection data flood opens an incident");
    eprintln!(
        "data flood: {} after {:?}, new_peers {}",
        open["attack_family"],
        util::latency_since(onset, &open),
        open["new_peers"]
    );
    let family = open["attack_family"].as_str().unwrap_or("");
    assert!(family == "tcp_data_flood" || family == "connection_flood", "{open}\n{seen:#?}");
    rig.stop();
}

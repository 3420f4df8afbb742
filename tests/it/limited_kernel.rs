//! Limited mode as an ordinary user against real floods (§5.7, §9 "limited mode without root"):
//! the agent runs as `nobody` inside a network namespace, default build, `limited: true`, and
//! sees what the kernel counts for any user: SYN cookies (a SYN flood under the total PPS
//! floor), the socket census (a connection flood and who holds it), softnet drops.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::util::{self, Home, NetnsPair};

/// The agent inside `a`, as `nobody` (setpriv), its stderr kept in the home for diagnostics.
fn spawn_agent_as_nobody(pair: &NetnsPair, home: &Home, cfg: &Path) -> Child {
    let log = std::fs::File::create(home.path().join("agent.stderr")).expect("stderr file");
    util::chown_tree(home.path(), util::NOBODY);
    Command::new("ip")
        .args(["netns", "exec", &pair.ns_a, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(util::bin())
        .args(["--no-update-check", "--config"])
        .arg(cfg)
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn the agent as nobody")
}

fn agent_log(home: &Home) -> String {
    std::fs::read_to_string(home.path().join("agent.stderr")).unwrap_or_default()
}

/// Run `f` on a thread that has joined namespace `ns` (only that thread moves).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("netns file");
        // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread.
        assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {path}");
        f()
    })
}

/// A TCP service on `port` in `ns` that accepts and holds every connection until `stop`.
fn service(ns: &str, port: u16, stop: Arc<AtomicBool>) -> JoinHandle<usize> {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = in_netns(ns, move || {
        let l = std::net::TcpListener::bind(("0.0.0.0", port)).expect("listen");
        l.set_nonblocking(true).unwrap();
        tx.send(()).unwrap();
        let mut held = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((s, _)) => held.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        held.len()
    });
    rx.recv_timeout(Duration::from_secs(5)).expect("the service listens");
    h
}

fn ns_cmd(ns: &str, args: &[&str]) -> bool {
    Command::new("ip").args(["netns", "exec", ns]).args(args).status().is_ok_and(|s| s.success())
}

fn config(home: &Home, pair: &NetnsPair) -> std::path::PathBuf {
    home.write_config(json!({
        "interface": pair.veth_a,
        "limited": true,
        "grace_period_s": 3,
        "baseline_window_s": 10,
    }))
}

fn wait_started(home: &Home, agent: &mut Child) {
    let started = util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(15));
    if started.is_none() {
        let _ = agent.kill();
        panic!("the agent did not start as nobody:\n{}", agent_log(home));
    }
    std::thread::sleep(Duration::from_millis(3500)); // past the grace period
}

/// ~3,000 SYN/s at a listening service with SYN cookies always on (`tcp_syncookies=2` in the
/// namespace). The sources never answer the SYN-ACKs (dropped on their side, as spoofed
/// sources would), so the host receives ~3,000 packets/s: under the 5,000 PPS floor. The SYN
/// cookies open `syn_flood`, classified by the counters, within a second.
#[test]
fn syn_flood_with_cookies_is_a_syn_flood_from_the_counters_as_nobody() {
    let Some(pair) = NetnsPair::create() else { return };
    let _flood = util::flood_lock();
    assert!(ns_cmd(&pair.ns_a, &["sysctl", "-qw", "net.ipv4.tcp_syncookies=2"]), "syncookies in the namespace");
    let drop_synack = "table inet fta {\n chain in {\n type filter hook input priority 0;\n \
                       tcp flags & (syn | ack) == (syn | ack) drop\n }\n}\n";
    let mut nft = Command::new("ip")
        .args(["netns", "exec", &pair.ns_b, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft (nftables)");
    std::io::Write::write_all(nft.stdin.as_mut().unwrap(), drop_synack.as_bytes()).unwrap();
    drop(nft.stdin.take());
    assert!(nft.wait().unwrap().success(), "nft rule in the sources' namespace");
    let stop = Arc::new(AtomicBool::new(false));
    let svc = service(&pair.ns_a, 8080, stop.clone());
    let home = Home::new();
    let cfg = config(&home, &pair);
    let mut agent = spawn_agent_as_nobody(&pair, &home, &cfg);
    wait_started(&home, &mut agent);

    let onset = SystemTime::now();
    let mut syn = pair.paced_syn(3000, 3, 8080);
    let open = util::wait_for_event(&home.events_file(), "incident_open", Duration::from_secs(5));
    let sent = syn.wait();
    stop.store(true, Ordering::Relaxed);
    let _ = svc.join();
    let status = util::terminate(&mut agent, Duration::from_secs(5));

    let open = open.unwrap_or_else(|| panic!("no incident_open; agent log:\n{}", agent_log(&home)));
    let latency = util::latency_since(onset, &open);
    eprintln!("SYN flood ({sent} SYNs in 3 s): syn_flood {latency:?} after onset: {open}");
    assert!(latency <= Duration::from_secs(1), "incident_open {latency:?} after onset");
    assert_eq!(open["attack_family"], "syn_flood", "{open}");
    assert_eq!(open["classified_by"], "counters", "{open}");
    assert_eq!(open["trigger"], "syn", "{open}");
    assert!(open["pps"].as_f64().unwrap() < 5000.0, "total PPS under its floor: {open}");
    assert!(open["kernel_counters"]["syn_cookies_sent_pps"].as_f64().unwrap() > 2000.0, "{open}");
    assert!(status.is_some_and(|s| s.success()), "agent exits 0 on SIGTERM");
}

/// `n` TCP connections from each of `sources` to `dst:port`, bound to those sources, opened
/// from inside `ns` and held until `stop`. Returns how many were established.
fn hold_connections(
    ns: &str,
    sources: Vec<std::net::Ipv4Addr>,
    n: usize,
    dst: std::net::Ipv4Addr,
    port: u16,
    stop: Arc<AtomicBool>,
    opened: std::sync::mpsc::Sender<usize>,
) -> JoinHandle<()> {
    in_netns(ns, move || {
        // Round robin, as a botnet's connections arrive: every source is in every census.
        let mut held = Vec::new();
        for _ in 0..n {
            for src in &sources {
                if let Some(fd) = connect_from(*src, dst, port) {
                    held.push(fd);
                }
            }
        }
        opened.send(held.len()).unwrap();
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

fn sockaddr(ip: std::net::Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
        sin_zero: [0; 8],
    }
}

fn connect_from(src: std::net::Ipv4Addr, dst: std::net::Ipv4Addr, port: u16) -> Option<OwnedFd> {
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor owned (and closed on failure) right here.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let (from, to) = (sockaddr(src, 0), sockaddr(dst, port));
        let ok = libc::bind(fd.as_raw_fd(), (&from as *const libc::sockaddr_in).cast(), len) == 0
            && libc::connect(fd.as_raw_fd(), (&to as *const libc::sockaddr_in).cast(), len) == 0;
        ok.then_some(fd)
    }
}

/// 50 source addresses (secondary addresses in the sources' namespace) open and hold 2,500 TCP
/// connections to a service: `connection_flood`, its top sources those 50 addresses.
#[test]
fn fifty_sources_holding_connections_are_a_connection_flood_naming_them() {
    let Some(pair) = NetnsPair::create() else { return };
    let _flood = util::flood_lock();
    let prefix = pair.addr_a.rsplit_once('.').unwrap().0.to_string();
    let sources: Vec<std::net::Ipv4Addr> = (100..150).map(|i| format!("{prefix}.{i}").parse().unwrap()).collect();
    let batch: String = sources.iter().map(|s| format!("addr add {s}/24 dev {}\n", pair.veth_b)).collect();
    let mut ip = Command::new("ip").args(["-n", &pair.ns_b, "-batch", "-"]).stdin(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(ip.stdin.as_mut().unwrap(), batch.as_bytes()).unwrap();
    drop(ip.stdin.take());
    assert!(ip.wait().unwrap().success(), "50 secondary addresses");
    let stop = Arc::new(AtomicBool::new(false));
    let svc = service(&pair.ns_a, 8443, stop.clone());
    let home = Home::new();
    let cfg = config(&home, &pair);
    let mut agent = spawn_agent_as_nobody(&pair, &home, &cfg);
    wait_started(&home, &mut agent);

    let onset = SystemTime::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let dst: std::net::Ipv4Addr = pair.addr_a.parse().unwrap();
    let clients = hold_connections(&pair.ns_b, sources.clone(), 50, dst, 8443, stop.clone(), tx);
    let opened = rx.recv_timeout(Duration::from_secs(30)).expect("connections opened");
    let open = util::wait_for_event(&home.events_file(), "incident_open", Duration::from_secs(8));
    stop.store(true, Ordering::Relaxed);
    let _ = clients.join();
    let served = svc.join().unwrap_or(0);
    let status = util::terminate(&mut agent, Duration::from_secs(5));

    let open = open.unwrap_or_else(|| panic!("no incident_open ({opened} opened); log:\n{}", agent_log(&home)));
    let latency = util::latency_since(onset, &open);
    eprintln!("connection flood ({opened} opened, {served} accepted): open {latency:?} after onset: {open}");
    assert_eq!(open["attack_family"], "connection_flood", "{open}");
    assert_eq!(open["classified_by"], "sockets", "{open}");
    assert!(open["established_connections"].as_u64().unwrap() >= 1000, "{open}");
    let top: Vec<&Value> = open["top_src_ips"].as_array().unwrap().iter().collect();
    assert_eq!(top.len(), 10, "{open}");
    let names: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    for t in &top {
        assert!(names.contains(&t["ip"].as_str().unwrap().to_string()), "{t} is not one of the 50: {open}");
        assert!(t["count"].as_u64().unwrap() >= 20, "{t}");
    }
    assert!(open["source_ip_count"].as_u64().unwrap() >= 50, "{open}");
    assert_eq!(open["top_dst_ports"][0]["port"], 8443, "{open}");
    assert!(status.is_some_and(|s| s.success()), "agent exits 0 on SIGTERM");
}

/// `net.core.netdev_max_backlog` lowered host-wide while the guard lives, restored on drop. It
/// is not per namespace (a namespace's `/proc/sys/net/core` has no such file), and a busy CPU
/// does not overflow the backlog here (receive softirqs preempt any task, SCHED_FIFO included):
/// lowering it for two seconds is the one way to make real backlog drops.
struct LowBacklog(String);

impl LowBacklog {
    const PATH: &'static str = "/proc/sys/net/core/netdev_max_backlog";

    fn set(n: u32) -> LowBacklog {
        let old = std::fs::read_to_string(Self::PATH).expect("netdev_max_backlog").trim().to_string();
        std::fs::write(Self::PATH, n.to_string()).expect("lower netdev_max_backlog");
        LowBacklog(old)
    }
}

impl Drop for LowBacklog {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, &self.0);
    }
}

/// A UDP flood steered (RPS) from the sending CPU to the other one, whose backlog is held to 1
/// packet: the kernel drops at the backlog, `softnet_stat` counts it, and the incident's
/// `dropped_pps` and `kernel_counters.softnet_dropped_pps` of the opening sample show it.
#[test]
fn a_flood_overflowing_the_backlog_shows_softnet_drops_in_dropped_pps() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return util::skip("RPS steering to another CPU needs two CPUs");
    }
    let Some(pair) = NetnsPair::create() else { return };
    let _flood = util::flood_lock();
    let rps = format!("/sys/class/net/{}/queues/rx-0/rps_cpus", pair.veth_a);
    assert!(ns_cmd(&pair.ns_a, &["sh", "-c", &format!("echo 2 > {rps}")]), "RPS to CPU 1");
    let home = Home::new();
    let cfg = config(&home, &pair);
    let mut agent = spawn_agent_as_nobody(&pair, &home, &cfg);
    wait_started(&home, &mut agent);

    let low = LowBacklog::set(1);
    let mut flood = Command::new("timeout")
        .args(["2", "ip", "netns", "exec", &pair.ns_b, "taskset", "-c", "0", "hping3", "--udp", "--flood", "-q"])
        .args(["-p", "9", &pair.addr_a])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hping3");
    let open = util::wait_for_event(&home.events_file(), "incident_open", Duration::from_secs(5));
    let _ = flood.wait();
    drop(low);
    let status = util::terminate(&mut agent, Duration::from_secs(5));

    let open = open.unwrap_or_else(|| panic!("no incident_open; agent log:\n{}", agent_log(&home)));
    eprintln!("backlog overflow: {open}");
    let softnet = open["kernel_counters"]["softnet_dropped_pps"].as_f64().unwrap_or(0.0);
    assert!(softnet > 0.0, "softnet drops seen: {open}");
    assert!(open["dropped_pps"].as_f64().unwrap() >= softnet, "in dropped_pps: {open}");
    assert!(status.is_some_and(|s| s.success()), "agent exits 0 on SIGTERM");
}

//! Shared test helpers: the real binary, a temp home with a config, network namespaces joined by
//! a veth pair, and event-log readers. No mocks of our own code.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ftagent"))
}

/// A throw-away home: config file, state dir, event log.
#[derive(Debug)]
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Self {
        Home { dir: tempfile::tempdir().expect("tempdir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state(&self) -> PathBuf {
        self.path().join("state")
    }

    pub fn events_file(&self) -> PathBuf {
        self.state().join("events.jsonl")
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("config.json")
    }

    /// Write a config whose state dir is inside this home; `extra` keys are merged in.
    pub fn write_config(&self, extra: Value) -> PathBuf {
        let mut cfg = serde_json::json!({
            "state_dir": self.state(),
            "log_file": "",
            "auto_update": false,
        });
        if let (Value::Object(base), Value::Object(more)) = (&mut cfg, extra) {
            base.extend(more);
        }
        std::fs::write(self.config_path(), serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        self.config_path()
    }

    /// A command for the binary with HOME and XDG dirs pointing into this home.
    pub fn command(&self) -> Command {
        let mut c = Command::new(bin());
        c.env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join(".config"))
            .env("XDG_STATE_HOME", self.path().join(".local/state"))
            .env_remove("STATE_DIRECTORY")
            .env_remove("LOGS_DIRECTORY")
            .stdin(Stdio::null());
        c
    }

    /// The agent on `cfg` in the background, without the update check, its output discarded;
    /// killed when the handle drops.
    pub fn spawn_agent(&self, cfg: &Path) -> Reap {
        let child = self
            .command()
            .args(["--no-update-check", "--config"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the agent");
        Reap(child)
    }

    /// Wait up to `limit` for the agent's state file (§6.6) to exist.
    pub fn wait_state_file(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while !self.state().join("status.json").exists() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        true
    }

    /// Like [`Home::command`], but as an ordinary user: when the tests run as root, the home is
    /// handed to `nobody` and the binary started through `setpriv`.
    pub fn unprivileged(&self) -> Command {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return self.command();
        }
        chown_tree(self.path(), NOBODY);
        let mut c = Command::new("setpriv");
        c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "--"]).arg(bin());
        c.env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join(".config"))
            .env("XDG_STATE_HOME", self.path().join(".local/state"))
            .env_remove("STATE_DIRECTORY")
            .env_remove("LOGS_DIRECTORY")
            .stdin(Stdio::null());
        c
    }

    pub fn events(&self) -> Vec<Value> {
        read_events(&self.events_file())
    }
}

pub const NOBODY: u32 = 65534;

#[allow(unused_imports)] // note_skip: the acceptance runner only
pub use crate::skip::{note_skip, skip};

/// The real attack captures the tests use, vendored under `tests/data/` (or where
/// `FTAGENT_PCAPS` points); None (after [`skip`]) when absent.
pub fn captures() -> Option<PathBuf> {
    let dir = std::env::var_os("FTAGENT_PCAPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data"));
    if dir.join("pkt.TCP.synflood.spoofed.pcap").exists() {
        return Some(dir);
    }
    skip(&format!("the attack captures are not in {}", dir.display()));
    None
}

/// Packet count of a capture file as `capinfos -c` reports it.
pub fn capinfos_count(path: &Path) -> u64 {
    let out =
        Command::new("capinfos").args(["-c", "-M", "-T"]).arg(path).output().expect("capinfos (wireshark-common)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1).unwrap_or_default().to_string();
    line.split('\t').nth(1).and_then(|n| n.trim().parse().ok()).unwrap_or_else(|| panic!("capinfos said: {text}"))
}

/// chown -R, so an unprivileged child can write into a test's temp tree.
pub fn chown_tree(path: &Path, uid: u32) {
    let _ = std::os::unix::fs::chown(path, Some(uid), Some(uid));
    if let Ok(rd) = std::fs::read_dir(path) {
        for e in rd.flatten() {
            chown_tree(&e.path(), uid);
        }
    }
}

pub fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Poll the event log until an event named `name` appears, or give up after `limit`.
pub fn wait_for_event(path: &Path, name: &str, limit: Duration) -> Option<Value> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(e) = read_events(path).into_iter().find(|e| e["event"] == name) {
            return Some(e);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Parse an event's `ts` (RFC 3339) into a SystemTime.
pub fn event_time(e: &Value) -> std::time::SystemTime {
    humantime::parse_rfc3339(e["ts"].as_str().expect("ts")).expect("rfc3339")
}

/// Send SIGTERM and wait (bounded) for exit.
pub fn terminate(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    // SAFETY: kill(2) with a pid we own and a valid signal number.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child that is killed when the test ends, also when an assertion fails first.
pub struct Reap(pub Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn")
}

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

static PAIR: AtomicU32 = AtomicU32::new(0);

/// The one lock of the tests that send real traffic across a veth pair (floods, paced
/// packets, wrk): taken first by every such test, so no two floods share the CPU and a
/// latency bar measures the agent, not another test's flood. A test that panicked while
/// holding it does not poison the others.
pub fn flood_lock() -> std::sync::MutexGuard<'static, ()> {
    static FLOOD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    FLOOD.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Two network namespaces joined by a veth pair: `a` (10.77.N.1, where the agent runs) and
/// `b` (10.77.N.2, where the traffic comes from). Removed on drop.
pub struct NetnsPair {
    pub ns_a: String,
    pub ns_b: String,
    pub veth_a: String,
    pub veth_b: String,
    pub addr_a: String,
    pub addr_b: String,
}

impl NetnsPair {
    /// None (with the reason printed) where namespaces cannot be made: not root, no `ip`.
    pub fn create() -> Option<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            skip("network namespaces need root (CI runs as root)");
            return None;
        }
        if !have("ip") {
            skip("the `ip` tool (iproute2) is not installed");
            return None;
        }
        let n = PAIR.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}{}", std::process::id() % 100_000, n);
        let p = NetnsPair {
            ns_a: format!("fta-{id}-a"),
            ns_b: format!("fta-{id}-b"),
            veth_a: format!("fta{id}a"),
            veth_b: format!("fta{id}b"),
            addr_a: format!("10.77.{}.1", n % 250),
            addr_b: format!("10.77.{}.2", n % 250),
        };
        let ok = sh(&["ip", "netns", "add", &p.ns_a])
            && sh(&["ip", "netns", "add", &p.ns_b])
            && sh(&[
                "ip", "link", "add", &p.veth_a, "netns", &p.ns_a, "type", "veth", "peer", "name", &p.veth_b, "netns",
                &p.ns_b,
            ])
            && sh(&["ip", "-n", &p.ns_a, "addr", "add", &format!("{}/24", p.addr_a), "dev", &p.veth_a])
            && sh(&["ip", "-n", &p.ns_b, "addr", "add", &format!("{}/24", p.addr_b), "dev", &p.veth_b])
            && sh(&["ip", "-n", &p.ns_a, "link", "set", &p.veth_a, "up"])
            && sh(&["ip", "-n", &p.ns_b, "link", "set", &p.veth_b, "up"])
            && sh(&["ip", "-n", &p.ns_a, "link", "set", "lo", "up"])
            && sh(&["ip", "-n", &p.ns_b, "link", "set", "lo", "up"]);
        if !ok {
            skip("network namespaces are unavailable here (ip netns add failed)");
            return None;
        }
        Some(p)
    }

    /// A command run inside namespace `ns`.
    pub fn exec(ns: &str, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// The agent binary started inside namespace `a` with this home and config.
    pub fn spawn_agent(&self, home: &Home, cfg: &Path) -> Child {
        NetnsPair::exec(&self.ns_a, &bin())
            .args(["--no-update-check", "--config"])
            .arg(cfg)
            .env("HOME", home.path())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn agent")
    }

    /// hping3 from `b` to `a` as fast as it goes for `secs` seconds (bounded by `timeout`).
    fn flood(&self, secs: u32, port: u16, kind: &str) -> Child {
        Command::new("timeout")
            .args([&format!("{secs}"), "ip", "netns", "exec", &self.ns_b, "hping3", kind, "--flood", "-q", "-p"])
            .arg(port.to_string())
            .arg(&self.addr_a)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hping3")
    }

    /// A UDP flood from `b` to `a` for `secs` seconds.
    pub fn udp_flood(&self, secs: u32, port: u16) -> Child {
        self.flood(secs, port, "--udp")
    }

    /// A SYN flood from `b` to `a` for `secs` seconds.
    pub fn syn_flood(&self, secs: u32, port: u16) -> Child {
        self.flood(secs, port, "-S")
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        sh(&["ip", "netns", "del", &self.ns_a]);
        sh(&["ip", "netns", "del", &self.ns_b]);
    }
}

/// Which end of a [`NetnsPair`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Traffic into the agent's namespace (`b` → `a`).
    Outside,
    /// Traffic out of the agent's namespace (`a` → `b`).
    Agent,
}

/// A paced UDP flood running on its own thread inside a namespace; `wait` joins it.
pub struct Paced(Option<std::thread::JoinHandle<u64>>);

impl Paced {
    /// Wait for the flood to end; the number of datagrams sent.
    pub fn wait(&mut self) -> u64 {
        self.0.take().map(|t| t.join().expect("paced sender")).unwrap_or(0)
    }
}

impl NetnsPair {
    /// A UDP flood at a steady `pps` for `secs` seconds: 18-byte datagrams to port 9, sent
    /// through a socket in the sending namespace (the thread joins it with setns(2)), a batch
    /// every millisecond against absolute deadlines, so any 50 ms sample sees the rate asked for.
    /// (hping3's pacing falls far short; trafgen's `-b` sends a second's packets in one burst.)
    pub fn paced_udp(&self, from: Side, pps: u32, secs: u32) -> Paced {
        let (ns, dst) = match from {
            Side::Outside => (self.ns_b.clone(), self.addr_a.clone()),
            Side::Agent => (self.ns_a.clone(), self.addr_b.clone()),
        };
        Paced(Some(std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let f = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns file");
            // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread.
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {ns}");
            let sock = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket");
            let target = format!("{dst}:9");
            let payload = [0x41u8; 18];
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed() < Duration::from_secs(u64::from(secs)) {
                let due = (start.elapsed().as_secs_f64() * f64::from(pps)) as u64;
                while sent < due {
                    let _ = sock.send_to(&payload, &target);
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            sent
        })))
    }

    /// hping3 from `a` to `b` as fast as it goes for `secs` seconds: the agent's host attacking.
    pub fn outbound_flood(&self, secs: u32) -> Child {
        Command::new("timeout")
            .args([
                &format!("{secs}"),
                "ip",
                "netns",
                "exec",
                &self.ns_a,
                "hping3",
                "--udp",
                "--flood",
                "-q",
                "-p",
                "9",
            ])
            .arg(&self.addr_b)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hping3")
    }
}

/// Poll the event log until `n` events named `name` are there; returns them (fewer on timeout).
pub fn wait_for_events(path: &Path, name: &str, n: usize, limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let found: Vec<Value> = read_events(path).into_iter().filter(|e| e["event"] == name).collect();
        if found.len() >= n || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How long after `onset` the event was written; a negative difference is an error, not zero.
pub fn latency_since(onset: std::time::SystemTime, e: &Value) -> Duration {
    event_time(e).duration_since(onset).unwrap_or_else(|_| panic!("event written before the onset: {e}"))
}

impl NetnsPair {
    /// TCP SYNs at a steady `rate` per second for `secs` seconds from `b` to `a`'s `port`: a
    /// non-blocking connect(2) per SYN from a socket that is closed at once (the SYN is out), a
    /// batch every millisecond. Total packets stay low while SYN/s is high.
    pub fn paced_syn(&self, rate: u32, secs: u32, port: u16) -> Paced {
        let (ns, dst) = (self.ns_b.clone(), self.addr_a.clone());
        Paced(Some(std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let f = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns file");
            // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread.
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {ns}");
            let ip: std::net::Ipv4Addr = dst.parse().expect("IPv4");
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
                sin_zero: [0; 8],
            };
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed() < Duration::from_secs(u64::from(secs)) {
                let due = (start.elapsed().as_secs_f64() * f64::from(rate)) as u64;
                while sent < due {
                    // SAFETY: plain socket calls on a descriptor this loop owns and closes.
                    unsafe {
                        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
                        if fd >= 0 {
                            let sa = &addr as *const libc::sockaddr_in as *const libc::sockaddr;
                            libc::connect(fd, sa, std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t);
                            libc::close(fd);
                        }
                    }
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            sent
        })))
    }
}

impl NetnsPair {
    fn mac(ns: &str, dev: &str) -> String {
        let out = Command::new("ip").args(["-n", ns, "-br", "link", "show", "dev", dev]).output().expect("ip link");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace().nth(2).unwrap_or_else(|| panic!("no MAC for {dev} in {ns}: {text}")).to_string()
    }

    /// trafgen from `b` to `a` at `pps` on average for `secs` seconds, as trafgen's `-b` sends
    /// it: each second's packets in one burst of a few tens of milliseconds. 60-byte UDP frames.
    pub fn bursty_udp(&self, pps: u32, secs: u32) -> Child {
        let bytes = |mac: &str| mac.split(':').map(|b| format!("0x{b}")).collect::<Vec<_>>().join(", ");
        let ip = |a: &str| a.replace('.', ", ");
        let cfg = format!(
            "{{ {}, {}, c16(0x0800), 0x45, 0x00, c16(46), drnd(2), c16(0x4000), 64, 17, csumip(14, 33), {}, {}, \
             c16(40000), c16(9), c16(26), c16(0), fill(0x41, 18) }}\n",
            bytes(&Self::mac(&self.ns_a, &self.veth_a)),
            bytes(&Self::mac(&self.ns_b, &self.veth_b)),
            ip(&self.addr_b),
            ip(&self.addr_a)
        );
        let path = std::env::temp_dir().join(format!("{}-bursty.cfg", self.veth_b));
        std::fs::write(&path, cfg).expect("trafgen config");
        Command::new("timeout")
            .arg(secs.to_string())
            .args(["ip", "netns", "exec", &self.ns_b, "trafgen", "-o", &self.veth_b, "-i"])
            .arg(&path)
            .args(["-b", &format!("{pps}pps"), "-P", "1", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn trafgen (netsniff-ng)")
    }
}

//! The socket census (§5.7) against real sockets: a listener and clients, the census read
//! through netlink `sock_diag` in-process, and again as `nobody` inside a network namespace.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftagent::input::sockets::{Census, CensusHandle, CensusOptions, TcpState, Via};

use crate::util::{self, NetnsPair};

const CHILD: &str = "FTAGENT_CENSUS_CHILD";

fn wait_for(h: &CensusHandle, what: &str, ok: impl Fn(&Census) -> bool) -> Arc<Census> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(c) = h.latest().filter(|c| ok(c)) {
            return c;
        }
        // Traffic is what wakes the census in the agent; here the test does.
        h.wake();
        assert!(Instant::now() < deadline, "the census never showed {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// 20 clients of one listener: the census sees them established, with their peers, and the
/// served sockets' `bytes_received` grow as the clients send.
fn census_of_real_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut clients = Vec::new();
    let mut served = Vec::new();
    for _ in 0..20 {
        clients.push(TcpStream::connect(("127.0.0.1", port)).unwrap());
        served.push(listener.accept().unwrap().0);
    }
    let h = CensusHandle::start(CensusOptions::default()).unwrap();
    let on_port = |c: &Census| -> Vec<(u64, u64)> {
        c.sockets
            .iter()
            .filter(|s| s.local.port() == port && s.state == TcpState::Established)
            .map(|s| (s.cookie, s.bytes_received.unwrap_or(0)))
            .collect()
    };
    let first = wait_for(&h, "20 established sockets", |c| on_port(c).len() == 20);
    assert_eq!(first.via, Via::SockDiag);
    assert!(first.sockets.iter().any(|s| s.local.port() == port && s.state == TcpState::Listen));
    let peers: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
    for s in first.sockets.iter().filter(|s| s.local.port() == port && s.state == TcpState::Established) {
        assert!(peers.contains(&s.remote), "{} is not one of our clients", s.remote);
    }
    let before: u64 = on_port(&first).iter().map(|(_, b)| b).sum();
    for c in &mut clients {
        c.write_all(&[9u8; 4096]).unwrap();
    }
    for s in &mut served {
        let mut got = [0u8; 4096];
        s.read_exact(&mut got).unwrap();
    }
    let later =
        wait_for(&h, "the bytes received", |c| on_port(c).iter().map(|(_, b)| b).sum::<u64>() >= before + 20 * 4096);
    let mut a = on_port(&first).iter().map(|(c, _)| *c).collect::<Vec<_>>();
    let mut b = on_port(&later).iter().map(|(c, _)| *c).collect::<Vec<_>>();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "one socket keeps its cookie across dumps");
    h.stop();
}

#[test]
fn census_sees_clients_and_their_bytes_grow() {
    census_of_real_connections();
}

/// The same as an ordinary user (`nobody`) in a fresh namespace: this test binary runs itself
/// through `ip netns exec` and `setpriv`; the child does the work and asserts its own uid.
#[test]
fn census_works_as_nobody_in_a_namespace() {
    if std::env::var_os(CHILD).is_some() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, util::NOBODY, "the child runs as nobody");
        census_of_real_connections();
        return;
    }
    let Some(pair) = NetnsPair::create() else { return };
    if !util::have("setpriv") {
        return util::skip("setpriv (util-linux) is not installed");
    }
    let out = Command::new("ip")
        .args(["netns", "exec", &pair.ns_a, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "sockets::census_works_as_nobody_in_a_namespace", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the census as nobody failed:\n{text}");
    assert!(text.contains("1 passed"), "the child ran no test:\n{text}");
}

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};

use super::diag::{self, Batch};
use super::proc_tcp::{self, parse, parse_line, Malformed};
use super::*;

/// Verbatim `/proc/net/tcp` and `tcp6` of a 6.18 kernel, taken in a fresh namespace holding a
/// listener on 127.0.0.1:8080, one on [::]:443 (dual stack), one on 127.0.0.1:9999 whose SYN-ACKs
/// were dropped (a SYN_SENT and a SYN_RECV), established pairs, a close-wait and a fin-wait-2.
const TCP: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/proc-6.18/net/tcp"));
const TCP6: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/proc-6.18/net/tcp6"));

fn v4(a: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port)
}

#[test]
fn proc_tcp_fixture_parses_every_line() {
    let r = parse(TCP, usize::MAX);
    assert_eq!(r.malformed_count, 0, "{:?}", r.malformed);
    assert_eq!(r.sockets.len(), 9);
    assert!(!r.truncated);
    let listen = &r.sockets[0];
    assert_eq!((listen.state, listen.local, listen.cookie), (TcpState::Listen, v4([127, 0, 0, 1], 8080), 15549));
    assert_eq!(listen.remote, v4([0, 0, 0, 0], 0));
    let half_open = &r.sockets[8];
    assert_eq!(half_open.state, TcpState::SynRecv);
    assert_eq!((half_open.local, half_open.remote), (v4([127, 0, 0, 1], 9999), v4([127, 0, 0, 1], 0x979C)));
    assert_eq!(half_open.cookie, 0, "request sockets have no inode");
    assert_eq!(r.sockets[7].state, TcpState::SynSent);
    assert_eq!(r.sockets[4].state, TcpState::CloseWait);
    assert_eq!(r.sockets[5].state, TcpState::FinWait2);
    assert!(r.sockets.iter().all(|s| s.bytes_received.is_none() && s.segs_in.is_none()));
    let states: Vec<_> = r.sockets.iter().filter(|s| s.state == TcpState::Established).collect();
    assert_eq!(states.len(), 3);
}

#[test]
fn proc_tcp6_fixture_maps_v4_peers_to_ipv4() {
    let r = parse(TCP6, usize::MAX);
    assert_eq!(r.malformed_count, 0);
    assert_eq!(r.sockets.len(), 4);
    assert_eq!(r.sockets[0].local, SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 443));
    // [::ffff:127.0.0.1]:443 serving an IPv4 client.
    assert_eq!((r.sockets[1].local, r.sockets[1].remote), (v4([127, 0, 0, 1], 443), v4([127, 0, 0, 1], 0xED28)));
    assert_eq!(r.sockets[2].local, SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0x8D60));
    assert_eq!(r.sockets[2].remote, SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 443));
    assert_eq!((r.sockets[3].state, r.sockets[3].cookie), (TcpState::Established, 15554));
}

#[test]
fn malformed_and_truncated_lines_are_gaps_not_panics() {
    let cut = &TCP[..TCP.len() - 60];
    let r = parse(cut, usize::MAX);
    assert_eq!(r.sockets.len(), 8, "the cut last line is dropped, the rest kept");
    assert_eq!(r.malformed_count, 1);
    for bad in [
        "   0: 0100007F:1F90",
        "   0: 0100007F 00000000:0000 0A",
        "   0: 0100007G:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1",
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 notanumber 1",
        "   0: 0100007F:1F90 00000000:0000 1FF 00000000:00000000 00:00000000 00000000 0 0 1 1",
        "   0: 0100:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1",
        "garbage",
        "\u{fffd}",
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0",
        "   0: é100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1",
    ] {
        assert_eq!(parse_line(bad), Err(Malformed), "{bad:?}");
    }
    assert_eq!(parse_line(""), Ok(None));
    assert_eq!(parse_line(TCP.lines().next().unwrap()), Ok(None), "the header");
    let mixed = format!("{}garbage line\n{}", TCP, TCP6.lines().nth(1).unwrap());
    let r = parse(&mixed, usize::MAX);
    assert_eq!((r.sockets.len(), r.malformed_count), (10, 1));
    assert_eq!(r.malformed, vec!["garbage line".to_string()]);
}

#[test]
fn the_cap_truncates() {
    let r = parse(TCP, 4);
    assert_eq!(r.sockets.len(), 4);
    assert!(r.truncated);
    let r = parse(TCP, 9);
    assert!(!r.truncated, "exactly the cap is complete");
}

#[test]
fn reader_falls_back_to_a_fake_proc_tree() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("net")).unwrap();
    std::fs::write(dir.path().join("net/tcp"), TCP).unwrap();
    let mut reader = CensusReader::proc_only(dir.path(), 100);
    let c = reader.take().unwrap();
    assert_eq!((c.via, c.sockets.len(), c.truncated), (Via::ProcNet, 9, false));
    std::fs::write(dir.path().join("net/tcp6"), TCP6).unwrap();
    assert_eq!(reader.take().unwrap().sockets.len(), 13);
    let capped = CensusReader::proc_only(dir.path(), 10).take().unwrap();
    assert_eq!((capped.sockets.len(), capped.truncated), (10, true));
    // Invalid UTF-8 and an overlong line: gaps.
    let mut bytes = TCP.as_bytes().to_vec();
    bytes.extend_from_slice(b"   9: \xff\xfe\n");
    bytes.extend(std::iter::repeat_n(b'7', 10_000));
    std::fs::write(dir.path().join("net/tcp"), &bytes).unwrap();
    let r = proc_tcp::read(dir.path(), 100).unwrap();
    assert_eq!(r.sockets.len(), 13);
    assert!(r.malformed_count >= 2, "{}", r.malformed_count);
    std::fs::remove_file(dir.path().join("net/tcp")).unwrap();
    assert!(CensusReader::proc_only(dir.path(), 10).take().is_none());
}

/// A listener and `n` clients on loopback, each client having sent `bytes`.
fn loopback(n: usize, bytes: usize) -> (TcpListener, Vec<TcpStream>, Vec<TcpStream>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut clients = Vec::new();
    let mut served = Vec::new();
    for _ in 0..n {
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        c.write_all(&vec![7u8; bytes]).unwrap();
        let mut got = vec![0u8; bytes];
        s.read_exact(&mut got).unwrap();
        clients.push(c);
        served.push(s);
    }
    (l, clients, served)
}

#[test]
fn netlink_census_sees_loopback_sockets_with_tcp_info() {
    let (l, clients, _served) = loopback(3, 1000);
    let port = l.local_addr().unwrap().port();
    let c = CensusReader::new("/proc", DEFAULT_CAP).take().unwrap();
    assert_eq!(c.via, Via::SockDiag);
    let listen = c.sockets.iter().find(|s| s.local.port() == port && s.state == TcpState::Listen).unwrap();
    assert_ne!(listen.cookie, 0);
    let served: Vec<_> =
        c.sockets.iter().filter(|s| s.local.port() == port && s.state == TcpState::Established).collect();
    assert_eq!(served.len(), 3);
    for s in &served {
        assert_eq!(s.bytes_received, Some(1000));
        assert!(s.segs_in.unwrap() >= 2);
        assert!(clients.iter().any(|c| c.local_addr().unwrap() == s.remote));
    }
    let mut cookies: Vec<_> = served.iter().map(|s| s.cookie).collect();
    cookies.dedup();
    assert_eq!(cookies.len(), 3);
}

#[test]
fn netlink_cap_truncates_and_the_next_dump_starts_clean() {
    let (_l, _c, _s) = loopback(4, 10);
    let mut r = CensusReader::new("/proc", 3);
    let c = r.take().unwrap();
    assert_eq!((c.via, c.sockets.len(), c.truncated), (Via::SockDiag, 3, true));
    let again = r.take().unwrap();
    assert_eq!((again.via, again.sockets.len(), again.truncated), (Via::SockDiag, 3, true));
}

/// Real dump batches from this kernel: every prefix of them and every single corrupted byte
/// parses without a panic, and a prefix never yields more sockets than the whole.
#[test]
fn netlink_batches_cut_or_corrupted_never_panic() {
    let (_l, _c, _s) = loopback(2, 100);
    let batch = raw_batch(libc::AF_INET as u8);
    let mut whole = Vec::new();
    let mut bad = 0;
    assert_eq!(diag::parse_batch(&batch, 1, usize::MAX, &mut whole, &mut bad), Batch::More);
    assert_eq!(bad, 0);
    assert!(whole.len() >= 5, "{}", whole.len());
    for cut in 0..batch.len() {
        let mut out = Vec::new();
        diag::parse_batch(&batch[..cut], 1, usize::MAX, &mut out, &mut bad);
        assert!(out.len() <= whole.len());
    }
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..5000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut b = batch.clone();
        let i = (rng % b.len() as u64) as usize;
        b[i] = (rng >> 32) as u8;
        let mut out = Vec::new();
        diag::parse_batch(&b, 1, usize::MAX, &mut out, &mut bad);
    }
    for len in 0..200 {
        assert!(diag::parse_diag_msg(&vec![0xffu8; len]).is_none_or(|_| len >= 72));
    }
    let mut err = Vec::new();
    let mut msg = [0u8; 20];
    msg[0] = 20;
    msg[4] = 2; // NLMSG_ERROR
    msg[8] = 1;
    msg[16..20].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
    assert_eq!(diag::parse_batch(&msg, 1, 10, &mut err, &mut bad), Batch::Refused(libc::EPERM));
}

/// One raw batch of a real dump (sequence number 1).
fn raw_batch(family: u8) -> Vec<u8> {
    use std::os::fd::AsRawFd;
    let fd = diag::open_socket().unwrap();
    let req = diag::request(family, 1);
    // SAFETY: valid buffers of the lengths passed; a zeroed sockaddr_nl names the kernel.
    unsafe {
        let mut sa: libc::sockaddr_nl = std::mem::zeroed();
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let sent = libc::sendto(
            fd.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&sa as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        );
        assert_eq!(sent, req.len() as isize);
        let mut buf = vec![0u8; 65536];
        let n = libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0);
        assert!(n > 0);
        buf.truncate(n as usize);
        buf
    }
}

#[test]
fn handle_hands_over_the_latest_and_stops() {
    let (l, _c, mut served) = loopback(1, 10);
    let port = l.local_addr().unwrap().port();
    let h = CensusHandle::start(CensusOptions::default()).unwrap();
    let first = wait_for(&h, |c| c.sockets.iter().any(|s| s.local.port() == port));
    let bytes = |c: &Census| {
        c.sockets.iter().find(|s| s.local.port() != port && s.remote.port() == port).and_then(|s| s.bytes_received)
    };
    // The client's socket receives what the server sends.
    let before = bytes(&first).unwrap();
    served[0].write_all(&[1u8; 5000]).unwrap();
    let later = wait_for(&h, |c| bytes(c).is_some_and(|b| b >= before + 5000));
    assert!(later.taken_at > first.taken_at);
    let dumps = h.dumps();
    assert!(dumps >= 2);
    h.stop();
}

fn wait_for(h: &CensusHandle, ok: impl Fn(&Census) -> bool) -> std::sync::Arc<Census> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(c) = h.latest().filter(|c| ok(c)) {
            return c;
        }
        h.wake();
        assert!(std::time::Instant::now() < deadline, "the census never showed it");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn an_idle_census_dumps_seldom_and_a_wake_makes_it_busy() {
    let opts = CensusOptions { idle_interval: std::time::Duration::from_secs(30), ..CensusOptions::default() };
    let h = CensusHandle::start(opts).unwrap();
    let t0 = std::time::Instant::now();
    while h.dumps() == 0 {
        assert!(t0.elapsed() < std::time::Duration::from_secs(5), "no first dump");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(h.dumps(), 1, "idle: no second dump within 1.5 s");
    h.wake();
    let t1 = std::time::Instant::now();
    while h.dumps() < 2 {
        assert!(t1.elapsed() < std::time::Duration::from_secs(3), "a wake-up brings the next dump");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    h.stop();
}

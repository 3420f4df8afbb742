//! Netlink `sock_diag` (what `ss` uses; any user may ask): one dump of the TCP sockets of one
//! address family, with `tcp_info` (`INET_DIAG_INFO`) for the byte and segment counts.
//!
//! [`request`] and [`parse_batch`] are pure (bytes in, bytes out) and check every length against
//! the buffer before reading: a short or lying message is skipped and counted, never a panic or
//! an out-of-bounds read. [`SockDiag`] is the only code here that makes system calls.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{canonical, Socket, TcpState};

const NLMSG_HDR: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// `struct inet_diag_req_v2`: family, protocol, ext, pad, states (4), sockid (48).
const REQ_V2: usize = 56;
/// `struct inet_diag_msg`: family, state, timer, retrans, sockid (48), expires, rqueue, wqueue,
/// uid, inode.
const DIAG_MSG: usize = 72;
/// `INET_DIAG_INFO`: the attribute carrying `struct tcp_info`.
const INET_DIAG_INFO: u16 = 2;
/// Offsets in `struct tcp_info` (`include/uapi/linux/tcp.h`, stable since Linux 4.2).
const TCPI_BYTES_ACKED: usize = 120;
const TCPI_BYTES_RECEIVED: usize = 128;
const TCPI_SEGS_OUT: usize = 136;
const TCPI_SEGS_IN: usize = 140;
/// Receive buffer: larger than any batch the kernel sends for a dump (32 KiB at most today).
const RECV_BUF: usize = 64 * 1024;

/// The dump request for TCP sockets of `family` (AF_INET or AF_INET6), every state, asking for
/// `tcp_info`.
pub fn request(family: u8, seq: u32) -> [u8; NLMSG_HDR + REQ_V2] {
    let mut m = [0u8; NLMSG_HDR + REQ_V2];
    m[0..4].copy_from_slice(&((NLMSG_HDR + REQ_V2) as u32).to_ne_bytes());
    m[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    // pid 0: the kernel.
    m[16] = family;
    m[17] = libc::IPPROTO_TCP as u8;
    m[18] = 1 << (INET_DIAG_INFO - 1);
    m[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
    m
}

/// What one received batch of messages amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// More batches follow.
    More,
    /// `NLMSG_DONE`: the dump is complete.
    Done,
    /// The cap was reached; the rest of the dump was not read.
    Full,
    /// The kernel refused the request (`NLMSG_ERROR`, a positive errno).
    Refused(i32),
}

/// Parse one received batch: push each socket to `out` until it holds `cap`; count messages that
/// are malformed (too short, lying lengths) in `malformed`. Messages of another sequence number
/// are ignored.
pub fn parse_batch(buf: &[u8], seq: u32, cap: usize, out: &mut Vec<Socket>, malformed: &mut u32) -> Batch {
    let mut at = 0;
    while buf.len() - at >= NLMSG_HDR {
        let len = u32_at(buf, at) as usize;
        let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        let msg_seq = u32_at(buf, at + 8);
        if len < NLMSG_HDR || len > buf.len() - at {
            *malformed += 1;
            return Batch::More;
        }
        let payload = &buf[at + NLMSG_HDR..at + len];
        at += align4(len).min(buf.len() - at);
        if msg_seq != seq {
            continue;
        }
        match kind {
            NLMSG_DONE => return Batch::Done,
            NLMSG_ERROR => {
                let errno = if payload.len() >= 4 { -(u32_at(payload, 0) as i32) } else { libc::EIO };
                return if errno == 0 { Batch::Done } else { Batch::Refused(errno) };
            }
            SOCK_DIAG_BY_FAMILY => {
                if out.len() >= cap {
                    return Batch::Full;
                }
                match parse_diag_msg(payload) {
                    Some(s) => out.push(s),
                    None => *malformed += 1,
                }
            }
            _ => {}
        }
    }
    Batch::More
}

/// One `inet_diag_msg` and its attributes; None when it is too short or of an unknown family.
pub fn parse_diag_msg(p: &[u8]) -> Option<Socket> {
    if p.len() < DIAG_MSG {
        return None;
    }
    let (family, state) = (p[0], p[1]);
    let id = &p[4..52];
    let sport = u16::from_be_bytes([id[0], id[1]]);
    let dport = u16::from_be_bytes([id[2], id[3]]);
    let (src, dst) = (addr(family, &id[4..20])?, addr(family, &id[20..36])?);
    let cookie = u64::from(u32_at(id, 40)) | u64::from(u32_at(id, 44)) << 32;
    let mut s = Socket {
        state: TcpState::from_kernel(state),
        local: canonical(SocketAddr::new(src, sport)),
        remote: canonical(SocketAddr::new(dst, dport)),
        cookie,
        bytes_received: None,
        segs_in: None,
        bytes_acked: None,
        segs_out: None,
    };
    let mut attrs = &p[DIAG_MSG..];
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            break;
        }
        if kind == INET_DIAG_INFO {
            tcp_info(&attrs[4..len], &mut s);
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    Some(s)
}

/// Fill the counters from `struct tcp_info` when the kernel's copy is long enough to hold them.
fn tcp_info(info: &[u8], s: &mut Socket) {
    if info.len() >= TCPI_SEGS_IN + 4 {
        s.bytes_acked = Some(u64_at(info, TCPI_BYTES_ACKED));
        s.bytes_received = Some(u64_at(info, TCPI_BYTES_RECEIVED));
        s.segs_out = Some(u32_at(info, TCPI_SEGS_OUT));
        s.segs_in = Some(u32_at(info, TCPI_SEGS_IN));
    }
}

fn addr(family: u8, raw: &[u8]) -> Option<IpAddr> {
    match i32::from(family) {
        libc::AF_INET => Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        libc::AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&raw[..16]).ok()?))),
        _ => None,
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Callers check `at + 4 <= b.len()`.
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(w)
}

/// What one family's dump gave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dump {
    pub truncated: bool,
    pub malformed: u32,
}

/// A `NETLINK_SOCK_DIAG` socket, kept open between dumps, with its receive buffer.
pub struct SockDiag {
    fd: Option<OwnedFd>,
    seq: u32,
    buf: Vec<u8>,
}

impl SockDiag {
    /// Open the netlink socket. Fails when the kernel or a seccomp/LSM policy refuses it.
    pub fn open() -> crate::Result<SockDiag> {
        let mut d = SockDiag { fd: None, seq: 0, buf: vec![0; RECV_BUF] };
        d.fd = Some(open_socket()?);
        Ok(d)
    }

    /// Dump the TCP sockets of `family` into `out`, at most `room` of them.
    pub fn dump(&mut self, family: u8, room: usize, out: &mut Vec<Socket>) -> crate::Result<Dump> {
        let mut dump = Dump::default();
        if room == 0 {
            dump.truncated = true;
            return Ok(dump);
        }
        let fd = match self.fd.take() {
            Some(fd) => fd,
            None => open_socket()?,
        };
        self.seq = self.seq.wrapping_add(1);
        let req = request(family, self.seq);
        // SAFETY: `req` is a valid buffer of its length; the address is a zeroed sockaddr_nl
        // naming the kernel (pid 0), of the size passed.
        let sent = unsafe {
            let mut sa: libc::sockaddr_nl = std::mem::zeroed();
            sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            libc::sendto(
                fd.as_raw_fd(),
                req.as_ptr().cast(),
                req.len(),
                0,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(crate::Error::SockDiag(io::Error::last_os_error()));
        }
        let cap = out.len() + room;
        loop {
            // SAFETY: `buf` is valid for writes of its length; MSG_TRUNC makes the return value
            // the datagram's real length, checked against the buffer below.
            let n =
                unsafe { libc::recv(fd.as_raw_fd(), self.buf.as_mut_ptr().cast(), self.buf.len(), libc::MSG_TRUNC) };
            if n < 0 {
                return Err(crate::Error::SockDiag(io::Error::last_os_error()));
            }
            let n = n as usize;
            if n > self.buf.len() {
                // A batch larger than the buffer lost its tail: skip it, keep reading.
                dump.malformed += 1;
                continue;
            }
            match parse_batch(&self.buf[..n], self.seq, cap, out, &mut dump.malformed) {
                Batch::More => continue,
                Batch::Done => break,
                Batch::Full => {
                    // The rest of the dump is still queued on this socket: drop it, so the next
                    // dump starts on a fresh one.
                    dump.truncated = true;
                    return Ok(dump);
                }
                Batch::Refused(errno) => {
                    return Err(crate::Error::SockDiag(io::Error::from_raw_os_error(errno)));
                }
            }
        }
        self.fd = Some(fd);
        Ok(dump)
    }
}

pub(super) fn open_socket() -> crate::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::NETLINK_SOCK_DIAG) };
    if fd < 0 {
        return Err(crate::Error::SockDiag(io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a socket we just created and own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // A dump that never ends must not stall the census thread for ever.
    let tv = libc::timeval { tv_sec: 2, tv_usec: 0 };
    // SAFETY: `tv` is a valid timeval of the size passed.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
    Ok(fd)
}

//! The TCP socket census (§5.7, §5.8): every TCP socket of the host's network namespace with its
//! state, both ends and, through netlink `sock_diag`, the `tcp_info` byte and segment counts.
//!
//! What it owns: reading sockets, bounded ([`Census::truncated`] once a dump reaches the cap), and
//! the thread that refreshes the census at most once a second ([`CensusHandle`]). What it must
//! not do: decide anything. Connection floods (§5.7) and attribution (§5.8) are decided in the
//! detection core from the [`Census`] values this module hands over.
//!
//! Sources, in order: netlink `sock_diag` ([`diag`], what `ss` uses; no privilege needed), then
//! `<procfs_root>/net/tcp` and `tcp6` ([`proc_tcp`]) when netlink is refused. Both parsers are
//! pure (bytes or text in); only [`diag::SockDiag`] and [`proc_tcp::read`] touch the system.
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, a dual-stack socket serving an IPv4 peer) are
//! given as IPv4, so one peer has one address whichever socket family served it.

pub mod diag;
mod handle;
pub mod proc_tcp;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use handle::{CensusHandle, CensusOptions};

/// Sockets read per dump unless configured otherwise: enough for a busy web server, bounded so a
/// connection flood cannot make the census itself a memory or CPU problem (~100 bytes a socket).
pub const DEFAULT_CAP: usize = 65_536;

/// A TCP state as the kernel numbers them (`include/net/tcp_states.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpState {
    Established,
    SynSent,
    /// Half-open: a SYN received, the handshake not completed (request sockets included).
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    Other(u8),
}

impl TcpState {
    /// From the kernel's number. `TCP_NEW_SYN_RECV` (12, a request socket) is half-open too.
    pub fn from_kernel(n: u8) -> TcpState {
        match n {
            1 => TcpState::Established,
            2 => TcpState::SynSent,
            3 | 12 => TcpState::SynRecv,
            4 => TcpState::FinWait1,
            5 => TcpState::FinWait2,
            6 => TcpState::TimeWait,
            7 => TcpState::Close,
            8 => TcpState::CloseWait,
            9 => TcpState::LastAck,
            10 => TcpState::Listen,
            11 => TcpState::Closing,
            n => TcpState::Other(n),
        }
    }
}

/// One TCP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub state: TcpState,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Identifies one socket across dumps: the `sock_diag` cookie, or the inode from `/proc`
    /// (0 there for request and time-wait sockets, which have none).
    pub cookie: u64,
    /// `tcpi_bytes_received`; None via `/proc` and for sockets without `tcp_info` (requests,
    /// time-wait, kernels before 4.1).
    pub bytes_received: Option<u64>,
    pub segs_in: Option<u32>,
    pub bytes_acked: Option<u64>,
    pub segs_out: Option<u32>,
}

/// Where a census came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    SockDiag,
    ProcNet,
}

/// One dump of the host's TCP sockets.
#[derive(Debug, Clone)]
pub struct Census {
    /// When the dump finished (monotonic).
    pub taken_at: Instant,
    pub sockets: Vec<Socket>,
    /// The dump reached the cap: more sockets exist than `sockets` holds.
    pub truncated: bool,
    pub via: Via,
}

/// Reads censuses: netlink first, `<procfs_root>/net/tcp{,6}` when netlink fails (for good once
/// it is refused: no permission, no such protocol). The one type that chooses the source;
/// [`CensusHandle`] runs it on a thread.
pub struct CensusReader {
    procfs_root: PathBuf,
    cap: usize,
    diag: Option<diag::SockDiag>,
    netlink_refused: bool,
    problem: Option<String>,
    malformed_logged: bool,
}

impl CensusReader {
    pub fn new(procfs_root: impl Into<PathBuf>, cap: usize) -> Self {
        CensusReader {
            procfs_root: procfs_root.into(),
            cap,
            diag: None,
            netlink_refused: false,
            problem: None,
            malformed_logged: false,
        }
    }

    /// Read `/proc` only (tests of the fallback; hosts where netlink must not be used).
    pub fn proc_only(procfs_root: impl Into<PathBuf>, cap: usize) -> Self {
        let mut r = Self::new(procfs_root, cap);
        r.netlink_refused = true;
        r
    }

    pub fn procfs_root(&self) -> &Path {
        &self.procfs_root
    }

    /// One dump; None when neither source can be read. Problems are logged once each.
    pub fn take(&mut self) -> Option<Census> {
        if !self.netlink_refused {
            match self.take_netlink() {
                Ok(c) => {
                    if let Some(p) = self.problem.take() {
                        log::info!("socket census: netlink readable again (was: {p})");
                    }
                    return Some(c);
                }
                Err(e) => {
                    self.diag = None;
                    self.netlink_refused = is_refusal(&e);
                    let tcp = self.procfs_root.join("net/tcp");
                    self.note(format!("socket census: {e}; reading {} instead", tcp.display()));
                }
            }
        }
        match proc_tcp::read(&self.procfs_root, self.cap) {
            Ok(read) => {
                if let Some(line) = read.malformed.first() {
                    self.malformed_once(format!(
                        "socket census: skipping {} malformed line(s) of {}/net/tcp{{,6}}, first {line:?}",
                        read.malformed_count,
                        self.procfs_root.display()
                    ));
                }
                Some(Census {
                    taken_at: Instant::now(),
                    sockets: read.sockets,
                    truncated: read.truncated,
                    via: Via::ProcNet,
                })
            }
            Err(e) => {
                self.note(format!("socket census unavailable: {e}"));
                None
            }
        }
    }

    fn take_netlink(&mut self) -> crate::Result<Census> {
        let d = match &mut self.diag {
            Some(d) => d,
            None => self.diag.insert(diag::SockDiag::open()?),
        };
        let mut sockets = Vec::new();
        let mut truncated = false;
        let mut malformed = 0;
        for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
            let dump = d.dump(family, self.cap.saturating_sub(sockets.len()), &mut sockets)?;
            malformed += dump.malformed;
            if dump.truncated {
                truncated = true;
                break;
            }
        }
        if malformed > 0 {
            self.malformed_once(format!("socket census: skipping {malformed} malformed sock_diag message(s)"));
        }
        Ok(Census { taken_at: Instant::now(), sockets, truncated, via: Via::SockDiag })
    }

    fn malformed_once(&mut self, why: String) {
        if !self.malformed_logged {
            self.malformed_logged = true;
            log::warn!("{why}");
        }
    }

    fn note(&mut self, why: String) {
        if self.problem.as_deref() != Some(why.as_str()) {
            log::warn!("{why}");
            self.problem = Some(why);
        }
    }
}

/// Errors that will not go away by asking again: the census stays on `/proc`.
fn is_refusal(e: &crate::Error) -> bool {
    let crate::Error::SockDiag(io) = e else { return false };
    matches!(
        io.raw_os_error(),
        Some(libc::EPERM | libc::EACCES | libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT | libc::ENOENT | libc::EINVAL)
    )
}

/// The front door: start the census thread unless `cap` is 0 (the census is off). Netlink is
/// asked only when `procfs_root` is the real `/proc`: another root (a container's view of the
/// host, a test's fake tree) is read as `<procfs_root>/net/tcp{,6}`, so the census describes the
/// same host as the counters. None (logged) when the thread cannot start.
pub fn start(procfs_root: &Path, cap: usize) -> Option<CensusHandle> {
    if cap == 0 {
        log::info!("socket census off (socket_census_max is 0): no connection-flood detection");
        return None;
    }
    let opts = CensusOptions {
        procfs_root: procfs_root.to_path_buf(),
        cap,
        netlink: procfs_root == Path::new("/proc"),
        ..CensusOptions::default()
    };
    match CensusHandle::start(opts) {
        Ok(h) => Some(h),
        Err(e) => {
            log::warn!("{e}; no connection-flood detection");
            None
        }
    }
}

/// IPv4-mapped IPv6 as IPv4; anything else unchanged.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests;

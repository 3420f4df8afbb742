//! The UDP side: one thread per `flows.listen` socket, each reading datagrams (at most 64 KiB,
//! one reused buffer) and handing them to the shared [`Collector`], then the records to the sink.
//! Everything is bounded: the buffer, the collector's tables, and the sink's own queue.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::collector::Collector;
use super::record::FlowSink;
use crate::error::{Error, Result};

/// How often a listener looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);
/// Receive buffer asked of the kernel (bursts of exports), best effort.
const RCVBUF: libc::c_int = 4 << 20;

pub type SharedSink = Arc<Mutex<Box<dyn FlowSink + Send>>>;

/// Collector wall clock, ms since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Bind every address; an address that cannot be bound is an error naming it.
pub fn bind(addrs: &[SocketAddr]) -> Result<Vec<UdpSocket>> {
    addrs
        .iter()
        .map(|a| {
            let s = UdpSocket::bind(a)
                .map_err(|e| Error::Setting { key: "flows.listen", why: format!("{a}: cannot bind: {e}") })?;
            s.set_read_timeout(Some(POLL))
                .map_err(|e| Error::Setting { key: "flows.listen", why: format!("{a}: {e}") })?;
            set_rcvbuf(&s);
            Ok(s)
        })
        .collect()
}

fn set_rcvbuf(s: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let v: libc::c_int = RCVBUF;
    // SAFETY: a valid socket fd and a c_int option value of the size given.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Run one socket until `stop`.
pub fn spawn(
    sock: UdpSocket,
    collector: Arc<Mutex<Collector>>,
    sink: SharedSink,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let name = format!("flows-{}", sock.local_addr().map(|a| a.port()).unwrap_or(0));
    std::thread::Builder::new().name(name).spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            let (n, from) = match sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("flows: receive failed: {e}");
                    std::thread::sleep(POLL);
                    continue;
                }
            };
            let arrived = now_ms();
            let from = match from.ip() {
                std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(from.ip()),
                ip => ip,
            };
            let mut c = collector.lock().unwrap_or_else(PoisonError::into_inner);
            let records = c.datagram(from, &buf[..n], arrived);
            if records.is_empty() {
                continue;
            }
            let mut s = sink.lock().unwrap_or_else(PoisonError::into_inner);
            for r in records {
                s.record(r, arrived);
            }
            s.flush();
        }
    })
}

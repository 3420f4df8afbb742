//! A small GET-only HTTP/1.1 responder for `/metrics` (§6.6, §13), on `std::net` and `poll(2)`:
//! one thread, non-blocking sockets, every resource bounded.
//!
//! - at most [`Limits::max_conns`] connections; a new one past the cap evicts the connection idle
//!   the longest, so idle sockets held open cannot lock out a scraper;
//! - a request head is at most [`Limits::max_request`] bytes (431 past it), and must arrive within
//!   [`Limits::read_timeout`] of the connection's last progress;
//! - a response that cannot be written within [`Limits::write_timeout`] closes the connection, and a
//!   pipelining client gets its next answer only once the previous one is written, so a client that
//!   never reads holds one response in memory and nothing else;
//! - a failed `accept` (EMFILE, ENFILE, ENOBUFS…) lets the idlest connection go and takes the
//!   next at once (and for 30 s keeps to the number of connections that fitted, accepting at most
//!   half of that per round); with no connection to let go it pauses, 50 ms doubling up to 1 s. It
//!   never ends serving.
//!
//! Why ours and not a crate: tiny_http (used before) has no read timeout, no header limit, a
//! thread per connection and ends its accept loop on the first EMFILE; the async servers need a
//! runtime the agent otherwise does without. Answering GET for one path is ~200 lines.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a connection cap learnt from running out of descriptors holds.
const FD_CAP_FOR: Duration = Duration::from_secs(30);

/// What a handler answers: status, content type, body.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_conns: usize,
    pub max_request: usize,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_conns: 64,
            max_request: 8192,
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

struct Conn {
    stream: TcpStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    written: usize,
    /// Last time bytes moved either way (or the accept).
    progress: Instant,
    close_after_write: bool,
}

/// Serve until `stop` is set (checked at least every 200 ms). `handler` gets the method and the
/// path (query removed) of each request and answers it.
pub fn serve(listener: TcpListener, limits: Limits, stop: Arc<AtomicBool>, handler: impl Fn(&str, &str) -> Reply) {
    if let Err(e) = listener.set_nonblocking(true) {
        log::error!("metrics server: cannot make the listener non-blocking: {e}");
        return;
    }
    let mut conns: HashMap<u64, Conn> = HashMap::new();
    let mut next_id = 0u64;
    let mut accept_pause: Option<Instant> = None;
    let mut backoff = Duration::from_millis(50);
    let mut accept_errors = 0u64;
    // (connections open when descriptors ran out, when)
    let mut fd_cap: Option<(usize, Instant)> = None;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let listening = accept_pause.is_none_or(|t| now >= t);
        let ids: Vec<u64> = conns.keys().copied().collect();
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(ids.len() + 1);
        for id in &ids {
            let c = &conns[id];
            let events = if c.written < c.out.len() { libc::POLLOUT } else { libc::POLLIN };
            fds.push(libc::pollfd { fd: c.stream.as_raw_fd(), events, revents: 0 });
        }
        if listening {
            fds.push(libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        }
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the whole call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 200) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                log::warn!("metrics server: poll failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
            continue;
        }
        let now = Instant::now();
        for (i, id) in ids.iter().enumerate() {
            let re = fds[i].revents;
            if re == 0 {
                continue;
            }
            let keep = conns.get_mut(id).is_some_and(|c| step(c, re, &limits, &handler, now));
            if !keep {
                conns.remove(id);
            }
        }
        if listening && fds.last().is_some_and(|f| f.revents != 0) {
            // Out of descriptors lately: as many connections as then fitted, for a while.
            if fd_cap.is_some_and(|(_, at)| now.duration_since(at) > FD_CAP_FOR) {
                fd_cap = None;
            }
            let cap = fd_cap.map_or(limits.max_conns, |(c, _)| c).clamp(1, limits.max_conns.max(1));
            // Accept what is waiting, a bounded number per round: at most half of what fits
            // when descriptors ran out, so a connection accepted now is read before it could be
            // let go for a later one.
            let budget = if fd_cap.is_some() { (cap / 2).max(1) } else { cap };
            for _ in 0..budget {
                match listener.accept() {
                    Ok((stream, _)) => {
                        backoff = Duration::from_millis(50);
                        if stream.set_nonblocking(true).is_err() {
                            continue;
                        }
                        let _ = stream.set_nodelay(true);
                        if conns.len() >= cap {
                            evict_idlest(&mut conns);
                        }
                        conns.insert(
                            next_id,
                            Conn {
                                stream,
                                inbuf: Vec::new(),
                                out: Vec::new(),
                                written: 0,
                                progress: now,
                                close_after_write: false,
                            },
                        );
                        next_id += 1;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted || e.kind() == ErrorKind::ConnectionAborted => {}
                    Err(e) => {
                        // Out of descriptors or buffers: let the idlest of ours go and take the
                        // next one at once; with none of ours to let go, wait and try again.
                        accept_errors += 1;
                        let log_it = accept_errors == 1 || accept_errors.is_power_of_two();
                        if conns.is_empty() {
                            if log_it {
                                log::warn!(
                                    "metrics server: accept failed ({e}); pausing {} ms ({accept_errors} so far)",
                                    backoff.as_millis()
                                );
                            }
                            accept_pause = Some(now + backoff);
                            backoff = (backoff * 2).min(Duration::from_secs(1));
                            break;
                        }
                        if log_it {
                            log::warn!(
                                "metrics server: accept failed ({e}) with {} connections open; letting the idlest go \
                                 ({accept_errors} so far)",
                                conns.len()
                            );
                        }
                        fd_cap = Some((conns.len(), now));
                        evict_idlest(&mut conns);
                    }
                }
            }
        }
        // Timeouts: a head not complete in time, a response not written in time.
        conns.retain(|_, c| {
            let limit = if c.written < c.out.len() { limits.write_timeout } else { limits.read_timeout };
            now.duration_since(c.progress) < limit
        });
    }
}

/// Drop the connection that moved bytes longest ago.
fn evict_idlest(conns: &mut HashMap<u64, Conn>) {
    if let Some(id) = conns.iter().min_by_key(|(_, c)| c.progress).map(|(id, _)| *id) {
        conns.remove(&id);
    }
}

/// Handle readiness on one connection; false = close it.
fn step(c: &mut Conn, revents: i16, limits: &Limits, handler: &impl Fn(&str, &str) -> Reply, now: Instant) -> bool {
    if revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
        return false;
    }
    if c.written < c.out.len() {
        match c.stream.write(&c.out[c.written..]) {
            Ok(0) => return false,
            Ok(n) => {
                c.written += n;
                c.progress = now;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => return true,
            Err(_) => return false,
        }
        if c.written < c.out.len() {
            return true;
        }
        c.out.clear();
        c.written = 0;
        if c.close_after_write {
            return false;
        }
        // A pipelined request may already be buffered.
        return answer_buffered(c, limits, handler);
    }
    let mut buf = [0u8; 4096];
    match c.stream.read(&mut buf) {
        Ok(0) => false,
        Ok(n) => {
            c.progress = now;
            // Heads already buffered were answered before reading: the buffer stays under
            // `max_request` plus one read; the rest waits in the kernel.
            c.inbuf.extend_from_slice(&buf[..n]);
            answer_buffered(c, limits, handler)
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => true,
        Err(_) => false,
    }
}

/// Answer the request heads buffered, one at a time, while each answer is written at once.
fn answer_buffered(c: &mut Conn, limits: &Limits, handler: &impl Fn(&str, &str) -> Reply) -> bool {
    loop {
        let had = c.inbuf.len();
        if !answer_one(c, limits, handler) {
            return false;
        }
        if c.written < c.out.len() || c.inbuf.len() == had {
            return true;
        }
    }
}

/// If a whole request head is buffered, queue its answer and try to write it at once.
fn answer_one(c: &mut Conn, limits: &Limits, handler: &impl Fn(&str, &str) -> Reply) -> bool {
    let Some(end) = find(&c.inbuf, b"\r\n\r\n") else {
        if c.inbuf.len() > limits.max_request {
            queue(
                c,
                &Reply { status: 431, content_type: "text/plain", body: "request too large\n".into() },
                true,
                false,
            );
            return flush_now(c);
        }
        return true;
    };
    if end + 4 > limits.max_request {
        queue(c, &Reply { status: 431, content_type: "text/plain", body: "request too large\n".into() }, true, false);
        return flush_now(c);
    }
    let head = String::from_utf8_lossy(&c.inbuf[..end]).into_owned();
    c.inbuf.drain(..end + 4);
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (method, target, version) =
        (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !version.starts_with("HTTP/1.") {
        queue(c, &Reply { status: 400, content_type: "text/plain", body: "bad request\n".into() }, true, false);
        return flush_now(c);
    }
    let mut close = version == "HTTP/1.0";
    let mut has_body = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else { continue };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("connection") {
            close = v.eq_ignore_ascii_case("close") || (close && !v.eq_ignore_ascii_case("keep-alive"));
        } else if (k.eq_ignore_ascii_case("content-length") && v != "0") || k.eq_ignore_ascii_case("transfer-encoding")
        {
            has_body = true;
        }
    }
    let head_only = method == "HEAD";
    let reply = if method != "GET" && method != "HEAD" {
        close = true;
        Reply { status: 405, content_type: "text/plain", body: "GET only\n".into() }
    } else {
        handler(method, target.split('?').next().unwrap_or(""))
    };
    // A body we do not read would be taken for the next request: close after answering.
    queue(c, &reply, close || has_body, head_only);
    flush_now(c)
}

fn queue(c: &mut Conn, r: &Reply, close: bool, head_only: bool) {
    let reason = match r.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}\r\n",
        r.status,
        r.content_type,
        r.body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(r.body.as_bytes());
    }
    c.out = out;
    c.written = 0;
    c.close_after_write = close;
}

/// Write what the socket takes now; the poll loop writes the rest.
fn flush_now(c: &mut Conn) -> bool {
    while c.written < c.out.len() {
        match c.stream.write(&c.out[c.written..]) {
            Ok(0) => return false,
            Ok(n) => c.written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    c.out.clear();
    c.written = 0;
    !c.close_after_write
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Bind `addr` for [`serve`].
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    fn start(limits: Limits) -> (SocketAddr, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
        let l = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let t = std::thread::spawn(move || {
            serve(l, limits, s, |_, p| {
                if p == "/metrics" {
                    Reply { status: 200, content_type: "text/plain", body: "x 1\n".repeat(20_000) }
                } else {
                    Reply { status: 404, content_type: "text/plain", body: "no\n".into() }
                }
            })
        });
        (addr, stop, t)
    }

    fn get(addr: SocketAddr, path: &str) -> (String, usize) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut r = std::io::BufReader::new(s);
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        (status, rest.len())
    }

    #[test]
    fn answers_get_404_and_oversized_heads() {
        let (addr, stop, t) = start(Limits::default());
        assert!(get(addr, "/metrics?x=1").0.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/other").0.starts_with("HTTP/1.1 404"));
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = s.write_all(format!("GET /metrics HTTP/1.1\r\nX: {}\r\n", "a".repeat(10_000)).as_bytes());
        let mut status = String::new();
        std::io::BufReader::new(s).read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 431"), "{status}");
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
    }

    #[test]
    fn idle_and_never_reading_clients_do_not_lock_out_a_scraper() {
        let limits = Limits { max_conns: 8, ..Limits::default() };
        let (addr, stop, t) = start(limits);
        // A client that pipelines many requests and never reads.
        let mut hog = TcpStream::connect(addr).unwrap();
        hog.set_nonblocking(true).unwrap();
        let req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
        let _ = hog.write(req.as_bytes());
        let idle: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(300));
        let t0 = Instant::now();
        let (status, len) = get(addr, "/metrics");
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        assert!(len > 80_000, "{len}");
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        drop(idle);
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
    }
}

//! `<procfs_root>/net/tcp` and `tcp6`: the census when netlink is refused. No `tcp_info` here,
//! so the byte and segment counts are None.
//!
//! [`parse_line`] and [`parse`] are pure; [`read`] is the only code that opens the files, line by
//! line, stopping at the cap so a table of a million sockets is never held in memory.

use std::io::{BufRead, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use super::{canonical, Socket, TcpState};

/// Sockets read from a table, with what could not be parsed.
#[derive(Debug, Default)]
pub struct ProcRead {
    pub sockets: Vec<Socket>,
    pub truncated: bool,
    /// The malformed lines seen (at most a few, for one log line).
    pub malformed: Vec<String>,
    /// How many lines were malformed in all.
    pub malformed_count: u64,
}

const KEEP_MALFORMED: usize = 3;
/// Longer lines are malformed (real ones are under 200 bytes).
const MAX_LINE: u64 = 4096;

/// A line that is not a socket of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

impl ProcRead {
    /// Add one line of a table; false once the cap is reached (the caller stops reading).
    pub fn push_line(&mut self, line: &str, cap: usize) -> bool {
        match parse_line(line) {
            Ok(None) => true,
            Ok(Some(s)) => {
                if self.sockets.len() >= cap {
                    self.truncated = true;
                    return false;
                }
                self.sockets.push(s);
                true
            }
            Err(Malformed) => {
                self.malformed_count += 1;
                if self.malformed.len() < KEEP_MALFORMED {
                    self.malformed.push(line.chars().take(200).collect());
                }
                true
            }
        }
    }
}

/// Parse the text of `net/tcp` or `net/tcp6` (the header line is skipped), up to `cap` sockets.
pub fn parse(text: &str, cap: usize) -> ProcRead {
    let mut out = ProcRead::default();
    for line in text.lines() {
        if !out.push_line(line, cap) {
            break;
        }
    }
    out
}

/// One line: `Ok(None)` for the header and blank lines, `Err` for a malformed one.
///
/// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...`, addresses as the kernel's
/// in-memory words in hex (`0100007F:1F90` is 127.0.0.1:8080 on a little-endian host).
pub fn parse_line(line: &str) -> Result<Option<Socket>, Malformed> {
    let mut f = line.split_ascii_whitespace();
    let Some(sl) = f.next() else { return Ok(None) };
    if sl == "sl" {
        return Ok(None);
    }
    if !sl.ends_with(':') {
        return Err(Malformed);
    }
    let local = endpoint(f.next().ok_or(Malformed)?)?;
    let remote = endpoint(f.next().ok_or(Malformed)?)?;
    let state = u8::from_str_radix(f.next().ok_or(Malformed)?, 16).map_err(|_| Malformed)?;
    // tx:rx queue, timer, retransmits, uid, timeout, then the inode.
    let inode = f.nth(5).ok_or(Malformed)?.parse::<u64>().map_err(|_| Malformed)?;
    Ok(Some(Socket {
        state: TcpState::from_kernel(state),
        local: canonical(local),
        remote: canonical(remote),
        cookie: inode,
        bytes_received: None,
        segs_in: None,
        bytes_acked: None,
        segs_out: None,
    }))
}

fn endpoint(s: &str) -> Result<SocketAddr, Malformed> {
    let (addr, port) = s.split_once(':').ok_or(Malformed)?;
    let port = u16::from_str_radix(port, 16).map_err(|_| Malformed)?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(addr)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(&addr[i * 8..i * 8 + 8])?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return Err(Malformed),
    };
    Ok(SocketAddr::new(ip, port))
}

/// One 32-bit word printed with `%08X` from memory: back to its bytes in memory order.
fn word(hex: &str) -> Result<[u8; 4], Malformed> {
    if !hex.is_ascii() {
        return Err(Malformed);
    }
    Ok(u32::from_str_radix(hex, 16).map_err(|_| Malformed)?.to_ne_bytes())
}

/// Read `<root>/net/tcp` then `<root>/net/tcp6`, at most `cap` sockets in all. A missing `tcp6`
/// (IPv6 disabled) is not an error; a missing `tcp` is.
pub fn read(root: &Path, cap: usize) -> crate::Result<ProcRead> {
    let mut out = ProcRead::default();
    for (name, required) in [("net/tcp", true), ("net/tcp6", false)] {
        let path = root.join(name);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(crate::Error::io(path, e)),
        };
        let mut reader = std::io::BufReader::new(file);
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            let n =
                (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line).map_err(|e| crate::Error::io(&path, e))?;
            if n == 0 {
                break;
            }
            // Invalid UTF-8 becomes U+FFFD, which no field accepts: a malformed line.
            if !out.push_line(&String::from_utf8_lossy(&line), cap) {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

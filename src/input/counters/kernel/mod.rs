//! Kernel counters any user may read that `/proc/net/dev` does not show (§5.7): TcpExt from
//! `net/netstat` (SYN cookies, listen-queue drops), per-CPU `net/softnet_stat` (packets dropped
//! before any interface counter saw them) and UDP receive errors from `net/snmp{,6}`. Pure
//! parsers (text in) and rates as functions of two readings; no file access here.
//!
//! A table that is missing, malformed or truncated gives no reading for that source: a gap in
//! its rates (the caller logs it once), never a panic and never a spike.

use std::time::Duration;

/// The TcpExt counters of a SYN flood.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpExt {
    /// SYNs answered with a cookie: the SYN queue was full, or cookies are always on.
    pub syncookies_sent: u64,
    /// Completed handshakes dropped because the accept queue was full.
    pub listen_overflows: u64,
    /// Every SYN or handshake dropped at a listener (overflows included).
    pub listen_drops: u64,
    /// SYNs dropped because the SYN queue was full and cookies were off.
    pub req_q_full_drop: u64,
}

/// Per-CPU rows of `net/softnet_stat` (u32 counters in the kernel; they wrap).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Softnet {
    /// (dropped, time_squeeze) per CPU row, in file order.
    pub cpus: Vec<(u32, u32)>,
}

/// UDP datagrams lost at the socket, IPv4 and IPv6 together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpErrors {
    /// Dropped because the receiving socket's buffer was full.
    pub rcvbuf_errors: u64,
    /// Every datagram not delivered for an error (`RcvbufErrors` included).
    pub in_errors: u64,
}

/// One reading of the three sources; None where a source could not be read this tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelReading {
    pub tcp_ext: Option<TcpExt>,
    pub softnet: Option<Softnet>,
    pub udp: Option<UdpErrors>,
}

/// A reading with what went wrong with each table that gave none: (table, why).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelRead {
    pub reading: KernelReading,
    pub problems: Vec<(&'static str, String)>,
}

/// What was wrong with a table, for the one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `net/netstat`: the `TcpExt:` header line and its value line.
pub fn parse_netstat(text: &str) -> Result<TcpExt, Malformed> {
    let mut lines = text.lines();
    while let Some(header) = lines.next() {
        let Some(names) = header.strip_prefix("TcpExt:") else { continue };
        let values = lines
            .next()
            .and_then(|l| l.strip_prefix("TcpExt:"))
            .ok_or_else(|| Malformed("TcpExt header without its value line".into()))?;
        let (n_names, n_values) = (names.split_whitespace().count(), values.split_whitespace().count());
        if n_names != n_values {
            return Err(Malformed(format!("TcpExt has {n_names} names but {n_values} values")));
        }
        let mut out = TcpExt::default();
        let mut found = 0;
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            let slot = match name {
                "SyncookiesSent" => &mut out.syncookies_sent,
                "ListenOverflows" => &mut out.listen_overflows,
                "ListenDrops" => &mut out.listen_drops,
                "TCPReqQFullDrop" => &mut out.req_q_full_drop,
                _ => continue,
            };
            *slot = value.parse().map_err(|_| Malformed(format!("TcpExt {name}: {value:?} is not a count")))?;
            found += 1;
        }
        return if found == 4 {
            Ok(out)
        } else {
            Err(Malformed("TcpExt lacks SyncookiesSent, ListenOverflows, ListenDrops or TCPReqQFullDrop".into()))
        };
    }
    Err(Malformed("no TcpExt lines".into()))
}

/// `net/softnet_stat`: one row per CPU of hex columns; column 2 is `dropped`, column 3
/// `time_squeeze`. Rows shorter than that, or not hex, make the whole table malformed.
pub fn parse_softnet(text: &str) -> Result<Softnet, Malformed> {
    let mut out = Softnet::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut cols = line.split_whitespace().skip(1);
        let mut hex = |what: &str| {
            let col = cols.next().ok_or_else(|| Malformed(format!("row {} has no {what} column", i + 1)))?;
            u32::from_str_radix(col, 16).map_err(|_| Malformed(format!("row {}: {what} {col:?} is not hex", i + 1)))
        };
        let dropped = hex("dropped")?;
        let squeeze = hex("time_squeeze")?;
        out.cpus.push((dropped, squeeze));
    }
    if out.cpus.is_empty() {
        return Err(Malformed("no rows".into()));
    }
    Ok(out)
}

/// `RcvbufErrors` and `InErrors` of the `Udp:` lines of `net/snmp`, plus `Udp6RcvbufErrors` and
/// `Udp6InErrors` of `net/snmp6` when given.
pub fn parse_udp_errors(snmp: &str, snmp6: Option<&str>) -> Result<UdpErrors, Malformed> {
    let mut lines = snmp.lines();
    let mut out = None;
    while let Some(header) = lines.next() {
        let Some(names) = header.strip_prefix("Udp:") else { continue };
        let values =
            lines.next().and_then(|l| l.strip_prefix("Udp:")).ok_or_else(|| Malformed("Udp header alone".into()))?;
        let mut e = UdpErrors::default();
        let mut found = 0;
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            let slot = match name {
                "RcvbufErrors" => &mut e.rcvbuf_errors,
                "InErrors" => &mut e.in_errors,
                _ => continue,
            };
            *slot = value.parse().map_err(|_| Malformed(format!("Udp {name}: {value:?} is not a count")))?;
            found += 1;
        }
        if found != 2 {
            return Err(Malformed("Udp lacks RcvbufErrors or InErrors".into()));
        }
        out = Some(e);
        break;
    }
    let mut out = out.ok_or_else(|| Malformed("no Udp lines".into()))?;
    for line in snmp6.unwrap_or("").lines() {
        let mut it = line.split_whitespace();
        let (Some(name), Some(value)) = (it.next(), it.next()) else { continue };
        let slot = match name {
            "Udp6RcvbufErrors" => &mut out.rcvbuf_errors,
            "Udp6InErrors" => &mut out.in_errors,
            _ => continue,
        };
        let v: u64 = value.parse().map_err(|_| Malformed(format!("{name}: {value:?} is not a count")))?;
        *slot = slot.saturating_add(v);
    }
    Ok(out)
}

/// Per-second rates of the kernel counters over one interval; None where a source gave no
/// reading at either end or went backwards.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KernelRates {
    pub syncookies_sent_pps: Option<f64>,
    pub listen_overflows_pps: Option<f64>,
    pub listen_drops_pps: Option<f64>,
    pub req_q_full_drops_pps: Option<f64>,
    /// Packets dropped by the kernel's per-CPU backlog (`softnet_stat` dropped), all CPUs.
    pub softnet_dropped_pps: Option<f64>,
    /// Times the receive softirq ran out of budget with work left, per second.
    pub time_squeeze_per_s: Option<f64>,
    pub udp_rcvbuf_errors_pps: Option<f64>,
    pub udp_in_errors_pps: Option<f64>,
}

impl KernelRates {
    /// SYNs the listen path could not take the normal way, per second: answered with a cookie
    /// or dropped (`SyncookiesSent + ListenDrops`; `ListenDrops` already counts the overflows
    /// and the SYN-queue drops). The SYN flood signal of §5.7.
    pub fn syn_pressure_pps(&self) -> Option<f64> {
        Some(self.syncookies_sent_pps? + self.listen_drops_pps?)
    }
}

/// Rates between two readings `interval` apart.
pub fn rates(prev: &KernelReading, cur: &KernelReading, interval: Duration) -> KernelRates {
    let secs = interval.as_secs_f64();
    if secs <= 0.0 {
        return KernelRates::default();
    }
    let per_s = |a: u64, b: u64| a.checked_sub(b).map(|d| d as f64 / secs);
    let mut r = KernelRates::default();
    if let (Some(c), Some(p)) = (&cur.tcp_ext, &prev.tcp_ext) {
        r.syncookies_sent_pps = per_s(c.syncookies_sent, p.syncookies_sent);
        r.listen_overflows_pps = per_s(c.listen_overflows, p.listen_overflows);
        r.listen_drops_pps = per_s(c.listen_drops, p.listen_drops);
        r.req_q_full_drops_pps = per_s(c.req_q_full_drop, p.req_q_full_drop);
    }
    if let (Some(c), Some(p)) = (&cur.softnet, &prev.softnet) {
        if let Some((dropped, squeeze)) = softnet_delta(p, c) {
            r.softnet_dropped_pps = Some(dropped as f64 / secs);
            r.time_squeeze_per_s = Some(squeeze as f64 / secs);
        }
    }
    if let (Some(c), Some(p)) = (&cur.udp, &prev.udp) {
        r.udp_rcvbuf_errors_pps = per_s(c.rcvbuf_errors, p.rcvbuf_errors);
        r.udp_in_errors_pps = per_s(c.in_errors, p.in_errors);
    }
    r
}

/// Summed per-CPU deltas. The kernel's counters are u32 and wrap, so each CPU's delta is taken
/// modulo 2^32; a delta of 2^31 or more is no plausible rate (a CPU row reset or rows that
/// moved): no sample. A changed number of rows (CPU hot-plug) is no sample either.
fn softnet_delta(prev: &Softnet, cur: &Softnet) -> Option<(u64, u64)> {
    if prev.cpus.len() != cur.cpus.len() {
        return None;
    }
    let mut sum = (0u64, 0u64);
    for (&(pd, ps), &(cd, cs)) in prev.cpus.iter().zip(&cur.cpus) {
        let (d, s) = (cd.wrapping_sub(pd), cs.wrapping_sub(ps));
        if d >= 1 << 31 || s >= 1 << 31 {
            return None;
        }
        sum.0 += u64::from(d);
        sum.1 += u64::from(s);
    }
    Some(sum)
}

#[cfg(test)]
mod tests;

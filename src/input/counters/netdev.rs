//! Pure parser for `/proc/net/dev` text. Never opens a file.
//!
//! A malformed line is reported and skipped; the other interfaces still parse, so one odd line
//! never costs a sample of the monitored interface.

/// The counters of one interface, as the kernel reports them (monotonic u64s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceCounters {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    /// Packets the NIC or kernel dropped on receive: the `drop` column (which includes the
    /// driver's `rx_missed_errors` on kernels that report it) plus `fifo` overruns (§5.5).
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

/// Everything one read of `net/dev` gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDev {
    pub ifaces: Vec<IfaceCounters>,
    /// Lines that could not be parsed, verbatim (trimmed), for a log line.
    pub malformed: Vec<String>,
}

impl NetDev {
    pub fn get(&self, name: &str) -> Option<&IfaceCounters> {
        self.ifaces.iter().find(|i| i.name == name)
    }
}

/// Parse the whole file. The two header lines are recognised by their `|` separators.
pub fn parse(text: &str) -> NetDev {
    let mut out = NetDev::default();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.contains('|') {
            continue;
        }
        match parse_line(trimmed) {
            Some(c) => out.ifaces.push(c),
            None => out.malformed.push(trimmed.to_string()),
        }
    }
    out
}

/// `name: rx_bytes rx_packets errs drop fifo frame compressed multicast tx_bytes tx_packets ...`
/// Old kernels print no space after the colon (`eth0:123`), so split at the last colon.
fn parse_line(line: &str) -> Option<IfaceCounters> {
    let (name, rest) = line.rsplit_once(':')?;
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let mut fields = [0u64; 10];
    let mut n = 0;
    for tok in rest.split_ascii_whitespace() {
        if n < fields.len() {
            fields[n] = tok.parse().ok()?;
        } else if tok.parse::<u64>().is_err() {
            return None;
        }
        n += 1;
    }
    if n < 16 {
        return None;
    }
    Some(IfaceCounters {
        name: name.to_string(),
        rx_bytes: fields[0],
        rx_packets: fields[1],
        rx_dropped: fields[3].saturating_add(fields[4]),
        tx_bytes: fields[8],
        tx_packets: fields[9],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Verbatim from a 6.1 kernel host with a VLAN sub-interface, a WireGuard tunnel and
    /// counters past 2^32 (wide 64-bit).
    pub const KERNEL_6_1: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 91875432    712300    0    0    0     0          0         0 91875432    712300    0    0    0     0       0          0
enp0s31f6: 48190433652921 39517462281    0 1187    0     0          0    441213 9312230119871 8312391023    0    0    0     0       0          0
eth0.100: 5834223 41233    0    0    0     0          0        12  1223004    9120    0    0    0     0       0          0
   wg0: 18446744073709551000 4294967296    0    0    0     0          0         0 12 1    0    0    0     0       0          0
";

    #[test]
    fn parses_wide_counters_and_odd_names() {
        let nd = parse(KERNEL_6_1);
        assert!(nd.malformed.is_empty(), "{:?}", nd.malformed);
        assert_eq!(nd.ifaces.len(), 4);
        let e = nd.get("enp0s31f6").unwrap();
        assert_eq!((e.rx_bytes, e.rx_packets), (48_190_433_652_921, 39_517_462_281));
        assert_eq!(e.rx_dropped, 1187, "drop + fifo");
        assert_eq!((e.tx_bytes, e.tx_packets), (9_312_230_119_871, 8_312_391_023));
        assert_eq!(nd.get("eth0.100").unwrap().rx_packets, 41_233);
        let wg = nd.get("wg0").unwrap();
        assert_eq!((wg.rx_bytes, wg.rx_packets), (18_446_744_073_709_551_000, 4_294_967_296));
    }

    #[test]
    fn old_kernel_format_without_space_after_colon() {
        let nd = parse("  eth0:1234 10 0 0 0 0 0 0 99 3 0 0 0 0 0 0\n");
        assert_eq!(nd.get("eth0").unwrap().rx_bytes, 1234);
        let nd = parse("  eth0:1234 10 0 7 5 0 0 0 99 3 0 0 0 0 0 0\n");
        assert_eq!(nd.get("eth0").unwrap().rx_dropped, 12, "drop 7 + fifo 5");
    }

    #[test]
    fn malformed_lines_are_skipped_and_reported() {
        let text = format!(
            "{KERNEL_6_1}  bad0: 12 x 0 0 0 0 0 0 1 1 0 0 0 0 0 0\nshort: 1 2 3\ngarbage line\n: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
             huge: 99999999999999999999999 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n"
        );
        let nd = parse(&text);
        assert_eq!(nd.ifaces.len(), 4);
        assert_eq!(nd.malformed.len(), 5, "{:?}", nd.malformed);
        assert!(nd.get("enp0s31f6").is_some());
    }

    #[test]
    fn empty_and_binary_input_do_not_panic() {
        assert_eq!(parse(""), NetDev::default());
        let junk = String::from_utf8_lossy(&[0xff, b':', 0, 1, 2, b'\n', b'|']).into_owned();
        let nd = parse(&junk);
        assert!(nd.ifaces.is_empty());
    }
}

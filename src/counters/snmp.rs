//! Pure parsers for `/proc/net/snmp`, `/proc/net/snmp6` and `/proc/net/route`. Never open files.
//!
//! The protocol mix counts every UDP datagram that arrived, delivered or not: `InDatagrams +
//! NoPorts + InErrors`. A UDP flood to a closed port (the common case) only moves `NoPorts`;
//! reading `InDatagrams` alone would mislabel it.

/// Host-wide received-segment counters by protocol (IPv4 and IPv6 together).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProtoCounters {
    pub tcp_in: u64,
    pub udp_in: u64,
    pub icmp_in: u64,
}

impl ProtoCounters {
    /// Per-protocol deltas, or None when any counter went backwards (reset, namespace change).
    pub fn delta(&self, earlier: &ProtoCounters) -> Option<ProtoCounters> {
        Some(ProtoCounters {
            tcp_in: self.tcp_in.checked_sub(earlier.tcp_in)?,
            udp_in: self.udp_in.checked_sub(earlier.udp_in)?,
            icmp_in: self.icmp_in.checked_sub(earlier.icmp_in)?,
        })
    }

    pub fn add(&mut self, other: &ProtoCounters) {
        self.tcp_in = self.tcp_in.saturating_add(other.tcp_in);
        self.udp_in = self.udp_in.saturating_add(other.udp_in);
        self.icmp_in = self.icmp_in.saturating_add(other.icmp_in);
    }

    pub fn total(&self) -> u64 {
        self.tcp_in.saturating_add(self.udp_in).saturating_add(self.icmp_in)
    }
}

/// Parse `net/snmp`: pairs of `Proto: Name Name ...` / `Proto: 1 2 ...` lines.
/// Returns None when none of the needed counters is present.
pub fn parse_snmp(text: &str) -> Option<ProtoCounters> {
    let mut out = ProtoCounters::default();
    let mut found = false;
    let mut lines = text.lines();
    while let Some(header) = lines.next() {
        let Some(values) = lines.next() else { break };
        let (Some((proto, names)), Some((proto2, nums))) = (header.split_once(':'), values.split_once(':')) else {
            continue;
        };
        if proto != proto2 {
            continue;
        }
        for (name, num) in names.split_whitespace().zip(nums.split_whitespace()) {
            // Some counters (Tcp MaxConn) are -1; we only read non-negative ones.
            let Ok(v) = num.parse::<u64>() else { continue };
            match (proto, name) {
                ("Tcp", "InSegs") => out.tcp_in = out.tcp_in.saturating_add(v),
                ("Udp", "InDatagrams" | "NoPorts" | "InErrors") => out.udp_in = out.udp_in.saturating_add(v),
                ("Icmp", "InMsgs") => out.icmp_in = out.icmp_in.saturating_add(v),
                _ => continue,
            }
            found = true;
        }
    }
    found.then_some(out)
}

/// Parse `net/snmp6`: one `Name value` per line. TCP over IPv6 is already in `Tcp InSegs`.
pub fn parse_snmp6(text: &str) -> ProtoCounters {
    let mut out = ProtoCounters::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(name), Some(num)) = (it.next(), it.next()) else { continue };
        let Ok(v) = num.parse::<u64>() else { continue };
        match name {
            "Udp6InDatagrams" | "Udp6NoPorts" | "Udp6InErrors" => out.udp_in = out.udp_in.saturating_add(v),
            "Icmp6InMsgs" => out.icmp_in = out.icmp_in.saturating_add(v),
            _ => {}
        }
    }
    out
}

/// The interface of the IPv4 default route (destination 0, mask 0, up) in `net/route`.
pub fn default_route_iface(text: &str) -> Option<String> {
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            return None;
        }
        let flags = u32::from_str_radix(f[3], 16).ok()?;
        let up = flags & 0x1 != 0;
        (f[1] == "00000000" && f[7] == "00000000" && up).then(|| f[0].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Verbatim `/proc/net/snmp` from a 6.1 kernel (Ip and IcmpMsg lines shortened by nothing).
    const SNMP: &str = "\
Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos InDiscards InDelivers OutRequests OutDiscards OutNoRoutes ReasmTimeout ReasmReqds ReasmOKs ReasmFails FragOKs FragFails FragCreates OutTransmits
Ip: 1 64 2104418 0 0 0 0 0 2104412 1699361 20 0 0 0 0 0 0 0 0 1699341
Icmp: InMsgs InErrors InCsumErrors InDestUnreachs InTimeExcds InParmProbs InSrcQuenchs InRedirects InEchos InEchoReps InTimestamps InTimestampReps InAddrMasks InAddrMaskReps OutMsgs OutErrors OutRateLimitGlobal OutRateLimitHost OutDestUnreachs OutTimeExcds OutParmProbs OutSrcQuenchs OutRedirects OutEchos OutEchoReps OutTimestamps OutTimestampReps OutAddrMasks OutAddrMaskReps
Icmp: 391 0 0 379 0 0 0 0 12 0 0 0 0 0 1409 0 0 3 1397 0 0 0 0 0 12 0 0 0 0
IcmpMsg: InType3 InType8 OutType0 OutType3
IcmpMsg: 379 12 12 1397
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 8893 1321 301 440 17 2012393 1905711 2231 0 6390 0
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 90712 1397 5 92514 5 0 0 1163 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 0 0 0
";

    const SNMP6: &str = "\
Ip6InReceives                   \t4021
Icmp6InMsgs                     \t120
Icmp6InErrors                   \t0
Udp6InDatagrams                 \t300
Udp6NoPorts                     \t7
Udp6InErrors                    \t1
UdpLite6InDatagrams             \t0
";

    #[test]
    fn udp_counts_no_ports_and_errors() {
        let c = parse_snmp(SNMP).unwrap();
        assert_eq!(c, ProtoCounters { tcp_in: 2_012_393, udp_in: 90_712 + 1397 + 5, icmp_in: 391 });
    }

    #[test]
    fn snmp6_adds_udp6_and_icmp6() {
        assert_eq!(parse_snmp6(SNMP6), ProtoCounters { tcp_in: 0, udp_in: 308, icmp_in: 120 });
    }

    #[test]
    fn garbage_snmp_is_none_not_a_panic() {
        assert_eq!(parse_snmp("nonsense\nmore: 1 2\n"), None);
        assert_eq!(parse_snmp(""), None);
        assert_eq!(parse_snmp6("Udp6NoPorts x\n\n"), ProtoCounters::default());
    }

    #[test]
    fn delta_refuses_a_reset() {
        let a = ProtoCounters { tcp_in: 10, udp_in: 10, icmp_in: 10 };
        let b = ProtoCounters { tcp_in: 5, udp_in: 20, icmp_in: 10 };
        assert_eq!(b.delta(&a), None);
        assert_eq!(a.delta(&ProtoCounters::default()), Some(a));
    }

    #[test]
    fn default_route_is_found() {
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
                     enp0s31f6\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
        assert_eq!(default_route_iface(route).as_deref(), Some("enp0s31f6"));
        assert_eq!(default_route_iface("Iface\n"), None);
    }
}

//! Pure parsers for `/proc/net/snmp`, `/proc/net/snmp6` and `/proc/net/route`. Never open files.
//!
//! The protocol mix counts every UDP datagram that arrived, delivered or not: `InDatagrams +
//! NoPorts + InErrors`. A UDP flood to a closed port (the common case) only moves `NoPorts`;
//! reading `InDatagrams` alone would mislabel it.

/// Host-wide packet counters by protocol for one direction (IPv4 and IPv6 together).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProtoCounters {
    pub tcp: u64,
    pub udp: u64,
    pub icmp: u64,
}

impl ProtoCounters {
    /// Per-protocol deltas, or None when any counter went backwards (reset, namespace change).
    pub fn delta(&self, earlier: &ProtoCounters) -> Option<ProtoCounters> {
        Some(ProtoCounters {
            tcp: self.tcp.checked_sub(earlier.tcp)?,
            udp: self.udp.checked_sub(earlier.udp)?,
            icmp: self.icmp.checked_sub(earlier.icmp)?,
        })
    }

    pub fn add(&mut self, other: &ProtoCounters) {
        self.tcp = self.tcp.saturating_add(other.tcp);
        self.udp = self.udp.saturating_add(other.udp);
        self.icmp = self.icmp.saturating_add(other.icmp);
    }

    pub fn total(&self) -> u64 {
        self.tcp.saturating_add(self.udp).saturating_add(self.icmp)
    }
}

/// Both directions of the host's protocol counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostProto {
    /// Received: TCP `InSegs`, UDP `InDatagrams + NoPorts + InErrors`, ICMP `InMsgs`.
    pub rx: ProtoCounters,
    /// Sent: TCP `OutSegs`, UDP `OutDatagrams`, ICMP `OutMsgs`.
    pub tx: ProtoCounters,
}

impl HostProto {
    pub fn add(&mut self, other: &HostProto) {
        self.rx.add(&other.rx);
        self.tx.add(&other.tx);
    }
}

/// Parse `net/snmp`: pairs of `Proto: Name Name ...` / `Proto: 1 2 ...` lines.
/// Returns None when none of the needed counters is present.
pub fn parse_snmp(text: &str) -> Option<HostProto> {
    let mut out = HostProto::default();
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
            let slot = match (proto, name) {
                ("Tcp", "InSegs") => &mut out.rx.tcp,
                ("Udp", "InDatagrams" | "NoPorts" | "InErrors") => &mut out.rx.udp,
                ("Icmp", "InMsgs") => &mut out.rx.icmp,
                ("Tcp", "OutSegs") => &mut out.tx.tcp,
                ("Udp", "OutDatagrams") => &mut out.tx.udp,
                ("Icmp", "OutMsgs") => &mut out.tx.icmp,
                _ => continue,
            };
            *slot = slot.saturating_add(v);
            found = true;
        }
    }
    found.then_some(out)
}

/// Parse `net/snmp6`: one `Name value` per line. TCP over IPv6 is already in `Tcp InSegs`.
pub fn parse_snmp6(text: &str) -> HostProto {
    let mut out = HostProto::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(name), Some(num)) = (it.next(), it.next()) else { continue };
        let Ok(v) = num.parse::<u64>() else { continue };
        let slot = match name {
            "Udp6InDatagrams" | "Udp6NoPorts" | "Udp6InErrors" => &mut out.rx.udp,
            "Icmp6InMsgs" => &mut out.rx.icmp,
            "Udp6OutDatagrams" => &mut out.tx.udp,
            "Icmp6OutMsgs" => &mut out.tx.icmp,
            _ => continue,
        };
        *slot = slot.saturating_add(v);
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
Udp6OutDatagrams                \t290
Icmp6OutMsgs                    \t98
UdpLite6InDatagrams             \t0
";

    #[test]
    fn udp_counts_no_ports_and_errors() {
        let c = parse_snmp(SNMP).unwrap();
        assert_eq!(c.rx, ProtoCounters { tcp: 2_012_393, udp: 90_712 + 1397 + 5, icmp: 391 });
        assert_eq!(c.tx, ProtoCounters { tcp: 1_905_711, udp: 92_514, icmp: 1409 });
    }

    #[test]
    fn snmp6_adds_udp6_and_icmp6() {
        let c = parse_snmp6(SNMP6);
        assert_eq!(c.rx, ProtoCounters { tcp: 0, udp: 308, icmp: 120 });
        assert_eq!(c.tx, ProtoCounters { tcp: 0, udp: 290, icmp: 98 });
    }

    #[test]
    fn garbage_snmp_is_none_not_a_panic() {
        assert_eq!(parse_snmp("nonsense\nmore: 1 2\n"), None);
        assert_eq!(parse_snmp(""), None);
        assert_eq!(parse_snmp6("Udp6NoPorts x\n\n"), HostProto::default());
    }

    #[test]
    fn delta_refuses_a_reset() {
        let a = ProtoCounters { tcp: 10, udp: 10, icmp: 10 };
        let b = ProtoCounters { tcp: 5, udp: 20, icmp: 10 };
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

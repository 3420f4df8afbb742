use super::*;

/// Verbatim tables of a 6.18 kernel: an idle host, and a namespace right after 1,643 SYNs were
/// answered with cookies (`tcp_syncookies=2`).
const NETSTAT: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/proc-6.18/net/netstat"));
const NETSTAT_FLOOD: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/proc-6.18-syncookies/net/netstat"));
const SOFTNET: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/proc-6.18/net/softnet_stat"));
const SNMP: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/proc-6.18/net/snmp"));
const SNMP6: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/proc-6.18/net/snmp6"));

#[test]
fn netstat_fixtures_give_the_tcpext_counters() {
    assert_eq!(parse_netstat(NETSTAT).unwrap(), TcpExt::default());
    let flood = parse_netstat(NETSTAT_FLOOD).unwrap();
    assert_eq!(flood, TcpExt { syncookies_sent: 1643, ..TcpExt::default() });
}

#[test]
fn softnet_fixture_has_one_row_per_cpu() {
    let s = parse_softnet(SOFTNET).unwrap();
    assert_eq!(s.cpus, vec![(0, 0), (0, 0)]);
    let s = parse_softnet("0000002b 000001f4 00000003 0 0\n00002017 00000010 00000000 0 0\n").unwrap();
    assert_eq!(s.cpus, vec![(0x1f4, 3), (0x10, 0)]);
}

#[test]
fn udp_errors_from_snmp_and_snmp6() {
    assert_eq!(parse_udp_errors(SNMP, Some(SNMP6)).unwrap(), UdpErrors::default());
    let snmp = "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\nUdp: 9 1 7 3 5 0\n";
    let snmp6 = "Udp6InErrors                    \t2\nUdp6RcvbufErrors                \t1\n";
    assert_eq!(parse_udp_errors(snmp, Some(snmp6)).unwrap(), UdpErrors { rcvbuf_errors: 6, in_errors: 9 });
    assert_eq!(parse_udp_errors(snmp, None).unwrap(), UdpErrors { rcvbuf_errors: 5, in_errors: 7 });
}

#[test]
fn malformed_or_truncated_tables_are_errors_not_panics() {
    // Truncated anywhere: every prefix parses to a value or an error.
    for text in [NETSTAT, NETSTAT_FLOOD] {
        for cut in 0..text.len() {
            if text.is_char_boundary(cut) {
                let _ = parse_netstat(&text[..cut]);
            }
        }
    }
    let values_cut = NETSTAT_FLOOD.lines().take(2).collect::<Vec<_>>().join("\n");
    let half = &values_cut[..values_cut.len() - 40];
    assert!(parse_netstat(half).is_err(), "a value line cut short");
    assert!(parse_netstat("TcpExt: SyncookiesSent\n").is_err());
    assert!(parse_netstat("").is_err());
    let bad = NETSTAT_FLOOD.replacen("TcpExt: 1643", "TcpExt: x", 1);
    assert!(parse_netstat(&bad).unwrap_err().0.contains("SyncookiesSent"));
    for cut in 0..SOFTNET.len() {
        let _ = parse_softnet(&SOFTNET[..cut]);
    }
    assert!(parse_softnet("").is_err());
    assert!(parse_softnet("0000002b\n").is_err(), "no dropped column");
    assert!(parse_softnet("0000002b zz 0\n").is_err());
    assert!(parse_udp_errors("Udp: InErrors\n", None).is_err());
    assert!(parse_udp_errors(SNMP, Some("Udp6InErrors x\n")).is_err());
    for cut in 0..SNMP.len() {
        let _ = parse_udp_errors(&SNMP[..cut], None);
    }
}

#[test]
fn rates_are_per_second_and_refuse_resets() {
    let at = |cookies: u64, drops: u64, softnet: Vec<(u32, u32)>| KernelReading {
        tcp_ext: Some(TcpExt { syncookies_sent: cookies, listen_drops: drops, ..TcpExt::default() }),
        softnet: Some(Softnet { cpus: softnet }),
        udp: Some(UdpErrors { rcvbuf_errors: cookies, in_errors: cookies }),
    };
    let half = Duration::from_millis(500);
    let r = rates(&at(100, 0, vec![(10, 0), (0, 0)]), &at(1600, 100, vec![(60, 2), (50, 0)]), half);
    assert_eq!(r.syncookies_sent_pps, Some(3000.0));
    assert_eq!(r.syn_pressure_pps(), Some(3200.0));
    assert_eq!((r.softnet_dropped_pps, r.time_squeeze_per_s), (Some(200.0), Some(4.0)));
    assert_eq!(r.udp_rcvbuf_errors_pps, Some(3000.0));
    // A counter that went back: no rate for that source, the others unaffected.
    let r = rates(&at(100, 0, vec![(10, 0)]), &at(50, 0, vec![(20, 0)]), half);
    assert_eq!((r.syncookies_sent_pps, r.syn_pressure_pps()), (None, None));
    assert_eq!(r.softnet_dropped_pps, Some(20.0));
    // A u32 that wrapped is a small delta; a row that reset is no sample; hot-plug is no sample.
    let r = rates(&at(0, 0, vec![(u32::MAX - 4, 0)]), &at(0, 0, vec![(5, 0)]), half);
    assert_eq!(r.softnet_dropped_pps, Some(20.0));
    let r = rates(&at(0, 0, vec![(1_000_000, 0)]), &at(0, 0, vec![(5, 0)]), half);
    assert_eq!(r.softnet_dropped_pps, None);
    let r = rates(&at(0, 0, vec![(1, 0)]), &at(0, 0, vec![(1, 0), (1, 0)]), half);
    assert_eq!(r.softnet_dropped_pps, None);
    let none = KernelReading::default();
    assert_eq!(rates(&none, &at(1, 1, vec![]), half), KernelRates::default());
    assert_eq!(rates(&at(1, 1, vec![]), &at(2, 2, vec![]), Duration::ZERO), KernelRates::default());
}

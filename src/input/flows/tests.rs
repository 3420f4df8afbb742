//! Decoders against datagrams recorded from real exporters (tests/data/flows: softflowd and
//! pmacctd replaying the vendored attack captures, see its README), and against hostile ones
//! built here.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use super::templates::{MAX_TEMPLATES_PER_EXPORTER, MAX_TEMPLATES_TOTAL};
use super::*;
use crate::config::flows::{parse as parse_config, Exporter, FlowsConfig};

const EXPORTER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const VICTIM: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 10, 10, 10));
const T0: u64 = 1_800_000_000_000;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/flows")
}

/// The recorded datagrams whose names start with `prefix`, in order.
pub(super) fn datagrams(prefix: &str) -> Vec<Vec<u8>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{prefix}-")))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no recorded datagrams {prefix}-*");
    names.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn ctx(i: usize) -> Ctx {
    Ctx { exporter: EXPORTER, arrived_ms: T0 + i as u64, rate_override: None }
}

fn decode_with(d: &mut Decoder, c: &Ctx, dg: &[u8]) -> (Vec<FlowRecord>, Summary, Result<(), DecodeError>) {
    let mut out = Vec::new();
    let mut s = Summary::default();
    let r = d.decode(c, dg, &mut s, &mut out);
    (out, s, r)
}

fn decode_all(prefix: &str) -> (Vec<FlowRecord>, Vec<Summary>) {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    let mut sums = Vec::new();
    for (i, dg) in datagrams(prefix).iter().enumerate() {
        let (recs, s, r) = decode_with(&mut d, &ctx(i), dg);
        r.unwrap_or_else(|e| panic!("{prefix} datagram {i}: {e}"));
        out.extend(recs);
        sums.push(s);
    }
    (out, sums)
}

fn packets(recs: &[FlowRecord]) -> u64 {
    recs.iter().map(|r| r.packets).sum()
}

/// Scaled packets by (proto, src_port).
fn by_proto_src_port(recs: &[FlowRecord]) -> BTreeMap<(u8, u16), u64> {
    let mut m = BTreeMap::new();
    for r in recs {
        *m.entry((r.proto, r.src_port)).or_insert(0) += r.packets;
    }
    m
}

fn within(got: u64, want: u64, pct: u64) -> bool {
    got.abs_diff(want) * 100 <= want * pct
}

#[test]
fn netflow_v5_from_softflowd_is_the_syn_flood() {
    let (recs, sums) = decode_all("softflowd-v5-synflood");
    assert_eq!(recs.len(), sums.iter().map(|s| s.records as usize).sum::<usize>());
    assert!(recs.len() >= 60, "{} records", recs.len());
    for r in &recs {
        assert_eq!((r.dst, r.dst_port, r.proto, r.tcp_flags), (VICTIM, 25565, 6, 0x02), "{r:?}");
        assert_eq!((r.sampling_rate, r.source, r.exporter), (1, FlowSource::NetflowV5, EXPORTER));
        assert!(r.start_ms <= r.end_ms && r.end_ms <= T0 + 3);
        // 60-byte frames: 46 bytes of IP per SYN.
        assert_eq!(r.bytes, 46 * r.packets);
    }
    // The flow sequence chains: each header's sequence is the previous one plus its records.
    for w in sums.windows(2) {
        assert_eq!(w[0].sequence.unwrap().2, w[1].sequence.unwrap().1);
    }
}

#[test]
fn netflow_v9_from_softflowd_scales_by_the_options_sampling_rate() {
    // softflowd -s 10 over the SNMP reflection capture (4,373 packets, ~93 % from UDP/161).
    let (recs, sums) = decode_all("softflowd-v9-snmp-s10");
    assert!(sums[0].templates >= 4, "{:?}", sums[0]);
    assert_eq!(sums.iter().map(|s| s.template_misses).sum::<u32>(), 0);
    assert!(recs.iter().all(|r| r.sampling_rate == 10 && r.packets % 10 == 0 && r.dst == VICTIM));
    assert!(within(packets(&recs), 4373, 5), "{} packets", packets(&recs));
    let snmp = by_proto_src_port(&recs)[&(17, 161)];
    assert!(snmp * 100 / packets(&recs) >= 85, "snmp share {snmp}");
    // The operator's override wins over the announced rate.
    let mut d = Decoder::new();
    let dgs = datagrams("softflowd-v9-snmp-s10");
    let c = Ctx { rate_override: Some(3), ..ctx(0) };
    let (recs, _, r) = decode_with(&mut d, &c, &dgs[0]);
    r.unwrap();
    assert!(!recs.is_empty() && recs.iter().all(|r| r.sampling_rate == 3 && r.packets % 3 == 0));
}

#[test]
fn ipfix_from_softflowd_counts_every_packet_of_the_capture() {
    // Unsampled, the whole capture: the sum is what capinfos counts (4,412).
    let (recs, sums) = decode_all("softflowd-ipfix-dnsfrag");
    assert_eq!(packets(&recs), 4412);
    assert!(recs.iter().all(|r| r.source == FlowSource::Ipfix && r.sampling_rate == 1));
    assert!(recs.iter().any(|r| r.src.is_ipv6()), "the capture's IPv6 packets are flows too");
    let dns = by_proto_src_port(&recs)[&(17, 53)];
    assert!(dns > 0);
    // softflowd numbers IPFIX messages by the flow records up to and including each one (RFC
    // 7011: before it); the collector accepts either without counting gaps.
    let mut c = Collector::new(&FlowsConfig::default());
    for dg in datagrams("softflowd-ipfix-dnsfrag").iter().chain(&datagrams("pmacctd-nfprobe-ipfix-synflood-s10")) {
        c.datagram(EXPORTER, dg, T0);
    }
    assert_eq!(c.exporters()[0].sequence_gaps, 0);
    assert!(sums.len() > 10);
    let (recs, _) = decode_all("softflowd-ipfix-milli-snmp-s10");
    assert!(recs.iter().all(|r| r.sampling_rate == 10 && r.proto != 0));
}

#[test]
fn pmacct_nfprobe_v9_and_ipfix_decode() {
    let (recs, _) = decode_all("pmacctd-nfprobe-v9-snmp");
    assert!(!recs.is_empty());
    assert!(recs.iter().all(|r| r.source == FlowSource::NetflowV9 && r.dst == VICTIM));
    assert!(by_proto_src_port(&recs).get(&(17, 161)).copied().unwrap_or(0) * 2 > packets(&recs));
    let (recs, _) = decode_all("pmacctd-nfprobe-ipfix-synflood-s10");
    assert!(!recs.is_empty());
    for r in &recs {
        assert_eq!((r.dst, r.dst_port, r.proto, r.tcp_flags & 0x02), (VICTIM, 25565, 6, 0x02), "{r:?}");
        assert_eq!((r.sampling_rate, r.source), (10, FlowSource::Ipfix));
        assert!(r.start_ms <= r.end_ms && r.end_ms <= T0 + 10);
    }
}

#[test]
fn sflow_from_pmacct_sfprobe_samples_and_scales() {
    let (recs, sums) = decode_all("pmacctd-sfprobe-snmp-s100");
    for w in sums.windows(2) {
        assert_eq!(w[0].sequence.unwrap().2, w[1].sequence.unwrap().1);
    }
    assert_eq!(recs.len(), sums.iter().map(|s| s.records as usize).sum::<usize>());
    assert!(recs.iter().all(|r| r.source == FlowSource::Sflow && r.sampling_rate == 100 && r.packets == 100));
    assert!(recs.iter().all(|r| r.start_ms == r.end_ms && r.start_ms >= T0));
    // 46 samples at 1 in 100 stand for the capture's 4,373 packets.
    assert!(within(packets(&recs), 4373, 10), "{}", packets(&recs));
    let snmp: u64 =
        recs.iter().filter(|r| r.family.as_deref() == Some("udp_flood/snmp_amplification")).map(|r| r.packets).sum();
    assert!(snmp * 100 / packets(&recs) >= 85, "{recs:?}");
    assert!(recs.iter().all(|r| r.ttl.is_some()));
}

#[test]
fn sflow_headers_get_the_engines_families() {
    let (recs, _) = decode_all("pmacctd-sfprobe-synflood-s100");
    assert!(!recs.is_empty());
    assert!(recs.iter().all(|r| r.family.as_deref() == Some("syn_flood") && r.dst_port == 25565));
    let (recs, _) = decode_all("pmacctd-sfprobe-dnsfrag-s10");
    let fam = |f: &str| recs.iter().filter(|r| r.family.as_deref() == Some(f)).count();
    assert!(fam("fragment_flood/udp_fragment_flood") > 50, "{recs:?}");
    assert!(fam("udp_flood/dns_amplification") > 0);
    assert!(recs.iter().filter(|r| r.fragment).count() == fam("fragment_flood/udp_fragment_flood"));
}

#[test]
fn without_its_template_a_data_set_is_a_miss() {
    let dgs = datagrams("softflowd-v9-snmp-s10");
    let mut d = Decoder::new();
    let (recs, s, r) = decode_with(&mut d, &ctx(0), &dgs[3]);
    r.unwrap();
    assert!(recs.is_empty());
    assert!(s.template_misses >= 1);
    // Templates are per exporter: another source's templates do not apply.
    decode_with(&mut d, &ctx(0), &dgs[0]).2.unwrap();
    let other = Ctx { exporter: "127.0.0.2".parse().unwrap(), ..ctx(0) };
    let (recs, s, _) = decode_with(&mut d, &other, &dgs[3]);
    assert!(recs.is_empty() && s.template_misses >= 1);
    let (recs, s, _) = decode_with(&mut d, &ctx(0), &dgs[3]);
    assert!(!recs.is_empty() && s.template_misses == 0);
}

#[test]
fn every_truncation_of_every_recorded_datagram_is_an_error_or_fewer_records() {
    let dir = std::fs::read_dir(data_dir()).unwrap();
    let mut n = 0;
    for e in dir {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "bin") {
            continue;
        }
        let dg = std::fs::read(&p).unwrap();
        let mut d = Decoder::new();
        let (full, _, _) = decode_with(&mut d, &ctx(0), &dg);
        for cut in (0..dg.len()).step_by(7) {
            let (recs, _, _) = decode_with(&mut d, &ctx(0), &dg[..cut]);
            assert!(recs.len() <= full.len(), "{}: cut at {cut}", p.display());
        }
        n += 1;
    }
    assert!(n >= 100, "{n} datagrams");
}

// ---- synthetic messages -------------------------------------------------------------------

fn be16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}
fn be32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    be16(&mut v, id);
    be16(&mut v, (body.len() + 4) as u16);
    v.extend_from_slice(body);
    v
}

fn ipfix(export_s: u32, seq: u32, domain: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = sets.concat();
    let mut v = Vec::new();
    be16(&mut v, 10);
    be16(&mut v, (16 + body.len()) as u16);
    be32(&mut v, export_s);
    be32(&mut v, seq);
    be32(&mut v, domain);
    v.extend(body);
    v
}

fn v9(uptime: u32, secs: u32, seq: u32, source: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::new();
    be16(&mut v, 9);
    be16(&mut v, sets.len() as u16);
    be32(&mut v, uptime);
    be32(&mut v, secs);
    be32(&mut v, seq);
    be32(&mut v, source);
    v.extend(sets.concat());
    v
}

/// A template record: id and (field id, length, enterprise number).
fn template(id: u16, fields: &[(u16, u16, Option<u32>)]) -> Vec<u8> {
    let mut v = Vec::new();
    be16(&mut v, id);
    be16(&mut v, fields.len() as u16);
    for &(f, l, e) in fields {
        be16(&mut v, if e.is_some() { f | 0x8000 } else { f });
        be16(&mut v, l);
        if let Some(e) = e {
            be32(&mut v, e);
        }
    }
    v
}

const BASIC: &[(u16, u16, Option<u32>)] =
    &[(8, 4, None), (12, 4, None), (7, 2, None), (11, 2, None), (4, 1, None), (2, 8, None), (1, 8, None)];

fn basic_record(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, proto: u8, pkts: u64, bytes: u64) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    be16(&mut v, sport);
    be16(&mut v, dport);
    v.push(proto);
    v.extend_from_slice(&pkts.to_be_bytes());
    v.extend_from_slice(&bytes.to_be_bytes());
    v
}

fn export_s() -> u32 {
    (T0 / 1000) as u32
}

#[test]
fn ipfix_variable_length_and_enterprise_fields() {
    let fields = [
        (8, 4, None),
        (0x1234, 8, Some(9)),
        (12, 4, None),
        (82, 0xffff, None),
        (96, 0xffff, None),
        (2, 4, None),
        (4, 1, None),
    ];
    let mut rec = vec![192, 0, 2, 1];
    rec.extend_from_slice(&[0xee; 8]);
    rec.extend_from_slice(&[198, 51, 100, 7]);
    rec.push(4);
    rec.extend_from_slice(b"eth0");
    rec.push(255);
    be16(&mut rec, 300);
    rec.extend_from_slice(&[b'x'; 300]);
    be32(&mut rec, 5);
    rec.push(17);
    let msg = ipfix(export_s(), 0, 1, &[set(2, &template(400, &fields)), set(400, &rec)]);
    let mut d = Decoder::new();
    let (recs, s, r) = decode_with(&mut d, &ctx(0), &msg);
    r.unwrap();
    assert_eq!(s.records, 1);
    let x = &recs[0];
    assert_eq!(
        (x.src, x.dst, x.proto, x.packets),
        ("192.0.2.1".parse().unwrap(), "198.51.100.7".parse().unwrap(), 17, 5)
    );
    // A variable-length field that claims more than the set holds ends the set, not the process.
    let mut bad = rec.clone();
    bad[16] = 200;
    let msg = ipfix(export_s(), 1, 1, &[set(400, &bad[..40])]);
    let (recs, _, r) = decode_with(&mut d, &ctx(0), &msg);
    assert!(recs.is_empty() && r.is_err());
}

#[test]
fn ipfix_withdrawal_and_withdraw_all() {
    let mut d = Decoder::new();
    let rec = basic_record([192, 0, 2, 1], [198, 51, 100, 1], 53, 1234, 17, 1, 100);
    let msg = ipfix(export_s(), 0, 7, &[set(2, &[template(300, BASIC), template(301, BASIC)].concat())]);
    assert_eq!(decode_with(&mut d, &ctx(0), &msg).1.templates, 2);
    assert_eq!(d.templates.for_exporter(EXPORTER), 2);
    let (recs, _, _) = decode_with(&mut d, &ctx(0), &ipfix(export_s(), 0, 7, &[set(300, &rec)]));
    assert_eq!(recs.len(), 1);
    // Withdraw 300 (field count 0).
    let mut w = Vec::new();
    be16(&mut w, 300);
    be16(&mut w, 0);
    decode_with(&mut d, &ctx(0), &ipfix(export_s(), 1, 7, &[set(2, &w)])).2.unwrap();
    let (recs, s, _) = decode_with(&mut d, &ctx(0), &ipfix(export_s(), 1, 7, &[set(300, &rec), set(301, &rec)]));
    assert_eq!((recs.len(), s.template_misses), (1, 1));
    // Withdraw all data templates of the domain (template id 2).
    let mut w = Vec::new();
    be16(&mut w, 2);
    be16(&mut w, 0);
    decode_with(&mut d, &ctx(0), &ipfix(export_s(), 2, 7, &[set(2, &w)])).2.unwrap();
    assert_eq!(d.templates.for_exporter(EXPORTER), 0);
    let (recs, s, _) = decode_with(&mut d, &ctx(0), &ipfix(export_s(), 2, 7, &[set(301, &rec)]));
    assert_eq!((recs.len(), s.template_misses), (0, 1));
}

fn sampling_options(interval: u32, space: u32) -> (Vec<u8>, Vec<u8>) {
    // scope: observationDomainId (149); options: samplingPacketInterval (305), ...Space (306).
    let mut t = Vec::new();
    be16(&mut t, 256);
    be16(&mut t, 3);
    be16(&mut t, 1);
    for (f, l) in [(149u16, 4u16), (305, 4), (306, 4)] {
        be16(&mut t, f);
        be16(&mut t, l);
    }
    let mut rec = Vec::new();
    be32(&mut rec, 7);
    be32(&mut rec, interval);
    be32(&mut rec, space);
    (set(3, &t), set(256, &rec))
}

#[test]
fn ipfix_sampling_rate_from_options_and_rate_zero() {
    let mut d = Decoder::new();
    let (ot, od) = sampling_options(1, 99);
    let rec = basic_record([192, 0, 2, 1], [198, 51, 100, 1], 123, 80, 17, 3, 300);
    let msg = ipfix(export_s(), 0, 7, &[ot.clone(), od, set(2, &template(300, BASIC)), set(300, &rec)]);
    let (recs, _, r) = decode_with(&mut d, &ctx(0), &msg);
    r.unwrap();
    assert_eq!((recs[0].sampling_rate, recs[0].packets, recs[0].bytes), (100, 300, 30_000));
    // An announced 0 is applied as 1 and counted.
    let (_, od0) = sampling_options(0, 0);
    let msg = ipfix(export_s(), 2, 7, &[od0, set(300, &rec)]);
    let (recs, s, r) = decode_with(&mut d, &ctx(0), &msg);
    r.unwrap();
    assert_eq!((recs[0].sampling_rate, recs[0].packets), (1, 3));
    assert_eq!((s.rate_zero, s.errors), (1, 1));
}

#[test]
fn v9_uptime_and_ipfix_absolute_times_on_the_collector_clock() {
    let mut d = Decoder::new();
    let fields: Vec<(u16, u16, Option<u32>)> =
        vec![(8, 4, None), (12, 4, None), (22, 4, None), (21, 4, None), (2, 4, None), (1, 4, None)];
    let mut rec = vec![192, 0, 2, 1, 198, 51, 100, 1];
    be32(&mut rec, 4_000);
    be32(&mut rec, 9_000);
    be32(&mut rec, 10);
    be32(&mut rec, 1000);
    let msg = v9(10_000, 12345, 0, 0, &[set(0, &template(260, &fields)), set(260, &rec)]);
    let (recs, _, r) = decode_with(&mut d, &ctx(0), &msg);
    r.unwrap();
    assert_eq!((recs[0].start_ms, recs[0].end_ms), (T0 - 6_000, T0 - 1_000));
    // IPFIX flowStart/EndMilliseconds with the exporter's clock in step: kept as sent.
    let fields: Vec<(u16, u16, Option<u32>)> =
        vec![(8, 4, None), (12, 4, None), (152, 8, None), (153, 8, None), (2, 4, None)];
    let mut rec = vec![192, 0, 2, 1, 198, 51, 100, 1];
    rec.extend_from_slice(&(T0 - 3_500).to_be_bytes());
    rec.extend_from_slice(&(T0 - 500).to_be_bytes());
    be32(&mut rec, 10);
    let msg = ipfix(export_s(), 0, 0, &[set(2, &template(300, &fields)), set(300, &rec)]);
    let (recs, _, _) = decode_with(&mut d, &ctx(0), &msg);
    assert_eq!((recs[0].start_ms, recs[0].end_ms), (T0 - 3_500, T0 - 500));
    // An exporter clock an hour behind: shifted onto ours.
    let mut rec2 = vec![192, 0, 2, 1, 198, 51, 100, 1];
    rec2.extend_from_slice(&(T0 - 3_600_000 - 3_500).to_be_bytes());
    rec2.extend_from_slice(&(T0 - 3_600_000 - 500).to_be_bytes());
    be32(&mut rec2, 10);
    let msg = ipfix(export_s() - 3600, 1, 0, &[set(300, &rec2)]);
    let (recs, _, _) = decode_with(&mut d, &ctx(0), &msg);
    assert_eq!((recs[0].start_ms, recs[0].end_ms), (T0 - 3_500, T0 - 500));
}

#[test]
fn template_floods_are_capped_per_exporter_and_in_all() {
    let mut d = Decoder::new();
    let mut refused = 0;
    for chunk in 0..40u16 {
        let recs: Vec<u8> = (0..50u16).flat_map(|i| template(256 + chunk * 50 + i, BASIC)).collect();
        let (_, s, r) = decode_with(&mut d, &ctx(0), &ipfix(export_s(), 0, 1, &[set(2, &recs)]));
        r.unwrap();
        refused += s.templates_refused;
    }
    assert_eq!(d.templates.for_exporter(EXPORTER), MAX_TEMPLATES_PER_EXPORTER);
    assert_eq!(refused as usize, 2000 - MAX_TEMPLATES_PER_EXPORTER);
    // Many (spoofed) exporters: the total cap holds.
    for e in 0..20u8 {
        let c = Ctx { exporter: IpAddr::V4(Ipv4Addr::new(10, 0, 0, e)), ..ctx(0) };
        for chunk in 0..12u16 {
            let recs: Vec<u8> = (0..50u16).flat_map(|i| template(256 + chunk * 50 + i, BASIC)).collect();
            decode_with(&mut d, &c, &ipfix(export_s(), 0, 1, &[set(2, &recs)])).2.unwrap();
        }
    }
    assert_eq!(d.templates.len(), MAX_TEMPLATES_TOTAL);
}

#[test]
fn hostile_headers_are_errors_not_panics() {
    let mut d = Decoder::new();
    for dg in [
        vec![],
        vec![0, 5],
        vec![0, 5, 0, 0],
        vec![0, 5, 0, 31, 0, 0, 0, 0],
        vec![0, 9, 0, 1],
        vec![0, 10, 0, 16],
        vec![0, 10, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![0, 10, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![0, 0, 0, 5, 0, 0, 0, 9],
        vec![0, 0, 0, 5, 0, 0, 0, 1, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        vec![0, 0, 0, 4, 0, 0, 0, 1],
        // A zero-length set.
        ipfix(0, 0, 0, &[vec![1, 0, 0, 0]]),
        // A template with a zero-length field only, and with field count over the cap.
        ipfix(0, 0, 0, &[set(2, &template(300, &[(8, 0, None)]))]),
        ipfix(0, 0, 0, &[set(2, &template(300, &vec![(8, 4, None); 300]))]),
        // An options template with more scope fields than fields.
        ipfix(0, 0, 0, &[set(3, &[0x01, 0x00, 0, 1, 0, 2, 0, 8, 0, 4])]),
    ] {
        let (recs, _, r) = decode_with(&mut d, &ctx(0), &dg);
        assert!(recs.is_empty(), "{dg:?}");
        let _ = r;
    }
    assert!(d.templates.is_empty());
}

// ---- the collector: trust, counters ----------------------------------------------------

#[test]
fn collector_drops_unlisted_exporters_unparsed_and_counts_gaps() {
    let cfg = FlowsConfig {
        exporters: vec![Exporter { address: EXPORTER, name: Some("edge1".into()), sampling_rate: None }],
        ..FlowsConfig::default()
    };
    let mut c = Collector::new(&cfg);
    let dgs = datagrams("softflowd-v5-synflood");
    let stranger: IpAddr = "192.0.2.66".parse().unwrap();
    assert!(c.datagram(stranger, &dgs[0], T0).is_empty());
    assert_eq!(c.totals().unlisted_datagrams, 1);
    let n0 = c.datagram(EXPORTER, &dgs[0], T0).len();
    assert!(n0 > 0);
    // Skip datagram 1: a sequence gap of its records.
    let n1 = datagrams("softflowd-v5-synflood")[1][2..4].iter().fold(0u64, |a, &b| a << 8 | u64::from(b));
    c.datagram(EXPORTER, &dgs[2], T0);
    c.datagram(EXPORTER, &[0, 5, 0], T0);
    let e = &c.exporters()[0];
    assert_eq!(e.name.as_deref(), Some("edge1"));
    assert_eq!((e.datagrams, e.sequence_gaps, e.sequence_lost, e.parse_errors), (3, 1, n1, 1));
    assert_eq!(e.source, Some(FlowSource::NetflowV5));
    assert!(e.last_error.is_some());
    // Any source accepted (empty list): the exporter table is bounded.
    let mut c = Collector::new(&FlowsConfig::default());
    for i in 0..(collector::MAX_EXPORTERS as u32 + 10) {
        c.datagram(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), &dgs[0], T0);
    }
    assert_eq!(c.exporters().len(), collector::MAX_EXPORTERS);
    assert_eq!(c.totals().over_cap_datagrams, 10);
}

#[test]
fn config_block_is_validated_with_located_keys() {
    let v: serde_json::Value = serde_json::from_str(
        r#"{"listen":["0.0.0.0:2055",":6343","[::]:4739"],
            "exporters":[{"address":"192.0.2.1","name":"edge1","sampling_rate":1000},"192.0.2.2"],
            "networks":["198.51.100.0/24","2001:db8::/48"],
            "hostgroups":[{"name":"web","networks":["198.51.100.0/26"],"min_pps_threshold":20000,
                           "threshold_multiplier":4,"mitigation":"bgp"}],
            "max_hosts":5000}"#,
    )
    .unwrap();
    let c = parse_config(Some(&v)).unwrap();
    assert_eq!(c.listen.len(), 3);
    assert_eq!(c.listen[1].to_string(), "0.0.0.0:6343");
    assert_eq!(c.exporter("192.0.2.1".parse().unwrap()).unwrap().sampling_rate, Some(1000));
    assert!(c.protects("198.51.100.9".parse().unwrap()) && !c.protects("198.51.101.9".parse().unwrap()));
    assert!(c.protects("2001:db8::1".parse().unwrap()));
    assert_eq!(c.hostgroups[0].min_pps_threshold, Some(20000.0));
    assert_eq!(c.max_hosts, 5000);
    for (bad, key) in [
        (r#"{"listen":["2055"]}"#, "flows.listen[0]"),
        (r#"{"listen":[":0"]}"#, "flows.listen[0]"),
        (r#"{"exporters":[{"address":"nope"}]}"#, "flows.exporters[0].address"),
        (r#"{"exporters":[{"address":"192.0.2.1","sampling_rate":0}]}"#, "flows.exporters[0].sampling_rate"),
        (r#"{"networks":["10.0.0.0/33"]}"#, "flows.networks[0]"),
        (r#"{"hostgroups":[{"name":"a","networks":["10.0.0.0/8","x"]}]}"#, "flows.hostgroups[0].networks[1]"),
        (r#"{"hostgroups":[{"name":"a"}]}"#, "flows.hostgroups[0].networks"),
        (r#"{"max_hosts":0}"#, "flows.max_hosts"),
        (r#"{"listn":[]}"#, "flows.listn"),
    ] {
        let v: serde_json::Value = serde_json::from_str(bad).unwrap();
        let (k, _) = parse_config(Some(&v)).unwrap_err();
        assert_eq!(k, key, "{bad}");
    }
}

#[test]
fn settings_carry_the_flows_block_and_locate_its_errors() {
    let paths = crate::config::paths::Paths::resolve(
        &crate::config::paths::Env { euid: 1000, home: Some("/home/u".into()), root: "/".into(), ..Default::default() },
        false,
    );
    let s = crate::config::Settings::from_json(r#"{"flows":{"listen":[":2055"]}}"#, None, &paths).unwrap();
    assert!(s.flows.enabled() && s.unknown_keys.is_empty());
    let e = crate::config::Settings::from_json("{\n  \"flows\": {\"max_hosts\": -1}}", None, &paths).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("flows.max_hosts") && msg.contains("line 2"), "{msg}");
}

// ---- property tests: mutated real datagrams never panic, never exceed the bounds -------

mod props {
    use proptest::prelude::*;

    use super::*;

    fn mutate(base: &[u8], edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
        let mut v = base.to_vec();
        for &(at, b) in edits {
            if !v.is_empty() {
                let i = at % v.len();
                v[i] = b;
            }
        }
        let keep = v.len().saturating_sub(cut % 8);
        v.truncate(keep);
        v
    }

    fn run(prefix: &str, pick: usize, edits: &[(usize, u8)], cut: usize) {
        let dgs = datagrams(prefix);
        let mut d = Decoder::new();
        // Learn the templates first so the mutations reach the data records.
        let _ = decode_with(&mut d, &ctx(0), &dgs[0]);
        let dg = mutate(&dgs[pick % dgs.len()], edits, cut);
        let (recs, _, _) = decode_with(&mut d, &ctx(1), &dg);
        // Each record takes at least 8 bytes of the datagram (its two IPv4 addresses).
        assert!(recs.len() <= dg.len() / 8 + 1);
        assert!(d.templates.len() <= MAX_TEMPLATES_TOTAL);
        for r in &recs {
            assert!(r.start_ms <= r.end_ms && r.end_ms <= T0 + 1 && r.sampling_rate >= 1);
        }
    }

    fn edits() -> impl Strategy<Value = Vec<(usize, u8)>> {
        proptest::collection::vec((any::<usize>(), prop_oneof![Just(0u8), Just(0xff), any::<u8>()]), 1..8)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1500))]
        #[test]
        fn netflow_v5(pick in any::<usize>(), e in edits(), cut in any::<usize>()) {
            run("softflowd-v5-synflood", pick, &e, cut);
        }
        #[test]
        fn netflow_v9(pick in any::<usize>(), e in edits(), cut in any::<usize>()) {
            run("softflowd-v9-snmp-s10", pick, &e, cut);
            run("pmacctd-nfprobe-v9-snmp", pick, &e, cut);
        }
        #[test]
        fn ipfix(pick in any::<usize>(), e in edits(), cut in any::<usize>()) {
            run("softflowd-ipfix-dnsfrag", pick, &e, cut);
            run("pmacctd-nfprobe-ipfix-synflood-s10", pick, &e, cut);
        }
        #[test]
        fn sflow(pick in any::<usize>(), e in edits(), cut in any::<usize>()) {
            run("pmacctd-sfprobe-dnsfrag-s10", pick, &e, cut);
        }
    }
}

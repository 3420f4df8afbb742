//! sFlow v5 (sflow.org `sflow_version_5.txt`): a datagram header (agent address v4/v6,
//! sub-agent, sequence, uptime), then samples. Flow samples and expanded flow samples give one
//! record each, worth `sampling_rate` packets: the raw packet header record goes through the
//! capture engine's own frame parser (`capture::parse`, §7.1), so addresses, ports, flags, TTL and
//! fragments come from the packet itself, and its family / subtype is labelled as the engine's
//! classification would label a flood of such packets. Sampled IPv4 / IPv6 records are used when
//! there is no raw header. Counter samples are counted. Unknown enterprises and formats are
//! skipped by their length.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::decode::{Ctx, Summary};
use super::record::{FlowRecord, FlowSource};
use super::wire::{DecodeError, Rd, R};

/// What a flow sample told about its packet.
struct Sampled {
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    proto: u8,
    tcp_flags: u8,
    /// Bytes of the packet (IP length when known, else the frame length).
    len: u32,
    fragment: bool,
    ttl: Option<u8>,
    family: Option<String>,
}

pub fn decode(ctx: &Ctx, data: &[u8], s: &mut Summary, out: &mut Vec<FlowRecord>) -> R<()> {
    s.source = Some(FlowSource::Sflow);
    let mut rd = Rd::new(data);
    if rd.u32("sflow header")? != 5 {
        return Err(DecodeError::UnknownVersion(0));
    }
    match rd.u32("sflow agent address")? {
        1 => rd.skip(4, "sflow agent address")?,
        2 => rd.skip(16, "sflow agent address")?,
        _ => return Err(DecodeError::Invalid("sflow agent address type")),
    }
    let sub_agent = rd.u32("sflow header")?;
    let sequence = rd.u32("sflow header")?;
    let _uptime = rd.u32("sflow header")?;
    let samples = rd.u32("sflow header")?;
    s.sequence = Some((sub_agent, sequence, sequence.wrapping_add(1)));
    // Each sample takes at least 8 bytes: the count cannot make us loop longer than the data.
    for _ in 0..samples {
        if rd.left() < 8 {
            return Err(DecodeError::Truncated("sflow sample"));
        }
        let tag = rd.u32("sflow sample")?;
        let len = rd.u32("sflow sample")? as usize;
        let mut body = Rd::new(rd.take(len, "sflow sample")?);
        match (tag >> 12, tag & 0xfff) {
            (0, 1) => flow_sample(ctx, &mut body, false, s, out)?,
            (0, 3) => flow_sample(ctx, &mut body, true, s, out)?,
            (0, 2) | (0, 4) => s.counter_samples += 1,
            _ => {}
        }
    }
    Ok(())
}

fn flow_sample(ctx: &Ctx, b: &mut Rd, expanded: bool, s: &mut Summary, out: &mut Vec<FlowRecord>) -> R<()> {
    let _seq = b.u32("sflow flow sample")?;
    b.skip(if expanded { 8 } else { 4 }, "sflow flow sample source")?;
    let rate = b.u32("sflow flow sample")?;
    let _pool = b.u32("sflow flow sample")?;
    let _drops = b.u32("sflow flow sample")?;
    b.skip(if expanded { 16 } else { 8 }, "sflow flow sample interfaces")?;
    let records = b.u32("sflow flow sample")?;
    let mut best: Option<Sampled> = None;
    let mut undecoded = false;
    for _ in 0..records {
        if b.left() < 8 {
            return Err(DecodeError::Truncated("sflow flow record"));
        }
        let tag = b.u32("sflow flow record")?;
        let len = b.u32("sflow flow record")? as usize;
        let mut r = Rd::new(b.take(len, "sflow flow record")?);
        match (tag >> 12, tag & 0xfff) {
            (0, 1) => match raw_header(&mut r)? {
                Some(p) => best = Some(p),
                None => undecoded = true,
            },
            (0, 3) if best.is_none() => best = Some(sampled_ip(&mut r, false)?),
            (0, 4) if best.is_none() => best = Some(sampled_ip(&mut r, true)?),
            _ => {}
        }
    }
    let Some(p) = best else {
        if undecoded {
            s.errors += 1;
        } else {
            s.skipped += 1;
        }
        return Ok(());
    };
    let rate = ctx.rate(rate, s);
    out.push(FlowRecord {
        src: p.src,
        dst: p.dst,
        src_port: p.src_port,
        dst_port: p.dst_port,
        proto: p.proto,
        tcp_flags: p.tcp_flags,
        packets: u64::from(rate),
        bytes: u64::from(p.len).saturating_mul(u64::from(rate)),
        start_ms: ctx.arrived_ms,
        end_ms: ctx.arrived_ms,
        fragment: p.fragment,
        ttl: p.ttl,
        sampling_rate: rate,
        source: FlowSource::Sflow,
        exporter: ctx.exporter,
        family: p.family,
    });
    s.records += 1;
    s.sampling_rate = rate;
    Ok(())
}

/// Sampled IPv4 (format 3) / IPv6 (format 4) record.
fn sampled_ip(r: &mut Rd, v6: bool) -> R<Sampled> {
    let len = r.u32("sflow sampled ip")?;
    let proto = r.u32("sflow sampled ip")? as u8;
    let (src, dst) = if v6 {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        a.copy_from_slice(r.take(16, "sflow sampled ipv6")?);
        b.copy_from_slice(r.take(16, "sflow sampled ipv6")?);
        (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b)))
    } else {
        let a = r.take(4, "sflow sampled ipv4")?;
        let b = r.take(4, "sflow sampled ipv4")?;
        (IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])), IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
    };
    let src_port = r.u32("sflow sampled ip")? as u16;
    let dst_port = r.u32("sflow sampled ip")? as u16;
    let tcp_flags = r.u32("sflow sampled ip")? as u8;
    Ok(Sampled { src, dst, src_port, dst_port, proto, tcp_flags, len, fragment: false, ttl: None, family: None })
}

/// Raw packet header (format 1): Ok(None) when the header is not an IP packet the engine decodes.
fn raw_header(r: &mut Rd) -> R<Option<Sampled>> {
    let protocol = r.u32("sflow raw header")?;
    let frame_len = r.u32("sflow raw header")?;
    let _stripped = r.u32("sflow raw header")?;
    let hlen = r.u32("sflow raw header")? as usize;
    let header = r.take(hlen, "sflow raw header bytes")?;
    Ok(engine::header(protocol, frame_len, header))
}

/// The sampled header through the capture engine's parser (built in every build).
mod engine {
    use super::Sampled;
    use crate::input::capture::engine::parse::{parse, tcp_flags as f, LinkType, Packet, Transport};
    use crate::input::capture::engine::tally::{tcp_kind, AMPLIFIERS, TCP_KINDS};

    pub(super) fn header(protocol: u32, frame_len: u32, header: &[u8]) -> Option<Sampled> {
        let link = match protocol {
            1 => LinkType::Ethernet,
            11 | 12 => LinkType::RawIp,
            _ => return None,
        };
        let p = parse(link, header).ok()?;
        let (src, dst) = (p.src?, p.dst?);
        let (src_port, dst_port, tcp_flags) = match p.transport {
            Transport::Tcp { src_port, dst_port, flags } => (src_port, dst_port, flags),
            Transport::Udp { src_port, dst_port } => (src_port, dst_port, 0),
            Transport::Icmp { icmp_type, code } | Transport::Icmpv6 { icmp_type, code } => {
                (0, u16::from(icmp_type) << 8 | u16::from(code), 0)
            }
            _ => (0, 0, 0),
        };
        let len = if p.ip_len > 0 { p.ip_len } else { frame_len };
        Some(Sampled {
            src,
            dst,
            src_port,
            dst_port,
            proto: p.ip_proto,
            tcp_flags,
            len,
            fragment: p.fragment.is_fragment,
            ttl: Some(p.ttl),
            family: Some(label(&p, tcp_flags)),
        })
    }

    /// The §7.3 family (and subtype) a flood of packets like this one would get.
    pub(super) fn label(p: &Packet<'_>, flags: u8) -> String {
        if p.fragment.is_fragment {
            return match p.ip_proto {
                17 => "fragment_flood/udp_fragment_flood".into(),
                1 | 58 if p.fragment.offset + p.ip_len > 65_535 => "fragment_flood/ping_of_death".into(),
                _ => "fragment_flood".into(),
            };
        }
        match p.transport {
            Transport::Tcp { .. } => {
                let kind = tcp_kind(flags);
                if flags & 0x3f == f::SYN {
                    "syn_flood".into()
                } else if kind < TCP_KINDS.len() - 1 {
                    format!("tcp_flood/{}_flood", TCP_KINDS[kind])
                } else {
                    "tcp_flood".into()
                }
            }
            Transport::Udp { src_port, dst_port } => {
                if let Some((_, name)) = AMPLIFIERS.iter().find(|(port, _)| *port == src_port) {
                    format!("udp_flood/{name}")
                } else if dst_port == 53 {
                    "dns_flood/dns_query_flood".into()
                } else if dst_port == 443 {
                    "udp_flood/quic_flood".into()
                } else {
                    "udp_flood".into()
                }
            }
            Transport::Icmp { icmp_type: 8, .. } | Transport::Icmpv6 { icmp_type: 128, .. } => {
                if p.ip_len > 65_535 {
                    "icmp_flood/ping_of_death".into()
                } else {
                    "icmp_flood/ping_flood".into()
                }
            }
            Transport::Icmp { .. } | Transport::Icmpv6 { .. } => "icmp_flood".into(),
            Transport::Gre { .. } => "protocol_flood/gre_flood".into(),
            _ => "protocol_flood".into(),
        }
    }
}

//! Raw frame → [`Packet`] summary (§7.1): Ethernet (802.1Q/QinQ), Linux SLL/SLL2, raw IP, BSD
//! loopback; IPv4/IPv6 with fragments and extension headers; TCP, UDP, ICMP/ICMPv6, GRE, ESP; and
//! the DNS query name of a UDP payload.
//!
//! Pure and allocation-free: every read is bounds-checked, a short or inconsistent header yields
//! [`Malformed`], never a panic. This module does no I/O and keeps no state.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How a frame starts (pcap LINKTYPE_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    LinuxSll,
    LinuxSll2,
    RawIp,
    /// BSD loopback / DLT_NULL: a 4-byte host-order address family.
    Null,
}

impl LinkType {
    /// From a pcap/pcapng link-layer header type; None for types the engine does not decode.
    pub fn from_linktype(lt: u32) -> Option<Self> {
        Some(match lt {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            12 | 14 | 101 | 228 | 229 => LinkType::RawIp,
            0 | 108 => LinkType::Null,
            _ => return None,
        })
    }

    /// The pcap LINKTYPE_* value to write in a capture file header.
    pub fn linktype(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
            LinkType::RawIp => 101,
            LinkType::Null => 0,
        }
    }
}

/// Why a frame could not be decoded; it is counted and skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// The frame ends inside the named header.
    Truncated(&'static str),
    /// A header field is impossible (IP version, header length, ...).
    Invalid(&'static str),
}

/// The IP fragment status of a packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fragment {
    /// Part of a fragmented datagram (offset > 0 or more-fragments set).
    pub is_fragment: bool,
    /// Offset of this fragment in bytes.
    pub offset: u32,
    /// More fragments follow.
    pub more: bool,
}

/// The upper-layer header, when present in this packet (non-first fragments carry none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    None,
    Tcp { src_port: u16, dst_port: u16, flags: u8 },
    Udp { src_port: u16, dst_port: u16 },
    Icmp { icmp_type: u8, code: u8 },
    Icmpv6 { icmp_type: u8, code: u8 },
    Gre { protocol: u16 },
    Esp { spi: u32 },
}

/// TCP flag bits.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
}

/// What the engine needs from one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// VLAN tags seen (802.1Q, 802.1ad).
    pub vlan_tags: u8,
    /// EtherType of the network layer (0x0800, 0x86dd, 0x0806 ...); 0 when unknown.
    pub ethertype: u16,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// The upper-layer protocol number after extension headers (6 TCP, 17 UDP, ...).
    pub ip_proto: u8,
    /// IP total length (header + payload) as the header states it.
    pub ip_len: u32,
    pub fragment: Fragment,
    pub transport: Transport,
    /// The transport payload (as much as was captured).
    pub payload: &'a [u8],
}

impl Packet<'_> {
    pub fn is_ip(&self) -> bool {
        self.src.is_some()
    }
}

type R<T> = Result<T, Malformed>;

fn be16(b: &[u8], at: usize, what: &'static str) -> R<u16> {
    match b.get(at..at + 2) {
        Some(s) => Ok(u16::from_be_bytes([s[0], s[1]])),
        None => Err(Malformed::Truncated(what)),
    }
}

fn be32(b: &[u8], at: usize, what: &'static str) -> R<u32> {
    match b.get(at..at + 4) {
        Some(s) => Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]])),
        None => Err(Malformed::Truncated(what)),
    }
}

fn byte(b: &[u8], at: usize, what: &'static str) -> R<u8> {
    b.get(at).copied().ok_or(Malformed::Truncated(what))
}

fn tail<'a>(b: &'a [u8], at: usize, what: &'static str) -> R<&'a [u8]> {
    b.get(at..).ok_or(Malformed::Truncated(what))
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];

/// Decode one frame. Non-IP frames (ARP, LLDP) decode with `src: None`.
pub fn parse(link: LinkType, frame: &[u8]) -> R<Packet<'_>> {
    let mut pkt = Packet {
        vlan_tags: 0,
        ethertype: 0,
        src: None,
        dst: None,
        ttl: 0,
        ip_proto: 0,
        ip_len: 0,
        fragment: Fragment::default(),
        transport: Transport::None,
        payload: &[],
    };
    let (mut ethertype, mut at) = match link {
        LinkType::Ethernet => (be16(frame, 12, "ethernet")?, 14),
        LinkType::LinuxSll => (be16(frame, 14, "linux sll")?, 16),
        LinkType::LinuxSll2 => (be16(frame, 0, "linux sll2")?, 20),
        LinkType::RawIp => match byte(frame, 0, "ip")? >> 4 {
            4 => (ETH_IPV4, 0),
            6 => (ETH_IPV6, 0),
            _ => return Err(Malformed::Invalid("ip version")),
        },
        LinkType::Null => {
            let fam = frame.get(0..4).ok_or(Malformed::Truncated("loopback"))?;
            let fam = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]])
                .min(u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]]));
            match fam {
                2 => (ETH_IPV4, 4),
                24 | 28 | 30 => (ETH_IPV6, 4),
                _ => (0, 4),
            }
        }
    };
    if matches!(link, LinkType::LinuxSll2) && frame.len() < 20 {
        return Err(Malformed::Truncated("linux sll2"));
    }
    while ETH_VLAN.contains(&ethertype) && link == LinkType::Ethernet {
        pkt.vlan_tags = pkt.vlan_tags.saturating_add(1);
        ethertype = be16(frame, at + 2, "vlan tag")?;
        at += 4;
    }
    pkt.ethertype = ethertype;
    let l3 = tail(frame, at, "network header")?;
    match ethertype {
        ETH_IPV4 => ipv4(l3, &mut pkt)?,
        ETH_IPV6 => ipv6(l3, &mut pkt)?,
        _ => return Ok(pkt),
    }
    Ok(pkt)
}

fn ipv4<'a>(b: &'a [u8], pkt: &mut Packet<'a>) -> R<()> {
    let vihl = byte(b, 0, "ipv4")?;
    if vihl >> 4 != 4 {
        return Err(Malformed::Invalid("ipv4 version"));
    }
    let ihl = usize::from(vihl & 0x0f) * 4;
    if ihl < 20 {
        return Err(Malformed::Invalid("ipv4 header length"));
    }
    let hdr = b.get(..ihl).ok_or(Malformed::Truncated("ipv4"))?;
    let total = usize::from(be16(hdr, 2, "ipv4")?);
    if total < ihl {
        return Err(Malformed::Invalid("ipv4 total length"));
    }
    let frag = be16(hdr, 6, "ipv4")?;
    pkt.ttl = hdr[8];
    pkt.ip_proto = hdr[9];
    pkt.ip_len = total as u32;
    pkt.src = Some(IpAddr::V4(Ipv4Addr::new(hdr[12], hdr[13], hdr[14], hdr[15])));
    pkt.dst = Some(IpAddr::V4(Ipv4Addr::new(hdr[16], hdr[17], hdr[18], hdr[19])));
    let offset = u32::from(frag & 0x1fff) * 8;
    let more = frag & 0x2000 != 0;
    pkt.fragment = Fragment { is_fragment: offset > 0 || more, offset, more };
    // Ethernet pads short frames: the IP length bounds the payload, the capture may cut it.
    let end = total.min(b.len());
    let body = &b[ihl..end];
    if offset == 0 {
        transport(pkt.ip_proto, body, pkt)?;
    }
    Ok(())
}

fn ipv6<'a>(b: &'a [u8], pkt: &mut Packet<'a>) -> R<()> {
    let hdr = b.get(..40).ok_or(Malformed::Truncated("ipv6"))?;
    if hdr[0] >> 4 != 6 {
        return Err(Malformed::Invalid("ipv6 version"));
    }
    let payload_len = usize::from(be16(hdr, 4, "ipv6")?);
    let mut next = hdr[6];
    pkt.ttl = hdr[7];
    pkt.ip_len = 40 + payload_len as u32;
    let mut src = [0u8; 16];
    src.copy_from_slice(&hdr[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&hdr[24..40]);
    pkt.src = Some(IpAddr::V6(Ipv6Addr::from(src)));
    pkt.dst = Some(IpAddr::V6(Ipv6Addr::from(dst)));
    let end = (40 + payload_len).min(b.len());
    let mut body = &b[40..end];
    // At most 8 extension headers: a chain longer than that is hostile, not traffic.
    for _ in 0..8 {
        match next {
            0 | 43 | 60 | 135 | 139 | 140 => {
                let nh = byte(body, 0, "ipv6 extension header")?;
                let len = (usize::from(byte(body, 1, "ipv6 extension header")?) + 1) * 8;
                body = body.get(len..).ok_or(Malformed::Truncated("ipv6 extension header"))?;
                next = nh;
            }
            51 => {
                let nh = byte(body, 0, "ipv6 authentication header")?;
                let len = (usize::from(byte(body, 1, "ipv6 authentication header")?) + 2) * 4;
                body = body.get(len..).ok_or(Malformed::Truncated("ipv6 authentication header"))?;
                next = nh;
            }
            44 => {
                let nh = byte(body, 0, "ipv6 fragment header")?;
                let off = be16(body, 2, "ipv6 fragment header")?;
                body = body.get(8..).ok_or(Malformed::Truncated("ipv6 fragment header"))?;
                let offset = u32::from(off >> 3) * 8;
                let more = off & 1 != 0;
                pkt.fragment = Fragment { is_fragment: true, offset, more };
                next = nh;
                if offset > 0 {
                    pkt.ip_proto = next;
                    return Ok(());
                }
            }
            _ => {
                pkt.ip_proto = next;
                return transport(next, body, pkt);
            }
        }
    }
    Err(Malformed::Invalid("ipv6 extension header chain too long"))
}

fn transport<'a>(proto: u8, b: &'a [u8], pkt: &mut Packet<'a>) -> R<()> {
    match proto {
        6 => {
            if b.len() < 20 {
                return Err(Malformed::Truncated("tcp"));
            }
            let off = usize::from(byte(b, 12, "tcp")? >> 4) * 4;
            if off < 20 {
                return Err(Malformed::Invalid("tcp data offset"));
            }
            pkt.transport = Transport::Tcp {
                src_port: be16(b, 0, "tcp")?,
                dst_port: be16(b, 2, "tcp")?,
                flags: byte(b, 13, "tcp")?,
            };
            pkt.payload = b.get(off..).unwrap_or(&[]);
        }
        17 => {
            pkt.transport = Transport::Udp { src_port: be16(b, 0, "udp")?, dst_port: be16(b, 2, "udp")? };
            pkt.payload = tail(b, 8, "udp")?;
        }
        1 => {
            pkt.transport = Transport::Icmp { icmp_type: byte(b, 0, "icmp")?, code: byte(b, 1, "icmp")? };
            pkt.payload = b.get(8..).unwrap_or(&[]);
        }
        58 => {
            pkt.transport = Transport::Icmpv6 { icmp_type: byte(b, 0, "icmpv6")?, code: byte(b, 1, "icmpv6")? };
            pkt.payload = b.get(8..).unwrap_or(&[]);
        }
        47 => {
            let flags = be16(b, 0, "gre")?;
            pkt.transport = Transport::Gre { protocol: be16(b, 2, "gre")? };
            // Checksum, key and sequence fields each add 4 bytes.
            let extra = [0x8000u16, 0x2000, 0x1000].iter().filter(|f| flags & **f != 0).count() * 4;
            pkt.payload = b.get(4 + extra..).unwrap_or(&[]);
        }
        50 => {
            pkt.transport = Transport::Esp { spi: be32(b, 0, "esp")? };
            pkt.payload = &[];
        }
        _ => pkt.payload = b,
    }
    Ok(())
}

/// The first question name of a DNS message, lower-cased and dot-joined, into `out` (cleared
/// first). False when the message is not a well-formed query or answer with a question.
pub fn dns_query_name(msg: &[u8], out: &mut String) -> bool {
    out.clear();
    let Ok(qdcount) = be16(msg, 4, "dns") else { return false };
    if qdcount == 0 {
        return false;
    }
    let mut at = 12;
    loop {
        let Some(&len) = msg.get(at) else { return false };
        if len == 0 {
            return !out.is_empty() || at == 12;
        }
        // Compression pointers cannot occur in the first question; treat them as malformed.
        if len & 0xc0 != 0 || out.len() + usize::from(len) + 1 > 253 {
            return false;
        }
        let Some(label) = msg.get(at + 1..at + 1 + usize::from(len)) else { return false };
        if !out.is_empty() {
            out.push('.');
        }
        for &c in label {
            let c = c.to_ascii_lowercase();
            out.push(if c.is_ascii_graphic() { c as char } else { '?' });
        }
        at += 1 + usize::from(len);
    }
}

#[cfg(test)]
mod tests;

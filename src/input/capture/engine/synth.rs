//! Synthetic frames for tests, the fuzz corpus and benches: build Ethernet/VLAN/SLL/SLL2 frames
//! around IPv4/IPv6 packets carrying TCP, UDP, ICMP, GRE or ESP. Checksums are left zero (the
//! engine never verifies them). No I/O.

/// A TCP header (20 bytes) with the given flags, then `payload`.
pub fn tcp(src_port: u16, dst_port: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&src_port.to_be_bytes());
    h[2..4].copy_from_slice(&dst_port.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = flags;
    h[14..16].copy_from_slice(&64240u16.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// A UDP header (8 bytes), then `payload`.
pub fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 8];
    h[0..2].copy_from_slice(&src_port.to_be_bytes());
    h[2..4].copy_from_slice(&dst_port.to_be_bytes());
    h[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// An ICMP/ICMPv6 header (8 bytes), then `payload`.
pub fn icmp(icmp_type: u8, code: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![icmp_type, code, 0, 0, 0, 1, 0, 1];
    h.extend_from_slice(payload);
    h
}

/// A GRE header carrying `protocol` (e.g. 0x0800), then `payload`.
pub fn gre(protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0, 0];
    h.extend_from_slice(&protocol.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// An ESP header with `spi`, sequence 1, then `payload`.
pub fn esp(spi: u32, payload: &[u8]) -> Vec<u8> {
    let mut h = spi.to_be_bytes().to_vec();
    h.extend_from_slice(&1u32.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// A minimal DNS query for `name` (type A).
pub fn dns_query(name: &str) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.').filter(|l| !l.is_empty()) {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}

/// IPv4 fragment field: offset in bytes (multiple of 8) and the more-fragments flag.
pub fn frag(offset_bytes: u32, more: bool) -> u16 {
    ((offset_bytes / 8) as u16 & 0x1fff) | if more { 0x2000 } else { 0 }
}

/// An IPv4 packet (20-byte header) around `l4`.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, ttl: u8, frag_field: u16, l4: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag_field.to_be_bytes());
    h.extend_from_slice(&[ttl, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(l4);
    h
}

/// An IPv6 packet around `l4`; `ext` is a chain of (header number, body) extension headers,
/// each body padded to a multiple of 8 with its next-header/length bytes filled in.
pub fn ipv6(src: [u8; 16], dst: [u8; 16], proto: u8, ext: &[(u8, Vec<u8>)], l4: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (_, e)) in ext.iter().enumerate() {
        let next = ext.get(i + 1).map(|n| n.0).unwrap_or(proto);
        let mut e = e.clone();
        while e.len() < 8 || e.len() % 8 != 0 {
            e.push(0);
        }
        e[0] = next;
        if ext[i].0 != 44 {
            e[1] = (e.len() / 8 - 1) as u8;
        }
        body.extend_from_slice(&e);
    }
    body.extend_from_slice(l4);
    let first = ext.first().map(|e| e.0).unwrap_or(proto);
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(&[first, 64]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(&body);
    h
}

/// An Ethernet frame with optional VLAN tags (802.1ad outer first for QinQ).
pub fn ethernet(ethertype: u16, vlans: &[u16], l3: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    for (i, vid) in vlans.iter().enumerate() {
        let tpid: u16 = if i + 1 < vlans.len() { 0x88a8 } else { 0x8100 };
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

/// A Linux cooked (SLL v1) frame.
pub fn sll(ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

/// A Linux cooked v2 (SLL2) frame.
pub fn sll2(ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = ethertype.to_be_bytes().to_vec();
    f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    f.extend_from_slice(l3);
    f
}

/// Shorthand: Ethernet + IPv4 (TTL 64, unfragmented) + `l4`.
pub fn eth4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    ethernet(0x0800, &[], &ipv4(src, dst, proto, 64, 0, l4))
}

//! NetFlow v5: a 24-byte header and up to 30 fixed 48-byte records. Flow times are milliseconds
//! of the exporter's uptime, converted to the collector's clock by the header's uptime at
//! arrival. The sampling interval is the low 14 bits of the header's last field (0 = unsampled).

use std::net::{IpAddr, Ipv4Addr};

use super::decode::{Ctx, Summary};
use super::record::{FlowRecord, FlowSource};
use super::wire::{uptime_age_ms, DecodeError, Rd, R};

pub const HEADER_LEN: usize = 24;
pub const RECORD_LEN: usize = 48;
pub const MAX_COUNT: u16 = 30;

pub fn decode(ctx: &Ctx, data: &[u8], s: &mut Summary, out: &mut Vec<FlowRecord>) -> R<()> {
    let mut h = Rd::new(data);
    let version = h.u16("netflow v5 header")?;
    if version != 5 {
        return Err(DecodeError::UnknownVersion(u32::from(version)));
    }
    let count = h.u16("netflow v5 header")?;
    let uptime = h.u32("netflow v5 header")?;
    let _secs = h.u32("netflow v5 header")?;
    let _nsecs = h.u32("netflow v5 header")?;
    let sequence = h.u32("netflow v5 header")?;
    let _engine = h.u16("netflow v5 header")?;
    let sampling = h.u16("netflow v5 header")?;
    s.source = Some(FlowSource::NetflowV5);
    if count == 0 || count > MAX_COUNT {
        return Err(DecodeError::Invalid("netflow v5 record count (1..=30)"));
    }
    s.sequence = Some((0, sequence, sequence.wrapping_add(u32::from(count))));
    let announced = u32::from(sampling & 0x3fff);
    let rate = ctx.rate(if announced == 0 { 1 } else { announced }, s);
    for _ in 0..count {
        let r = h.take(RECORD_LEN, "netflow v5 record")?;
        let ip = |at: usize| IpAddr::V4(Ipv4Addr::new(r[at], r[at + 1], r[at + 2], r[at + 3]));
        let u32_at = |at: usize| u32::from_be_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]]);
        let u16_at = |at: usize| u16::from_be_bytes([r[at], r[at + 1]]);
        let first = u32_at(24);
        let last = u32_at(28);
        let end_ms = ctx.arrived_ms.saturating_sub(uptime_age_ms(uptime, last));
        let start_ms = ctx.arrived_ms.saturating_sub(uptime_age_ms(uptime, first)).min(end_ms);
        out.push(FlowRecord {
            src: ip(0),
            dst: ip(4),
            src_port: u16_at(32),
            dst_port: u16_at(34),
            proto: r[38],
            tcp_flags: r[37],
            packets: u64::from(u32_at(16)).saturating_mul(u64::from(rate)),
            bytes: u64::from(u32_at(20)).saturating_mul(u64::from(rate)),
            start_ms,
            end_ms,
            fragment: false,
            ttl: None,
            sampling_rate: rate,
            source: FlowSource::NetflowV5,
            exporter: ctx.exporter,
            family: None,
        });
        s.records += 1;
    }
    s.sampling_rate = rate;
    Ok(())
}

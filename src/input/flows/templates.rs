//! NetFlow v9 (RFC 3954) and IPFIX (RFC 7011): template-driven records.
//!
//! Templates are kept per (exporter, protocol, source id / observation domain, template id), at
//! most [`MAX_TEMPLATES_PER_EXPORTER`] per exporter and [`MAX_TEMPLATES_TOTAL`] in all; a template
//! over a cap is refused and counted, an existing one may always be replaced. IPFIX withdrawals
//! (field count 0; template id 2/3 = all of the domain) remove templates. Options templates
//! carry the sampling rate (v9: fields 34 samplingInterval, 50 samplerRandomInterval, keyed by
//! 48 samplerId; IPFIX: 305/306 samplingPacketInterval/Space, 309/310 samplingSize/Population,
//! 34, 50, keyed by 48 or 302 selectorId) and IPFIX's 160 systemInitTimeMilliseconds, kept per
//! (exporter, domain) under the same kind of caps. IPFIX variable-length fields and enterprise
//! fields are read (and enterprise fields ignored).
//!
//! Data records without a known template cannot be split into records: each such set counts one
//! template miss.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::decode::{Ctx, Summary};
use super::record::{FlowRecord, FlowSource};
use super::wire::{absolute_ms, uint, uptime_age_ms, DecodeError, Rd, R};

pub const MAX_TEMPLATES_PER_EXPORTER: usize = 512;
pub const MAX_TEMPLATES_TOTAL: usize = 4096;
/// Fields per template; real templates have tens.
pub const MAX_FIELDS: usize = 256;
/// (exporter, domain) sampling/clock entries per exporter and in all.
pub const MAX_DOMAINS_PER_EXPORTER: usize = 64;
pub const MAX_DOMAINS_TOTAL: usize = 4096;
/// Sampler / selector ids remembered per domain.
pub const MAX_SAMPLERS: usize = 16;

/// Length marker of an IPFIX variable-length field.
const VARLEN: u16 = 0xffff;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    exporter: IpAddr,
    ipfix: bool,
    domain: u32,
    id: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    id: u16,
    len: u16,
    enterprise: bool,
}

#[derive(Debug, Clone)]
struct Template {
    fields: std::sync::Arc<[Field]>,
    /// Leading scope fields (options templates); 0 for data templates.
    scope: usize,
    options: bool,
    /// The shortest a record can be (variable-length fields count 1 byte).
    min_len: usize,
}

#[derive(Debug, Clone, Default)]
struct Domain {
    /// The rate announced without a sampler id.
    rate: Option<u32>,
    /// Rates by sampler / selector id.
    by_id: Vec<(u64, u32)>,
    /// IPFIX systemInitTimeMilliseconds: the epoch of the exporter's uptime fields.
    init_ms: Option<u64>,
}

/// The template cache of every exporter, bounded.
#[derive(Debug, Default)]
pub struct Templates {
    map: HashMap<Key, Template>,
    per_exporter: HashMap<IpAddr, usize>,
    domains: HashMap<(IpAddr, bool, u32), Domain>,
    domains_per_exporter: HashMap<IpAddr, usize>,
}

impl Templates {
    /// Templates held in all.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Templates held for one exporter.
    pub fn for_exporter(&self, ip: IpAddr) -> usize {
        self.per_exporter.get(&ip).copied().unwrap_or(0)
    }

    /// (exporter, domain) entries with a sampling rate or clock.
    pub fn domains(&self) -> usize {
        self.domains.len()
    }

    /// Forget everything about one exporter.
    pub fn forget(&mut self, ip: IpAddr) {
        self.map.retain(|k, _| k.exporter != ip);
        self.per_exporter.remove(&ip);
        self.domains.retain(|k, _| k.0 != ip);
        self.domains_per_exporter.remove(&ip);
    }

    fn insert(&mut self, key: Key, t: Template) -> bool {
        if let Some(slot) = self.map.get_mut(&key) {
            *slot = t;
            return true;
        }
        let n = self.per_exporter.get(&key.exporter).copied().unwrap_or(0);
        if n >= MAX_TEMPLATES_PER_EXPORTER || self.map.len() >= MAX_TEMPLATES_TOTAL {
            return false;
        }
        self.map.insert(key, t);
        *self.per_exporter.entry(key.exporter).or_insert(0) += 1;
        true
    }

    fn remove(&mut self, key: &Key) {
        if self.map.remove(key).is_some() {
            self.dec(key.exporter, 1);
        }
    }

    /// IPFIX "withdraw all": every data (`options` false) or options template of the domain.
    fn remove_all(&mut self, exporter: IpAddr, domain: u32, options: bool) {
        let before = self.map.len();
        self.map.retain(|k, t| !(k.exporter == exporter && k.ipfix && k.domain == domain && t.options == options));
        let gone = before - self.map.len();
        self.dec(exporter, gone);
    }

    fn dec(&mut self, exporter: IpAddr, n: usize) {
        if let Some(c) = self.per_exporter.get_mut(&exporter) {
            *c = c.saturating_sub(n);
            if *c == 0 {
                self.per_exporter.remove(&exporter);
            }
        }
    }

    fn domain(&self, exporter: IpAddr, ipfix: bool, domain: u32) -> Option<&Domain> {
        self.domains.get(&(exporter, ipfix, domain))
    }

    fn domain_mut(&mut self, exporter: IpAddr, ipfix: bool, domain: u32) -> Option<&mut Domain> {
        let key = (exporter, ipfix, domain);
        if !self.domains.contains_key(&key) {
            let n = self.domains_per_exporter.get(&exporter).copied().unwrap_or(0);
            if n >= MAX_DOMAINS_PER_EXPORTER || self.domains.len() >= MAX_DOMAINS_TOTAL {
                return None;
            }
            *self.domains_per_exporter.entry(exporter).or_insert(0) += 1;
        }
        Some(self.domains.entry(key).or_default())
    }
}

/// The fields of one record that the collector uses.
#[derive(Debug, Default)]
struct Fields {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    src_port: u16,
    dst_port: u16,
    icmp: Option<u16>,
    proto: u8,
    tcp_flags: u8,
    bytes: Option<u64>,
    packets: Option<u64>,
    bytes_other: Option<u64>,
    packets_other: Option<u64>,
    /// Uptime-relative start/end (ms).
    up_start: Option<u32>,
    up_end: Option<u32>,
    /// Absolute start/end (ms since the epoch, exporter clock).
    abs_start: Option<u64>,
    abs_end: Option<u64>,
    /// Start/end as µs before the export time.
    delta_start_us: Option<u64>,
    delta_end_us: Option<u64>,
    ttl: Option<u8>,
    fragment: bool,
    /// An announced rate (after combining interval/space or size/population).
    rate: Option<u32>,
    interval: Option<u64>,
    space: Option<u64>,
    size: Option<u64>,
    population: Option<u64>,
    sampler: Option<u64>,
    init_ms: Option<u64>,
}

fn ntp_ms(v: u64) -> u64 {
    // NTP: seconds since 1900 in the high 32 bits, fraction in the low 32.
    let secs = (v >> 32).saturating_sub(2_208_988_800);
    let frac_ms = ((v & 0xffff_ffff) * 1000) >> 32;
    secs.saturating_mul(1000) + frac_ms
}

impl Fields {
    fn set(&mut self, id: u16, b: &[u8]) {
        let n = || uint(b);
        match id {
            1 => self.bytes = Some(n()),
            2 => self.packets = Some(n()),
            4 => self.proto = n() as u8,
            6 => self.tcp_flags = n() as u8,
            7 => self.src_port = n() as u16,
            11 => self.dst_port = n() as u16,
            8 if b.len() == 4 => self.src = Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
            12 if b.len() == 4 => self.dst = Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
            27 | 28 if b.len() == 16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                let ip = IpAddr::V6(Ipv6Addr::from(a));
                if id == 27 {
                    self.src = Some(ip)
                } else {
                    self.dst = Some(ip)
                }
            }
            23 | 85 => self.bytes_other = Some(n()),
            24 | 86 => self.packets_other = Some(n()),
            21 => self.up_end = Some(n() as u32),
            22 => self.up_start = Some(n() as u32),
            32 | 139 => self.icmp = Some(n() as u16),
            150 => self.abs_start = Some(n().saturating_mul(1000)),
            151 => self.abs_end = Some(n().saturating_mul(1000)),
            152 => self.abs_start = Some(n()),
            153 => self.abs_end = Some(n()),
            154 | 156 => self.abs_start = Some(ntp_ms(n())),
            155 | 157 => self.abs_end = Some(ntp_ms(n())),
            158 => self.delta_start_us = Some(n()),
            159 => self.delta_end_us = Some(n()),
            160 => self.init_ms = Some(n()),
            192 | 52 => self.ttl = Some(n() as u8),
            // fragmentFlags: MF is bit 2 counted from the most significant.
            197 => self.fragment |= n() & 0x20 != 0,
            88 => self.fragment |= n() & 0x1fff != 0,
            34 | 50 => self.rate = Some(n().min(u64::from(u32::MAX)) as u32),
            305 => self.interval = Some(n()),
            306 => self.space = Some(n()),
            309 => self.size = Some(n()),
            310 => self.population = Some(n()),
            48 | 302 => self.sampler = Some(n()),
            _ => {}
        }
    }

    /// The rate these fields announce, if any (0 = announced as 0).
    fn announced(&self) -> Option<u32> {
        let clamp = |v: u64| v.min(u64::from(u32::MAX)) as u32;
        if let Some(r) = self.rate {
            return Some(r);
        }
        if let Some(i) = self.interval {
            return Some(i.saturating_add(self.space.unwrap_or(0)).checked_div(i).map_or(0, clamp));
        }
        if let (Some(s), Some(p)) = (self.size, self.population) {
            return Some(p.checked_div(s).map_or(0, clamp));
        }
        None
    }
}

/// Header facts a record's times are converted with.
struct Clock {
    ipfix: bool,
    /// v9: the header's sysUptime (ms).
    uptime: u32,
    /// The header's export time, ms since the epoch.
    export_ms: u64,
}

fn read_template_fields(body: &mut Rd, count: usize, ipfix: bool) -> R<(Vec<Field>, usize, bool)> {
    let mut fields = Vec::with_capacity(count.min(MAX_FIELDS));
    let mut min_len = 0usize;
    let mut var = false;
    for _ in 0..count {
        let raw = body.u16("template field")?;
        let len = body.u16("template field")?;
        let enterprise = ipfix && raw & 0x8000 != 0;
        if enterprise {
            body.skip(4, "template enterprise number")?;
        }
        let id = if ipfix { raw & 0x7fff } else { raw };
        if ipfix && len == VARLEN {
            min_len += 1;
            var = true;
        } else {
            min_len += usize::from(len);
        }
        fields.push(Field { id, len, enterprise });
    }
    Ok((fields, min_len, var))
}

fn add_template(
    t: &mut Templates,
    key: Key,
    fields: Vec<Field>,
    scope: usize,
    options: bool,
    min_len: usize,
    s: &mut Summary,
) {
    if fields.is_empty() || fields.len() > MAX_FIELDS || min_len == 0 || min_len > 65_535 {
        s.templates_refused += 1;
        return;
    }
    if t.insert(key, Template { fields: fields.into(), scope, options, min_len }) {
        s.templates += 1;
    } else {
        s.templates_refused += 1;
    }
}

/// A template set (v9 id 0, IPFIX id 2).
fn template_set(t: &mut Templates, ctx: &Ctx, ipfix: bool, domain: u32, body: &mut Rd, s: &mut Summary) -> R<()> {
    while body.left() >= 4 {
        let id = body.u16("template record")?;
        let count = usize::from(body.u16("template record")?);
        let key = Key { exporter: ctx.exporter, ipfix, domain, id };
        if count == 0 {
            if !ipfix {
                // v9 has no withdrawal; a zero-field template is padding or garbage.
                break;
            }
            if id == 2 {
                t.remove_all(ctx.exporter, domain, false);
            } else {
                t.remove(&key);
            }
            continue;
        }
        if id < 256 {
            s.templates_refused += 1;
            return Err(DecodeError::Invalid("template id (< 256)"));
        }
        let (fields, min_len, _) = read_template_fields(body, count, ipfix)?;
        add_template(t, key, fields, 0, false, min_len, s);
    }
    Ok(())
}

/// An options template set (v9 id 1, IPFIX id 3).
fn options_set(t: &mut Templates, ctx: &Ctx, ipfix: bool, domain: u32, body: &mut Rd, s: &mut Summary) -> R<()> {
    while body.left() >= if ipfix { 4 } else { 6 } {
        let id = body.u16("options template record")?;
        let (count, scope) = if ipfix {
            let count = usize::from(body.u16("options template record")?);
            if count == 0 {
                if id == 3 {
                    t.remove_all(ctx.exporter, domain, true);
                } else {
                    t.remove(&Key { exporter: ctx.exporter, ipfix, domain, id });
                }
                continue;
            }
            let scope = usize::from(body.u16("options template record")?);
            (count, scope)
        } else {
            let scope_len = usize::from(body.u16("options template record")?);
            let opt_len = usize::from(body.u16("options template record")?);
            if scope_len % 4 != 0 || opt_len % 4 != 0 {
                s.templates_refused += 1;
                return Err(DecodeError::Invalid("v9 options template lengths (multiples of 4)"));
            }
            if scope_len == 0 && opt_len == 0 {
                break; // padding
            }
            ((scope_len + opt_len) / 4, scope_len / 4)
        };
        if id < 256 {
            s.templates_refused += 1;
            return Err(DecodeError::Invalid("options template id (< 256)"));
        }
        if scope == 0 && ipfix || scope > count {
            s.templates_refused += 1;
            return Err(DecodeError::Invalid("options template scope count"));
        }
        let (fields, min_len, _) = read_template_fields(body, count, ipfix)?;
        add_template(t, Key { exporter: ctx.exporter, ipfix, domain, id }, fields, scope, true, min_len, s);
    }
    Ok(())
}

/// Read one record's fields as the template says; None when it runs past the set.
fn read_record(tpl: &Template, ipfix: bool, rec: &mut Rd, f: &mut Fields) -> R<()> {
    for (i, fd) in tpl.fields.iter().enumerate() {
        let len = if ipfix && fd.len == VARLEN {
            let l = rec.u8("variable-length field")?;
            if l == 255 {
                usize::from(rec.u16("variable-length field")?)
            } else {
                usize::from(l)
            }
        } else {
            usize::from(fd.len)
        };
        let b = rec.take(len, "data record")?;
        // v9 scope fields have their own numbering (1 = system, 2 = interface ...): skip them.
        if fd.enterprise || (!ipfix && i < tpl.scope) {
            continue;
        }
        f.set(fd.id, b);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn data_set(
    t: &mut Templates,
    ctx: &Ctx,
    clock: &Clock,
    domain: u32,
    id: u16,
    body: &mut Rd,
    s: &mut Summary,
    data_records: &mut u32,
    out: &mut Vec<FlowRecord>,
) -> R<()> {
    let ipfix = clock.ipfix;
    let key = Key { exporter: ctx.exporter, ipfix, domain, id };
    let Some(tpl) = t.map.get(&key) else {
        s.template_misses += 1;
        return Ok(());
    };
    // Options records update `t` while the template is in use: hold it by a cheap clone.
    let tpl = tpl.clone();
    let source = if ipfix { FlowSource::Ipfix } else { FlowSource::NetflowV9 };
    // The domain's announced rates and clock, read once per set (only options records change
    // them, and those are in sets of their own templates).
    let dom: Option<Domain> = if tpl.options { None } else { t.domain(ctx.exporter, ipfix, domain).cloned() };
    while body.left() >= tpl.min_len {
        let mut f = Fields::default();
        let before = body.pos();
        read_record(&tpl, ipfix, body, &mut f)?;
        if body.pos() == before {
            break;
        }
        *data_records = data_records.wrapping_add(1);
        if tpl.options {
            options_record(t, ctx, ipfix, domain, &f);
            continue;
        }
        let (Some(src), Some(dst)) = (f.src, f.dst) else {
            s.skipped += 1;
            continue;
        };
        let dom = dom.as_ref();
        let announced = f
            .announced()
            .or_else(|| {
                let d = dom?;
                f.sampler.and_then(|id| d.by_id.iter().find(|(k, _)| *k == id).map(|(_, r)| *r)).or(d.rate)
            })
            .unwrap_or(1);
        let rate = ctx.rate(announced, s);
        let (start_ms, end_ms) = times(ctx, clock, &f, dom.and_then(|d| d.init_ms));
        let packets = f.packets.or(f.packets_other).unwrap_or(0);
        let bytes = f.bytes.or(f.bytes_other).unwrap_or(0);
        let mut dst_port = f.dst_port;
        if let (Some(code), 1 | 58) = (f.icmp, f.proto) {
            if dst_port == 0 {
                dst_port = code;
            }
        }
        out.push(FlowRecord {
            src,
            dst,
            src_port: f.src_port,
            dst_port,
            proto: f.proto,
            tcp_flags: f.tcp_flags,
            packets: packets.saturating_mul(u64::from(rate)),
            bytes: bytes.saturating_mul(u64::from(rate)),
            start_ms,
            end_ms,
            fragment: f.fragment,
            ttl: f.ttl,
            sampling_rate: rate,
            source,
            exporter: ctx.exporter,
            family: None,
        });
        s.records += 1;
        s.sampling_rate = rate;
    }
    Ok(())
}

fn options_record(t: &mut Templates, ctx: &Ctx, ipfix: bool, domain: u32, f: &Fields) {
    let announced = f.announced();
    if announced.is_none() && f.init_ms.is_none() {
        return;
    }
    let Some(d) = t.domain_mut(ctx.exporter, ipfix, domain) else {
        return;
    };
    if let Some(init) = f.init_ms {
        d.init_ms = Some(init);
    }
    if let Some(rate) = announced {
        match f.sampler {
            Some(id) => {
                if let Some(slot) = d.by_id.iter_mut().find(|(k, _)| *k == id) {
                    slot.1 = rate;
                } else if d.by_id.len() < MAX_SAMPLERS {
                    d.by_id.push((id, rate));
                }
                // One sampler on the domain is also its default.
                if d.rate.is_none() || d.by_id.len() == 1 {
                    d.rate = Some(rate);
                }
            }
            None => d.rate = Some(rate),
        }
    }
}

/// A record's interval on the collector's clock: (start, end), start ≤ end ≤ arrival.
fn times(ctx: &Ctx, clock: &Clock, f: &Fields, init_ms: Option<u64>) -> (u64, u64) {
    let arrived = ctx.arrived_ms;
    let init_ms = f.init_ms.or(init_ms);
    let conv = |up: Option<u32>, abs: Option<u64>, delta_us: Option<u64>| -> Option<u64> {
        if let Some(a) = abs {
            return Some(absolute_ms(arrived, clock.export_ms, a));
        }
        if let Some(d) = delta_us {
            return Some(absolute_ms(arrived, clock.export_ms, clock.export_ms.saturating_sub(d / 1000)));
        }
        let up = up?;
        if clock.ipfix {
            // IPFIX uptime fields count from systemInitTimeMilliseconds.
            init_ms.map(|i| absolute_ms(arrived, clock.export_ms, i.saturating_add(u64::from(up))))
        } else {
            Some(arrived.saturating_sub(uptime_age_ms(clock.uptime, up)))
        }
    };
    let end = conv(f.up_end, f.abs_end, f.delta_end_us).unwrap_or(arrived).min(arrived);
    let start = conv(f.up_start, f.abs_start, f.delta_start_us).unwrap_or(end).min(end);
    (start, end)
}

/// Walk the sets of a v9 or IPFIX message body.
#[allow(clippy::too_many_arguments)]
fn sets(
    t: &mut Templates,
    ctx: &Ctx,
    clock: &Clock,
    domain: u32,
    rd: &mut Rd,
    s: &mut Summary,
    data_records: &mut u32,
    out: &mut Vec<FlowRecord>,
) -> R<()> {
    let ipfix = clock.ipfix;
    let (tmpl_id, opts_id) = if ipfix { (2, 3) } else { (0, 1) };
    while rd.left() >= 4 {
        let id = rd.u16("set header")?;
        let len = usize::from(rd.u16("set header")?);
        if len < 4 {
            return Err(DecodeError::Invalid("set length (< 4)"));
        }
        let mut body = Rd::new(rd.take(len - 4, "set")?);
        if id == tmpl_id {
            template_set(t, ctx, ipfix, domain, &mut body, s)?;
        } else if id == opts_id {
            options_set(t, ctx, ipfix, domain, &mut body, s)?;
        } else if id >= 256 {
            data_set(t, ctx, clock, domain, id, &mut body, s, data_records, out)?;
        }
        // Other ids are reserved: skipped.
    }
    Ok(())
}

/// NetFlow v9: a 20-byte header, then flowsets.
pub fn decode_v9(t: &mut Templates, ctx: &Ctx, data: &[u8], s: &mut Summary, out: &mut Vec<FlowRecord>) -> R<()> {
    let mut rd = Rd::new(data);
    s.source = Some(FlowSource::NetflowV9);
    if rd.u16("netflow v9 header")? != 9 {
        return Err(DecodeError::UnknownVersion(9));
    }
    let _count = rd.u16("netflow v9 header")?;
    let uptime = rd.u32("netflow v9 header")?;
    let secs = rd.u32("netflow v9 header")?;
    let sequence = rd.u32("netflow v9 header")?;
    let domain = rd.u32("netflow v9 header")?;
    // v9 counts export packets.
    s.sequence = Some((domain, sequence, sequence.wrapping_add(1)));
    let clock = Clock { ipfix: false, uptime, export_ms: u64::from(secs) * 1000 };
    let mut n = 0;
    sets(t, ctx, &clock, domain, &mut rd, s, &mut n, out)
}

/// IPFIX: a 16-byte header whose length bounds the message, then sets.
pub fn decode_ipfix(t: &mut Templates, ctx: &Ctx, data: &[u8], s: &mut Summary, out: &mut Vec<FlowRecord>) -> R<()> {
    let mut h = Rd::new(data);
    s.source = Some(FlowSource::Ipfix);
    if h.u16("ipfix header")? != 10 {
        return Err(DecodeError::UnknownVersion(10));
    }
    let len = usize::from(h.u16("ipfix header")?);
    let export = h.u32("ipfix header")?;
    let sequence = h.u32("ipfix header")?;
    let domain = h.u32("ipfix header")?;
    if len < 16 {
        return Err(DecodeError::Invalid("ipfix message length (< 16)"));
    }
    if len > data.len() {
        return Err(DecodeError::Truncated("ipfix message"));
    }
    let mut rd = Rd::new(&data[16..len]);
    let clock = Clock { ipfix: true, uptime: 0, export_ms: u64::from(export) * 1000 };
    // IPFIX counts data records, so the next expected number is known only after the sets.
    let mut n = 0u32;
    let r = sets(t, ctx, &clock, domain, &mut rd, s, &mut n, out);
    s.sequence = Some((domain, sequence, sequence.wrapping_add(n)));
    r
}

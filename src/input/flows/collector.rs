//! The collector's state without sockets: which sources are trusted, the decoders and their
//! templates, and the per-exporter counters the operator sees. One datagram in, its records out.
//! Pure apart from logging (one line per exporter per minute when it has new errors).

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Serialize;

use super::decode::{Ctx, Decoder, Summary};
use super::record::{FlowRecord, FlowSource};
use crate::config::flows::FlowsConfig;

/// Exporters tracked at most (when any source is accepted, spoofed sources cannot grow the table
/// past this; datagrams from more are counted and dropped).
pub const MAX_EXPORTERS: usize = 1024;
/// Sequence streams (source id / domain / sub-agent) tracked per exporter.
pub const MAX_STREAMS: usize = 64;
/// At most one error line per exporter per this many ms.
pub const LOG_EVERY_MS: u64 = 60_000;

/// One exporter's counters (`--status`, `--top`, `/metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExporterStats {
    pub address: Option<IpAddr>,
    pub name: Option<String>,
    /// The protocol of its last datagram.
    pub source: Option<FlowSource>,
    pub datagrams: u64,
    pub bytes: u64,
    pub records: u64,
    pub counter_samples: u64,
    /// The sampling rate last applied to its records (0 = none yet).
    pub sampling_rate: u32,
    /// Sequence jumps forward (lost datagrams or records) and how many units were missing.
    pub sequence_gaps: u64,
    pub sequence_lost: u64,
    pub template_misses: u64,
    pub templates_refused: u64,
    /// Datagrams that failed to decode plus records or samples skipped as malformed inside them.
    pub parse_errors: u64,
    /// Sampling rates announced as 0 (applied as 1).
    pub rate_zero: u64,
    pub last_seen_ms: u64,
    pub last_error: Option<String>,
}

/// Counters that belong to no exporter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Datagrams from sources that are not listed exporters: dropped unparsed.
    pub unlisted_datagrams: u64,
    /// Datagrams from new sources after [`MAX_EXPORTERS`] were tracked: dropped unparsed.
    pub over_cap_datagrams: u64,
    pub datagrams: u64,
    pub records: u64,
    pub templates: usize,
}

#[derive(Debug)]
struct Exporter {
    stats: ExporterStats,
    rate_override: Option<u32>,
    /// (protocol, stream) → the next sequence number expected, the last one seen, and the flow
    /// records of that datagram.
    next_seq: HashMap<(FlowSource, u32), (u32, u32, u32)>,
    last_log_ms: u64,
    logged_errors: u64,
}

/// Trust, decoders and counters.
#[derive(Debug)]
pub struct Collector {
    listed: HashMap<IpAddr, (Option<String>, Option<u32>)>,
    decoder: Decoder,
    exporters: HashMap<IpAddr, Exporter>,
    totals: Totals,
    out: Vec<FlowRecord>,
}

impl Collector {
    pub fn new(cfg: &FlowsConfig) -> Self {
        Collector {
            listed: cfg.exporters.iter().map(|e| (e.address, (e.name.clone(), e.sampling_rate))).collect(),
            decoder: Decoder::new(),
            exporters: HashMap::new(),
            totals: Totals::default(),
            out: Vec::new(),
        }
    }

    /// Decode one datagram from `from` that arrived at `arrived_ms`; its records, already scaled
    /// (empty for a datagram that is dropped, has only templates, or fails early).
    pub fn datagram(&mut self, from: IpAddr, data: &[u8], arrived_ms: u64) -> &[FlowRecord] {
        self.out.clear();
        let listed = match self.listed.get(&from) {
            Some(l) => Some(l.clone()),
            None if self.listed.is_empty() => None,
            None => {
                self.totals.unlisted_datagrams += 1;
                return &self.out;
            }
        };
        if !self.exporters.contains_key(&from) {
            if self.exporters.len() >= MAX_EXPORTERS {
                self.totals.over_cap_datagrams += 1;
                return &self.out;
            }
            let (name, rate_override) = listed.unwrap_or_default();
            self.exporters.insert(
                from,
                Exporter {
                    stats: ExporterStats { address: Some(from), name, ..Default::default() },
                    rate_override,
                    next_seq: HashMap::new(),
                    last_log_ms: 0,
                    logged_errors: 0,
                },
            );
        }
        let Some(ex) = self.exporters.get_mut(&from) else {
            return &self.out;
        };
        let ctx = Ctx { exporter: from, arrived_ms, rate_override: ex.rate_override };
        let mut s = Summary::default();
        let result = self.decoder.decode(&ctx, data, &mut s, &mut self.out);
        let st = &mut ex.stats;
        st.datagrams += 1;
        st.bytes += data.len() as u64;
        st.last_seen_ms = arrived_ms;
        st.records += self.out.len() as u64;
        st.counter_samples += u64::from(s.counter_samples);
        st.template_misses += u64::from(s.template_misses);
        st.templates_refused += u64::from(s.templates_refused);
        st.rate_zero += u64::from(s.rate_zero);
        st.parse_errors += u64::from(s.errors);
        if s.source.is_some() {
            st.source = s.source;
        }
        if s.sampling_rate > 0 {
            st.sampling_rate = s.sampling_rate;
        }
        if let Err(e) = result {
            st.parse_errors += 1;
            st.last_error = Some(e.to_string());
        } else if s.errors > 0 {
            st.last_error = Some(if s.rate_zero > 0 {
                "sampling rate 0 announced (applied as 1)".into()
            } else {
                "malformed record or sample skipped".into()
            });
        }
        if let (Some(src), Some((stream, seq, next))) = (s.source, s.sequence) {
            let key = (src, stream);
            if let Some((expected, prev, prev_flows)) = ex.next_seq.get(&key).copied() {
                let ahead = seq.wrapping_sub(expected);
                // IPFIX counts data records; some exporters count flow records only, or number a
                // message by the records up to and including it (softflowd): accept those too.
                let alt = src == FlowSource::Ipfix
                    && [
                        prev.wrapping_add(prev_flows),
                        prev.wrapping_add(s.records),
                        prev.wrapping_add(next.wrapping_sub(seq)),
                    ]
                    .contains(&seq);
                if ahead != 0 && ahead < u32::MAX / 2 && !alt {
                    st.sequence_gaps += 1;
                    st.sequence_lost += u64::from(ahead);
                }
            }
            if ex.next_seq.len() < MAX_STREAMS || ex.next_seq.contains_key(&key) {
                ex.next_seq.insert(key, (next, seq, s.records));
            }
        }
        if st.parse_errors > ex.logged_errors && arrived_ms.saturating_sub(ex.last_log_ms) >= LOG_EVERY_MS {
            log::warn!(
                "flows: exporter {}{}: {} parse errors so far ({} new), last: {}",
                from,
                st.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default(),
                st.parse_errors,
                st.parse_errors - ex.logged_errors,
                st.last_error.as_deref().unwrap_or("-"),
            );
            ex.last_log_ms = arrived_ms;
            ex.logged_errors = st.parse_errors;
        }
        self.totals.datagrams += 1;
        self.totals.records += self.out.len() as u64;
        &self.out
    }

    /// Every exporter's counters, busiest first.
    pub fn exporters(&self) -> Vec<ExporterStats> {
        let mut v: Vec<ExporterStats> = self.exporters.values().map(|e| e.stats.clone()).collect();
        v.sort_by(|a, b| b.records.cmp(&a.records).then(a.address.cmp(&b.address)));
        v
    }

    pub fn totals(&self) -> Totals {
        Totals { templates: self.decoder.templates.len(), ..self.totals }
    }

    /// The decoder state (templates), for tests and benches.
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }
}

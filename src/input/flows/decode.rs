//! One datagram in, records out: the version is told from the first bytes (NetFlow v5 = 5,
//! v9 = 9, IPFIX = 10 in the first 16 bits; sFlow = 5 in the first 32), then the matching
//! decoder runs. Pure: no sockets, the arrival time and exporter are passed in; the only state is
//! the template cache ([`super::templates::Templates`], bounded).

use std::net::IpAddr;

use super::record::{FlowRecord, FlowSource};
use super::templates::Templates;
use super::wire::{DecodeError, R};
use super::{netflow5, sflow, templates};

/// What a datagram is decoded against.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// The UDP source address of the datagram.
    pub exporter: IpAddr,
    /// Collector wall clock at arrival, ms since the Unix epoch.
    pub arrived_ms: u64,
    /// The operator's `sampling_rate` for this exporter: wins over what the exporter says.
    pub rate_override: Option<u32>,
}

impl Ctx {
    /// The rate to apply when the exporter announces `announced`: the override wins; 0 is
    /// treated as 1 and counted as an error.
    pub fn rate(&self, announced: u32, s: &mut Summary) -> u32 {
        if let Some(r) = self.rate_override {
            return r.max(1);
        }
        if announced == 0 {
            s.rate_zero += 1;
            s.errors += 1;
            return 1;
        }
        announced
    }
}

/// What one datagram held, beside its records. Filled as far as decoding got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub source: Option<FlowSource>,
    /// (source id / observation domain / sFlow sub-agent, sequence number, the next sequence
    /// number expected if nothing is lost).
    pub sequence: Option<(u32, u32, u32)>,
    /// Flow records (NetFlow/IPFIX) or flow samples (sFlow) emitted.
    pub records: u32,
    /// Data records whose template is unknown (not yet received, withdrawn or refused).
    pub template_misses: u32,
    /// Template and options-template records accepted.
    pub templates: u32,
    /// Templates refused (over the per-exporter or total cap, or malformed).
    pub templates_refused: u32,
    /// sFlow counter samples.
    pub counter_samples: u32,
    /// Records or samples skipped inside an otherwise readable datagram (no addresses, an
    /// undecodable sampled header, rate 0 ...).
    pub errors: u32,
    /// Data records without addresses (a layer-2 or other template): not flows we can use.
    pub skipped: u32,
    /// Announced sampling rates of 0 (applied as 1).
    pub rate_zero: u32,
    /// The last sampling rate applied (0 = no record).
    pub sampling_rate: u32,
}

/// The decoders and their state (templates, announced sampling rates).
#[derive(Debug, Default)]
pub struct Decoder {
    pub templates: Templates,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decode one datagram, appending its records to `out`. On error the records decoded before
    /// it stay in `out` and `s` says how far it got.
    pub fn decode(&mut self, ctx: &Ctx, data: &[u8], s: &mut Summary, out: &mut Vec<FlowRecord>) -> R<()> {
        if data.len() < 4 {
            return Err(DecodeError::Truncated("datagram header"));
        }
        let v16 = u16::from_be_bytes([data[0], data[1]]);
        let v32 = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
        match (v16, v32) {
            (5, _) => netflow5::decode(ctx, data, s, out),
            (9, _) => templates::decode_v9(&mut self.templates, ctx, data, s, out),
            (10, _) => templates::decode_ipfix(&mut self.templates, ctx, data, s, out),
            (_, 5) => sflow::decode(ctx, data, s, out),
            (_, v) if v16 == 0 => Err(DecodeError::UnknownVersion(v)),
            _ => Err(DecodeError::UnknownVersion(u32::from(v16))),
        }
    }
}

//! The contract between the flow collector and what consumes its records (the per-address
//! detector, benches, tests): one [`FlowRecord`] per decoded flow or sFlow sample, already scaled
//! by the sampling rate and placed on the collector's clock, handed to a [`FlowSink`].

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Which protocol a record came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowSource {
    Sflow,
    NetflowV5,
    NetflowV9,
    Ipfix,
}

impl FlowSource {
    /// The serialised name (`sflow`, `netflow_v5`, `netflow_v9`, `ipfix`).
    pub fn as_str(self) -> &'static str {
        match self {
            FlowSource::Sflow => "sflow",
            FlowSource::NetflowV5 => "netflow_v5",
            FlowSource::NetflowV9 => "netflow_v9",
            FlowSource::Ipfix => "ipfix",
        }
    }

    pub const ALL: [FlowSource; 4] =
        [FlowSource::Sflow, FlowSource::NetflowV5, FlowSource::NetflowV9, FlowSource::Ipfix];
}

impl std::fmt::Display for FlowSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One flow (NetFlow/IPFIX) or one sampled packet (sFlow), as the exporter reported it.
/// Everything in it came from the network and may be forged: evidence, not truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
    /// OR of the TCP flags seen (SYN = 0x02).
    pub tcp_flags: u8,
    /// Already scaled by `sampling_rate`.
    pub packets: u64,
    /// Already scaled by `sampling_rate`.
    pub bytes: u64,
    /// Flow interval in collector wall-clock ms since the Unix epoch (the exporter's uptime or
    /// export time converted); sFlow: both are the datagram's arrival.
    pub start_ms: u64,
    pub end_ms: u64,
    /// An IP fragment (sFlow: the sampled packet; NetFlow/IPFIX: fragment flags or offset).
    pub fragment: bool,
    /// IP TTL / hop limit when the format carries one.
    pub ttl: Option<u8>,
    /// The rate applied to `packets`/`bytes` (1 = unsampled).
    pub sampling_rate: u32,
    pub source: FlowSource,
    /// The exporter the datagram came from (its UDP source address).
    pub exporter: IpAddr,
    /// sFlow only: the capture engine's classification of the sampled header, `family` or
    /// `family/subtype` (e.g. `udp_flood/dns_amplification`, `syn_flood`); None for
    /// NetFlow/IPFIX, which carry no packet.
    pub family: Option<String>,
}

/// Where decoded records go. The listener calls [`FlowSink::record`] on its own thread for
/// every record of a datagram, after the datagram is decoded; implementations must not block for
/// long (hand over to another thread through a bounded queue if aggregation is heavy:
/// [`super::ChannelSink`] does that).
pub trait FlowSink {
    fn record(&mut self, rec: &FlowRecord, arrived_ms: u64);
    /// Called after the last record of each datagram (a batching sink sends its batch here).
    fn flush(&mut self) {}
}

/// Collects records into a Vec (tests, benches, replay).
impl FlowSink for Vec<FlowRecord> {
    fn record(&mut self, rec: &FlowRecord, _arrived_ms: u64) {
        self.push(rec.clone());
    }
}

/// Counts records and scaled packets (benches: decode cost without aggregation).
#[derive(Debug, Default, Clone, Copy)]
pub struct CountSink {
    pub records: u64,
    pub packets: u64,
    pub bytes: u64,
}

impl FlowSink for CountSink {
    fn record(&mut self, rec: &FlowRecord, _arrived_ms: u64) {
        self.records += 1;
        self.packets = self.packets.wrapping_add(rec.packets);
        self.bytes = self.bytes.wrapping_add(rec.bytes);
    }
}

//! The agent's periodic reports (§6.2): the per-interval figures accumulated from every sample
//! for the metrics push, and the heartbeat. Pure: `wall` comes from the caller.

use std::time::SystemTime;

use super::{round1, Agent};
use crate::event::rfc3339_ms;
use crate::input::counters::{ProtoCounters, Rates};
use crate::report::messages::LocalMetrics;
use crate::report::{Heartbeat, InterfaceInfo, Metrics};

/// What the samples since the last metrics push add up to.
#[derive(Debug, Default)]
pub(super) struct MetricsAcc {
    max_pps: f64,
    max_bps: f64,
    sum_pps: f64,
    samples: u32,
    proto: ProtoCounters,
}

impl Agent {
    pub(super) fn accumulate(&mut self, r: &Rates) {
        let a = &mut self.acc;
        a.max_pps = a.max_pps.max(r.pps);
        a.max_bps = a.max_bps.max(r.bits_per_s);
        a.sum_pps += r.pps;
        a.samples += 1;
        if let Some(p) = &r.proto {
            a.proto.add(p);
        }
    }

    pub(super) fn metrics(&mut self, wall: SystemTime) -> Metrics {
        let a = std::mem::take(&mut self.acc);
        let total = a.proto.total().max(1) as f64;
        let pct = |n: u64| round1(100.0 * n as f64 / total);
        let q = self.inbound.baseline.quality(wall);
        let thr = self.inbound.thresholds();
        Metrics {
            ts: rfc3339_ms(wall),
            pps: round1(a.max_pps),
            bps: round1(a.max_bps),
            avg_pps: round1(if a.samples > 0 { a.sum_pps / a.samples as f64 } else { 0.0 }),
            tcp_pct: pct(a.proto.tcp),
            udp_pct: pct(a.proto.udp),
            icmp_pct: pct(a.proto.icmp),
            threshold: round1(thr.pps),
            samples: a.samples,
            local: LocalMetrics {
                interface: self.interface(),
                last_pps: self.last_rates.map(|r| r.pps).unwrap_or(0.0),
                last_bits_per_s: self.last_rates.map(|r| r.bits_per_s).unwrap_or(0.0),
                threshold_bits_per_s: thr.bits_per_s,
                baseline_p99_pps: q.baseline_p99_pps,
                incident_active: self.inbound.detector.incident().is_some()
                    || self.outbound.detector.incident().is_some(),
                incidents_total: self.incidents_total,
                capture_dropped_packets: self.insight.as_ref().map(|i| i.dropped_packets()).unwrap_or(0),
            },
        }
    }

    pub(super) fn heartbeat(&self, wall: SystemTime) -> Heartbeat {
        let available_interfaces = self
            .sampler
            .last_table()
            .ifaces
            .iter()
            .map(|i| InterfaceInfo {
                name: i.name.clone(),
                rx_bytes: i.rx_bytes,
                tx_bytes: i.tx_bytes,
                has_traffic: i.rx_packets > 0,
            })
            .collect();
        Heartbeat {
            ts: rfc3339_ms(wall),
            version: crate::event::AGENT_VERSION.into(),
            quality: self.inbound.baseline.quality(wall),
            interface: self.interface(),
            available_interfaces,
            pcap_active: self.insight.as_ref().is_some_and(|i| i.active()),
            retry_queue_size: 0,
        }
    }
}

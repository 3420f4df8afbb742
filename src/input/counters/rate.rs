//! Rates as pure functions of two readings. Counters are untrusted: every difference is a
//! `checked_sub`, and a reset or a zero interval is a gap, never a spike.

use std::time::{Duration, Instant};

use super::kernel::{self, KernelRates, KernelReading};
use super::netdev::IfaceCounters;
use super::snmp::{HostProto, ProtoCounters, TcpUnsolicited};

/// One read of the monitored interface, stamped with the monotonic clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub at: Instant,
    pub iface: IfaceCounters,
    pub proto: Option<HostProto>,
    /// TcpExt, softnet and UDP error counters (§5.7); empty where unreadable.
    pub kernel: KernelReading,
}

/// Receive (and transmit) rates over one interval. BPS means bits per second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Packets received per second (the `packets` column; drops not included).
    pub pps: f64,
    pub bits_per_s: f64,
    /// Packets the NIC or kernel dropped on receive, per second (§5.5).
    pub dropped_pps: f64,
    pub tx_pps: f64,
    pub tx_bits_per_s: f64,
    /// Per-protocol packets received during the interval (host-wide), when readable.
    pub proto: Option<ProtoCounters>,
    /// Per-protocol packets sent during the interval (host-wide), when readable.
    pub proto_tx: Option<ProtoCounters>,
    /// TCP resets sent and bad segments during the interval (host-wide), when readable: TCP that
    /// no connection asked for (§5.8).
    pub tcp_unsolicited: Option<TcpUnsolicited>,
    /// SYN cookies, listen drops, softnet drops, UDP receive errors per second (§5.7).
    pub kernel: KernelRates,
    pub interval: Duration,
}

/// What one direction's detector sees of an interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Offered packets per second: for inbound, received plus dropped, so a saturated NIC
    /// cannot hide a flood.
    pub pps: f64,
    pub bits_per_s: f64,
    /// The part of `pps` the NIC or kernel dropped (0 for outbound).
    pub dropped_pps: f64,
    pub proto: Option<ProtoCounters>,
    /// SYN/s, UDP/s, ICMP/s, fragments/s from packet capture (inbound, capture builds).
    pub classes: Option<crate::input::protocols::ClassRates>,
}

impl Rates {
    /// Packets dropped on receive: the interface's drops, or the kernel's per-CPU backlog drops
    /// (`softnet_stat`, host-wide) when they are more (§5.5, §5.7). The larger, not the sum:
    /// kernels since 5.x also count a backlog drop on the device (`rx_dropped`); measured on
    /// 6.18, a veth flood that overflowed the backlog gave 2,640 softnet drops and 2,635 device
    /// drops (`tests/data/proc-6.18-backlog`). Older kernels count them in softnet only.
    pub fn rx_dropped_pps(&self) -> f64 {
        self.dropped_pps.max(self.kernel.softnet_dropped_pps.unwrap_or(0.0))
    }

    /// The inbound (RX) view: offered load = received + dropped.
    pub fn inbound(&self) -> Sample {
        let dropped = self.rx_dropped_pps();
        Sample {
            pps: self.pps + dropped,
            bits_per_s: self.bits_per_s,
            dropped_pps: dropped,
            proto: self.proto,
            classes: None,
        }
    }

    /// The outbound (TX) view: what was sent beyond what was received. A host under a flood
    /// answers it (SYN-ACK or RST per SYN, ICMP unreachable per datagram), at most about one
    /// packet per packet received; those replies are not this host attacking anyone. A host that
    /// floods others, or reflects small requests into large answers, sends far more than that.
    pub fn outbound(&self) -> Sample {
        Sample {
            pps: (self.tx_pps - self.pps).max(0.0),
            bits_per_s: (self.tx_bits_per_s - self.bits_per_s).max(0.0),
            dropped_pps: 0.0,
            proto: self.proto_tx,
            classes: None,
        }
    }
}

/// Why two readings gave no rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// A counter went backwards: driver reset, interface re-created, wrap.
    CounterWentBack,
    /// The clock did not advance (or went backwards).
    NoTimeElapsed,
}

pub fn rates(prev: &Reading, cur: &Reading) -> Result<Rates, Gap> {
    let interval = cur.at.checked_duration_since(prev.at).filter(|d| !d.is_zero()).ok_or(Gap::NoTimeElapsed)?;
    let d = |a: u64, b: u64| a.checked_sub(b).ok_or(Gap::CounterWentBack);
    let rx_packets = d(cur.iface.rx_packets, prev.iface.rx_packets)?;
    let rx_bytes = d(cur.iface.rx_bytes, prev.iface.rx_bytes)?;
    let rx_dropped = d(cur.iface.rx_dropped, prev.iface.rx_dropped)?;
    let tx_packets = d(cur.iface.tx_packets, prev.iface.tx_packets)?;
    let tx_bytes = d(cur.iface.tx_bytes, prev.iface.tx_bytes)?;
    let secs = interval.as_secs_f64();
    // A protocol counter reset only costs the mix, not the sample.
    let (proto, proto_tx, tcp_unsolicited) = match (&cur.proto, &prev.proto) {
        (Some(c), Some(p)) => (c.rx.delta(&p.rx), c.tx.delta(&p.tx), c.tcp_unsolicited.delta(&p.tcp_unsolicited)),
        _ => (None, None, None),
    };
    Ok(Rates {
        pps: rx_packets as f64 / secs,
        bits_per_s: rx_bytes as f64 * 8.0 / secs,
        dropped_pps: rx_dropped as f64 / secs,
        tx_pps: tx_packets as f64 / secs,
        tx_bits_per_s: tx_bytes as f64 * 8.0 / secs,
        proto,
        proto_tx,
        tcp_unsolicited,
        kernel: kernel::rates(&prev.kernel, &cur.kernel, interval),
        interval,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(at: Instant, rx_packets: u64, rx_bytes: u64) -> Reading {
        Reading {
            at,
            iface: IfaceCounters {
                name: "eth0".into(),
                rx_bytes,
                rx_packets,
                rx_dropped: 0,
                tx_bytes: 0,
                tx_packets: 0,
            },
            proto: None,
            kernel: KernelReading::default(),
        }
    }

    #[test]
    fn rate_uses_the_measured_interval() {
        let t0 = Instant::now();
        let a = reading(t0, 1000, 1_000_000);
        let b = reading(t0 + Duration::from_millis(250), 3500, 1_250_000);
        let r = rates(&a, &b).unwrap();
        assert_eq!(r.pps, 10_000.0);
        assert_eq!(r.bits_per_s, 8_000_000.0);
    }

    #[test]
    fn drops_are_offered_load_inbound() {
        let t0 = Instant::now();
        let a = reading(t0, 1000, 1_000_000);
        let mut b = reading(t0 + Duration::from_millis(500), 2000, 1_500_000);
        b.iface.rx_dropped = 4000;
        let r = rates(&a, &b).unwrap();
        assert_eq!((r.pps, r.dropped_pps), (2000.0, 8000.0));
        let s = r.inbound();
        assert_eq!((s.pps, s.dropped_pps), (10_000.0, 8000.0), "received + dropped");
        assert_eq!(r.outbound().dropped_pps, 0.0);
    }

    #[test]
    fn outbound_counts_what_was_sent_beyond_what_was_received() {
        let r = Rates { pps: 30_000.0, bits_per_s: 1.4e7, tx_pps: 30_500.0, tx_bits_per_s: 1.3e7, ..Rates::default() };
        let s = r.outbound();
        assert_eq!((s.pps, s.bits_per_s), (500.0, 0.0), "replies to a flood are no outbound flood");
        let r = Rates { pps: 100.0, bits_per_s: 1e5, tx_pps: 50_000.0, tx_bits_per_s: 2.4e7, ..Rates::default() };
        assert_eq!(r.outbound().pps, 49_900.0);
    }

    #[test]
    fn counter_reset_is_a_gap_not_a_spike() {
        let t0 = Instant::now();
        let a = reading(t0, u64::MAX - 5, 1_000_000);
        let b = reading(t0 + Duration::from_millis(200), 10, 1_000);
        assert_eq!(rates(&a, &b), Err(Gap::CounterWentBack));
    }

    #[test]
    fn zero_interval_is_a_gap() {
        let t0 = Instant::now();
        assert_eq!(rates(&reading(t0, 1, 1), &reading(t0, 2, 2)), Err(Gap::NoTimeElapsed));
    }

    #[test]
    fn wide_counters_past_2_pow_32_do_not_overflow() {
        let t0 = Instant::now();
        let a = reading(t0, 39_517_462_281, 48_190_433_652_921);
        let b = reading(t0 + Duration::from_secs(1), 39_517_562_281, 48_190_533_652_921);
        let r = rates(&a, &b).unwrap();
        assert_eq!(r.pps, 100_000.0);
        assert_eq!(r.bits_per_s, 800_000_000.0);
    }
}

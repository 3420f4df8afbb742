//! The per-protocol packet classes (§5.6): SYN, UDP, ICMP and fragments. Capture counts packets
//! in these classes ([`crate::input::capture::handle::PacketInsight::class_totals`]), the
//! counters' rates carry their rates, and the detection core learns a window per class
//! (`crate::detect::baseline::protocol`). Pure.

/// The classes, in the order of every `[_; 4]` of them.
pub const CLASSES: [&str; 4] = ["syn", "udp", "icmp", "fragments"];

/// Packets/s per class.
pub type ClassRates = [f64; 4];

/// Cumulative packets per class since capture started (monotonic).
pub type ClassTotals = [u64; 4];

/// Rates from two readings of the totals `secs` apart; None on a reset or no time.
pub fn rates(prev: &ClassTotals, cur: &ClassTotals, secs: f64) -> Option<ClassRates> {
    if secs <= 0.0 {
        return None;
    }
    let mut out = [0.0; 4];
    for i in 0..4 {
        out[i] = cur[i].checked_sub(prev[i])? as f64 / secs;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_refuse_a_reset() {
        assert_eq!(rates(&[0, 0, 0, 0], &[100, 50, 10, 0], 0.5), Some([200.0, 100.0, 20.0, 0.0]));
        assert_eq!(rates(&[5, 0, 0, 0], &[1, 0, 0, 0], 1.0), None);
        assert_eq!(rates(&[0; 4], &[0; 4], 0.0), None);
    }
}

//! The pre-attack ring (§7.5): the last `capacity` packets seen, in memory, so an incident file
//! starts with the traffic before the onset. Buffers are recycled: after warm-up, pushing a
//! packet allocates nothing. No I/O.

use std::collections::VecDeque;

/// One stored packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingPacket {
    pub ts_ns: u64,
    pub wire_len: u32,
    pub data: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Ring {
    capacity: usize,
    packets: VecDeque<RingPacket>,
}

impl Ring {
    pub fn new(capacity: usize) -> Self {
        Ring { capacity, packets: VecDeque::with_capacity(capacity.min(1 << 16)) }
    }

    /// Packets it keeps at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn push(&mut self, ts_ns: u64, wire_len: u32, data: &[u8]) {
        if self.capacity == 0 {
            return;
        }
        let mut slot = if self.packets.len() >= self.capacity {
            self.packets.pop_front().unwrap_or_default()
        } else {
            RingPacket::default()
        };
        slot.ts_ns = ts_ns;
        slot.wire_len = wire_len;
        slot.data.clear();
        slot.data.extend_from_slice(data);
        self.packets.push_back(slot);
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// A copy of the ring, oldest first (the ring keeps running).
    pub fn snapshot(&self) -> Vec<RingPacket> {
        self.packets.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_packets_oldest_first() {
        let mut r = Ring::new(3);
        for i in 0..5u8 {
            r.push(u64::from(i), 60, &[i; 4]);
        }
        let s = r.snapshot();
        assert_eq!(s.iter().map(|p| p.ts_ns).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(s[2].data, vec![4; 4]);
        let mut off = Ring::new(0);
        off.push(1, 1, &[1]);
        assert!(off.is_empty());
    }
}

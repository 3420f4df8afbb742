//! The pre-attack ring (§7.5): the last `capacity` packets seen, at most [`MAX_BYTES`] of packet
//! buffers (§13: a flood of 64 KiB GRO frames cannot make it hundreds of MiB), in memory, so an
//! incident file starts with the traffic before the onset. Buffers are recycled (after warm-up,
//! pushing a packet of a usual size allocates nothing), but a buffer much larger than the packet
//! it would hold is let go, so memory follows the bytes kept. At an incident's open the ring is
//! handed over whole ([`Ring::take`]), never copied. No I/O.

use std::collections::VecDeque;

/// One stored packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingPacket {
    pub ts_ns: u64,
    pub wire_len: u32,
    pub data: Vec<u8>,
}

/// Bytes of packet buffers the ring holds at most (their allocated size, not only their length).
pub const MAX_BYTES: usize = 16 << 20;

#[derive(Debug, Default)]
pub struct Ring {
    capacity: usize,
    max_bytes: usize,
    /// Allocated bytes of the buffers held.
    bytes: usize,
    packets: VecDeque<RingPacket>,
}

impl Ring {
    pub fn new(capacity: usize) -> Self {
        Self::with_max_bytes(capacity, MAX_BYTES)
    }

    pub fn with_max_bytes(capacity: usize, max_bytes: usize) -> Self {
        Ring { capacity, max_bytes, bytes: 0, packets: VecDeque::with_capacity(capacity.min(1 << 12)) }
    }

    /// Allocated bytes of the packet buffers held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Packets it keeps at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn push(&mut self, ts_ns: u64, wire_len: u32, data: &[u8]) {
        if self.capacity == 0 || data.len() > self.max_bytes {
            return;
        }
        // Make room by count and by bytes; keep the last buffer let go for reuse.
        let mut spare: Option<RingPacket> = None;
        while !self.packets.is_empty()
            && (self.packets.len() >= self.capacity || self.bytes + data.len().max(64) > self.max_bytes)
        {
            if let Some(p) = self.packets.pop_front() {
                self.bytes -= p.data.capacity();
                spare = Some(p);
            }
        }
        let mut slot = spare.unwrap_or_default();
        // A buffer far larger than this packet would keep memory the ring does not account for
        // as used: let it go.
        if slot.data.capacity() > 2 * data.len().max(2048) {
            slot.data = Vec::new();
        }
        slot.ts_ns = ts_ns;
        slot.wire_len = wire_len;
        slot.data.clear();
        slot.data.extend_from_slice(data);
        self.bytes += slot.data.capacity();
        self.packets.push_back(slot);
        // A reused buffer may be larger than the packet: stay under the cap all the same.
        while self.bytes > self.max_bytes && self.packets.len() > 1 {
            if let Some(p) = self.packets.pop_front() {
                self.bytes -= p.data.capacity();
            }
        }
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

    /// The packets held, oldest first, leaving the ring empty: moved, not copied.
    pub fn take(&mut self) -> Vec<RingPacket> {
        self.bytes = 0;
        Vec::from(std::mem::take(&mut self.packets))
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

    #[test]
    fn bytes_are_capped_and_big_buffers_are_not_kept_for_small_packets() {
        let mut r = Ring::with_max_bytes(1000, 1 << 20);
        for i in 0..100u64 {
            r.push(i, 65_535, &[0u8; 65_535]);
        }
        assert!(r.bytes() <= 1 << 20, "{}", r.bytes());
        assert_eq!(r.len(), 16, "1 MiB holds 16 frames of 64 KiB");
        assert_eq!(r.snapshot().last().unwrap().ts_ns, 99);
        for i in 100..1100u64 {
            r.push(i, 60, &[1u8; 60]);
        }
        assert_eq!(r.len(), 1000, "the count cap again once packets are small");
        assert!(r.bytes() < 1000 * 4096, "no 64 KiB buffer kept for a 60-byte packet: {}", r.bytes());
        let taken = r.take();
        assert_eq!((taken.len(), r.len(), r.bytes()), (1000, 0, 0));
        assert_eq!(taken[0].ts_ns, 100);
    }
}

//! Bounded-memory sketches: [`SpaceSaving`] heavy hitters and a [`HyperLogLog`] distinct
//! counter, for the packet tallies of capture builds (§7.2) and the access-log aggregation
//! (§11). Their size is fixed at construction whatever the traffic, so a flood from tens of
//! millions of spoofed sources, or of distinct request paths, costs no more memory than one from
//! a single host. Pure data structures; no I/O, no clock.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// A fast non-cryptographic hasher for small keys (addresses, ports). Keys come from the
/// attacker, but a sketch's table is tiny and bounded, so collisions cost little.
#[derive(Default, Clone, Copy)]
pub struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        mix64(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = mix64(self.0 ^ u64::from_le_bytes(b)).wrapping_add(chunk.len() as u64);
        }
    }
    fn write_u16(&mut self, v: u16) {
        self.0 = self.0.rotate_left(5) ^ u64::from(v);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = mix64(self.0 ^ v);
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = mix64(self.0 ^ (v as u64) ^ mix64((v >> 64) as u64));
    }
}

pub type MixBuild = BuildHasherDefault<MixHasher>;

/// The splitmix64 finaliser: a full-avalanche 64-bit mix.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Space-Saving top-k (Metwally et al.): `capacity` counters; every key whose true count exceeds
/// N/capacity is guaranteed present, and each count over-estimates by at most its `error`.
/// A min-heap on counts makes a miss O(log k).
#[derive(Debug, Clone)]
pub struct SpaceSaving<K: Hash + Eq + Clone> {
    capacity: usize,
    /// Min-heap by count.
    heap: Vec<Slot<K>>,
    pos: HashMap<K, usize, MixBuild>,
    total: u64,
}

#[derive(Debug, Clone)]
struct Slot<K> {
    key: K,
    count: u64,
    error: u64,
}

impl<K: Hash + Eq + Clone> SpaceSaving<K> {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        SpaceSaving {
            capacity,
            heap: Vec::with_capacity(capacity),
            pos: HashMap::with_capacity_and_hasher(capacity * 2, MixBuild::default()),
            total: 0,
        }
    }

    pub fn add(&mut self, key: K) {
        self.add_n(key, 1);
    }

    /// Count one occurrence of a borrowed key; `make` builds the owned key only when the key is
    /// not tracked yet (a request path seen again costs no allocation).
    pub fn add_with<Q>(&mut self, key: &Q, make: impl FnOnce(&Q) -> K)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(&i) = self.pos.get(key) {
            self.total += 1;
            self.heap[i].count += 1;
            self.sift_down(i);
            return;
        }
        self.add_n(make(key), 1);
    }

    pub fn add_n(&mut self, key: K, n: u64) {
        self.total += n;
        if let Some(&i) = self.pos.get(&key) {
            self.heap[i].count += n;
            self.sift_down(i);
            return;
        }
        if self.heap.len() < self.capacity {
            self.heap.push(Slot { key: key.clone(), count: n, error: 0 });
            let i = self.heap.len() - 1;
            self.pos.insert(key, i);
            self.sift_up(i);
            return;
        }
        // Replace the minimum: the newcomer inherits its count as possible over-estimate.
        let min = self.heap[0].count;
        let old = std::mem::replace(&mut self.heap[0], Slot { key: key.clone(), count: min + n, error: min });
        self.pos.remove(&old.key);
        self.pos.insert(key, 0);
        self.sift_down(0);
    }

    /// Everything counted, tracked or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The `n` largest (key, count, error), largest first, ties broken by smaller error.
    pub fn top(&self, n: usize) -> Vec<(K, u64, u64)> {
        let mut v: Vec<(K, u64, u64)> = self.heap.iter().map(|s| (s.key.clone(), s.count, s.error)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
        v.truncate(n);
        v
    }

    /// The `n` largest by guaranteed count (count − error, what the key surely had), dropping
    /// keys with none: under a flood of random keys this reports nothing rather than noise.
    pub fn top_guaranteed(&self, n: usize) -> Vec<(K, u64)> {
        let mut v: Vec<(K, u64)> =
            self.heap.iter().map(|s| (s.key.clone(), s.count - s.error)).filter(|(_, c)| *c > 1).collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.1));
        v.truncate(n);
        v
    }

    pub fn clear(&mut self) {
        self.heap.clear();
        self.pos.clear();
        self.total = 0;
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let p = (i - 1) / 2;
            if self.heap[p].count <= self.heap[i].count {
                break;
            }
            self.swap(i, p);
            i = p;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < n && self.heap[l].count < self.heap[m].count {
                m = l;
            }
            if r < n && self.heap[r].count < self.heap[m].count {
                m = r;
            }
            if m == i {
                return;
            }
            self.swap(i, m);
            i = m;
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        if let Some(p) = self.pos.get_mut(&self.heap[a].key) {
            *p = a;
        }
        if let Some(p) = self.pos.get_mut(&self.heap[b].key) {
            *p = b;
        }
    }
}

/// HyperLogLog with 2^p one-byte registers (by default p = 16: 64 KiB, ~0.4 % standard error;
/// [`HyperLogLog::with_precision`] for less), linear counting for small cardinalities.
#[derive(Clone)]
pub struct HyperLogLog {
    regs: Box<[u8]>,
    p: u32,
}

impl std::fmt::Debug for HyperLogLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HyperLogLog(~{})", self.estimate())
    }
}

impl Default for HyperLogLog {
    fn default() -> Self {
        HyperLogLog::with_precision(16)
    }
}

impl HyperLogLog {
    /// 2^`p` registers, `p` clamped to 4..=18 (standard error about 1.04 / 2^(p/2)).
    pub fn with_precision(p: u32) -> Self {
        let p = p.clamp(4, 18);
        HyperLogLog { regs: vec![0u8; 1 << p].into_boxed_slice(), p }
    }

    /// Add an item by its 64-bit hash (use [`mix64`] or a good hasher).
    #[inline]
    pub fn add_hash(&mut self, h: u64) {
        let p = self.p;
        let idx = (h >> (64 - p)) as usize;
        let rest = (h << p) | (1 << (p - 1));
        let rank = rest.leading_zeros() as u8 + 1;
        let r = &mut self.regs[idx];
        if rank > *r {
            *r = rank;
        }
    }

    /// Add a 128-bit key (an IPv6 or v4-mapped address).
    #[inline]
    pub fn add_u128(&mut self, v: u128) {
        self.add_hash(mix64((v as u64) ^ mix64((v >> 64) as u64 ^ 0x5bd1_e995)));
    }

    pub fn estimate(&self) -> u64 {
        let m = self.regs.len() as f64;
        let mut sum = 0.0;
        let mut zeros = 0u32;
        for &r in self.regs.iter() {
            sum += 1.0 / (1u64 << r) as f64;
            if r == 0 {
                zeros += 1;
            }
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        if raw <= 2.5 * m && zeros > 0 {
            (m * (m / f64::from(zeros)).ln()).round() as u64
        } else {
            raw.round() as u64
        }
    }

    pub fn clear(&mut self) {
        self.regs.iter_mut().for_each(|r| *r = 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_saving_keeps_the_heavy_hitters_among_noise() {
        let mut s = SpaceSaving::new(64);
        for i in 0..100_000u32 {
            s.add(u128::from(i)); // one packet from each of 100k sources
            if i % 10 == 0 {
                s.add(7_000_000);
            }
            if i % 20 == 0 {
                s.add(8_000_000);
            }
        }
        let top = s.top(2);
        assert_eq!(top[0].0, 7_000_000);
        assert_eq!(top[1].0, 8_000_000);
        assert!(top[0].1 >= 10_000 && top[0].1 - top[0].2 <= 10_000, "{top:?}");
        let sure = s.top_guaranteed(3);
        assert_eq!(sure.len(), 2, "noise keys have no guaranteed count: {sure:?}");
        assert_eq!(s.total(), 100_000 + 10_000 + 5_000);
        assert!(s.pos.len() <= 64 && s.heap.len() <= 64);
    }

    #[test]
    fn space_saving_is_exact_under_capacity_and_clears() {
        let mut s = SpaceSaving::new(8);
        for (k, n) in [(1u16, 5u64), (2, 3), (3, 9)] {
            s.add_n(k, n);
        }
        assert_eq!(s.top(3), vec![(3, 9, 0), (1, 5, 0), (2, 3, 0)]);
        s.clear();
        assert!(s.top(3).is_empty() && s.total() == 0);
    }

    /// Borrowed keys count as owned ones, and the owned key is built only for a new key.
    #[test]
    fn add_with_builds_a_key_only_when_it_is_new() {
        let mut s: SpaceSaving<String> = SpaceSaving::new(2);
        let mut built = 0;
        for k in ["a", "a", "b", "a", "c"] {
            s.add_with(k, |k: &str| {
                built += 1;
                k.to_string()
            });
        }
        assert_eq!(built, 3, "a, b, and c replacing b");
        assert_eq!(s.total(), 5);
        assert_eq!(s.top(2), vec![("a".to_string(), 3, 0), ("c".to_string(), 2, 1)]);
    }

    #[test]
    fn hyperloglog_is_within_its_error_at_each_precision() {
        for (p, tolerance) in [(16, 0.02), (12, 0.05)] {
            for n in [1_000u64, 50_000, 1_000_000] {
                let mut h = HyperLogLog::with_precision(p);
                for i in 0..n {
                    h.add_u128(u128::from(i) | 0xffff_0000_0000);
                    h.add_hash(mix64(i ^ 0xabcd)); // a second key set of the same size
                }
                let e = h.estimate() as f64;
                assert!((e - 2.0 * n as f64).abs() / (2.0 * n as f64) <= tolerance, "p={p} n={n} estimate={e}");
            }
            assert_eq!(HyperLogLog::with_precision(p).estimate(), 0);
        }
        assert_eq!(HyperLogLog::default().regs.len(), 1 << 16);
    }
}

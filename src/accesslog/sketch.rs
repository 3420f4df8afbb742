//! Bounded-memory counting for the access-log aggregation: a Space-Saving heavy-hitter sketch
//! (Metwally et al.) and a HyperLogLog distinct counter. Memory is fixed at construction, whatever
//! the number of distinct keys seen. Pure data structures; no I/O, no clocks.

use std::collections::HashMap;
use std::hash::Hash;

/// Space-Saving: `capacity` monitored keys in a binary min-heap by count, indexed by a hash map.
/// Any key with a true count above `total / capacity` is monitored; a key's count over-estimates
/// by at most its `error`.
#[derive(Debug, Clone)]
pub struct SpaceSaving<K> {
    capacity: usize,
    heap: Vec<Slot<K>>,
    index: HashMap<K, usize>,
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
            index: HashMap::with_capacity(capacity * 2),
            total: 0,
        }
    }

    /// Count one occurrence of `key`; `make` builds the owned key only when it is not monitored.
    pub fn add_with<Q>(&mut self, key: &Q, make: impl FnOnce(&Q) -> K)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.total += 1;
        if let Some(&i) = self.index.get(key) {
            self.heap[i].count += 1;
            self.sift_down(i);
            return;
        }
        let owned = make(key);
        if self.heap.len() < self.capacity {
            self.index.insert(owned.clone(), self.heap.len());
            self.heap.push(Slot { key: owned, count: 1, error: 0 });
            self.sift_up(self.heap.len() - 1);
            return;
        }
        // Replace the minimum: the newcomer inherits its count as error.
        let min = self.heap[0].count;
        let old = std::mem::replace(&mut self.heap[0], Slot { key: owned.clone(), count: min + 1, error: min });
        self.index.remove::<K>(&old.key);
        self.index.insert(owned, 0);
        self.sift_down(0);
    }

    pub fn add(&mut self, key: K) {
        self.add_with(&key.clone(), |_| key);
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// The `n` largest (key, count, error), largest first.
    pub fn top(&self, n: usize) -> Vec<(K, u64, u64)> {
        let mut all: Vec<&Slot<K>> = self.heap.iter().collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.count));
        all.into_iter().take(n).map(|s| (s.key.clone(), s.count, s.error)).collect()
    }

    /// Forget everything, keeping the allocations.
    pub fn clear(&mut self) {
        self.heap.clear();
        self.index.clear();
        self.total = 0;
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        for i in [a, b] {
            if let Some(slot) = self.index.get_mut::<K>(&self.heap[i].key) {
                *slot = i;
            }
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[parent].count <= self.heap[i].count {
                break;
            }
            self.swap(parent, i);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut smallest = i;
            if l < self.heap.len() && self.heap[l].count < self.heap[smallest].count {
                smallest = l;
            }
            if r < self.heap.len() && self.heap[r].count < self.heap[smallest].count {
                smallest = r;
            }
            if smallest == i {
                return;
            }
            self.swap(i, smallest);
            i = smallest;
        }
    }
}

/// HyperLogLog with 2^12 one-byte registers (4 KiB, about 1.6 % standard error).
#[derive(Debug, Clone)]
pub struct Hll {
    registers: Box<[u8; 1 << Hll::P]>,
}

impl Default for Hll {
    fn default() -> Self {
        Hll { registers: Box::new([0; 1 << Hll::P]) }
    }
}

impl Hll {
    const P: u32 = 12;

    /// Add an item by its 64-bit hash (callers hash with [`mix64`]).
    pub fn add_hash(&mut self, h: u64) {
        let idx = (h >> (64 - Self::P)) as usize;
        let rank = ((h << Self::P) | (1 << (Self::P - 1))).leading_zeros() as u8 + 1;
        let r = &mut self.registers[idx];
        *r = (*r).max(rank);
    }

    pub fn estimate(&self) -> u64 {
        let m = (1u64 << Self::P) as f64;
        let sum: f64 = self.registers.iter().map(|&r| 2f64.powi(-i32::from(r))).sum();
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        let raw = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
        let est = if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw };
        est.round() as u64
    }

    pub fn clear(&mut self) {
        self.registers.fill(0);
    }
}

/// A strong 64-bit mix (splitmix64's finaliser) for HyperLogLog inputs.
pub fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_saving_finds_heavy_hitters_among_many_keys() {
        let mut s = SpaceSaving::new(16);
        for i in 0..100_000u32 {
            s.add(i); // 100k distinct one-off keys
            if i % 4 == 0 {
                s.add(u32::MAX); // 25k of one key
            }
            if i % 10 == 0 {
                s.add(u32::MAX - 1); // 10k of another
            }
        }
        let top = s.top(2);
        assert_eq!(top[0].0, u32::MAX);
        assert_eq!(top[1].0, u32::MAX - 1);
        // Over-estimates by at most its error, never under.
        assert!(top[0].1 >= 25_000 && top[0].1 - top[0].2 <= 25_000, "{top:?}");
        assert_eq!(s.total(), 135_000);
        assert!(s.index.len() <= 16 && s.heap.len() <= 16);
    }

    #[test]
    fn space_saving_is_exact_under_capacity_and_clears() {
        let mut s = SpaceSaving::new(8);
        for (k, n) in [("a", 5), ("b", 3), ("c", 1)] {
            for _ in 0..n {
                s.add_with(k, |k: &str| k.to_string());
            }
        }
        assert_eq!(s.top(3), vec![("a".to_string(), 5, 0), ("b".to_string(), 3, 0), ("c".to_string(), 1, 0)]);
        s.clear();
        assert!(s.top(3).is_empty() && s.total() == 0);
    }

    #[test]
    fn hll_estimates_within_a_few_percent() {
        for n in [0u64, 1, 20, 1000, 200_000] {
            let mut h = Hll::default();
            for i in 0..n {
                h.add_hash(mix64(i));
                h.add_hash(mix64(i)); // duplicates do not count
            }
            let e = h.estimate() as f64;
            let err = if n == 0 { e } else { (e - n as f64).abs() / n as f64 };
            assert!(err < 0.05, "n {n}: estimate {e}");
        }
    }
}

//! A bounded table of tracked scopes (addresses or prefixes) with least-recently-seen eviction:
//! a slab of entries, a hash map from key to slot, and an intrusive list in order of last
//! sight. Inserting into a full table evicts the least recently seen entry that has no open
//! incident (an entry under attack is seen every second, so it is never the one to go).
//!
//! Per-record cost matters here (§12: ≥ 1 M records/s on one core): keys are hashed with a
//! multiply-rotate hash (not SipHash: the keys are addresses, and a flood of chosen keys only
//! lengthens probe chains of a table whose size is bounded anyway), and the list links live in
//! their own dense array so that moving an entry to the front does not pull two neighbouring
//! ~1 KiB entries into the cache.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::watch::Watch;
use super::Rates;

const NONE: u32 = u32::MAX;

/// One tracked address or prefix, both directions (0 = inbound, 1 = outbound).
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub key: u128,
    live: bool,
    /// Host group index + 1 (0 = none).
    pub group: u16,
    /// This window's rates so far.
    pub acc: [Rates; 2],
    /// Evidence is collected once this window's pps or bit rate passes these (half the
    /// thresholds in force).
    pub trip: [[f32; 2]; 2],
    /// Evidence slot per direction ([`NO_EVIDENCE`] = none).
    pub ev: [u32; 2],
    pub watch: [Watch; 2],
}

pub const NO_EVIDENCE: u32 = u32::MAX;

impl Entry {
    pub fn new(key: u128, group: u16) -> Self {
        Entry {
            key,
            live: true,
            group,
            acc: [[0.0; super::METRICS]; 2],
            trip: [[0.0; 2]; 2],
            ev: [NO_EVIDENCE; 2],
            watch: Default::default(),
        }
    }

    pub fn live(&self) -> bool {
        self.live
    }

    pub fn open(&self) -> bool {
        self.watch[0].open || self.watch[1].open
    }
}

/// Multiply-rotate hash of the u128 keys (FxHash's mixing step, one word at a time).
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(K).rotate_left(26);
    }

    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        // hashbrown takes the top 7 bits as the tag and the low bits as the bucket: fold the
        // well-mixed high half down as well.
        self.0 ^ (self.0 >> 32)
    }
}

#[derive(Debug)]
pub struct Table {
    pub entries: Vec<Entry>,
    /// [prev, next] per slot, in order of last sight.
    links: Vec<[u32; 2]>,
    map: HashMap<u128, u32, BuildHasherDefault<KeyHasher>>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    cap: usize,
    pub evictions: u64,
}

impl Table {
    pub fn new(cap: usize) -> Self {
        Table {
            entries: Vec::new(),
            links: Vec::new(),
            map: HashMap::default(),
            free: Vec::new(),
            head: NONE,
            tail: NONE,
            cap: cap.max(1),
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, key: u128) -> Option<u32> {
        if self.map.is_empty() {
            return None;
        }
        self.map.get(&key).copied()
    }

    /// Mark `i` seen now (front of the list).
    pub fn touch(&mut self, i: u32) {
        if self.head != i {
            self.unlink(i);
            self.push_front(i);
        }
    }

    /// Insert a new entry; a full table first evicts. Returns the slot and the evicted entry.
    pub fn insert(&mut self, e: Entry) -> (u32, Option<Entry>) {
        let evicted = if self.map.len() >= self.cap { self.evict() } else { None };
        let key = e.key;
        let i = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = e;
                i
            }
            None => {
                self.entries.push(e);
                self.links.push([NONE, NONE]);
                (self.entries.len() - 1) as u32
            }
        };
        self.map.insert(key, i);
        self.push_front(i);
        (i, evicted)
    }

    /// The least recently seen entry without an open incident (or, when the last few all have
    /// one, the least recently seen of all) leaves the table.
    fn evict(&mut self) -> Option<Entry> {
        let mut victim = self.tail;
        for _ in 0..8 {
            if victim == NONE || !self.entries[victim as usize].open() {
                break;
            }
            victim = self.links[victim as usize][0];
        }
        if victim == NONE {
            victim = self.tail;
        }
        if victim == NONE {
            return None;
        }
        self.unlink(victim);
        let e = std::mem::take(&mut self.entries[victim as usize]);
        self.map.remove(&e.key);
        self.free.push(victim);
        self.evictions += 1;
        Some(e)
    }

    fn unlink(&mut self, i: u32) {
        let [p, n] = self.links[i as usize];
        if p != NONE {
            self.links[p as usize][1] = n;
        } else if self.head == i {
            self.head = n;
        }
        if n != NONE {
            self.links[n as usize][0] = p;
        } else if self.tail == i {
            self.tail = p;
        }
        self.links[i as usize] = [NONE, NONE];
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        self.links[i as usize] = [NONE, old];
        if old != NONE {
            self.links[old as usize][0] = i;
        }
        self.head = i;
        if self.tail == NONE {
            self.tail = i;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_seen_goes_first_and_open_entries_stay() {
        let mut t = Table::new(3);
        for k in 1..=3u128 {
            t.insert(Entry::new(k, 0));
        }
        t.touch(t.get(1).unwrap());
        let (_, gone) = t.insert(Entry::new(4, 0));
        assert_eq!(gone.map(|e| e.key), Some(2));
        // 3 is now the oldest but under attack: 1 goes instead.
        let i3 = t.get(3).unwrap();
        t.entries[i3 as usize].watch[0].open = true;
        let (_, gone) = t.insert(Entry::new(5, 0));
        assert_eq!(gone.map(|e| e.key), Some(1));
        assert_eq!(t.len(), 3);
        assert_eq!(t.evictions, 2);
        assert!(t.get(3).is_some() && t.get(4).is_some() && t.get(5).is_some());
    }
}

//! A bounded table of tracked scopes (addresses or prefixes) with least-recently-seen eviction:
//! a slab of entries, a hash map from key to slot, and an intrusive list in order of last
//! sight. Inserting into a full table evicts the least recently seen entry that has no open
//! incident (an entry under attack is seen every second, so it is never the one to go).

use std::collections::HashMap;

use super::watch::Watch;
use super::Rates;

const NONE: u32 = u32::MAX;

/// One tracked address or prefix, both directions (0 = inbound, 1 = outbound).
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub key: u128,
    prev: u32,
    next: u32,
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
            prev: NONE,
            next: NONE,
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

#[derive(Debug)]
pub struct Table {
    pub entries: Vec<Entry>,
    map: HashMap<u128, u32>,
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
            map: HashMap::new(),
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
            victim = self.entries[victim as usize].prev;
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
        let (p, n) = {
            let e = &self.entries[i as usize];
            (e.prev, e.next)
        };
        if p != NONE {
            self.entries[p as usize].next = n;
        } else if self.head == i {
            self.head = n;
        }
        if n != NONE {
            self.entries[n as usize].prev = p;
        } else if self.tail == i {
            self.tail = p;
        }
        let e = &mut self.entries[i as usize];
        e.prev = NONE;
        e.next = NONE;
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        {
            let e = &mut self.entries[i as usize];
            e.prev = NONE;
            e.next = old;
        }
        if old != NONE {
            self.entries[old as usize].prev = i;
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

//! Sampled 4-gram skip filter for large IOC pattern sets (§7.4).
//!
//! The aho-corasick crate's SIMD prefilters exist only for small pattern sets; with thousands of
//! patterns every payload byte would go through the automaton. This filter lets a large set skip
//! most bytes as well. Every pattern it covers is at least `window` bytes long, so an occurrence
//! spans `stride = window - 3` consecutive 4-byte grams, and one of them starts at a multiple of
//! `stride`. Probing only those positions against a bitmap of every pattern's first
//! `stride` grams finds every occurrence; a probe that misses rules out every start in the
//! `stride` positions ending at it. The cost per payload is one bit test per `stride` bytes,
//! plus a short automaton search where a probe hits, whatever the number of patterns: the bitmap
//! grows with the set so its density (and the rate of false hits) stays the same.
//!
//! Pure: owns the bitmap; no I/O.

/// Gram length in bytes.
pub const GRAM: usize = 4;
/// Pattern prefix length checked at each open start; the shortest window.
pub const HEAD: usize = 8;
/// Hit positions returned by one [`GramFilter::hits`] call.
pub const HITS: usize = 16;
/// Windows longer than this add grams (bitmap density) without saving much more.
pub const MAX_WINDOW: usize = 32;
/// Bitmap size bounds, in bits. Above 2^22 bits (512 KiB) a large set gets fewer bits per gram
/// rather than a bitmap that the packets streaming through the cache keep evicting.
const MIN_BITS_LOG2: u32 = 12;
const MAX_BITS_LOG2: u32 = 22;
/// Bitmap bits per inserted key; with two bits set per key about 1.5 % of lookups are false
/// hits.
const BITS_PER_GRAM: usize = 16;

#[derive(Debug, Clone)]
pub struct GramFilter {
    /// Every pattern's first `stride` grams.
    grams: Bloom,
    /// Every pattern's first [`HEAD`] bytes: checks the starts a gram hit leaves open before
    /// the automaton runs.
    heads: Bloom,
    window: usize,
}

impl GramFilter {
    /// A filter for patterns all at least `window` (≥ [`HEAD`]) bytes long; `window` is clamped
    /// to [`MAX_WINDOW`]. None when `window` is too short or a pattern is shorter than it.
    pub fn new(patterns: &[&[u8]], window: usize) -> Option<Self> {
        let window = window.min(MAX_WINDOW);
        if window < HEAD || patterns.iter().any(|p| p.len() < window) {
            return None;
        }
        let stride = window - GRAM + 1;
        let mut f = GramFilter {
            grams: Bloom::with_keys(patterns.len().saturating_mul(stride)),
            heads: Bloom::with_keys(patterns.len()),
            window,
        };
        for p in patterns {
            for j in 0..stride {
                f.grams.insert(gram_hash(gram_at(p, j)));
            }
            f.heads.insert(head_hash(head_at(p, 0)));
        }
        Some(f)
    }

    /// The shortest pattern length the filter relies on.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Distance between probes; also how many starts one probe rules in or out.
    #[inline]
    pub fn stride(&self) -> usize {
        self.window - GRAM + 1
    }

    pub fn memory_bytes(&self) -> usize {
        (self.grams.words.len() + self.heads.words.len()) * 8
    }

    /// Fraction of gram bitmap bits set.
    pub fn density(&self) -> f64 {
        self.grams.density()
    }

    /// Whether a pattern may have its probed gram at `pos` (needs `pos + GRAM <= hay.len()`).
    /// False means no pattern starts in `pos + 1 - stride ..= pos`.
    #[inline]
    pub fn may_hit(&self, hay: &[u8], pos: usize) -> bool {
        self.grams.contains(gram_hash(gram_at(hay, pos)))
    }

    /// Whether a pattern may start at `start` (needs `start + HEAD <= hay.len()`).
    #[inline]
    pub fn may_start(&self, hay: &[u8], start: usize) -> bool {
        self.heads.contains(head_hash(head_at(hay, start)))
    }

    /// The probe positions from byte `from` on where [`GramFilter::may_hit`] holds, in order,
    /// written to `out`; returns how many were written and the next position to probe. Stops
    /// when `out` is full. No branch depends on a bitmap word, so the loads (the cache misses of
    /// a large set) overlap.
    #[inline]
    pub fn hits(&self, hay: &[u8], from: usize, out: &mut [u32; HITS]) -> (usize, usize) {
        let stride = self.stride();
        let Some(end) = hay.len().checked_sub(GRAM) else { return (0, from) };
        let (mut pos, mut n) = (from, 0);
        while pos <= end && n < HITS {
            out[n] = pos as u32;
            n += usize::from(self.grams.contains(gram_hash(gram_at(hay, pos))));
            pos += stride;
        }
        (n, pos)
    }
}

/// A blocked Bloom filter: each key sets two bits of one 64-bit word, so a lookup is one load.
#[derive(Debug, Clone)]
struct Bloom {
    words: Box<[u64]>,
    /// Number of words minus one (a power of two minus one).
    mask: usize,
}

impl Bloom {
    fn with_keys(keys: usize) -> Self {
        let log2 = keys.saturating_mul(BITS_PER_GRAM).next_power_of_two().trailing_zeros();
        let words = 1usize << (log2.clamp(MIN_BITS_LOG2, MAX_BITS_LOG2) - 6);
        Bloom { words: vec![0u64; words].into_boxed_slice(), mask: words - 1 }
    }

    /// The word and the two bits of a hashed key: bits 46.. pick the word, bits 34..46 the
    /// bits (constant shifts and a table keep it to a few instructions).
    #[inline]
    fn slot(&self, h: u64) -> (usize, u64) {
        ((h >> 46) as usize & self.mask, BIT[(h >> 34) as usize & 63] | BIT[(h >> 40) as usize & 63])
    }

    fn insert(&mut self, h: u64) {
        let (w, bits) = self.slot(h);
        self.words[w] |= bits;
    }

    #[inline]
    fn contains(&self, h: u64) -> bool {
        let (w, bits) = self.slot(h);
        // SAFETY: `slot` masks the word index with `mask`, and `words.len() == mask + 1`
        // (`with_keys`); the probe loop is hot enough for the bounds check to show.
        let word = unsafe { *self.words.get_unchecked(w) };
        word & bits == bits
    }

    fn density(&self) -> f64 {
        let set: u32 = self.words.iter().map(|w| w.count_ones()).sum();
        set as f64 / (self.words.len() * 64) as f64
    }
}

#[inline]
fn gram_hash(g: u32) -> u64 {
    u64::from(g).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[inline]
fn head_hash(h: u64) -> u64 {
    (h ^ (h >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

const BIT: [u64; 64] = {
    let mut t = [0u64; 64];
    let mut i = 0;
    while i < 64 {
        t[i] = 1 << i;
        i += 1;
    }
    t
};

#[inline]
fn head_at(b: &[u8], pos: usize) -> u64 {
    let h: [u8; HEAD] = b[pos..pos + HEAD].try_into().unwrap_or_default();
    u64::from_le_bytes(h)
}

#[inline]
fn gram_at(b: &[u8], pos: usize) -> u32 {
    let g: [u8; GRAM] = b[pos..pos + GRAM].try_into().unwrap_or_default();
    u32::from_le_bytes(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_occurrence_is_hit_by_an_aligned_probe() {
        let pats: [&[u8]; 3] = [b"abcdefgh", b"0123456789", b"\x00\x01\x02\x03\x04\x05\x06\x07\xff"];
        let f = GramFilter::new(&pats, 8).unwrap();
        assert_eq!(f.stride(), 5);
        for p in pats {
            for s in 0..40 {
                let mut hay = vec![b'.'; 60];
                hay[s..s + p.len()].copy_from_slice(p);
                let hit = (0..)
                    .map(|k| k * f.stride())
                    .take_while(|&q| q + GRAM <= hay.len())
                    .any(|q| q <= s + f.window() - GRAM && q >= s && f.may_hit(&hay, q));
                assert!(hit, "{p:?} at {s}");
            }
        }
    }

    #[test]
    fn unrelated_text_mostly_misses() {
        let pats: Vec<Vec<u8>> = (0..1000u32).map(|i| format!("PATTERN-{i:06}").into_bytes()).collect();
        let refs: Vec<&[u8]> = pats.iter().map(|p| p.as_slice()).collect();
        let f = GramFilter::new(&refs, 14).unwrap();
        assert!(f.density() < 0.1, "density {}", f.density());
        let hay = b"the quick brown fox jumps over the lazy dog, again and again and again".repeat(4);
        let hits = (0..hay.len() - GRAM).filter(|&q| f.may_hit(&hay, q)).count();
        assert!(hits * 5 < hay.len(), "{hits} false hits in {} bytes", hay.len());
    }

    #[test]
    fn hit_masks_agree_with_single_probes() {
        let pats: Vec<Vec<u8>> = (0..300u32).map(|i| format!("{i:03}-pattern").into_bytes()).collect();
        let refs: Vec<&[u8]> = pats.iter().map(|p| p.as_slice()).collect();
        let f = GramFilter::new(&refs, 11).unwrap();
        let hay: Vec<u8> = (0..3000u32).flat_map(|i| format!("{i}-pat").into_bytes()).collect();
        let want: Vec<usize> = (0..)
            .map(|k| k * f.stride())
            .take_while(|p| p + GRAM <= hay.len())
            .filter(|&p| f.may_hit(&hay, p))
            .collect();
        assert!(want.len() > HITS, "the text holds pattern grams: {}", want.len());
        let (mut got, mut from, mut out) = (Vec::new(), 0, [0u32; HITS]);
        loop {
            let (n, next) = f.hits(&hay, from, &mut out);
            got.extend(out[..n].iter().map(|&p| p as usize));
            if n < HITS {
                break;
            }
            from = next;
        }
        assert_eq!(got, want);
    }

    #[test]
    fn too_short_patterns_get_no_filter() {
        assert!(GramFilter::new(&[b"abc"], 3).is_none());
        assert!(GramFilter::new(&[b"abcdefg"], 7).is_none());
        assert!(GramFilter::new(&[b"abcdefgh", b"abcd"], 8).is_none());
        assert_eq!(GramFilter::new(&[b"a".repeat(100).as_slice()], 100).unwrap().window(), MAX_WINDOW);
    }
}

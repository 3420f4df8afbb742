//! Sampled 4-gram skip filter for large IOC pattern sets (§7.4).
//!
//! The aho-corasick crate's SIMD prefilters exist only for small pattern sets; with thousands of
//! patterns every payload byte would go through the automaton. This filter lets a large set skip
//! most bytes as well. Every pattern it covers is at least `window` bytes long, so an occurrence
//! spans `stride = window - 3` consecutive 4-byte grams, and one of them starts at a multiple of
//! `stride`. Probing only those positions against a Bloom filter of every pattern's first
//! `stride` grams finds every occurrence; a probe that misses rules out every start in the
//! `stride` positions ending at it. A probe that hits leaves up to `stride` possible starts,
//! each checked against a second filter of the patterns' first 8 bytes; only a start that
//! passes both costs an automaton search, over the few bytes a match there can cover.
//!
//! The cost per payload is one probe per `stride` bytes (eight per step with AVX2) whatever the
//! number of patterns; what grows with the set is the filter's size (capped so it stays in
//! cache) and with it the rare false hits.
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
/// Bitmap bits per inserted key; with three bits set per key well under 1 % of lookups are
/// false hits (sets big enough to reach the size cap: about 1 % at 100,000 patterns).
const BITS_PER_GRAM: usize = 16;

#[derive(Debug, Clone)]
pub struct GramFilter {
    /// Every pattern's first `stride` grams.
    grams: Bloom,
    /// Every pattern's first [`HEAD`] bytes: checks the starts a gram hit leaves open before
    /// the automaton runs.
    heads: Bloom,
    window: usize,
    /// Probe eight grams per step with AVX2 gathers (checked once, at build).
    avx2: bool,
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
            avx2: avx2_available(),
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
        (self.grams.words.len() + self.heads.words.len()) * 4
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

    /// The first start in `lo..=last` where [`GramFilter::may_start`] holds (needs
    /// `last + HEAD <= hay.len()`). Scalar: an AVX2 version measured no faster, as its cost is
    /// the cache miss on the heads bitmap rather than the hashing.
    #[inline]
    pub fn first_start(&self, hay: &[u8], lo: usize, last: usize) -> Option<usize> {
        (lo..=last).find(|&s| self.may_start(hay, s))
    }

    /// The probe positions from byte `from` on where [`GramFilter::may_hit`] holds, in order,
    /// written to `out`; returns how many were written and the next position to probe. Stops
    /// when `out` is full. No branch depends on a bitmap word, so the loads (the cache misses of
    /// a large set) overlap; with AVX2, eight probes go in one step.
    #[inline]
    pub fn hits(&self, hay: &[u8], from: usize, out: &mut [u32; HITS]) -> (usize, usize) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is only true when the CPU has AVX2 (`avx2_available`).
            let (n, pos) = unsafe { simd::hits(self, hay, from, out) };
            return self.hits_scalar(hay, pos, n, out);
        }
        self.hits_scalar(hay, from, 0, out)
    }

    /// [`GramFilter::hits`] one probe at a time, appending to `out[n..]`.
    #[inline]
    pub fn hits_scalar(&self, hay: &[u8], from: usize, n: usize, out: &mut [u32; HITS]) -> (usize, usize) {
        let stride = self.stride();
        let Some(end) = hay.len().checked_sub(GRAM) else { return (n, from) };
        let (mut pos, mut n) = (from, n);
        while pos <= end && n < HITS {
            out[n] = pos as u32;
            n += usize::from(self.grams.contains(gram_hash(gram_at(hay, pos))));
            pos += stride;
        }
        (n, pos)
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_available() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{GramFilter, GRAM, HITS};
    use std::arch::x86_64::*;

    /// Eight probes per step: gather the eight grams, hash them as [`super::mix32`] does, gather
    /// their bitmap words and test the three bits. Stops before a step could overrun `hay` or `out`;
    /// the caller finishes one probe at a time.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn hits(f: &GramFilter, hay: &[u8], from: usize, out: &mut [u32; HITS]) -> (usize, usize) {
        let stride = f.stride();
        let reach = 7 * stride + GRAM;
        let (mut pos, mut n) = (from, 0);
        if hay.len() > i32::MAX as usize {
            return (n, pos);
        }
        let lanes = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride as i32));
        let (c1, c2) = (_mm256_set1_epi32(super::MIX1 as i32), _mm256_set1_epi32(super::MIX2 as i32));
        let word_mask = _mm256_set1_epi32(f.grams.mask as i32);
        let (one, low5) = (_mm256_set1_epi32(1), _mm256_set1_epi32(31));
        let words = f.grams.words.as_ptr() as *const i32;
        while n + 8 <= HITS && pos + reach <= hay.len() {
            let at = _mm256_add_epi32(_mm256_set1_epi32(pos as i32), lanes);
            // SAFETY: lane k reads hay[pos + k * stride ..][..GRAM], inside `hay` since
            // pos + 7 * stride + GRAM <= hay.len().
            let g = unsafe { _mm256_i32gather_epi32::<1>(hay.as_ptr() as *const i32, at) };
            let h = _mm256_mullo_epi32(g, c1);
            let h = _mm256_mullo_epi32(_mm256_xor_si256(h, _mm256_srli_epi32::<15>(h)), c2);
            let w = _mm256_and_si256(_mm256_srli_epi32::<15>(h), word_mask);
            // SAFETY: every index is masked with `mask`, and words.len() == mask + 1.
            let w = unsafe { _mm256_i32gather_epi32::<4>(words, w) };
            let b1 = _mm256_sllv_epi32(one, _mm256_and_si256(h, low5));
            let b2 = _mm256_sllv_epi32(one, _mm256_and_si256(_mm256_srli_epi32::<5>(h), low5));
            let b3 = _mm256_sllv_epi32(one, _mm256_and_si256(_mm256_srli_epi32::<10>(h), low5));
            let bits = _mm256_or_si256(_mm256_or_si256(b1, b2), b3);
            let hit = _mm256_cmpeq_epi32(_mm256_and_si256(w, bits), bits);
            let mut m = _mm256_movemask_ps(_mm256_castsi256_ps(hit)) as u32;
            while m != 0 {
                out[n] = (pos + m.trailing_zeros() as usize * stride) as u32;
                n += 1;
                m &= m - 1;
            }
            pos += 8 * stride;
        }
        (n, pos)
    }
}

/// A blocked Bloom filter: each key sets three bits of one 32-bit word, so a lookup is one load.
#[derive(Debug, Clone)]
struct Bloom {
    words: Box<[u32]>,
    /// Number of words minus one (a power of two minus one).
    mask: u32,
}

// The word index is taken from hash bits 15..32.
const _: () = assert!(MAX_BITS_LOG2 - 5 <= 17);

impl Bloom {
    fn with_keys(keys: usize) -> Self {
        let log2 = keys.saturating_mul(BITS_PER_GRAM).next_power_of_two().trailing_zeros();
        let words = 1usize << (log2.clamp(MIN_BITS_LOG2, MAX_BITS_LOG2) - 5);
        Bloom { words: vec![0u32; words].into_boxed_slice(), mask: words as u32 - 1 }
    }

    /// The word and the three bits of a hashed key: bits 15.. pick the word, bits 0..15 the bits.
    #[inline]
    fn slot(&self, h: u32) -> (usize, u32) {
        (((h >> 15) & self.mask) as usize, 1 << (h & 31) | 1 << ((h >> 5) & 31) | 1 << ((h >> 10) & 31))
    }

    fn insert(&mut self, h: u32) {
        let (w, bits) = self.slot(h);
        self.words[w] |= bits;
    }

    #[inline]
    fn contains(&self, h: u32) -> bool {
        let (w, bits) = self.slot(h);
        // SAFETY: `slot` masks the word index with `mask`, and `words.len() == mask + 1`
        // (`with_keys`); the probe loop is hot enough for the bounds check to show.
        let word = unsafe { *self.words.get_unchecked(w) };
        word & bits == bits
    }

    fn density(&self) -> f64 {
        let set: u32 = self.words.iter().map(|w| w.count_ones()).sum();
        set as f64 / (self.words.len() * 32) as f64
    }
}

const MIX1: u32 = 0x9E37_79B1;
const MIX2: u32 = 0x85EB_CA77;

/// Two multiplies and a shift: low and high bits both depend on every input bit. The AVX2 probe
/// computes the same in eight lanes.
#[inline]
fn mix32(x: u32) -> u32 {
    let h = x.wrapping_mul(MIX1);
    (h ^ (h >> 15)).wrapping_mul(MIX2)
}

#[inline]
fn gram_hash(g: u32) -> u32 {
    mix32(g)
}

#[inline]
fn head_hash(h: u64) -> u32 {
    mix32(h as u32 ^ mix32((h >> 32) as u32))
}

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
            let mut one_by_one = [0u32; HITS];
            assert_eq!(f.hits_scalar(&hay, from, 0, &mut one_by_one), (n, next), "from {from}");
            assert_eq!(out[..n], one_by_one[..n]);
            got.extend(out[..n].iter().map(|&p| p as usize));
            if n < HITS {
                break;
            }
            from = next;
        }
        assert_eq!(got, want);
    }

    #[test]
    fn first_start_agrees_with_single_checks() {
        let pats: Vec<Vec<u8>> = (0..200u32).map(|i| format!("head{i:04}-and-more").into_bytes()).collect();
        let refs: Vec<&[u8]> = pats.iter().map(|p| p.as_slice()).collect();
        let f = GramFilter::new(&refs, 16).unwrap();
        let hay: Vec<u8> = (0..400u32).flat_map(|i| format!("xhead{i:04}").into_bytes()).collect();
        let mut found = 0;
        for lo in 0..hay.len() - 40 {
            for len in [1, 7, 8, 9, 13, 29] {
                let last = (lo + len - 1).min(hay.len() - HEAD);
                let want = (lo..=last).find(|&s| f.may_start(&hay, s));
                assert_eq!(f.first_start(&hay, lo, last), want, "{lo}..={last}");
                found += usize::from(want.is_some());
            }
        }
        assert!(found > 100, "heads present in the text: {found}");
    }

    #[test]
    fn too_short_patterns_get_no_filter() {
        assert!(GramFilter::new(&[b"abc"], 3).is_none());
        assert!(GramFilter::new(&[b"abcdefg"], 7).is_none());
        assert!(GramFilter::new(&[b"abcdefgh", b"abcd"], 8).is_none());
        assert_eq!(GramFilter::new(&[b"a".repeat(100).as_slice()], 100).unwrap().window(), MAX_WINDOW);
    }
}

//! Sampled gram skip filter for large IOC pattern sets (§7.4).
//!
//! The aho-corasick crate's SIMD prefilters exist only for small pattern sets; with thousands of
//! patterns every payload byte would go through the automaton. This filter lets a large set skip
//! most bytes as well. Every pattern it covers is at least `window` bytes long, so an occurrence
//! spans `stride = window - 3` consecutive 4-byte grams, and one of them starts at a multiple of
//! `stride`. Probing only those positions against a Bloom filter of every pattern's first
//! `stride` grams finds every occurrence; a probe that misses rules out every start in the
//! `stride` positions ending at it. A probe that hits leaves up to `stride` possible starts; a
//! start stays open only if all `stride` grams a pattern there would have pass the same bitmap
//! (eight lookups per AVX2 step, in lines the probes keep warm), and then its first 8 bytes pass
//! a second filter of the patterns' heads; only such a start costs an automaton search, over
//! the few bytes a match there can cover.
//!
//! Two refinements keep that cheap. A table of the grams' first two bytes (8 KiB, in L1) turns
//! most probes away before the larger bitmap when the patterns use few byte pairs (text
//! signatures against binary floods). And where the 4-byte grams of a payload keep hitting (a
//! small alphabet shared with the patterns) the rest of it is probed with 6-byte grams, every
//! `window - 5` bytes, which such text rarely matches.
//!
//! The cost per payload is one probe per `stride` bytes (eight per step with AVX2) whatever the
//! number of patterns; what grows with the set is the filters' size (each capped at 1 MiB, half
//! a core's L2 here) and with it the cache misses and the false hits. The measured figures
//! behind each constant below are in BENCHMARKS.md ("IOC matching").
//!
//! Pure: owns the bitmap; no I/O.

/// Gram length in bytes.
pub const GRAM: usize = 4;
/// Pattern prefix length checked at each open start; the shortest window.
pub const HEAD: usize = 8;
/// Wide gram length: two overlapping 4-byte loads.
pub const WIDE: usize = 6;
/// Words of the two-byte table, and the share of its bits (percent) above which it is dropped.
/// An AVX2 step skips the larger bitmap only when all eight of its probes fail the table: at
/// 3 % most steps do, at 10 % (1,000 random binary patterns) most do not, and the branch
/// mispredicts cost more than the table saves.
const PAIR_WORDS: usize = 2048;
const MAX_PAIR_PERCENT: usize = 3;
/// Hit positions returned by one [`GramFilter::hits`] call: room for a whole AVX2 step.
pub const HITS: usize = 8;
/// Windows longer than this add grams (bitmap density) without saving much more.
pub const MAX_WINDOW: usize = 32;
/// Bitmap size bounds, in bits. Above 2^23 bits (1 MiB) a large set gets fewer bits per gram
/// rather than a bitmap that misses L2: at 2 MiB the probes of 100,000 binary patterns wait on
/// L3. The false hits that a denser bitmap lets through (five times as many at 1 MiB) cost one
/// [`GramFilter::first_start`] each, in the same warm bitmap; at 512 KiB they outweigh it.
const MIN_BITS_LOG2: u32 = 12;
const MAX_BITS_LOG2: u32 = 23;
/// Bitmap bits per inserted key; with [`BLOOM_BITS`] bits set per key a small fraction of a
/// percent of lookups are false hits. Four bits in 64-bit words halve the false hits at the same
/// size but cost two gathers per step, which measured slower.
const BITS_PER_GRAM: usize = 32;
const BITS_PER_HEAD: usize = 32;

#[derive(Debug, Clone)]
pub struct GramFilter {
    /// Every pattern's first `stride` grams.
    grams: Bloom,
    /// Every pattern's first [`HEAD`] bytes: checks the starts a gram hit leaves open before
    /// the automaton runs.
    heads: Bloom,
    /// Which first two bytes any gram has (65,536 bits, 8 KiB: stays in L1), consulted before
    /// `grams` when sparse enough to reject most probes without touching the larger bitmap;
    /// empty otherwise.
    pairs: Box<[u32]>,
    /// Every pattern's first `window - 5` [`WIDE`]-byte grams: the probes for payloads whose
    /// 4-byte grams keep hitting (a small alphabet shared with the patterns).
    wide: Bloom,
    window: usize,
    /// The probe kernel this CPU runs (checked once, at build).
    simd: Simd,
}

/// Probe kernels, fastest last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    /// One probe at a time.
    Scalar,
    /// Eight probes per step: AVX2 loads and shuffles (or gathers) of the grams, gathers of
    /// the bitmap words.
    Avx2,
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
            grams: Bloom::with_keys(patterns.len().saturating_mul(stride), BITS_PER_GRAM),
            heads: Bloom::with_keys(patterns.len(), BITS_PER_HEAD),
            pairs: vec![0u32; PAIR_WORDS].into_boxed_slice(),
            wide: Bloom::with_keys(patterns.len().saturating_mul(window - WIDE + 1), BITS_PER_GRAM),
            window,
            simd: simd_available(),
        };
        for p in patterns {
            for j in 0..stride {
                let g = gram_at(p, j);
                f.grams.insert(gram_key(g));
                f.pairs[(g & 0xFFFF) as usize >> 5] |= 1 << (g & 31);
            }
            f.heads.insert(start_key(p, 0));
            for j in 0..=window - WIDE {
                f.wide.insert(wide_key(p, j));
            }
        }
        let set: u32 = f.pairs.iter().map(|w| w.count_ones()).sum();
        if set as usize * 100 > PAIR_WORDS * 32 * MAX_PAIR_PERCENT {
            f.pairs = Box::default();
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
        self.grams.bytes() + self.heads.bytes() + self.pairs.len() * 4 + self.wide.bytes()
    }

    /// Fraction of gram bitmap bits set.
    pub fn density(&self) -> f64 {
        self.grams.density()
    }

    /// Whether a pattern may have its probed gram at `pos` (needs `pos + GRAM <= hay.len()`).
    /// False means no pattern starts in `pos + 1 - stride ..= pos`.
    #[inline]
    pub fn may_hit(&self, hay: &[u8], pos: usize) -> bool {
        let g = gram_at(hay, pos);
        if let Some(w) = self.pairs.get((g & 0xFFFF) as usize >> 5) {
            if w & (1 << (g & 31)) == 0 {
                return false;
            }
        }
        self.grams.contains(gram_key(g))
    }

    /// Distance between wide ([`WIDE`]-byte) probes.
    #[inline]
    pub fn wide_stride(&self) -> usize {
        self.window - WIDE + 1
    }

    /// As [`GramFilter::may_hit`] for the wide gram at `pos` (needs `pos + WIDE <= hay.len()`):
    /// false means no pattern starts in `pos + 1 - wide_stride ..= pos`.
    #[inline]
    pub fn may_hit_wide(&self, hay: &[u8], pos: usize) -> bool {
        self.wide.contains(wide_key(hay, pos))
    }

    /// The probe kernel in use (for logs and benches).
    pub fn simd(&self) -> Simd {
        self.simd
    }

    /// Use a slower kernel than the CPU allows (tests and benches compare them); a faster one
    /// than it has is ignored.
    pub fn limit_simd(&mut self, simd: Simd) {
        self.simd = self.simd.min(simd);
    }

    /// Whether the two-byte table is in use (for logs and benches).
    pub fn uses_pairs(&self) -> bool {
        !self.pairs.is_empty()
    }

    /// Whether a pattern may start at `start` (needs `start + HEAD <= hay.len()`).
    #[inline]
    pub fn may_start(&self, hay: &[u8], start: usize) -> bool {
        self.heads.contains(start_key(hay, start))
    }

    /// Whether every gram a pattern starting at `start` has in the filter passes it: the
    /// `stride` 4-byte grams (`wide`: the `wide_stride` [`WIDE`]-byte ones) from `start` on
    /// (needs `start + window <= hay.len()`). Looks only at the bitmap the probes keep warm, so a
    /// false probe hit is ruled out without the heads bitmap, which they never touch.
    #[inline]
    pub fn may_run(&self, hay: &[u8], start: usize, wide: bool) -> bool {
        if wide {
            (start..start + self.wide_stride()).all(|q| self.wide.contains(wide_key(hay, q)))
        } else {
            (start..start + self.stride()).all(|q| self.grams.contains(gram_key(gram_at(hay, q))))
        }
    }

    /// The first start in `lo..=last` where [`GramFilter::may_run`] and then
    /// [`GramFilter::may_start`] hold (needs `last + window <= hay.len()` and `last - lo <
    /// stride`): the starts a probe hit at `last` leaves open. With AVX2, the grams of the
    /// range are looked up eight per step.
    #[inline]
    pub fn first_start(&self, hay: &[u8], lo: usize, last: usize, wide: bool) -> Option<usize> {
        let stride = if wide { self.wide_stride() } else { self.stride() };
        if lo > last {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        if self.simd >= Simd::Avx2
            && last - lo < stride
            && last + self.window <= hay.len()
            && hay.len() <= i32::MAX as usize
        {
            // SAFETY: AVX2 is present (`simd`); the last gram read starts at last + stride - 1
            // and ends by last + window <= hay.len() <= i32::MAX.
            let passed = unsafe { simd::passed(self, hay, lo, last - lo + stride, wide) };
            // Bit i: the gram at lo + i passes; a start needs `stride` in a row.
            let mut runs = passed;
            for k in 1..stride {
                runs &= passed >> k;
            }
            runs &= (1u64 << (last - lo + 1)) - 1;
            while runs != 0 {
                let s = lo + runs.trailing_zeros() as usize;
                if self.may_start(hay, s) {
                    return Some(s);
                }
                runs &= runs - 1;
            }
            return None;
        }
        self.first_start_scalar(hay, lo, last, wide)
    }

    /// [`GramFilter::first_start`] one start and one gram at a time.
    pub fn first_start_scalar(&self, hay: &[u8], lo: usize, last: usize, wide: bool) -> Option<usize> {
        (lo..=last).find(|&s| self.may_run(hay, s, wide) && self.may_start(hay, s))
    }

    /// Probes from byte `from` on, every `stride` bytes (`wide`: [`GramFilter::may_hit_wide`]
    /// every `wide_stride` bytes), and stops after the first step with a probe that hits, or
    /// at the payload's end: writes the probe positions that hit, in order, to `out` and
    /// returns how many and the next position to probe. A step is eight probes with AVX2, else
    /// one; none of its branches depends on a bitmap word, so the
    /// loads (the cache misses of a large set) overlap. Stopping at the first step that hits
    /// lets the caller switch to wide probes early.
    #[inline]
    pub fn hits(&self, hay: &[u8], from: usize, wide: bool, out: &mut [u32; HITS]) -> (usize, usize) {
        #[cfg(target_arch = "x86_64")]
        if self.simd >= Simd::Avx2 {
            // SAFETY: `simd` is never above what the CPU has (`simd_available`, `limit_simd`).
            let (n, pos) = unsafe {
                if wide {
                    simd::hits::<true>(self, hay, from, out)
                } else {
                    simd::hits::<false>(self, hay, from, out)
                }
            };
            // The AVX2 kernel leaves the last few probes, after its last full step.
            return if n > 0 { (n, pos) } else { self.hits_scalar(hay, pos, wide, out) };
        }
        self.hits_scalar(hay, from, wide, out)
    }

    /// [`GramFilter::hits`] one probe per step.
    #[inline]
    pub fn hits_scalar(&self, hay: &[u8], from: usize, wide: bool, out: &mut [u32; HITS]) -> (usize, usize) {
        let (len, stride) = if wide { (WIDE, self.wide_stride()) } else { (GRAM, self.stride()) };
        let Some(end) = hay.len().checked_sub(len) else { return (0, from) };
        let (mut pos, mut n) = (from, 0);
        while pos <= end && n == 0 {
            out[n] = pos as u32;
            n += usize::from(if wide { self.may_hit_wide(hay, pos) } else { self.may_hit(hay, pos) });
            pos += stride;
        }
        (n, pos)
    }
}

/// Tests: the probe kernels this CPU runs, slowest first. A kernel it lacks is reported as a
/// skip (stderr and the run's skip log, see `scripts/test.sh`) instead of silently running the
/// next lower one in its place; every caller asserts the kernel it asked for is the one in use.
#[cfg(test)]
pub fn kernels_here() -> Vec<Simd> {
    let have = simd_available();
    let all = [Simd::Scalar, Simd::Avx2];
    for k in all.iter().filter(|k| **k > have) {
        let line = format!("IOC {k:?} probe kernel tests: this CPU lacks it (it has {have:?})");
        // Not a failure under CI either: the CPU decides, not the packages.
        crate::util::skip::note_skip(&line);
    }
    all.into_iter().filter(|k| *k <= have).collect()
}

#[cfg(target_arch = "x86_64")]
fn simd_available() -> Simd {
    use std::arch::is_x86_feature_detected as has;
    // The one tier above scalar is exactly the feature its kernel enables.
    if has!("avx2") {
        Simd::Avx2
    } else {
        Simd::Scalar
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn simd_available() -> Simd {
    Simd::Scalar
}

#[cfg(target_arch = "x86_64")]
mod simd;

mod bloom;
use bloom::{gram_at, gram_key, start_key, wide_key, Bloom};
#[cfg(target_arch = "x86_64")]
use bloom::{BLOOM_BITS, GRAM_MUL, WIDE_MUL};

#[cfg(test)]
mod tests;

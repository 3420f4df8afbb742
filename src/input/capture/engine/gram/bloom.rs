//! The gram filter's Bloom filters and the hashes of its keys (4-byte grams, wide grams and
//! pattern heads). Each key is one word and a few bits of it, so a lookup is one load: the AVX2
//! kernels in `simd.rs` compute the same hashes eight lanes at a time.
//!
//! Pure: owns the bitmaps; no I/O.

use super::{GRAM, MAX_BITS_LOG2, MIN_BITS_LOG2, WIDE};

/// Bits a key sets in its word: four, from the top 20 bits of its bits hash, five at a time.
/// The lower of them depend on fewer input bits, but each probe waits on its bitmap word, not on
/// these. With the bitmap at 2 MiB five bits instead of three cut the false hits of 100,000
/// random binary patterns from 0.38 to 0.23 per payload; at the 1 MiB cap four bits let through
/// as few as five (1.23 per payload) and cost less per step (the payload 4 % faster, measured).
pub(super) const BLOOM_BITS: u32 = 4;

/// A blocked Bloom filter: each key sets [`BLOOM_BITS`] bits of one 32-bit word, so a lookup is
/// one load.
#[derive(Debug, Clone)]
pub(super) struct Bloom {
    pub(super) words: Box<[u32]>,
    /// 32 minus log2 of the number of words.
    pub(super) shift: u32,
}

impl Bloom {
    pub(super) fn with_keys(keys: usize, bits_per_key: usize) -> Self {
        let log2 = keys.saturating_mul(bits_per_key).next_power_of_two().trailing_zeros();
        let log2_words = log2.clamp(MIN_BITS_LOG2, MAX_BITS_LOG2) - 5;
        Bloom { words: vec![0u32; 1 << log2_words].into_boxed_slice(), shift: 32 - log2_words }
    }

    /// The word and the bits of a key: the top bits of its two hashes.
    #[inline]
    fn slot(&self, k: Key) -> (usize, u32) {
        let bits = (0..BLOOM_BITS).fold(0, |m, i| m | 1 << ((k.bits >> (27 - 5 * i)) & 31));
        ((k.word >> self.shift) as usize, bits)
    }

    pub(super) fn insert(&mut self, k: Key) {
        let (w, bits) = self.slot(k);
        self.words[w] |= bits;
    }

    #[inline]
    pub(super) fn contains(&self, k: Key) -> bool {
        let (w, bits) = self.slot(k);
        // SAFETY: `slot` keeps the top `32 - shift` bits, and `words.len() == 1 << (32 - shift)`
        // (`with_keys`); the probe loop is hot enough for the bounds check to show.
        let word = unsafe { *self.words.get_unchecked(w) };
        word & bits == bits
    }

    pub(super) fn density(&self) -> f64 {
        let set: u32 = self.words.iter().map(|w| w.count_ones()).sum();
        set as f64 / (self.words.len() * 32) as f64
    }

    pub(super) fn bytes(&self) -> usize {
        self.words.len() * 4
    }
}

/// A probe's two hashes: each a multiply (or two, xored, for an 8-byte input) of the same input
/// by its own odd constants, side by side. The top bits of the first pick the bitmap word, those
/// of the second the bits; the top bits of a product depend on every input bit. The word's
/// multiply is the only step between a probe's load and its bitmap access, which the probes
/// wait on (a chain of three multiplies there cost 15-20 % more per payload).
#[derive(Debug, Clone, Copy)]
pub(super) struct Key {
    word: u32,
    bits: u32,
}

/// Multipliers (word, bits) of a 4-byte gram; and of the first, then the last 4 bytes of a wide
/// gram or of a head. Heads and wide grams use different ones: a wide hit at a start must not
/// pass the heads check there as well.
pub(super) const GRAM_MUL: [u32; 2] = [0x9E37_79B1, 0x85EB_CA77];
pub(super) const WIDE_MUL: [u32; 4] = [0x9E37_79B1, 0x85EB_CA77, 0xC2B2_AE35, 0x27D4_EB2F];
pub(super) const HEAD_MUL: [u32; 4] = [0x1656_67B1, 0xD3A2_646D, 0xFD70_46C5, 0xB55A_4F09];

#[inline]
pub(super) fn gram_key(g: u32) -> Key {
    Key { word: g.wrapping_mul(GRAM_MUL[0]), bits: g.wrapping_mul(GRAM_MUL[1]) }
}

#[inline]
pub(super) fn pair_key(lo: u32, hi: u32, m: [u32; 4]) -> Key {
    Key { word: lo.wrapping_mul(m[0]) ^ hi.wrapping_mul(m[2]), bits: lo.wrapping_mul(m[1]) ^ hi.wrapping_mul(m[3]) }
}

/// The [`WIDE`]-byte gram at `pos`: its first four bytes and its last four, overlapping.
#[inline]
pub(super) fn wide_key(b: &[u8], pos: usize) -> Key {
    pair_key(gram_at(b, pos), gram_at(b, pos + WIDE - GRAM), WIDE_MUL)
}

/// The [`HEAD`] bytes at `pos`.
#[inline]
pub(super) fn start_key(b: &[u8], pos: usize) -> Key {
    pair_key(gram_at(b, pos), gram_at(b, pos + GRAM), HEAD_MUL)
}

#[inline]
pub(super) fn gram_at(b: &[u8], pos: usize) -> u32 {
    let g: [u8; GRAM] = b[pos..pos + GRAM].try_into().unwrap_or_default();
    u32::from_le_bytes(g)
}

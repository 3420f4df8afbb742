//! AVX2 kernels of the gram filter: eight probes, or eight candidate starts, per step. Each
//! computes exactly what the scalar code in `gram.rs` does (the tests compare them).
//!
//! Pure: reads the filter and the payload; no I/O.

use super::{Bloom, GramFilter, GRAM, HEAD, HITS};
use std::arch::x86_64::*;

/// Eight probes per step: gather the eight grams (`WIDE`: both halves of each 8-byte gram), hash
/// them as [`super::gram_hash`] (`WIDE`: [`super::head_hash`]) does, and test them against the
/// filter. Stops before a step could overrun `hay` or `out`; the caller finishes one probe at a
/// time.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn hits<const WIDE: bool>(f: &GramFilter, hay: &[u8], from: usize, out: &mut [u32; HITS]) -> (usize, usize) {
    let (stride, len, bloom) = if WIDE { (f.wide_stride(), HEAD, &f.wide) } else { (f.stride(), GRAM, &f.grams) };
    let reach = 7 * stride + len;
    let (mut pos, mut n) = (from, 0);
    if hay.len() > i32::MAX as usize {
        return (n, pos);
    }
    let lanes = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride as i32));
    let (one, low5) = (_mm256_set1_epi32(1), _mm256_set1_epi32(31));
    let (pairs, low16) = (f.pairs.as_ptr() as *const i32, _mm256_set1_epi32(0xFFFF));
    let all = _mm256_set1_epi32(-1);
    let base = hay.as_ptr() as *const i32;
    while n + 8 <= HITS && pos + reach <= hay.len() {
        let at = _mm256_add_epi32(_mm256_set1_epi32(pos as i32), lanes);
        // SAFETY: lane k reads hay[pos + k * stride ..][..len], inside `hay` since
        // pos + 7 * stride + len <= hay.len().
        let g = unsafe { _mm256_i32gather_epi32::<1>(base, at) };
        let (h, live) = if WIDE {
            // SAFETY: as above; the high half is the second 4 of the `len` (8) bytes.
            let hi = unsafe { _mm256_i32gather_epi32::<1>(base, _mm256_add_epi32(at, _mm256_set1_epi32(4))) };
            (mix(_mm256_xor_si256(g, mix(hi))), all)
        } else if f.pairs.is_empty() {
            (mix(g), all)
        } else {
            let pair = _mm256_and_si256(g, low16);
            // SAFETY: pair >> 5 < 2048 == pairs.len() (checked non-empty just above).
            let pw = unsafe { _mm256_i32gather_epi32::<4>(pairs, _mm256_srli_epi32::<5>(pair)) };
            let pbit = _mm256_sllv_epi32(one, _mm256_and_si256(pair, low5));
            let live = _mm256_cmpeq_epi32(_mm256_and_si256(pw, pbit), pbit);
            if _mm256_testz_si256(live, live) != 0 {
                pos += 8 * stride;
                continue;
            }
            (mix(g), live)
        };
        let mut m = bloom_hits(bloom, h, live);
        while m != 0 {
            out[n] = (pos + m.trailing_zeros() as usize * stride) as u32;
            n += 1;
            m &= m - 1;
        }
        pos += 8 * stride;
    }
    (n, pos)
}

/// Bit k set when a pattern head may start at `from + k` ([`super::start_hash`]), for
/// k < `lanes` (≤ 8); lanes past that load nothing.
///
/// # Safety
/// The CPU must support AVX2, and `from + lanes - 1 + HEAD <= hay.len() <= i32::MAX`.
#[target_feature(enable = "avx2")]
pub unsafe fn starts(f: &GramFilter, hay: &[u8], from: usize, lanes: usize) -> u32 {
    let k = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let live = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), k);
    let at = _mm256_add_epi32(_mm256_set1_epi32(from as i32), k);
    let base = hay.as_ptr() as *const i32;
    let zero = _mm256_setzero_si256();
    // SAFETY: only live lanes load, each inside `hay` (the caller's bound).
    let (lo, hi) = unsafe {
        (
            _mm256_mask_i32gather_epi32::<1>(zero, base, at, live),
            _mm256_mask_i32gather_epi32::<1>(zero, base, _mm256_add_epi32(at, _mm256_set1_epi32(4)), live),
        )
    };
    let h = mix(_mm256_xor_si256(mix(_mm256_xor_si256(lo, mix(hi))), _mm256_set1_epi32(super::START_SEED as i32)));
    bloom_hits(&f.heads, h, live)
}

/// [`super::mix32`] in eight lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn mix(x: __m256i) -> __m256i {
    let h = _mm256_mullo_epi32(x, _mm256_set1_epi32(super::MIX1 as i32));
    _mm256_mullo_epi32(_mm256_xor_si256(h, _mm256_srli_epi32::<15>(h)), _mm256_set1_epi32(super::MIX2 as i32))
}

/// Bit k set when lane k is in `live` and its hash passes `bloom` ([`Bloom::contains`]); lanes
/// outside `live` load nothing.
#[inline]
#[target_feature(enable = "avx2")]
fn bloom_hits(bloom: &Bloom, h: __m256i, live: __m256i) -> u32 {
    let shift = _mm_cvtsi32_si128(bloom.shift as i32);
    let w = _mm256_srl_epi32(_mm256_mullo_epi32(h, _mm256_set1_epi32(super::WORD_MIX as i32)), shift);
    // SAFETY: every index is the top `32 - shift` bits of a u32, and words.len() ==
    // 1 << (32 - shift) (`Bloom::with_keys`).
    let w = unsafe {
        _mm256_mask_i32gather_epi32::<4>(_mm256_setzero_si256(), bloom.words.as_ptr() as *const i32, w, live)
    };
    let (one, low5) = (_mm256_set1_epi32(1), _mm256_set1_epi32(31));
    let b1 = _mm256_sllv_epi32(one, _mm256_and_si256(h, low5));
    let b2 = _mm256_sllv_epi32(one, _mm256_and_si256(_mm256_srli_epi32::<5>(h), low5));
    let b3 = _mm256_sllv_epi32(one, _mm256_and_si256(_mm256_srli_epi32::<10>(h), low5));
    let bits = _mm256_or_si256(_mm256_or_si256(b1, b2), b3);
    let hit = _mm256_and_si256(_mm256_cmpeq_epi32(_mm256_and_si256(w, bits), bits), live);
    _mm256_movemask_ps(_mm256_castsi256_ps(hit)) as u32
}

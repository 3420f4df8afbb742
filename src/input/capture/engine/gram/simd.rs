//! The AVX2 kernels of the gram filter: eight probes per step, or eight of the gram lookups
//! that check the starts a probe hit leaves open. Each computes exactly what the scalar code in
//! `gram.rs` does (unit tests, the property test and the fuzz target compare them). Speed
//! figures live in BENCHMARKS.md, not here.
//!
//! Pure: reads the filter and the payload; no I/O. Must not add a kernel that no benchmark in
//! BENCHMARKS.md shows faster than this one (STYLE 14).

use super::{Bloom, GramFilter, BLOOM_BITS, GRAM, HITS, WIDE};
use std::arch::x86_64::*;

/// Eight probes per step: load the eight grams (`W`: the first and last four bytes of each
/// [`WIDE`]-byte gram), hash them as [`super::gram_key`] (`W`: [`super::wide_key`]) does, and
/// test them against the filter. Stops after the first step that hits, as
/// [`GramFilter::hits`] does, or before a step could overrun `hay`: the caller finishes one
/// probe at a time.
///
/// When two neighbouring probes fit 16 bytes (`stride + len <= 16`: windows up to 15) the grams
/// come from four 16-byte loads, two probes each, and byte shuffles; otherwise they are gathered
/// from the payload, a slower instruction (much slower still on CPUs with the fix for gather data
/// sampling, "Downfall").
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn hits<const W: bool>(f: &GramFilter, hay: &[u8], from: usize, out: &mut [u32; HITS]) -> (usize, usize) {
    let (stride, len, bloom) = if W { (f.wide_stride(), WIDE, &f.wide) } else { (f.stride(), GRAM, &f.grams) };
    let shuffled = stride + len <= 16;
    // The last byte a step reads: the last gram's, or the end of the fourth 16-byte load.
    let reach = if shuffled { 6 * stride + 16 } else { 7 * stride + len };
    let (mut pos, mut n) = (from, 0);
    if hay.len() > i32::MAX as usize {
        return (n, pos);
    }
    let lanes = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride as i32));
    let (one, low5) = (_mm256_set1_epi32(1), _mm256_set1_epi32(31));
    let (pairs, low16) = (f.pairs.as_ptr() as *const i32, _mm256_set1_epi32(0xFFFF));
    let all = _mm256_set1_epi32(-1);
    let base = hay.as_ptr() as *const i32;
    // Shuffle controls: the four bytes at `skip` and at `stride + skip` of a 16-byte load into
    // its first two 32-bit lanes.
    let control = |skip: i8| {
        let second = _mm256_setr_epi8(
            0, 0, 0, 0, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0,
        );
        let offsets = _mm256_setr_epi8(
            0, 1, 2, 3, 0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0,
        );
        let at = _mm256_add_epi8(offsets, _mm256_set1_epi8(skip));
        _mm256_add_epi8(at, _mm256_and_si256(second, _mm256_set1_epi8(stride as i8)))
    };
    let (lo_control, hi_control) = (control(0), control((WIDE - GRAM) as i8));
    // The eight grams of the step at `pos` (`at`: its probe positions); `last`: the last four
    // bytes of wide grams rather than the first.
    let gram = |pos: usize, at: __m256i, last: bool| {
        let (control, skip) = if last { (hi_control, WIDE - GRAM) } else { (lo_control, 0) };
        if shuffled {
            let p = hay.as_ptr().wrapping_add(pos) as *const __m128i;
            // SAFETY: the loads read hay[pos + 2 * j * stride ..][..16] for j < 4, inside
            // `hay` since pos + 6 * stride + 16 <= hay.len() (`reach`).
            let (a, b) = unsafe {
                (
                    _mm256_loadu2_m128i(p.wrapping_byte_add(4 * stride), p),
                    _mm256_loadu2_m128i(p.wrapping_byte_add(6 * stride), p.wrapping_byte_add(2 * stride)),
                )
            };
            // a holds probes 0, 1 | 4, 5 and b probes 2, 3 | 6, 7: their first 64 bits each.
            _mm256_unpacklo_epi64(_mm256_shuffle_epi8(a, control), _mm256_shuffle_epi8(b, control))
        } else {
            // SAFETY: lane k reads hay[pos + k * stride + skip ..][..4], inside `hay` since
            // pos + 7 * stride + len <= hay.len() (`reach`) and skip + 4 <= len.
            unsafe { _mm256_i32gather_epi32::<1>(base, _mm256_add_epi32(at, _mm256_set1_epi32(skip as i32))) }
        }
    };
    while n == 0 && pos + reach <= hay.len() {
        let at = _mm256_add_epi32(_mm256_set1_epi32(pos as i32), lanes);
        let g = gram(pos, at, false);
        let (h, live) = if W {
            let hi = gram(pos, at, true);
            (pair_key(g, hi, super::WIDE_MUL), all)
        } else if f.pairs.is_empty() {
            (gram_key(g), all)
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
            (gram_key(g), live)
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

/// Bit i set when the gram at `from + i` (`wide`: the [`WIDE`]-byte gram) passes its bitmap,
/// for i < `count` (≤ 64): [`present`] eight positions at a time, the steps' loads issued
/// back to back.
///
/// # Safety
/// As [`present`], with `count` for `lanes`.
#[target_feature(enable = "avx2")]
pub unsafe fn passed(f: &GramFilter, hay: &[u8], from: usize, count: usize, wide: bool) -> u64 {
    let mut m = 0u64;
    for at in (0..count).step_by(8) {
        // SAFETY: the caller's bound covers every lane of every step.
        m |= u64::from(unsafe { present(f, hay, from + at, (count - at).min(8), wide) }) << at;
    }
    m
}

/// Bit k set when the gram at `from + k` (`wide`: the [`WIDE`]-byte gram) passes its bitmap, for
/// k < `lanes` (≤ 8); lanes past that look nothing up. [`GramFilter::may_run`] one position per
/// lane. The grams come from one 16-byte load and byte shuffles where the payload has 16 bytes
/// from `from`, else each lane gathers its own.
///
/// # Safety
/// The CPU must support AVX2, and `from + lanes - 1 + len <= hay.len() <= i32::MAX` (`len`:
/// [`GRAM`], or [`WIDE`] when `wide`).
#[inline]
#[target_feature(enable = "avx2")]
pub unsafe fn present(f: &GramFilter, hay: &[u8], from: usize, lanes: usize, wide: bool) -> u32 {
    let k = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let live = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), k);
    let skip = (WIDE - GRAM) as i8;
    let (lo, hi) = if from + 16 <= hay.len() {
        // SAFETY: hay[from..from + 16] is inside `hay` (just checked).
        let bytes = _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(hay.as_ptr().add(from) as *const __m128i) });
        // Lane k: the four bytes at k (+ `skip` for the last four of a wide gram).
        let control = |skip: i8| {
            let at = _mm256_setr_epi8(
                0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6, 4, 5, 6, 7, 5, 6, 7, 8, 6, 7, 8, 9, 7, 8, 9, 10,
            );
            _mm256_add_epi8(at, _mm256_set1_epi8(skip))
        };
        let lo = _mm256_shuffle_epi8(bytes, control(0));
        (lo, if wide { _mm256_shuffle_epi8(bytes, control(skip)) } else { lo })
    } else {
        let at = _mm256_add_epi32(_mm256_set1_epi32(from as i32), k);
        let base = hay.as_ptr() as *const i32;
        let zero = _mm256_setzero_si256();
        // SAFETY: only live lanes load, each inside `hay` (the caller's bound).
        let lo = unsafe { _mm256_mask_i32gather_epi32::<1>(zero, base, at, live) };
        let hi = if wide {
            let at = _mm256_add_epi32(at, _mm256_set1_epi32(skip.into()));
            // SAFETY: as above, the last four bytes of each live lane's wide gram.
            unsafe { _mm256_mask_i32gather_epi32::<1>(zero, base, at, live) }
        } else {
            lo
        };
        (lo, hi)
    };
    if wide {
        bloom_hits(&f.wide, pair_key(lo, hi, super::WIDE_MUL), live)
    } else {
        bloom_hits(&f.grams, gram_key(lo), live)
    }
}

/// [`super::gram_key`] in eight lanes: (word, bits) hashes.
#[inline]
#[target_feature(enable = "avx2")]
fn gram_key(g: __m256i) -> (__m256i, __m256i) {
    let m = super::GRAM_MUL;
    (_mm256_mullo_epi32(g, _mm256_set1_epi32(m[0] as i32)), _mm256_mullo_epi32(g, _mm256_set1_epi32(m[1] as i32)))
}

/// [`super::pair_key`] in eight lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn pair_key(lo: __m256i, hi: __m256i, m: [u32; 4]) -> (__m256i, __m256i) {
    let mul = |x, k: u32| _mm256_mullo_epi32(x, _mm256_set1_epi32(k as i32));
    (_mm256_xor_si256(mul(lo, m[0]), mul(hi, m[2])), _mm256_xor_si256(mul(lo, m[1]), mul(hi, m[3])))
}

/// Bit k set when lane k is in `live` and its hash passes `bloom` ([`Bloom::contains`]); lanes
/// outside `live` load nothing.
#[inline]
#[target_feature(enable = "avx2")]
fn bloom_hits(bloom: &Bloom, (word, bits): (__m256i, __m256i), live: __m256i) -> u32 {
    let w = _mm256_srl_epi32(word, _mm_cvtsi32_si128(bloom.shift as i32));
    // SAFETY: every index is the top `32 - shift` bits of a u32, and words.len() ==
    // 1 << (32 - shift) (`Bloom::with_keys`).
    let w = unsafe {
        _mm256_mask_i32gather_epi32::<4>(_mm256_setzero_si256(), bloom.words.as_ptr() as *const i32, w, live)
    };
    let (one, low5) = (_mm256_set1_epi32(1), _mm256_set1_epi32(31));
    let bit = |shift: u32| {
        _mm256_sllv_epi32(one, _mm256_and_si256(_mm256_srl_epi32(bits, _mm_cvtsi32_si128(shift as i32)), low5))
    };
    let bits = (0..BLOOM_BITS).fold(_mm256_setzero_si256(), |m, i| _mm256_or_si256(m, bit(27 - 5 * i)));
    let hit = _mm256_and_si256(_mm256_cmpeq_epi32(_mm256_and_si256(w, bits), bits), live);
    _mm256_movemask_ps(_mm256_castsi256_ps(hit)) as u32
}

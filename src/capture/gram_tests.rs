//! Gram filter tests: every occurrence is seen, batched and AVX2 probes agree with single
//! probes, and the filters stay independent of each other.

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

/// Every hit of [`GramFilter::hits`] from `from` to the payload's end, call after call, with
/// the kernel `f` runs; checks that each call stops at its first step that hits.
fn all_hits(f: &GramFilter, hay: &[u8], from: usize, wide: bool) -> Vec<usize> {
    let step = match f.simd() {
        Simd::Scalar => 1,
        Simd::Avx2 => 8,
    } * if wide { f.wide_stride() } else { f.stride() };
    let (mut got, mut at, mut out) = (Vec::new(), from, [0u32; HITS]);
    loop {
        let (n, next) = f.hits(hay, at, wide, &mut out);
        if n == 0 {
            return got;
        }
        let hits = &out[..n];
        assert!(hits.windows(2).all(|w| w[0] < w[1]), "in order: {hits:?}");
        assert!(next > hits[n - 1] as usize && next - hits[0] as usize <= step, "one step: {hits:?} then {next}");
        got.extend(hits.iter().map(|&p| p as usize));
        at = next;
    }
}

/// The probe positions from `from` on where the single-probe test holds.
fn single_hits(f: &GramFilter, hay: &[u8], from: usize, wide: bool) -> Vec<usize> {
    let (stride, len) = if wide { (f.wide_stride(), WIDE) } else { (f.stride(), GRAM) };
    (0..)
        .map(|k| from + k * stride)
        .take_while(|p| p + len <= hay.len())
        .filter(|&p| if wide { f.may_hit_wide(hay, p) } else { f.may_hit(hay, p) })
        .collect()
}

#[test]
fn hits_agree_with_single_probes() {
    let pats: Vec<Vec<u8>> = (0..300u32).map(|i| format!("{i:03}-pattern").into_bytes()).collect();
    let refs: Vec<&[u8]> = pats.iter().map(|p| p.as_slice()).collect();
    let f = GramFilter::new(&refs, 11).unwrap();
    let hay: Vec<u8> = (0..3000u32).flat_map(|i| format!("{i}-pat").into_bytes()).collect();
    let want = single_hits(&f, &hay, 0, false);
    assert!(want.len() > 100, "the text holds pattern grams: {}", want.len());
    assert_eq!(all_hits(&f, &hay, 0, false), want);
}

#[test]
fn wide_probes_agree_with_single_probes_and_see_every_occurrence() {
    let pats: Vec<Vec<u8>> = (0..300u32).map(|i| format!("{i:03}-pattern").into_bytes()).collect();
    let refs: Vec<&[u8]> = pats.iter().map(|p| p.as_slice()).collect();
    let f = GramFilter::new(&refs, 11).unwrap();
    assert_eq!(f.wide_stride(), 6);
    let hay: Vec<u8> = (0..3000u32).flat_map(|i| format!("{}-pattern.", i % 400).into_bytes()).collect();
    for from in [0, 1, 2, 3, 77] {
        let want = single_hits(&f, &hay, from, true);
        assert_eq!(all_hits(&f, &hay, from, true), want, "from {from}");
        assert!(want.len() > 100, "the text holds pattern grams");
    }
    // Every occurrence has a wide probe inside its first `window` bytes that hits.
    for p in &refs {
        let mut hay = vec![b'#'; 40];
        hay[13..13 + p.len()].copy_from_slice(p);
        assert!((13..13 + f.wide_stride()).any(|q| f.may_hit_wide(&hay, q)), "{p:?}");
    }
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
            assert_eq!(f.first_start_scalar(&hay, lo, last), want, "{lo}..={last}");
            found += usize::from(want.is_some());
        }
    }
    assert!(found > 100, "heads present in the text: {found}");
}

/// Regression: the heads and wide filters once hashed the same 8-byte keys the same way, so a
/// false wide hit at a position passed the heads check there too, and the automaton ran on
/// most wide hits (5x the searches on text in the patterns' alphabet).
#[test]
fn heads_check_is_independent_of_wide_hits() {
    let mut r = 0x9e37_79b9u64;
    let mut letter = move || {
        r = r.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        b'A' + (r >> 59) as u8 % 26
    };
    let pats: Vec<Vec<u8>> = (0..20_000).map(|_| (0..10).map(|_| letter()).collect()).collect();
    let refs: Vec<&[u8]> = pats.iter().map(|p| p.as_slice()).collect();
    let f = GramFilter::new(&refs, 10).unwrap();
    let hay: Vec<u8> = (0..300_000).map(|_| letter()).collect();
    let wide: Vec<usize> = (0..hay.len() - HEAD).filter(|&p| f.may_hit_wide(&hay, p)).collect();
    let both = wide.iter().filter(|&&p| f.may_start(&hay, p)).count();
    assert!(wide.len() > 100, "{} wide hits", wide.len());
    assert!(both * 50 < wide.len(), "{both} of {} wide hits also pass the heads check", wide.len());
}

#[test]
fn too_short_patterns_get_no_filter() {
    assert!(GramFilter::new(&[b"abc"], 3).is_none());
    assert!(GramFilter::new(&[b"abcdefg"], 7).is_none());
    assert!(GramFilter::new(&[b"abcdefgh", b"abcd"], 8).is_none());
    assert_eq!(GramFilter::new(&[b"a".repeat(100).as_slice()], 100).unwrap().window(), MAX_WINDOW);
}

/// Every kernel this CPU has gives the single probes' hits, narrow and wide,
/// from every start, on payloads of every length up to a few steps (the AVX2 kernel leaves the
/// probes after its last full step to the scalar code).
#[test]
fn every_kernel_agrees_with_single_probes_at_every_length() {
    let pats: Vec<Vec<u8>> =
        (0..200u32).map(|i| format!("{:02}pq{i:03}rs and a tail to reach 32 bytes", i % 7).into_bytes()).collect();
    let refs: Vec<&[u8]> = pats.iter().map(|p| p.as_slice()).collect();
    // Whole patterns between fragments of them.
    let text: Vec<u8> = (0..400u32)
        .flat_map(|i| {
            if i % 4 == 0 {
                pats[i as usize % 200].clone()
            } else {
                format!("{:02}pq{:03}", i % 9, i % 250).into_bytes()
            }
        })
        .collect();
    for window in [8, 9, 10, 12, 20, 32] {
        let full = GramFilter::new(&refs, window).unwrap();
        for kernel in super::kernels_here() {
            let mut hits = 0;
            let mut f = full.clone();
            f.limit_simd(kernel);
            assert_eq!(f.simd(), kernel, "the kernel under test runs");
            for len in (0..300).step_by(7).chain([511, 512, 513, 1200]) {
                let hay = &text[..len];
                for wide in [false, true] {
                    for from in [0, 1, 5, 13] {
                        let want = single_hits(&f, hay, from, wide);
                        let got = all_hits(&f, hay, from, wide);
                        assert_eq!(got, want, "{kernel:?} window {window} len {len} wide {wide} from {from}");
                        hits += got.len();
                    }
                }
            }
            assert!(hits > 300, "the text holds pattern grams: {hits} hits");
        }
    }
}

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

/// Every kernel's [`GramFilter::first_start`] is the first start passing both single checks,
/// narrow and wide, for every range a probe hit can leave open (and longer ones, which the
/// AVX2 kernel leaves to the scalar code).
#[test]
fn first_start_agrees_with_single_checks() {
    let pats: Vec<Vec<u8>> = (0..200u32).map(|i| format!("head{i:04}-and-more").into_bytes()).collect();
    let refs: Vec<&[u8]> = pats.iter().map(|p| p.as_slice()).collect();
    let full = GramFilter::new(&refs, 16).unwrap();
    let hay: Vec<u8> = (0..400u32).flat_map(|i| format!("xhead{i:04}-and-more").into_bytes()).collect();
    for kernel in super::kernels_here() {
        let mut f = full.clone();
        f.limit_simd(kernel);
        assert_eq!(f.simd(), kernel, "the kernel under test runs");
        let mut found = 0;
        for wide in [false, true] {
            for lo in 0..hay.len() - 40 {
                for len in [1, 7, 8, 9, 11, 13, 29] {
                    let last = (lo + len - 1).min(hay.len() - f.window());
                    let want = (lo..=last).find(|&s| f.may_run(&hay, s, wide) && f.may_start(&hay, s));
                    assert_eq!(f.first_start(&hay, lo, last, wide), want, "{kernel:?} {lo}..={last} wide {wide}");
                    assert_eq!(f.first_start_scalar(&hay, lo, last, wide), want, "{lo}..={last}");
                    found += usize::from(want.is_some());
                }
            }
        }
        assert!(found > 100, "patterns present in the text: {found}");
    }
}

/// A start passes [`GramFilter::may_run`] only if every gram a pattern there would have passes:
/// a lone probe hit among grams of no pattern opens no start, and a whole pattern always does.
#[test]
fn a_start_needs_every_gram_of_a_pattern_there() {
    let pats: [&[u8]; 2] = [b"0123456789", b"ABCDEFGHIJ"];
    let f = GramFilter::new(&pats, 10).unwrap();
    for wide in [false, true] {
        for s in 0..30 {
            let mut hay = vec![b'.'; 50];
            hay[s..s + 10].copy_from_slice(pats[s % 2]);
            assert!(f.may_run(&hay, s, wide), "pattern at {s}, wide {wide}");
            assert_eq!(f.first_start(&hay, s.saturating_sub(3), s, wide), Some(s), "at {s}, wide {wide}");
            // All but the pattern's last byte: every gram but its last one is there.
            let mut cut = vec![b'.'; 50];
            cut[s..s + 9].copy_from_slice(&pats[s % 2][..9]);
            assert!(!f.may_run(&cut, s, wide), "a 9-byte piece at {s} passed, wide {wide}");
            assert_eq!(f.first_start(&cut, s.saturating_sub(3), s, wide), None, "piece at {s}, wide {wide}");
        }
    }
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

/// The AVX2 lookups of [`GramFilter::first_start`] give each position's single lookup, for
/// every lane count, narrow and wide, on text where about half the grams are in the filter.
#[test]
fn avx2_gram_lookups_agree_with_single_ones() {
    if !super::kernels_here().contains(&Simd::Avx2) {
        return; // kernels_here has logged the skip
    }
    let mut r = 0x2545_f491u64;
    let mut digit = move || {
        r = r.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        b'0' + (r >> 60) as u8 % 10
    };
    let hay: Vec<u8> = (0..600).map(|_| digit()).collect();
    let pats: Vec<&[u8]> = (0..60).map(|i| &hay[i * 5..i * 5 + 10]).collect();
    let f = GramFilter::new(&pats, 10).unwrap();
    assert_eq!(f.simd(), Simd::Avx2);
    let (mut passed, mut failed) = (0, 0);
    for wide in [false, true] {
        let len = if wide { WIDE } else { GRAM };
        for from in 0..hay.len() - 8 - len {
            for lanes in 1..=8 {
                // SAFETY: AVX2 is present; from + lanes - 1 + len <= hay.len().
                let got = unsafe { super::simd::present(&f, &hay, from, lanes, wide) };
                let want = (0..lanes).fold(0u32, |m, k| {
                    let q = from + k;
                    let ok = if wide { f.may_hit_wide(&hay, q) } else { f.grams.contains(gram_key(gram_at(&hay, q))) };
                    m | u32::from(ok) << k
                });
                assert_eq!(got, want, "from {from}, {lanes} lanes, wide {wide}");
                passed += want.count_ones();
                failed += lanes as u32 - want.count_ones();
            }
        }
    }
    assert!(passed > 1000 && failed > 1000, "{passed} lookups passed, {failed} failed");
}

/// Bytes that end where a page the process may not read begins: a kernel that reads one byte
/// past its payload faults instead of reading a neighbour's bytes unseen.
struct Guarded {
    base: *mut libc::c_void,
    len: usize,
}

impl Guarded {
    fn new(bytes: &[u8]) -> Self {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        assert!(bytes.len() <= page);
        let len = 2 * page;
        // SAFETY: a fresh private anonymous mapping of two pages.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        // SAFETY: the second page of the mapping just made; the copy ends at its start.
        unsafe {
            assert_eq!(libc::mprotect(base.cast::<u8>().add(page).cast(), page, libc::PROT_NONE), 0);
            let at = base.cast::<u8>().add(page - bytes.len());
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), at, bytes.len());
        }
        Guarded { base, len }
    }

    fn bytes(&self, n: usize) -> &[u8] {
        let page = self.len / 2;
        // SAFETY: the last n bytes of the readable page, written in `new` (n is at most what was).
        unsafe { std::slice::from_raw_parts(self.base.cast::<u8>().add(page - n), n) }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Every kernel, probes and checks, on payloads that end at an unreadable page, at every length
/// and start: none reads past the payload (it would fault), and the answers stay the single
/// probes' and checks'.
#[test]
fn no_kernel_reads_past_the_payload() {
    let pats: Vec<Vec<u8>> = (0..100u32).map(|i| format!("{:02}pq{i:03}rs+tail", i % 7).into_bytes()).collect();
    let refs: Vec<&[u8]> = pats.iter().map(|p| p.as_slice()).collect();
    // Whole patterns between near misses.
    let text: Vec<u8> = (0..40u32)
        .flat_map(|i| format!("{:02}pq{i:03}rs+tail", if i % 2 == 0 { i % 7 } else { 9 }).into_bytes())
        .collect();
    let page = Guarded::new(&text);
    let mut found = 0;
    for window in [8, 10, 14] {
        for kernel in super::kernels_here() {
            let mut f = GramFilter::new(&refs, window).unwrap();
            f.limit_simd(kernel);
            for len in 0..=80 {
                let hay = page.bytes(len);
                for wide in [false, true] {
                    assert_eq!(all_hits(&f, hay, 0, wide), single_hits(&f, hay, 0, wide), "{kernel:?} len {len}");
                    let stride = if wide { f.wide_stride() } else { f.stride() };
                    for last in 0..(len + 1).saturating_sub(f.window()) {
                        let lo = (last + 1).saturating_sub(stride);
                        let want = f.first_start_scalar(hay, lo, last, wide);
                        assert_eq!(f.first_start(hay, lo, last, wide), want, "{kernel:?} len {len} {lo}..={last}");
                        found += usize::from(want.is_some());
                    }
                }
            }
        }
    }
    assert!(found > 100, "starts found near the page end: {found}");
}

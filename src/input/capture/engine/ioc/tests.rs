//! IOC matcher tests: labels and hit counts, and the filtered matcher held to the plain
//! automaton's answers (deterministic cases for each boundary, and a property test).

use super::*;
use crate::input::capture::engine::gram::Simd;

fn pat(p: &str, name: &str) -> IocPattern {
    IocPattern { pattern: p.into(), attack_name: name.into(), attack_family: "udp_flood".into() }
}

#[test]
fn finds_patterns_and_aggregates_by_name() {
    let m = IocMatcher::new(&[pat("\\x00\\x00\\x00\\x01mirai", "mirai_botnet"), pat("LOIC", "loic"), pat("", "x")])
        .unwrap()
        .unwrap();
    assert_eq!(m.len(), 2);
    let mut hits = IocHits::default();
    for p in [&b"zz\x00\x00\x00\x01mirai..."[..], b"hello LOIC", b"nothing here", b"LOI"] {
        if let Some(id) = m.first_match(p) {
            hits.hit(id);
        }
    }
    assert_eq!(hits.total(), 2);
    let v = hits.to_json(Some(&m));
    assert_eq!(v[0]["attack_name"], "loic");
    assert_eq!(v[1]["attack_name"], "mirai_botnet");
    assert_eq!(v[0]["count"], 1);
}

#[test]
fn no_patterns_is_none_and_escapes_decode() {
    assert!(IocMatcher::new(&[]).unwrap().is_none());
    assert_eq!(unescape("a\\x41\\\\b\\xZZ"), b"aA\\b\\xZZ".to_vec());
}

fn alphabet_patterns(raw: &[Vec<u8>]) -> Vec<IocPattern> {
    // `\` is the escape character: spell every byte as \xNN so the bytes come through as-is.
    raw.iter()
        .map(|b| IocPattern {
            pattern: b.iter().map(|c| format!("\\x{c:02x}")).collect(),
            attack_name: String::new(),
            attack_family: String::new(),
        })
        .collect()
}

#[test]
fn large_sets_take_the_gram_filter_and_short_patterns_stay_found() {
    let mut raw: Vec<Vec<u8>> = (0..500u32).map(|i| format!("botnet-sig-{i:05}").into_bytes()).collect();
    raw.push(b"XY".to_vec());
    let m = IocMatcher::new(&alphabet_patterns(&raw)).unwrap().unwrap();
    assert!(m.describe().contains("gram filter"), "{}", m.describe());
    assert!(m.describe().contains("1 short patterns"), "{}", m.describe());
    assert_eq!(m.first_match(b"....botnet-sig-00042...."), Some(42));
    assert_eq!(m.first_match(b"..XY..botnet-sig-00042.."), Some(500));
    assert_eq!(m.first_match(b"botnet-sig-00499XY"), Some(499));
    assert_eq!(m.first_match(b"botnet-sig-0049"), None);
    assert_eq!(m.first_match(&b"botnet-sig-".repeat(100)), None, "many filter hits, no match");
}

#[test]
fn a_match_found_past_the_probe_does_not_hide_an_earlier_longer_one() {
    // Probe at 5 hits on C's first gram ("xabc"); its search span ends at 5 + 23 = 28, which
    // holds B (starting at 8) but not A (6..29). Answering B there would skip A.
    let mut raw: Vec<Vec<u8>> = (0..70u32).map(|i| format!("filler-{i:04}").into_bytes()).collect();
    raw.push(b"abcdefghijklmnopqrstuvw".to_vec()); // A, 70
    raw.push(b"cdefghij".to_vec()); // B, 71
    raw.push(b"xabcZZZZ".to_vec()); // C, 72
    let m = IocMatcher::new(&alphabet_patterns(&raw)).unwrap().unwrap();
    assert!(m.describe().contains("stride 5"), "{}", m.describe());
    assert_eq!(m.first_match(b"00000xabcdefghijklmnopqrstuvw0000"), Some(70));
}

#[test]
fn the_third_hit_one_probe_at_a_time_switches_to_wide_probes_from_its_range() {
    // Window 10: narrow probes every 7 bytes, wide ones every 5. One probe at a time, the hits
    // at 0 (D's "QQQQ") and 7 (E's "QABC") are checked and rule out starts up to 7; the third,
    // at 14 (on T's own gram "GHIJ"), switches to wide probes before it is checked, and the
    // first wide probe must cover a start at 8, where T is.
    let mut raw: Vec<Vec<u8>> = (0..70u32).map(|i| format!("filler-{i:04}").into_bytes()).collect();
    raw.push(b"QQQQzzzzzz".to_vec()); // D, 70
    raw.push(b"QABCzzzzzz".to_vec()); // E, 71
    raw.push(b"ABCDEFGHIJ".to_vec()); // T, 72
    let mut m = IocMatcher::new(&alphabet_patterns(&raw)).unwrap().unwrap();
    m.limit_simd(Simd::Scalar);
    assert!(m.describe().contains("stride 7"), "{}", m.describe());
    assert_eq!(m.first_match(b"QQQQ...QABCDEFGHIJ......"), Some(72));
}

#[test]
fn a_probe_step_with_several_hits_switches_to_wide_probes_from_its_first_open_start() {
    // Window 10: narrow probes every 7 bytes, wide ones every 5. The probe at 0 misses, so
    // starts up to 0 are ruled out; those at 7 (on T's own gram "GHIJ") and at 14, 21 and 28
    // (on D's "QQQQ") hit: with SIMD, four hits in one step switch to wide probes before any
    // is checked, and the first wide probe must cover a start at 1, where T is.
    let mut raw: Vec<Vec<u8>> = (0..70u32).map(|i| format!("filler-{i:04}").into_bytes()).collect();
    raw.push(b"QQQQzzzzzz".to_vec()); // D, 70
    raw.push(b"ABCDEFGHIJ".to_vec()); // T, 71
    let hay = format!(".ABCDEFGHIJ...QQQQ...QQQQ...QQQQ{}", ".".repeat(40));
    for kernel in crate::input::capture::engine::gram::kernels_here() {
        let mut m = IocMatcher::new(&alphabet_patterns(&raw)).unwrap().unwrap();
        m.limit_simd(kernel);
        assert!(m.describe().contains(&format!("{kernel:?} probes")), "{}", m.describe());
        assert!(m.describe().contains("stride 7"), "{}", m.describe());
        assert_eq!(m.first_match(hay.as_bytes()), Some(71), "{}", m.describe());
    }
}

#[test]
fn a_payload_started_with_wide_probes_sees_a_match_at_every_start() {
    // Window 10: wide probes every 5 bytes from byte 0. A probe at p covers the starts
    // p - 4 ..= p, so starts 0 to 4 rest on the probes at 0 and 5 alone.
    let mut raw: Vec<Vec<u8>> = (0..70u32).map(|i| format!("filler-{i:04}").into_bytes()).collect();
    raw.push(b"ABCDEFGHIJ".to_vec()); // T, 70
    for kernel in crate::input::capture::engine::gram::kernels_here() {
        let mut m = IocMatcher::new(&alphabet_patterns(&raw)).unwrap().unwrap();
        m.limit_simd(kernel);
        assert!(m.describe().contains(&format!("{kernel:?} probes")), "{}", m.describe());
        for start in 0..12 {
            let hay = format!("{}ABCDEFGHIJ{}", ".".repeat(start), ".".repeat(60));
            let mut hint = ScanHint::wide();
            assert_eq!(m.first_match_hinted(hay.as_bytes(), &mut hint), Some(70), "start {start}: {}", m.describe());
        }
    }
}

#[test]
fn the_hint_follows_the_traffic_and_rechecks_it() {
    // Text in the patterns' alphabet switches to wide probes; binary-looking bytes do not.
    let raw: Vec<Vec<u8>> = (0..2_000u32).map(|i| format!("{:010}", i as u64 * 7_919_317).into_bytes()).collect();
    let m = IocMatcher::new(&alphabet_patterns(&raw)).unwrap().unwrap();
    let digits: Vec<u8> =
        (0..400u64).map(|i| b'0' + (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as u8 % 10).collect();
    let mut hint = ScanHint::default();
    m.first_match_hinted(&digits, &mut hint);
    assert!(hint.wide, "digits against digit patterns switch to wide probes: {}", m.describe());
    for i in 0..RECHECK {
        assert_eq!(hint.started_wide, i);
        m.first_match_hinted(&digits, &mut hint);
    }
    assert_eq!(hint.started_wide, RECHECK);
    // The next payload starts narrow again and, with none of the patterns' bytes, stays so.
    m.first_match_hinted(&[b'.'; 400], &mut hint);
    assert!(!hint.wide && hint.started_wide == 0, "{hint:?}");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The filtered, split matcher answers exactly as one plain automaton over every
        /// pattern: leftmost start, first listed on a tie. A three-letter alphabet makes
        /// filter hits, overlaps and matches common.
        #[test]
        fn filtered_matcher_equals_the_plain_automaton(
            pats in proptest::collection::vec(proptest::collection::vec(0u8..3, 5..24), SMALL_SET + 1..200),
            hay in proptest::collection::vec(0u8..3, 0..700),
            planted in proptest::collection::vec((any::<proptest::sample::Index>(), 0usize..600), 0..4),
        ) {
            let mut hay = hay;
            for (i, at) in planted {
                let p = &pats[i.index(pats.len())];
                if at + p.len() <= hay.len() {
                    hay[at..at + p.len()].copy_from_slice(p);
                }
            }
            let ps = alphabet_patterns(&pats);
            let fast = IocMatcher::build(&ps, true).unwrap().unwrap();
            let plain = IocMatcher::build(&ps, false).unwrap().unwrap();
            let want = plain.first_match(&hay);
            for kernel in crate::input::capture::engine::gram::kernels_here().into_iter().rev() {
                let mut fast = fast.clone();
                fast.limit_simd(kernel);
                prop_assert!(fast.describe().contains(&format!("{kernel:?} probes")), "{}", fast.describe());
                prop_assert_eq!(fast.first_match(&hay), want, "{}", fast.describe());
                // As the next payload of a stream that switched to wide probes.
                prop_assert_eq!(fast.first_match_hinted(&hay, &mut ScanHint::wide()), want, "{}", fast.describe());
            }
        }
    }
}

#[test]
fn matches_only_in_the_scanned_prefix() {
    let m = IocMatcher::new(&[pat("needle", "n")]).unwrap().unwrap();
    let mut p = vec![b'.'; SCAN_BYTES + 10];
    p.extend_from_slice(b"needle");
    assert_eq!(m.first_match(&p), None);
    p[10..16].copy_from_slice(b"needle");
    assert_eq!(m.first_match(&p), Some(0));
}

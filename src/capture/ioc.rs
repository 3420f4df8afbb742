//! IOC payload matching (§7.4): every pattern (config `ioc_patterns` plus the API's) compiled
//! once into one Aho-Corasick automaton, so a payload is scanned once whatever the number of
//! patterns. Small sets (up to [`SMALL_SET`]) use the crate's SIMD prefilter to skip ahead;
//! larger ones put their patterns of [`MIN_FILTERED_LEN`] bytes or more behind the
//! [`GramFilter`], which does the same for any number of patterns, and keep the shorter ones in a
//! second automaton. Either way the answer is the plain automaton's: the leftmost match, the
//! first listed on a tie. Patterns are byte strings; `\xNN` writes a raw byte and `\\` a
//! backslash.
//!
//! Owns the automata, the filter and per-pattern hit counters; does no I/O.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, Input, Match, MatchKind};
use serde_json::{json, Value};

use super::gram::{GramFilter, HITS};
use crate::config::IocPattern;

/// Payload bytes scanned per packet: botnet signatures sit in the first bytes; bounding the scan
/// keeps the cost per packet fixed.
pub const SCAN_BYTES: usize = 512;

/// Above this many patterns the automaton is a contiguous NFA rather than a DFA (memory).
pub const DFA_MAX_PATTERNS: usize = 2_000;

/// Up to this many patterns the crate's own SIMD prefilter (Teddy) skips ahead; above it the
/// patterns of at least [`MIN_FILTERED_LEN`] bytes go behind the [`GramFilter`].
pub const SMALL_SET: usize = 64;

/// Patterns shorter than this stay in a plain automaton next to the filtered one: a short
/// window would mean a probe every byte or two.
pub const MIN_FILTERED_LEN: usize = 8;

/// Filter hits verified one by one in a payload before the rest of it is searched in one pass:
/// bounds the cost of payloads that look like the patterns everywhere.
const MAX_VERIFY: usize = 8;

#[derive(Debug, Clone)]
pub struct IocMatcher {
    scan: Scan,
    /// attack_name, attack_family per pattern id.
    labels: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
enum Scan {
    /// One automaton over every pattern (small sets, or sets of short patterns only).
    Whole(AhoCorasick),
    /// Large sets: the long patterns behind the gram filter, any short ones in their own
    /// automaton. Automaton pattern ids index the `*_ids` tables of global ids.
    Split { long: Filtered, short: Option<(AhoCorasick, Vec<usize>)> },
}

#[derive(Debug, Clone)]
struct Filtered {
    ac: AhoCorasick,
    ids: Vec<usize>,
    filter: GramFilter,
    max_len: usize,
}

impl IocMatcher {
    /// Compile the patterns; None when there are none. Empty patterns are skipped.
    pub fn new(patterns: &[IocPattern]) -> crate::Result<Option<Self>> {
        Self::build(patterns, true)
    }

    /// As [`IocMatcher::new`]; `skip: false` turns off every skip-ahead (the crate's SIMD
    /// prefilter and the gram filter), leaving the plain automaton walk (benches).
    pub fn build(patterns: &[IocPattern], skip: bool) -> crate::Result<Option<Self>> {
        let mut bytes = Vec::new();
        let mut labels = Vec::new();
        for p in patterns {
            let b = unescape(&p.pattern);
            if b.is_empty() {
                continue;
            }
            bytes.push(b);
            let name = if p.attack_name.is_empty() { p.pattern.clone() } else { p.attack_name.clone() };
            labels.push((name, p.attack_family.clone()));
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        let long: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i].len() >= MIN_FILTERED_LEN).collect();
        let scan = if !skip || bytes.len() <= SMALL_SET || long.is_empty() {
            Scan::Whole(automaton(&bytes, skip)?)
        } else {
            let short: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i].len() < MIN_FILTERED_LEN).collect();
            let long_bytes: Vec<&[u8]> = long.iter().map(|&i| bytes[i].as_slice()).collect();
            let window = long_bytes.iter().map(|b| b.len()).min().unwrap_or(0);
            let filter = GramFilter::new(&long_bytes, window)
                .ok_or_else(|| crate::Error::Runtime("IOC filter: window shorter than a gram".into()))?;
            let max_len = long_bytes.iter().map(|b| b.len()).max().unwrap_or(0);
            let long = Filtered { ac: automaton(&long_bytes, false)?, ids: long, filter, max_len };
            let short = if short.is_empty() {
                None
            } else {
                let short_bytes: Vec<&[u8]> = short.iter().map(|&i| bytes[i].as_slice()).collect();
                Some((automaton(&short_bytes, true)?, short))
            };
            Scan::Split { long, short }
        };
        Ok(Some(IocMatcher { scan, labels }))
    }

    /// The automata, filter and heap sizes, for logs and benches.
    pub fn describe(&self) -> String {
        let ac = |a: &AhoCorasick| format!("{:?} {} KiB", a.kind(), a.memory_usage() / 1024);
        match &self.scan {
            Scan::Whole(a) => ac(a),
            Scan::Split { long, short } => format!(
                "{} patterns behind a {} KiB gram filter (window {}, stride {}, {:.1} % set) + {}{}",
                long.ids.len(),
                long.filter.memory_bytes() / 1024,
                long.filter.window(),
                long.filter.stride(),
                long.filter.density() * 100.0,
                ac(&long.ac),
                short.as_ref().map(|(a, ids)| format!("; {} short patterns: {}", ids.len(), ac(a))).unwrap_or_default()
            ),
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The leftmost pattern found in the payload's first [`SCAN_BYTES`] (the first listed when
    /// several start there), as its id.
    #[inline]
    pub fn first_match(&self, payload: &[u8]) -> Option<usize> {
        let p = &payload[..payload.len().min(SCAN_BYTES)];
        match &self.scan {
            Scan::Whole(ac) => ac.find(p).map(|m| m.pattern().as_usize()),
            Scan::Split { long, short } => {
                let l = long.find(p).map(|m| (m.start(), long.ids[m.pattern().as_usize()]));
                let s =
                    short.as_ref().and_then(|(ac, ids)| ac.find(p).map(|m| (m.start(), ids[m.pattern().as_usize()])));
                match (l, s) {
                    (Some(a), Some(b)) => Some(a.min(b).1),
                    (a, b) => a.or(b).map(|(_, id)| id),
                }
            }
        }
    }

    /// (attack_name, attack_family) of a pattern id.
    pub fn label(&self, id: usize) -> (&str, &str) {
        self.labels.get(id).map(|(n, f)| (n.as_str(), f.as_str())).unwrap_or(("", ""))
    }
}

impl Filtered {
    /// Leftmost-first match. Probes rule out starts `stride` at a time; a probe that hits is
    /// verified by searching only the bytes a match starting in its range can cover.
    #[inline]
    fn find(&self, hay: &[u8]) -> Option<Match> {
        let f = &self.filter;
        if hay.len() < f.window() {
            return None;
        }
        let stride = f.stride();
        let (mut verified, mut from, mut hits) = (0, 0, [0u32; HITS]);
        loop {
            let (n, next) = f.hits(hay, from, &mut hits);
            for &pos in &hits[..n] {
                let pos = pos as usize;
                // Every start before `pos + 1 - stride` is ruled out by earlier probes, and
                // one past `last` leaves no room for the shortest pattern.
                let last = pos.min(hay.len() - f.window());
                let Some(lo) = f.first_start(hay, pos.saturating_sub(stride - 1), last) else {
                    continue;
                };
                verified += 1;
                if verified > MAX_VERIFY {
                    return self.ac.find(Input::new(hay).span(lo..hay.len()));
                }
                let hi = (pos + self.max_len).min(hay.len());
                if let Some(m) = self.ac.find(Input::new(hay).span(lo..hi)) {
                    // A later start could hide an earlier one ending past `hi`: only starts
                    // this probe covers are final.
                    if m.start() <= pos {
                        return Some(m);
                    }
                }
            }
            if n < HITS {
                return None;
            }
            from = next;
        }
    }
}

/// One leftmost-first automaton: a DFA (one table lookup per byte) up to [`DFA_MAX_PATTERNS`],
/// else the contiguous NFA, a few MiB where a DFA of 100,000 patterns takes ~90 MiB. Either walks
/// each byte once, whatever the number of patterns.
fn automaton<B: AsRef<[u8]>>(bytes: &[B], prefilter: bool) -> crate::Result<AhoCorasick> {
    let kind = if bytes.len() <= DFA_MAX_PATTERNS { AhoCorasickKind::DFA } else { AhoCorasickKind::ContiguousNFA };
    let build = |kind| {
        AhoCorasickBuilder::new().match_kind(MatchKind::LeftmostFirst).prefilter(prefilter).kind(kind).build(bytes)
    };
    build(Some(kind))
        .or_else(|_| build(None))
        .map_err(|e| crate::Error::Runtime(format!("cannot compile {} IOC patterns: {e}", bytes.len())))
}

/// Hit counts per pattern id, kept apart from the shared automaton so windows can be cloned.
#[derive(Debug, Clone, Default)]
pub struct IocHits {
    counts: Vec<(usize, u64)>,
}

impl IocHits {
    #[inline]
    pub fn hit(&mut self, id: usize) {
        if let Some((_, c)) = self.counts.iter_mut().find(|(i, _)| *i == id) {
            *c += 1;
        } else if self.counts.len() < 256 {
            // Bounded: at most this many distinct patterns are tracked per window.
            self.counts.push((id, 1));
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, c)| c).sum()
    }

    /// Hits aggregated by attack name, largest first: (name, family, count).
    pub fn by_name(&self, m: &IocMatcher) -> Vec<(String, String, u64)> {
        let mut out: Vec<(String, String, u64)> = Vec::new();
        for &(id, c) in &self.counts {
            let (name, fam) = m.label(id);
            match out.iter_mut().find(|(n, _, _)| n == name) {
                Some(e) => e.2 += c,
                None => out.push((name.to_string(), fam.to_string(), c)),
            }
        }
        out.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        out
    }

    /// The `ioc_hits` evidence: [{attack_name, attack_family, count}].
    pub fn to_json(&self, m: Option<&IocMatcher>) -> Value {
        let Some(m) = m else { return json!([]) };
        Value::Array(
            self.by_name(m)
                .into_iter()
                .map(|(n, f, c)| json!({"attack_name": n, "attack_family": f, "count": c}))
                .collect(),
        )
    }

    pub fn clear(&mut self) {
        self.counts.clear();
    }
}

/// `\xNN` → byte, `\\` → `\`; anything else literal.
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            if b[i + 1] == b'\\' {
                out.push(b'\\');
                i += 2;
                continue;
            }
            if b[i + 1] == b'x' && i + 3 < b.len() {
                if let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 2..i + 4]).unwrap_or("zz"), 16) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
                prop_assert_eq!(fast.first_match(&hay), plain.first_match(&hay), "{}", fast.describe());
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
}

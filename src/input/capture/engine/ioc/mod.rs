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

use super::gram::{GramFilter, Simd, HITS};
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

/// A payload is probed with 6-byte grams once this many of its 4-byte probes have hit and they
/// are more than one in [`WIDE_SHARE`] of its probes so far: text in the patterns' own small
/// alphabet, where most probes hit. The switch comes before the latest probe call's hits are
/// checked, so a SIMD step that mostly hits costs no check. Scattered false hits (a large set of
/// binary patterns) are cheaper to check one by one than 6-byte probes, which
/// come more often.
const WIDE_AFTER: usize = 3;
const WIDE_SHARE: usize = 4;

/// Payloads that start with wide probes after one that switched to them, before one starts
/// with 4-byte probes again to see whether the traffic still needs them.
pub const RECHECK: u32 = 64;

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
    pub fn new(patterns: &[IocPattern]) -> crate::error::Result<Option<Self>> {
        Self::build(patterns, true)
    }

    /// [`IocMatcher::new`] for a capture thread: shared, and the matcher it built logged once.
    pub fn for_capture(patterns: &[IocPattern]) -> crate::error::Result<Option<std::sync::Arc<Self>>> {
        let m = Self::new(patterns)?.map(std::sync::Arc::new);
        if let Some(m) = &m {
            log::info!("IOC matching: {} patterns ({})", m.len(), m.describe());
        }
        Ok(m)
    }

    /// As [`IocMatcher::new`]; `skip: false` turns off every skip-ahead (the crate's SIMD
    /// prefilter and the gram filter), leaving the plain automaton walk (benches).
    pub fn build(patterns: &[IocPattern], skip: bool) -> crate::error::Result<Option<Self>> {
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
            let filter = GramFilter::new(&long_bytes, window).ok_or_else(|| crate::error::Error::Invalid {
                what: "IOC patterns",
                why: "IOC filter: window shorter than a gram".into(),
            })?;
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
                "{} patterns behind a {} KiB gram filter (window {}, stride {}, {:.1} % set{}, {:?} probes) + {}{}",
                long.ids.len(),
                long.filter.memory_bytes() / 1024,
                long.filter.window(),
                long.filter.stride(),
                long.filter.density() * 100.0,
                if long.filter.uses_pairs() { ", two-byte table" } else { "" },
                long.filter.simd(),
                ac(&long.ac),
                short.as_ref().map(|(a, ids)| format!("; {} short patterns: {}", ids.len(), ac(a))).unwrap_or_default()
            ),
        }
    }

    /// Run the gram filter's probes with at most this kernel (benches compare them).
    pub fn limit_simd(&mut self, simd: Simd) {
        if let Scan::Split { long, .. } = &mut self.scan {
            long.filter.limit_simd(simd);
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
    pub fn first_match(&self, payload: &[u8]) -> Option<usize> {
        self.first_match_hinted(payload, &mut ScanHint::default())
    }

    /// [`IocMatcher::first_match`] for one of a stream of payloads: `hint` carries what the
    /// earlier ones showed (see [`ScanHint`]). The answer never depends on it, only the cost.
    #[inline]
    pub fn first_match_hinted(&self, payload: &[u8], hint: &mut ScanHint) -> Option<usize> {
        let p = &payload[..payload.len().min(SCAN_BYTES)];
        match &self.scan {
            Scan::Whole(ac) => ac.find(p).map(|m| m.pattern().as_usize()),
            Scan::Split { long, short } => {
                let l = long.find(p, hint).map(|m| (m.start(), long.ids[m.pattern().as_usize()]));
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

/// What a stream's earlier payloads tell the next one about the gram filter: whether they
/// needed wide probes. A flood repeats one payload shape, so after a payload that switched to
/// wide probes the next ones start with them, without the 4-byte probes that would hit anyway
/// (a gather into a bitmap that goes cold while every payload switches); every [`RECHECK`]
/// payloads one starts narrow again, so a change in the traffic is seen.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanHint {
    wide: bool,
    /// Payloads started with wide probes since the last one that started narrow.
    started_wide: u32,
}

impl ScanHint {
    /// The hint after a payload that switched to wide probes (tests and fuzzing use it).
    pub fn wide() -> Self {
        ScanHint { wide: true, started_wide: 0 }
    }
}

enum Step {
    /// The answer for the whole payload.
    Done(Option<Match>),
    /// No match starts in the probe's range; go on.
    Next,
}

impl Filtered {
    /// Leftmost-first match. Probes rule out starts `stride` at a time; a probe that hits is
    /// verified by searching only the bytes a match starting in its range can cover. When the
    /// 4-byte probes keep hitting ([`WIDE_AFTER`]) the rest of the payload is probed with 6-byte
    /// grams, which hit far less on text sharing a small alphabet with the patterns.
    /// A payload started with wide probes ([`ScanHint`]) probes from byte 0.
    #[inline]
    fn find(&self, hay: &[u8], hint: &mut ScanHint) -> Option<Match> {
        if hay.len() < self.filter.window() {
            return None;
        }
        let start_wide = hint.wide && hint.started_wide < RECHECK;
        let (found, wide) = self.search(hay, start_wide);
        *hint = if start_wide {
            ScanHint { wide: true, started_wide: hint.started_wide + 1 }
        } else {
            ScanHint { wide, started_wide: 0 }
        };
        found
    }

    /// [`Filtered::find`] from the first probe, wide or not: the answer and whether the payload
    /// ended on wide probes.
    #[inline]
    fn search(&self, hay: &[u8], mut wide: bool) -> (Option<Match>, bool) {
        let f = &self.filter;
        let (mut verified, mut seen, mut from, mut hits) = (0, 0, 0, [0u32; HITS]);
        loop {
            let stride = if wide { f.wide_stride() } else { f.stride() };
            let (n, next) = f.hits(hay, from, wide, &mut hits);
            if n == 0 {
                return (None, wide);
            }
            seen += n;
            if !wide && seen >= WIDE_AFTER && seen * WIDE_SHARE > hits[n - 1] as usize / stride + 1 {
                // The hits of earlier calls were checked: every start before the first new
                // hit's range is ruled out. A wide probe at `p` covers starts
                // `p + 1 - wide_stride ..= p`.
                (wide, from) = (true, (hits[0] as usize + 1).saturating_sub(stride) + f.wide_stride() - 1);
                continue;
            }
            for &pos in &hits[..n] {
                if let Step::Done(m) = self.check(hay, pos as usize, wide, &mut verified) {
                    return (m, wide);
                }
            }
            from = next;
        }
    }

    /// A probe at `pos` hit (`wide`: a wide probe): check the starts it leaves open (`pos + 1 -
    /// stride ..= pos`; every earlier start is ruled out) against the grams and heads of the
    /// patterns ([`GramFilter::first_start`]), then search from the first that passes.
    #[inline]
    fn check(&self, hay: &[u8], pos: usize, wide: bool, verified: &mut usize) -> Step {
        let stride = if wide { self.filter.wide_stride() } else { self.filter.stride() };
        let f = &self.filter;
        // One past `last` leaves no room for the shortest pattern.
        let last = pos.min(hay.len() - f.window());
        let Some(lo) = f.first_start(hay, pos.saturating_sub(stride - 1), last, wide) else {
            return Step::Next;
        };
        *verified += 1;
        if *verified > MAX_VERIFY {
            return Step::Done(self.ac.find(Input::new(hay).span(lo..hay.len())));
        }
        let hi = (pos + self.max_len).min(hay.len());
        match self.ac.find(Input::new(hay).span(lo..hi)) {
            // A later start could hide an earlier one ending past `hi`: only starts this probe
            // covers are final.
            Some(m) if m.start() <= pos => Step::Done(Some(m)),
            _ => Step::Next,
        }
    }
}

/// One leftmost-first automaton: a DFA (one table lookup per byte) up to [`DFA_MAX_PATTERNS`],
/// else the contiguous NFA, a few MiB where a DFA of 100,000 patterns takes ~90 MiB. Either walks
/// each byte once, whatever the number of patterns.
fn automaton<B: AsRef<[u8]>>(bytes: &[B], prefilter: bool) -> crate::error::Result<AhoCorasick> {
    let kind = if bytes.len() <= DFA_MAX_PATTERNS { AhoCorasickKind::DFA } else { AhoCorasickKind::ContiguousNFA };
    let build = |kind| {
        AhoCorasickBuilder::new().match_kind(MatchKind::LeftmostFirst).prefilter(prefilter).kind(kind).build(bytes)
    };
    build(Some(kind)).or_else(|_| build(None)).map_err(|e| crate::error::Error::Invalid {
        what: "IOC patterns",
        why: format!("cannot compile {} IOC patterns: {e}", bytes.len()),
    })
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
mod tests;

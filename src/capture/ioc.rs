//! IOC payload matching (§7.4): every pattern (config `ioc_patterns` plus the API's) compiled
//! once into one Aho-Corasick automaton, so a payload is scanned once whatever the number of
//! patterns. Patterns are byte strings; `\xNN` writes a raw byte and `\\` a backslash.
//!
//! Owns the automaton and per-pattern hit counters; does no I/O.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use serde_json::{json, Value};

use crate::config::IocPattern;

/// Payload bytes scanned per packet: botnet signatures sit in the first bytes; bounding the scan
/// keeps the cost per packet fixed.
pub const SCAN_BYTES: usize = 512;

/// Above this many patterns the automaton is a contiguous NFA rather than a DFA (memory).
pub const DFA_MAX_PATTERNS: usize = 2_000;

#[derive(Debug, Clone)]
pub struct IocMatcher {
    ac: AhoCorasick,
    /// attack_name, attack_family per pattern id.
    labels: Vec<(String, String)>,
}

impl IocMatcher {
    /// Compile the patterns; None when there are none. Empty patterns are skipped.
    pub fn new(patterns: &[IocPattern]) -> crate::Result<Option<Self>> {
        Self::build(patterns, true)
    }

    /// As [`IocMatcher::new`]; `prefilter: false` turns off the crate's SIMD skip-ahead (which
    /// only exists for small pattern sets), leaving the plain automaton walk (benches).
    pub fn build(patterns: &[IocPattern], prefilter: bool) -> crate::Result<Option<Self>> {
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
        // Small sets: a DFA (one table lookup per byte). Large sets: the contiguous NFA, a few
        // MiB where a DFA of 100,000 patterns takes ~90 MiB. Either walks each byte once,
        // whatever the number of patterns.
        let kind = if bytes.len() <= DFA_MAX_PATTERNS { AhoCorasickKind::DFA } else { AhoCorasickKind::ContiguousNFA };
        let build = |kind| {
            AhoCorasickBuilder::new().match_kind(MatchKind::LeftmostFirst).prefilter(prefilter).kind(kind).build(&bytes)
        };
        let ac = build(Some(kind))
            .or_else(|_| build(None))
            .map_err(|e| crate::Error::Runtime(format!("cannot compile {} IOC patterns: {e}", bytes.len())))?;
        Ok(Some(IocMatcher { ac, labels }))
    }

    /// The automaton kind and its heap size, for logs and benches.
    pub fn describe(&self) -> String {
        format!("{:?}, {} KiB", self.ac.kind(), self.ac.memory_usage() / 1024)
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The first pattern found in the payload's first [`SCAN_BYTES`], as its id.
    #[inline]
    pub fn first_match(&self, payload: &[u8]) -> Option<usize> {
        let p = &payload[..payload.len().min(SCAN_BYTES)];
        self.ac.find(p).map(|m| m.pattern().as_usize())
    }

    /// (attack_name, attack_family) of a pattern id.
    pub fn label(&self, id: usize) -> (&str, &str) {
        self.labels.get(id).map(|(n, f)| (n.as_str(), f.as_str())).unwrap_or(("", ""))
    }
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

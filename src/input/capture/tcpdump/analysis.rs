//! Classification in tcpdump mode, from the files through the shared engine (§7.5): before an
//! incident the newest ring file is followed in windows of 2 s of packet time, so the
//! classification at open comes from the ring; during the incident its own growing capture
//! feeds an engine seeded with the window that holds the onset.
//!
//! Runs on the supervisor thread. Reads files only; the engine does all decoding.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use log::warn;

use super::tail::Tail;
use crate::event::Classification;
use crate::input::capture::engine::classify::MIN_PACKETS;
use crate::input::capture::pcapfile::Frame;
use crate::input::capture::{Engine, IocMatcher};

/// Length of a statistics window before an incident opens (packet time).
pub const WINDOW_NS: u64 = 2_000_000_000;
/// Bytes read per file per poll: bounds the work of one poll when a flood fills the ring.
const BUDGET: u64 = 16 << 20;

pub struct Analysis {
    window: Engine,
    prev: Engine,
    window_start_ns: u64,
    ring: Option<Tail>,
    /// After an incident (or a file that cannot be read), ring reading resumes with the first
    /// ring file newer than this one: the flood in between is not worth re-reading.
    resume_after: Option<PathBuf>,
    incident: Option<(Engine, Tail)>,
}

impl Analysis {
    pub fn new(ioc: Option<Arc<IocMatcher>>) -> Self {
        let e = Engine::new(ioc);
        Analysis { window: e.clone(), prev: e, window_start_ns: 0, ring: None, resume_after: None, incident: None }
    }

    /// Match later payloads against `ioc` (new patterns from the API), the open incident too.
    pub fn set_ioc(&mut self, ioc: Option<Arc<IocMatcher>>) {
        self.window.set_ioc(ioc.clone());
        self.prev.set_ioc(ioc.clone());
        if let Some((e, _)) = self.incident.as_mut() {
            e.set_ioc(ioc);
        }
    }

    /// Read what the ring gained (`ring_files` oldest first). True when packets were read.
    pub fn poll_ring(&mut self, ring_files: &[PathBuf]) -> bool {
        if self.incident.is_some() {
            return false;
        }
        let Some(newest) = ring_files.last() else { return false };
        if let Some(after) = &self.resume_after {
            if super::ring::ring_order(newest) <= super::ring::ring_order(after) {
                return false;
            }
            self.resume_after = None;
        }
        let mut read = false;
        if self.ring.as_ref().is_some_and(|t| t.path() != newest) {
            // Rotated: finish the previous file, then follow the new one.
            read |= self.read_ring();
            self.ring = None;
        }
        if self.ring.is_none() {
            self.ring = Some(Tail::new(newest));
        }
        read | self.read_ring()
    }

    fn read_ring(&mut self) -> bool {
        let Some(tail) = self.ring.as_mut() else { return false };
        let (window, prev, start) = (&mut self.window, &mut self.prev, &mut self.window_start_ns);
        let on_frame = |f: &Frame<'_>| {
            if f.ts_ns.saturating_sub(*start) >= WINDOW_NS {
                std::mem::swap(window, prev);
                window.reset();
                *start = f.ts_ns;
            }
            window.push_frame(f);
        };
        match tail.poll(BUDGET, on_frame) {
            Ok(n) => n > 0,
            Err(e) => {
                warn!("{}: cannot analyse this ring file ({e}); waiting for the next one", tail.path().display());
                self.resume_after = Some(tail.path().to_path_buf());
                self.ring = None;
                false
            }
        }
    }

    /// An incident opened: catch up with the ring, then follow the incident's own capture.
    pub fn open(&mut self, capture: &Path) {
        self.read_ring();
        self.ring = None;
        self.incident = Some((self.window.clone(), Tail::new(capture)));
    }

    /// Read what the incident capture gained. True when packets were read.
    pub fn poll_incident(&mut self) -> bool {
        let Some((engine, tail)) = self.incident.as_mut() else { return false };
        match tail.poll(BUDGET, |f| engine.push_frame(f)) {
            Ok(n) => n > 0,
            Err(e) => {
                warn!("{}: cannot analyse the incident capture: {e}", tail.path().display());
                false
            }
        }
    }

    /// The incident resolved: start afresh with the next ring file.
    pub fn resolve(&mut self, ring_files: &[PathBuf]) {
        self.incident = None;
        self.resume_after = ring_files.last().cloned();
        self.window.reset();
        self.prev.reset();
        self.window_start_ns = 0;
    }

    /// The incident's engine once it has enough packets, else the latest ring window.
    pub fn classification(&self) -> Option<Classification> {
        let enough = |e: &Engine| e.tally().ip_packets() >= MIN_PACKETS;
        let engine = match &self.incident {
            Some((e, _)) if enough(e) => e,
            _ if enough(&self.window) => &self.window,
            _ if enough(&self.prev) => &self.prev,
            _ => return None,
        };
        Some(engine.classification())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::capture::engine::synth;
    use crate::input::capture::pcapfile::PcapWriter;

    fn write(path: &Path, frames: &[(u64, Vec<u8>)]) {
        let mut w = PcapWriter::new(std::fs::File::create(path).unwrap(), 1, 0).unwrap();
        for (ts, f) in frames {
            w.write(*ts, f.len() as u32, f).unwrap();
        }
    }

    #[test]
    fn ring_window_classifies_at_open_and_the_incident_capture_takes_over() {
        let d = tempfile::tempdir().unwrap();
        let ring = d.path().join("ring_20261121T000000.pcap");
        let s = 1_000_000_000u64;
        // 3 s of quiet UDP, then a SYN flood in the last second before the open.
        let mut frames: Vec<(u64, Vec<u8>)> = (0..30)
            .map(|i| (i * s / 10, synth::eth4([10, 0, 0, 9], [10, 0, 0, 1], 17, &synth::udp(5353, 53, &[0; 40]))))
            .collect();
        frames.extend((0..200).map(|i| {
            (
                3 * s + i * s / 1000,
                synth::eth4([10, 0, 1, (i % 250) as u8], [10, 0, 0, 1], 6, &synth::tcp(i as u16 + 1024, 80, 0x02, &[])),
            )
        }));
        write(&ring, &frames);
        let mut a = Analysis::new(None);
        assert!(a.poll_ring(std::slice::from_ref(&ring)));
        assert_eq!(a.classification().unwrap().attack_family, "syn_flood");

        let capture = d.path().join("incident.pcap");
        a.open(&capture);
        write(
            &capture,
            &(0..500)
                .map(|i| (4 * s + i, synth::eth4([10, 0, 2, 1], [10, 0, 0, 1], 17, &synth::udp(123, 40000, &[0; 400]))))
                .collect::<Vec<_>>(),
        );
        assert!(a.poll_incident());
        let c = a.classification().unwrap();
        // The window holding the onset (10 UDP + 200 SYN since t = 2 s) plus the 500 captured.
        assert_eq!(c.evidence["total_packets"], 710, "seeded with the onset window: {c:?}");

        a.resolve(std::slice::from_ref(&ring));
        assert!(a.classification().is_none());
        assert!(!a.poll_ring(std::slice::from_ref(&ring)), "the flood in the old ring file is skipped");
    }
}

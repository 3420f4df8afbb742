//! In-process capture (`capture-scapy`, §7): libpcap on the monitored interface on its own
//! thread, every packet through the [`Engine`], the pre-attack [`Ring`], incident files through
//! the [`EvidenceWriter`]. [`LiveCapture`] is the agent's [`PacketInsight`]: its methods only
//! lock shared state for microseconds and never wait on the capture, the disk or the network.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use log::{info, warn};

use super::engine::Engine;
use super::evidence::{incident_path, EvidenceWriter, Retention};
use super::ioc::IocMatcher;
use super::parse::LinkType;
use super::ring::Ring;
use crate::config::Settings;
use crate::counters::{choose_interface, CounterSource, ProcSource};
use crate::event::Classification;
use crate::insight::PacketInsight;

/// Length of a statistics window before an incident opens.
pub const WINDOW_NS: u64 = 2_000_000_000;
/// libpcap read timeout: also how often the thread checks for stop and reads drop counts.
const READ_TIMEOUT_MS: i32 = 100;

struct Incident {
    engine: Engine,
    kept: u64,
    path: Option<String>,
}

struct Shared {
    link: LinkType,
    linktype: u32,
    window: Engine,
    prev: Engine,
    window_start_ns: u64,
    ring: Ring,
    incident: Option<Incident>,
    writer: Option<EvidenceWriter>,
    max_packets: u64,
    kernel_dropped: u64,
}

impl Shared {
    fn on_packet(&mut self, ts_ns: u64, wire_len: u32, data: &[u8]) {
        if ts_ns.saturating_sub(self.window_start_ns) >= WINDOW_NS {
            std::mem::swap(&mut self.window, &mut self.prev);
            self.window.reset();
            self.window_start_ns = ts_ns;
        }
        self.window.push(self.link, ts_ns, wire_len, data);
        if let Some(inc) = self.incident.as_mut() {
            inc.engine.push(self.link, ts_ns, wire_len, data);
            if inc.path.is_some() && inc.kept < self.max_packets {
                inc.kept += 1;
                if let Some(w) = self.writer.as_mut() {
                    w.packet(ts_ns, wire_len, data);
                }
            }
        } else {
            self.ring.push(ts_ns, wire_len, data);
        }
    }
}

/// The running capture; stops its thread when dropped.
pub struct LiveCapture {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    running: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pcap_enabled: bool,
    pcap_dir: std::path::PathBuf,
    snaplen: u32,
}

/// The interface capture should watch: the configured one, or `auto` resolved as the counters do.
pub fn capture_interface(settings: &Settings) -> Option<String> {
    let mut src = ProcSource::new(&settings.procfs_root);
    let table = src.net_dev().ok()?;
    choose_interface(&settings.interface, &table, src.default_route_iface().as_deref())
}

/// Open libpcap on the monitored interface and start the capture thread. Err is the reason
/// capture is off, for the one log line.
pub fn start(settings: &Settings) -> Result<LiveCapture, String> {
    super::privilege::check()?;
    let iface = capture_interface(settings).ok_or("no interface to capture on (none found in /proc/net/dev)")?;
    let snaplen = if settings.pcap_snaplen == 0 { 262_144 } else { settings.pcap_snaplen };
    let cap = pcap::Capture::from_device(iface.as_str())
        .and_then(|c| c.snaplen(snaplen as i32).timeout(READ_TIMEOUT_MS).buffer_size(16 << 20).promisc(false).open())
        .map_err(|e| format!("cannot capture on {iface}: {e}"))?;
    let linktype = cap.get_datalink().0 as u32;
    let link = LinkType::from_linktype(linktype).ok_or(format!("{iface}: link type {linktype} is not supported"))?;
    let ioc = IocMatcher::new(&settings.ioc_patterns).map_err(|e| e.to_string())?.map(Arc::new);
    let writer = if settings.pcap_enabled {
        let r = Retention {
            dir: settings.pcap_dir.clone(),
            max_age: Duration::from_secs(u64::from(settings.pcap_retention_days) * 86_400),
            max_bytes: settings.pcap_max_disk_mb.saturating_mul(1 << 20),
        };
        Some(EvidenceWriter::spawn(r).map_err(|e| format!("cannot start the capture writer: {e}"))?)
    } else {
        None
    };
    let shared = Arc::new(Mutex::new(Shared {
        link,
        linktype,
        window: Engine::new(ioc.clone()),
        prev: Engine::new(ioc),
        window_start_ns: 0,
        ring: Ring::new(if settings.pcap_enabled { settings.pcap_ring_packets } else { 0 }),
        incident: None,
        writer,
        max_packets: settings.pcap_max_packets,
        kernel_dropped: 0,
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicBool::new(true));
    let (s, st, run) = (shared.clone(), stop.clone(), running.clone());
    let thread = std::thread::Builder::new()
        .name("ftagent-capture".into())
        .spawn(move || {
            capture_loop(cap, &s, &st);
            run.store(false, Ordering::SeqCst);
        })
        .map_err(|e| format!("cannot start the capture thread: {e}"))?;
    info!("packet capture on {iface} (libpcap, link type {linktype}, snaplen {snaplen})");
    Ok(LiveCapture {
        shared,
        stop,
        running,
        thread: Some(thread),
        pcap_enabled: settings.pcap_enabled,
        pcap_dir: settings.pcap_dir.clone(),
        snaplen,
    })
}

fn capture_loop(mut cap: pcap::Capture<pcap::Active>, shared: &Mutex<Shared>, stop: &AtomicBool) {
    let mut next_stats = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match cap.next_packet() {
            Ok(p) => {
                let ts = p.header.ts;
                let ts_ns = (ts.tv_sec.max(0) as u64) * 1_000_000_000 + (ts.tv_usec.max(0) as u64) * 1000;
                let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                s.on_packet(ts_ns, p.header.len, p.data);
            }
            Err(pcap::Error::TimeoutExpired) => {}
            Err(e) => {
                warn!("packet capture stopped: {e}");
                return;
            }
        }
        if Instant::now() >= next_stats {
            next_stats = Instant::now() + Duration::from_secs(1);
            if let Ok(st) = cap.stats() {
                let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                s.kernel_dropped = u64::from(st.dropped) + u64::from(st.if_dropped);
            }
        }
    }
}

impl LiveCapture {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PacketInsight for LiveCapture {
    fn mode(&self) -> &'static str {
        "capture-scapy"
    }

    fn incident_opened(&mut self, incident_id: &str, wall: SystemTime) {
        let (pcap_enabled, dir, snaplen) = (self.pcap_enabled, self.pcap_dir.clone(), self.snaplen);
        let mut s = self.lock();
        // The incident's statistics start with the current window: it holds the onset.
        let engine = s.window.clone();
        let path = pcap_enabled.then(|| incident_path(&dir, incident_id, wall));
        if let (Some(p), Some(w)) = (&path, s.writer.as_ref()) {
            w.start(p.clone(), s.linktype, snaplen, s.ring.snapshot());
        }
        s.incident = Some(Incident { engine, kept: 0, path: path.map(|p| p.display().to_string()) });
    }

    fn classify(&mut self) -> Option<Classification> {
        let s = self.lock();
        let min = super::classify::MIN_PACKETS;
        let engine = match &s.incident {
            Some(i) if i.engine.tally().ip_packets() >= min => &i.engine,
            _ if s.window.tally().ip_packets() >= min => &s.window,
            _ if s.prev.tally().ip_packets() >= min => &s.prev,
            _ => return None,
        };
        let mut c = engine.classification();
        let evidence_dropped = s.writer.as_ref().map(|w| w.dropped).unwrap_or(0);
        c.evidence.insert("dropped_packets".into(), (s.kernel_dropped + evidence_dropped).into());
        Some(c)
    }

    fn incident_resolved(&mut self, _incident_id: &str, _wall: SystemTime) -> Option<String> {
        let mut s = self.lock();
        let inc = s.incident.take()?;
        if inc.path.is_some() {
            if let Some(w) = s.writer.as_ref() {
                w.finish();
            }
        }
        inc.path
    }

    fn dropped_packets(&self) -> u64 {
        self.lock().kernel_dropped
    }

    fn active(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Dropping the shared state (last Arc) closes the writer, which finishes open files.
        self.lock().writer.take();
    }
}

//! In-process capture (`capture-scapy`, §7): libpcap on the monitored interface on its own
//! thread, every packet through the [`Engine`], the pre-attack [`Ring`], incident files through
//! the [`EvidenceWriter`]. The capture thread owns all packet state (no lock per packet); it
//! publishes a classification every 100 ms and takes open/resolve commands over a channel.
//! [`LiveCapture`] is the agent's [`PacketInsight`]: its methods copy the published value or send
//! a command, and never wait on the capture, the disk or the network.
//!
//! Started only by the capture front door ([`crate::input::capture::front`]), which has already checked the
//! privilege and resolved the interface; this module decides neither.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use log::{info, warn};

use super::ring::Ring;
use crate::config::Settings;
use crate::event::Classification;
use crate::input::capture::engine::ioc::IocMatcher;
use crate::input::capture::engine::parse::LinkType;
use crate::input::capture::engine::Engine;
use crate::input::capture::evidence::{incident_path, retention, EvidenceWriter, Retention};
use crate::input::capture::handle::PacketInsight;

/// Length of a statistics window before an incident opens.
pub const WINDOW_NS: u64 = 2_000_000_000;
/// libpcap read timeout: also how often the thread checks for stop and reads drop counts.
const READ_TIMEOUT_MS: i32 = 100;
/// How often the capture thread publishes its classification for the sampling thread.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

struct Incident {
    engine: Engine,
    kept: u64,
    keep_file: bool,
}

/// Sent by the sampling thread; never blocks it.
enum Cmd {
    Open {
        path: Option<std::path::PathBuf>,
        snaplen: u32,
    },
    Resolve,
    /// New options from the API: the compiled matcher, and whether evidence files are written.
    Options {
        ioc: Option<Arc<IocMatcher>>,
        pcap_enabled: bool,
    },
}

/// What the capture thread publishes for the sampling thread (locked for a copy only).
#[derive(Default)]
struct Published {
    class: Option<Classification>,
    kernel_dropped: u64,
}

/// Owned by the capture thread alone: no lock on the per-packet path.
struct State {
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
    /// Per-class packets of the windows already swapped out: with the current window's counts,
    /// the running totals the sampling thread turns into SYN/s, UDP/s, ... (§5.6).
    class_base: crate::input::protocols::ClassTotals,
    /// For a writer and ring started later, when the API turns `pcap_enabled` on.
    retention: Retention,
    ring_packets: usize,
}

/// Running per-class totals, written by the capture thread, read by the sampling thread.
type ClassCounters = Arc<[AtomicU64; 4]>;

impl State {
    fn class_totals(&self) -> crate::input::protocols::ClassTotals {
        let w = self.window.tally().class_counts();
        std::array::from_fn(|i| self.class_base[i] + w[i])
    }

    fn on_packet(&mut self, ts_ns: u64, wire_len: u32, data: &[u8]) {
        if ts_ns.saturating_sub(self.window_start_ns) >= WINDOW_NS {
            let done = self.window.tally().class_counts();
            self.class_base = std::array::from_fn(|i| self.class_base[i] + done[i]);
            std::mem::swap(&mut self.window, &mut self.prev);
            self.window.reset();
            self.window_start_ns = ts_ns;
        }
        self.window.push(self.link, ts_ns, wire_len, data);
        if let Some(inc) = self.incident.as_mut() {
            inc.engine.push(self.link, ts_ns, wire_len, data);
            if inc.keep_file && inc.kept < self.max_packets {
                inc.kept += 1;
                if let Some(w) = self.writer.as_mut() {
                    w.packet(ts_ns, wire_len, data);
                }
            }
        } else {
            self.ring.push(ts_ns, wire_len, data);
        }
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Open { path, snaplen } => {
                // The incident's statistics start with the current window: it holds the onset.
                let engine = self.window.clone();
                let keep_file = path.is_some();
                if let (Some(p), Some(w)) = (path, self.writer.as_ref()) {
                    w.start(p, self.linktype, snaplen, self.ring.snapshot());
                }
                self.incident = Some(Incident { engine, kept: 0, keep_file });
            }
            Cmd::Resolve => {
                if let Some(inc) = self.incident.take() {
                    if let (true, Some(w)) = (inc.keep_file, self.writer.as_ref()) {
                        w.finish();
                    }
                }
            }
            Cmd::Options { ioc, pcap_enabled } => self.set_options(ioc, pcap_enabled),
        }
    }

    fn set_options(&mut self, ioc: Option<Arc<IocMatcher>>, pcap_enabled: bool) {
        for e in [&mut self.window, &mut self.prev] {
            e.set_ioc(ioc.clone());
        }
        if let Some(inc) = self.incident.as_mut() {
            inc.engine.set_ioc(ioc);
        }
        if pcap_enabled && self.writer.is_none() {
            match EvidenceWriter::spawn(self.retention.clone()) {
                Ok(w) => self.writer = Some(w),
                Err(e) => warn!("cannot start the capture writer: {e}; no incident files"),
            }
        }
        let ring = if pcap_enabled { self.ring_packets } else { 0 };
        if ring != self.ring.capacity() {
            self.ring = Ring::new(ring);
        }
    }

    fn classification(&self) -> Option<Classification> {
        let min = crate::input::capture::engine::classify::MIN_PACKETS;
        let engine = match &self.incident {
            Some(i) if i.engine.tally().ip_packets() >= min => &i.engine,
            _ if self.window.tally().ip_packets() >= min => &self.window,
            _ if self.prev.tally().ip_packets() >= min => &self.prev,
            _ => return None,
        };
        let mut c = engine.classification();
        let evidence_dropped = self.writer.as_ref().map(|w| w.dropped).unwrap_or(0);
        c.evidence.insert("dropped_packets".into(), (self.kernel_dropped + evidence_dropped).into());
        Some(c)
    }
}

/// The running capture; stops its thread when dropped.
pub struct LiveCapture {
    published: Arc<Mutex<Published>>,
    classes: ClassCounters,
    commands: Option<mpsc::Sender<Cmd>>,
    stop: Arc<AtomicBool>,
    running: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pcap_enabled: bool,
    pcap_dir: std::path::PathBuf,
    snaplen: u32,
    incident_file: Option<String>,
}

/// This build has in-process capture (the front door asks; see `disabled.rs`).
pub const BUILT: bool = true;

/// [`start`] as the front door's handle.
pub fn open(settings: &Settings, interface: Option<&str>) -> crate::error::Result<Box<dyn PacketInsight>> {
    start(settings, interface).map(|c| Box::new(c) as Box<dyn PacketInsight>)
}

/// Open libpcap on `interface` (the monitored one, resolved by the front door) and start the
/// capture thread. Err is the reason capture is off, for the one log line.
pub fn start(settings: &Settings, interface: Option<&str>) -> crate::error::Result<LiveCapture> {
    let iface = interface.ok_or_else(|| off("no interface to capture on (none found in /proc/net/dev)".into()))?;
    let snaplen = if settings.pcap_snaplen == 0 { 262_144 } else { settings.pcap_snaplen };
    let cap = pcap::Capture::from_device(iface)
        .and_then(|c| {
            c.snaplen(snaplen as i32)
                .timeout(READ_TIMEOUT_MS)
                .buffer_size(16 << 20)
                .promisc(settings.pcap_promiscuous)
                .open()
        })
        .map_err(|e| off(format!("cannot capture on {iface}: {e}")))?;
    // Non-blocking reads plus our own poll(2) with a timeout: on Linux (TPACKET_V3) libpcap's
    // read timeout does not fire while no packet arrives, which kept an idle interface's capture
    // thread — and so the agent's SIGTERM — waiting for the next packet.
    let cap = cap.setnonblock().map_err(|e| off(format!("cannot capture on {iface}: {e}")))?;
    // Received traffic only, as the counters (§5.1): our own replies are not the attack.
    if let Err(e) = cap.direction(pcap::Direction::In) {
        warn!("{iface}: cannot restrict capture to received packets ({e}); classifying both directions");
    }
    let linktype = cap.get_datalink().0 as u32;
    let link = LinkType::from_linktype(linktype)
        .ok_or_else(|| off(format!("{iface}: link type {linktype} is not supported")))?;
    let ioc = IocMatcher::for_capture(&settings.ioc_patterns)?;
    let writer = if settings.pcap_enabled {
        Some(
            EvidenceWriter::spawn(retention(settings))
                .map_err(|e| crate::error::Error::Thread { what: "capture writer", source: e })?,
        )
    } else {
        None
    };
    let state = State {
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
        class_base: [0; 4],
        retention: retention(settings),
        ring_packets: settings.pcap_ring_packets,
    };
    let classes: ClassCounters = Arc::new(Default::default());
    let published = Arc::new(Mutex::new(Published::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicBool::new(true));
    let (tx, rx) = mpsc::channel();
    let (p, st, run, cls) = (published.clone(), stop.clone(), running.clone(), classes.clone());
    let thread = std::thread::Builder::new()
        .name("ftagent-capture".into())
        .spawn(move || {
            capture_loop(cap, state, &rx, &p, &cls, &st);
            run.store(false, Ordering::SeqCst);
        })
        .map_err(|e| crate::error::Error::Thread { what: "capture", source: e })?;
    info!("packet capture on {iface} (libpcap, link type {linktype}, snaplen {snaplen})");
    Ok(LiveCapture {
        published,
        classes,
        commands: Some(tx),
        stop,
        running,
        thread: Some(thread),
        pcap_enabled: settings.pcap_enabled,
        pcap_dir: settings.pcap_dir.clone(),
        snaplen,
        incident_file: None,
    })
}

/// Wait until the capture has packets, or `timeout_ms` passed.
fn wait_readable(cap: &pcap::Capture<pcap::Active>, timeout_ms: i32) {
    use std::os::unix::io::AsRawFd;
    let mut fds = libc::pollfd { fd: cap.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd that lives across the call; the fd belongs to `cap`.
    unsafe { libc::poll(&mut fds, 1, timeout_ms) };
}

fn capture_loop(
    mut cap: pcap::Capture<pcap::Active>,
    mut state: State,
    commands: &mpsc::Receiver<Cmd>,
    published: &Mutex<Published>,
    classes: &[AtomicU64; 4],
    stop: &AtomicBool,
) {
    let mut next_stats = Instant::now();
    let mut next_publish = Instant::now();
    let mut since_check = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let mut idle = false;
        match cap.next_packet() {
            Ok(p) => {
                let ts = p.header.ts;
                let ts_ns = (ts.tv_sec.max(0) as u64) * 1_000_000_000 + (ts.tv_usec.max(0) as u64) * 1000;
                state.on_packet(ts_ns, p.header.len, p.data);
            }
            Err(pcap::Error::TimeoutExpired) => {
                idle = true;
                wait_readable(&cap, READ_TIMEOUT_MS);
            }
            Err(e) => {
                warn!("packet capture stopped: {e}");
                return;
            }
        }
        since_check += 1;
        // Commands and the clock are checked every 64 packets, and whenever the line is idle.
        if !idle && since_check < 64 {
            continue;
        }
        since_check = 0;
        for (slot, v) in classes.iter().zip(state.class_totals()) {
            slot.store(v, Ordering::Relaxed);
        }
        let mut changed = false;
        while let Ok(cmd) = commands.try_recv() {
            state.command(cmd);
            changed = true;
        }
        let now = Instant::now();
        if now >= next_stats {
            next_stats = now + Duration::from_secs(1);
            if let Ok(st) = cap.stats() {
                state.kernel_dropped = u64::from(st.dropped) + u64::from(st.if_dropped);
            }
        }
        if changed || now >= next_publish {
            next_publish = now + PUBLISH_EVERY;
            let class = state.classification();
            let mut p = published.lock().unwrap_or_else(|e| e.into_inner());
            p.class = class;
            p.kernel_dropped = state.kernel_dropped;
        }
    }
}

impl LiveCapture {
    fn published(&self) -> std::sync::MutexGuard<'_, Published> {
        self.published.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, cmd: Cmd) {
        if let Some(tx) = &self.commands {
            let _ = tx.send(cmd);
        }
    }
}

impl PacketInsight for LiveCapture {
    fn mode(&self) -> &'static str {
        "capture-scapy"
    }

    fn incident_opened(&mut self, incident_id: &str, wall: SystemTime) {
        let path = self.pcap_enabled.then(|| incident_path(&self.pcap_dir, incident_id, wall));
        self.incident_file = path.as_ref().map(|p| p.display().to_string());
        self.send(Cmd::Open { path, snaplen: self.snaplen });
    }

    fn classify(&mut self) -> Option<Classification> {
        self.published().class.clone()
    }

    fn live_classification(&self) -> Option<crate::input::capture::handle::LiveClassification> {
        let published = Arc::clone(&self.published);
        Some(Arc::new(move || published.lock().unwrap_or_else(|e| e.into_inner()).class.clone()))
    }

    fn incident_resolved(&mut self, _incident_id: &str, _wall: SystemTime) -> Option<String> {
        self.send(Cmd::Resolve);
        self.incident_file.take()
    }

    fn dropped_packets(&self) -> u64 {
        self.published().kernel_dropped
    }

    fn active(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    fn class_totals(&self) -> Option<crate::input::protocols::ClassTotals> {
        Some(std::array::from_fn(|i| self.classes[i].load(Ordering::Relaxed)))
    }

    fn set_options(&mut self, pcap_enabled: bool, ioc_patterns: &[crate::config::IocPattern]) {
        self.pcap_enabled = pcap_enabled;
        let Some(tx) = self.commands.clone() else { return };
        crate::input::capture::options::compile_then(ioc_patterns, move |ioc| {
            let _ = tx.send(Cmd::Options { ioc, pcap_enabled });
        });
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.commands = None;
        self.stop.store(true, Ordering::SeqCst);
        // The thread owns the writer; ending it closes any open incident file.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Why in-process capture cannot run, for the front door's one log line.
fn off(why: String) -> crate::error::Error {
    crate::error::Error::CaptureOff { mode: "capture-scapy", why }
}

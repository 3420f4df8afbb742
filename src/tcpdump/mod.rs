//! tcpdump capture mode (feature `capture-tcpdump`, §7.5): a supervised `tcpdump` writes ring
//! files rotated every 30 s (the agent keeps the newest 3, so tcpdump never exits on its own and
//! there is no blind gap); an incident gets its own capture; at resolve ring and incident files
//! are merged by `mergecap`.
//!
//! [`start`] does the checks and starts the ring (start-up may wait on tcpdump and a package
//! install); [`TcpdumpCapture`] is the agent's [`PacketInsight`]: its methods only send
//! commands to the supervisor thread and read shared state, never waiting on a child or disk.

pub mod analysis;
pub mod child;
pub mod command;
pub mod incident;
pub mod install;
pub mod merge;
pub mod ring;
pub mod supervisor;
pub mod tail;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use log::{info, warn};

use crate::config::{PcapMode, Settings};
use crate::event::Classification;
use crate::insight::CaptureStatus;
use crate::insight::PacketInsight;
use child::{Child, Startup};
use command::CaptureSpec;
use supervisor::{Cmd, Setup, Shared, Supervisor};

/// How long start-up waits for tcpdump to report that it is listening.
const PROBE: Duration = Duration::from_secs(3);
/// How long dropping the capture waits for a pending merge (the agent must exit within 5 s).
const STOP_WAIT: Duration = Duration::from_secs(3);

/// What a run with this build and config gets: None when tcpdump mode does not apply (limited,
/// or `"pcap_mode": "scapy"` in a build with in-process capture, which then also serves as the
/// fallback when tcpdump cannot run); otherwise tcpdump capture, or limited mode and why.
pub fn select(settings: &Settings) -> Option<(CaptureStatus, Option<Box<dyn PacketInsight>>)> {
    let in_process_built = cfg!(feature = "capture-scapy");
    if settings.limited || (settings.pcap_mode != PcapMode::Tcpdump && in_process_built) {
        return None;
    }
    let limited = |reason: String| Some((CaptureStatus { mode: "limited".into(), reason: Some(reason) }, None));
    if !settings.pcap_enabled {
        return limited("\"pcap_enabled\": false in the config; counters only".into());
    }
    if let Err(why) = crate::capture::privilege::check() {
        return limited(why);
    }
    if settings.pcap_mode != PcapMode::Tcpdump {
        info!("this build captures only through tcpdump; using it although \"pcap_mode\" is \"scapy\"");
    }
    match start(settings) {
        Ok(c) => Some((CaptureStatus { mode: "capture-tcpdump".into(), reason: None }, Some(Box::new(c)))),
        Err(reason) if in_process_built => {
            warn!("tcpdump capture unavailable: {reason}; falling back to in-process capture");
            None
        }
        Err(reason) => limited(format!("tcpdump capture unavailable: {reason}; limited mode, counters only")),
    }
}

/// Check privileges and tools, start the ring and probe it. `Err` is the reason capture stays
/// off in this mode, for the caller's one fallback log line.
pub fn start(settings: &Settings) -> Result<TcpdumpCapture, String> {
    crate::capture::privilege::check()?;
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    let tools = install::ensure_tools(std::env::var_os("PATH").as_deref(), is_root)?;
    let interface = resolve_interface(settings).ok_or("no interface to capture on was found")?;
    let spec = CaptureSpec {
        interface,
        snaplen: settings.pcap_snaplen,
        user: command::effective_user_name(),
        promiscuous: settings.pcap_promiscuous,
        ring_file_mb: command::ring_file_mb(settings.pcap_max_disk_mb),
    };
    let setup = Setup {
        tools,
        spec,
        pcap_dir: settings.pcap_dir.clone(),
        max_packets: settings.pcap_max_packets,
        retention: crate::capture::evidence::retention(settings),
    };
    for d in [setup.pcap_dir.clone(), setup.ring_dir(), setup.work_dir()] {
        crate::fsutil::ensure_private_dir(&d).map_err(|e| e.to_string())?;
    }
    clear_stale_work(&setup.work_dir());
    let ioc = crate::capture::IocMatcher::for_capture(&settings.ioc_patterns).map_err(|e| e.to_string())?;
    let ring = start_ring(&setup)?;
    let pcap_dir = setup.pcap_dir.clone();
    let shared = Arc::new(Shared::default());
    let (tx, rx) = mpsc::channel();
    let sup = Supervisor::new(setup, Arc::clone(&shared), ring, analysis::Analysis::new(ioc));
    let worker = std::thread::Builder::new()
        .name("ftagent-tcpdump".into())
        .spawn(move || sup.run(rx))
        .map_err(|e| format!("cannot start the tcpdump supervisor thread: {e}"))?;
    Ok(TcpdumpCapture {
        tx: Some(tx),
        shared,
        worker: Some(worker),
        pcap_dir,
        open: None,
        last_class: None,
        pcap_enabled: true,
    })
}

fn start_ring(setup: &Setup) -> Result<Child, String> {
    let args = setup.spec.ring_args(&setup.ring_dir());
    let mut ring = Child::spawn(&setup.tools.tcpdump, &args, "ring")
        .map_err(|e| format!("cannot run {}: {e}", setup.tools.tcpdump.display()))?;
    match ring.wait_listening(PROBE) {
        Startup::Listening => {}
        Startup::Quiet => warn!("tcpdump has not said it is listening after {} s; assuming it is", PROBE.as_secs()),
        Startup::Exited(reason) => return Err(format!("{} exited at once ({reason})", setup.tools.tcpdump.display())),
    }
    info!(
        "tcpdump ring capture on {} (pid {}): files of {} s in {}, newest {} kept",
        setup.spec.interface,
        ring.pid(),
        command::RING_ROTATE_S,
        setup.ring_dir().display(),
        ring::RING_KEEP
    );
    Ok(ring)
}

fn resolve_interface(settings: &Settings) -> Option<String> {
    if settings.interface != "auto" {
        return Some(settings.interface.clone());
    }
    let source = crate::counters::ProcSource::new(&settings.procfs_root);
    crate::counters::Sampler::new(Box::new(source), "auto").resolve_interface()
}

/// Work files left by an agent that died mid-incident cannot be finished; drop them.
fn clear_stale_work(work: &std::path::Path) {
    let Ok(rd) = std::fs::read_dir(work) else { return };
    for e in rd.flatten() {
        warn!("removing unfinished incident capture {} left by an earlier run", e.path().display());
        let _ = std::fs::remove_dir_all(e.path());
    }
}

/// The running tcpdump mode, as the agent sees it.
pub struct TcpdumpCapture {
    tx: Option<Sender<Cmd>>,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    pcap_dir: PathBuf,
    /// The open incident and its open time (names the evidence file).
    open: Option<(String, SystemTime)>,
    last_class: Option<Classification>,
    /// `pcap_enabled` now (the API may turn it off and on): no evidence file while off.
    pcap_enabled: bool,
}

impl TcpdumpCapture {
    fn send(&self, cmd: Cmd) {
        if let Some(tx) = &self.tx {
            if tx.send(cmd).is_err() {
                warn!("the tcpdump supervisor has stopped; capture is off");
            }
        }
    }
}

impl PacketInsight for TcpdumpCapture {
    fn mode(&self) -> &'static str {
        "capture-tcpdump"
    }

    fn incident_opened(&mut self, incident_id: &str, wall: SystemTime) {
        self.open = Some((incident_id.to_string(), wall));
        self.send(Cmd::Open { id: incident_id.to_string(), wall });
    }

    fn classify(&mut self) -> Option<Classification> {
        // try_lock: the supervisor holds the lock only to swap a value; never wait for it.
        if let Ok(c) = self.shared.classification.try_lock() {
            if c.is_some() {
                self.last_class = c.clone();
            }
        }
        self.last_class.clone()
    }

    fn incident_resolved(&mut self, incident_id: &str, wall: SystemTime) -> Option<String> {
        let opened = match self.open.take() {
            Some((id, t)) if id == incident_id => t,
            _ => wall,
        };
        self.last_class = None;
        let file = crate::capture::evidence::incident_path(&self.pcap_dir, incident_id, opened);
        self.send(Cmd::Resolve { id: incident_id.to_string(), file: file.clone() });
        self.pcap_enabled.then(|| file.display().to_string())
    }

    fn dropped_packets(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    fn active(&self) -> bool {
        self.shared.active.load(Ordering::Relaxed)
    }

    fn set_options(&mut self, pcap_enabled: bool, ioc_patterns: &[crate::config::IocPattern]) {
        self.pcap_enabled = pcap_enabled;
        let Some(tx) = self.tx.clone() else { return };
        crate::capture::options::compile_then(ioc_patterns, move |ioc| {
            let _ = tx.send(Cmd::Options { ioc, pcap_enabled });
        });
    }
}

impl Drop for TcpdumpCapture {
    fn drop(&mut self) {
        // Closing the channel stops the supervisor; give a pending merge a bounded time.
        self.tx = None;
        if let Some(w) = self.worker.take() {
            if !crate::join::join_within(w, STOP_WAIT) {
                warn!("tcpdump capture did not stop within {} s", STOP_WAIT.as_secs());
            }
        }
    }
}

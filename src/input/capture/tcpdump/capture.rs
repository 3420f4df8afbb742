//! The running tcpdump capture: [`start`] (tools, ring, probe) and [`TcpdumpCapture`], the
//! agent's `PacketInsight` for this mode.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use log::{info, warn};

use super::child::{Child, Startup};
use super::command::CaptureSpec;
use super::setup::Setup;
use super::supervisor::{Cmd, Shared, Supervisor};
use super::{analysis, command, install, ring};
use crate::config::paths::Env;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::event::Classification;
use crate::input::capture::handle::PacketInsight;

/// How long start-up waits for tcpdump to report that it is listening.
const PROBE: Duration = Duration::from_secs(3);
/// How long dropping the capture waits for a pending merge (the agent must exit within 5 s).
const STOP_WAIT: Duration = Duration::from_secs(3);

/// This build has tcpdump mode (the front door asks; see `disabled.rs`).
pub const BUILT: bool = true;

/// [`start`] as the front door's handle.
pub fn open(settings: &Settings, env: &Env, interface: Option<String>) -> Result<Box<dyn PacketInsight>> {
    start(settings, env, interface).map(|c| Box::new(c) as Box<dyn PacketInsight>)
}

/// Find (or install) the tools, start the ring on `interface` and probe it. `Err` is the reason
/// capture stays off in this mode, for the front door's one fallback log line.
pub fn start(settings: &Settings, env: &Env, interface: Option<String>) -> Result<TcpdumpCapture> {
    let tools = install::ensure_tools(std::env::var_os("PATH").as_deref(), env.is_root())?;
    let interface = interface.ok_or_else(|| off("no interface to capture on was found"))?;
    let retention = crate::input::capture::evidence::retention(settings);
    let spec = CaptureSpec {
        interface,
        snaplen: settings.pcap_snaplen,
        user: command::effective_user_name(env.euid),
        promiscuous: settings.pcap_promiscuous,
        ring_file_mb: command::ring_file_mb(retention.max_bytes >> 20),
    };
    let setup =
        Setup { tools, spec, pcap_dir: settings.pcap_dir.clone(), max_packets: settings.pcap_max_packets, retention };
    for d in [setup.pcap_dir.clone(), setup.ring_dir(), setup.work_dir()] {
        crate::util::fs::ensure_private_dir(&d)?;
    }
    clear_stale_work(&setup.work_dir());
    let ioc = crate::input::capture::IocMatcher::for_capture(&settings.ioc_patterns)?;
    let ring = start_ring(&setup)?;
    let pcap_dir = setup.pcap_dir.clone();
    let shared = Arc::new(Shared::default());
    let (tx, rx) = mpsc::channel();
    let sup = Supervisor::new(setup, Arc::clone(&shared), ring, analysis::Analysis::new(ioc));
    let worker = std::thread::Builder::new()
        .name("ftagent-tcpdump".into())
        .spawn(move || sup.run(rx))
        .map_err(|e| Error::Thread { what: "tcpdump supervisor", source: e })?;
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

fn start_ring(setup: &Setup) -> Result<Child> {
    let args = setup.spec.ring_args(&setup.ring_dir());
    let mut ring = Child::spawn(&setup.tools.tcpdump, &args, "ring")
        .map_err(|e| program(&setup.tools.tcpdump, format!("cannot run {}: {e}", setup.tools.tcpdump.display())))?;
    match ring.wait_listening(PROBE) {
        Startup::Listening => {}
        Startup::Quiet => warn!("tcpdump has not said it is listening after {} s; assuming it is", PROBE.as_secs()),
        Startup::Exited(reason) => {
            return Err(program(
                &setup.tools.tcpdump,
                format!("{} exited at once ({reason})", setup.tools.tcpdump.display()),
            ))
        }
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

    fn live_classification(&self) -> Option<crate::input::capture::handle::LiveClassification> {
        let shared = Arc::clone(&self.shared);
        Some(Arc::new(move || shared.classification.lock().ok().and_then(|c| c.clone())))
    }

    fn incident_resolved(&mut self, incident_id: &str, wall: SystemTime) -> Option<String> {
        let opened = match self.open.take() {
            Some((id, t)) if id == incident_id => t,
            _ => wall,
        };
        self.last_class = None;
        let file = crate::input::capture::evidence::incident_path(&self.pcap_dir, incident_id, opened);
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
        crate::input::capture::options::compile_then(ioc_patterns, move |ioc| {
            let _ = tx.send(Cmd::Options { ioc, pcap_enabled });
        });
    }
}

impl Drop for TcpdumpCapture {
    fn drop(&mut self) {
        // Closing the channel stops the supervisor; give a pending merge a bounded time.
        self.tx = None;
        if let Some(w) = self.worker.take() {
            if !crate::util::join::join_within(w, STOP_WAIT) {
                warn!("tcpdump capture did not stop within {} s", STOP_WAIT.as_secs());
            }
        }
    }
}

/// Why this mode cannot run, for the front door's one log line.
fn off(why: impl Into<String>) -> Error {
    Error::CaptureOff { mode: "capture-tcpdump", why: why.into() }
}

/// A tool of this mode failed.
fn program(path: &std::path::Path, why: String) -> Error {
    Error::Program { program: path.display().to_string(), why }
}

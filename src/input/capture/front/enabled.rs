//! The capture front door (§1, §7.5): the one place that decides whether packet capture runs for
//! this build and config, in which mode, and why not — build features, `limited`, `pcap_mode`,
//! `pcap_enabled` (tcpdump mode), privilege, tcpdump availability and the fall back to
//! in-process capture — and the one place that resolves the interface capture runs on.
//! Returns one [`Running`] handle; both modes implement [`crate::input::capture::handle::PacketInsight`].
//!
//! Must not know how a mode captures: each mode's module only starts on the interface it is
//! given. A new source of packets is one module with `BUILT` and `open`, and one branch here.

use log::{info, warn};

use super::privilege;
use crate::config::paths::Env;
use crate::config::{PcapMode, Settings};
use crate::input::capture::handle::{log_off, CaptureStatus, Running, LIMITED_BY_CONFIG};
use crate::input::capture::inprocess as live;
use crate::input::capture::tcpdump;

/// This build has packet capture (`disabled.rs` is the front door without it).
pub const BUILT: bool = true;

/// Whether capture may run, without starting it (`--test`, `--update`): the mode the build
/// prefers, or limited and why. Logs the reason once when capture is off.
pub fn status(settings: &Settings, env: &Env) -> CaptureStatus {
    let status = decide(settings, env);
    log_off(&status);
    status
}

/// Start capture for a run: tcpdump mode or in-process capture, or none and why. Logs the
/// reason once when capture is off.
pub fn start(settings: &Settings, env: &Env) -> Running {
    let running = open(settings, env);
    log_off(&running.status);
    running
}

fn decide(settings: &Settings, env: &Env) -> CaptureStatus {
    if settings.limited {
        return CaptureStatus::limited(LIMITED_BY_CONFIG);
    }
    match privilege::check(env) {
        Ok(()) => CaptureStatus::on(if live::BUILT { "capture-scapy" } else { "capture-tcpdump" }),
        Err(why) => CaptureStatus::limited(why.to_string()),
    }
}

fn open(settings: &Settings, env: &Env) -> Running {
    let status = decide(settings, env);
    if settings.limited {
        return Running::off(status);
    }
    let interface = || crate::input::counters::source::capture_interface(&settings.interface, &settings.procfs_root);
    // tcpdump mode when asked for, or when it is the only mode built.
    if tcpdump::BUILT && (settings.pcap_mode == PcapMode::Tcpdump || !live::BUILT) {
        if let Some(running) = tcpdump_mode(settings, env, &status, interface()) {
            return running;
        }
    }
    if !live::BUILT || status.reason.is_some() {
        return Running::off(status);
    }
    match live::open(settings, interface().as_deref()) {
        Ok(insight) => Running { status, insight: Some(insight) },
        Err(why) => Running::off(CaptureStatus::limited(why.to_string())),
    }
}

/// tcpdump mode, or None to fall back to in-process capture (built, and tcpdump cannot run).
/// `decided`: [`decide`]'s answer, not limited; its reason is the privilege check's.
fn tcpdump_mode(settings: &Settings, env: &Env, decided: &CaptureStatus, interface: Option<String>) -> Option<Running> {
    let off = |reason: String| Some(Running::off(CaptureStatus::limited(reason)));
    if !settings.pcap_enabled {
        return off("\"pcap_enabled\": false in the config; counters only".into());
    }
    if let Some(why) = &decided.reason {
        return off(why.clone());
    }
    if settings.pcap_mode != PcapMode::Tcpdump {
        info!("this build captures only through tcpdump; using it although \"pcap_mode\" is \"scapy\"");
    }
    match tcpdump::open(settings, env, interface) {
        Ok(insight) => Some(Running { status: CaptureStatus::on("capture-tcpdump"), insight: Some(insight) }),
        Err(reason) if live::BUILT => {
            warn!("tcpdump capture unavailable: {reason}; falling back to in-process capture");
            None
        }
        Err(reason) => off(format!("tcpdump capture unavailable: {reason}; limited mode, counters only")),
    }
}

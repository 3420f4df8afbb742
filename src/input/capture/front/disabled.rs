//! `capture` in a build with neither `capture-scapy` nor `capture-tcpdump`: the same front door,
//! which answers that capture is off and why (`--analyze` names the feature: `cli::app`). Owns nothing; must not grow any capture logic.

use crate::config::paths::Env;
use crate::config::Settings;
use crate::input::capture::handle::{log_off, CaptureStatus, Running, LIMITED_BY_CONFIG};

/// This build has no packet capture.
pub const BUILT: bool = false;

/// Capture is off: asked for, or not built.
pub fn status(settings: &Settings, _env: &Env) -> CaptureStatus {
    let status = if settings.limited {
        CaptureStatus::limited(LIMITED_BY_CONFIG)
    } else {
        CaptureStatus::limited(
            "this build has no packet capture (features capture-scapy / capture-tcpdump); counters only",
        )
    };
    log_off(&status);
    status
}

/// No capture to start; the status says why.
pub fn start(settings: &Settings, env: &Env) -> Running {
    Running::off(status(settings, env))
}

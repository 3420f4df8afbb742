//! Mitigation in a build without packet capture: nothing is precise enough to act on, so
//! [`start`] logs why once and returns no handle. Owns nothing; must not grow any logic.

/// Builds without packet capture plan no rules: the one log line says so.
pub fn start(
    settings: &crate::config::Settings,
    _events: std::sync::mpsc::SyncSender<crate::report::Outgoing>,
    _live: Option<crate::input::capture::handle::LiveClassification>,
) -> Option<Mitigation> {
    if settings.mitigation.mode != crate::config::mitigation::Mode::Off {
        log::info!(
            "mitigation off: this build has no packet capture (feature capture-scapy), so nothing is precise \
             enough to act on; rebuild with `--features capture-scapy` or install the package"
        );
    }
    None
}

/// The handle of a running mitigation (none in builds without capture).
pub struct Mitigation;

impl Mitigation {
    pub fn observer(&self) -> Observer {
        Observer
    }
    pub fn stop(self) {}
}

/// Hands incident events to the worker (none in builds without capture).
#[derive(Clone)]
pub struct Observer;

impl Observer {
    pub fn observe(&self, _msgs: &[crate::report::Outgoing]) {}
}

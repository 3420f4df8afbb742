//! The nftables side of mitigation in builds without packet capture: nothing is precise enough
//! to act on in this host's firewall, so it never starts (BGP, in [`super::bgp`], still runs).

/// Builds without packet capture plan no nftables rules: the one log line says so.
pub fn start(
    settings: &crate::config::Settings,
    _events: std::sync::mpsc::SyncSender<crate::report::Outgoing>,
    _live: Option<crate::input::capture::handle::LiveClassification>,
) -> Option<Mitigation> {
    if settings.mitigation.mode != crate::config::mitigation::Mode::Off {
        log::info!(
            "nftables mitigation off: this build has no packet capture (feature capture-scapy), so nothing is \
             precise enough to act on; rebuild with `--features capture-scapy` or install the package{}",
            if settings.mitigation.bgp.is_some() { " (BGP mitigation runs)" } else { "" }
        );
    }
    None
}

/// Never made in this build.
pub struct Mitigation;

impl Mitigation {
    pub fn observer(&self) -> Observer {
        Observer
    }
    pub fn stop(self) {}
}

#[derive(Clone)]
pub struct Observer;

impl Observer {
    pub fn observe(&self, _msgs: &[crate::report::Outgoing]) {}
    pub fn observe_remote(&self, _msgs: &[crate::report::Outgoing]) {}
}

//! Automatic mitigation (§10): typed nftables rules chosen from the classification, applied in
//! the agent's own table `inet ftagent`, each expiring by itself, plus an optional local hook.
//!
//! The `mitigation` object is parsed and validated by [`crate::config::mitigation`] (every build). The rest needs packet
//! classification and so a capture build: [`plan`] (pure: classification → rules), [`nft`]
//! (rules → one nftables JSON batch, table listing, counters), [`worker`] + [`lifecycle`] (the
//! thread that applies, renews, removes and reconciles; nothing runs on the sampling thread), [`hook`] (the
//! local program, on its own thread, killed at its timeout). This module never runs a shell,
//! never acts on anything a server sent, and never touches another nftables table.

#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
pub mod hook;
#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
pub mod lifecycle;
#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
pub mod nft;
#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
pub mod plan;
#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
pub mod worker;

#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
pub use worker::{start, Mitigation, Observer};

/// Builds without packet capture plan no rules: the one log line says so.
#[cfg(not(any(feature = "capture-scapy", feature = "capture-tcpdump")))]
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
#[cfg(not(any(feature = "capture-scapy", feature = "capture-tcpdump")))]
pub struct Mitigation;

#[cfg(not(any(feature = "capture-scapy", feature = "capture-tcpdump")))]
impl Mitigation {
    pub fn observer(&self) -> Observer {
        Observer
    }
    pub fn stop(self) {}
}

/// Hands incident events to the worker (none in builds without capture).
#[cfg(not(any(feature = "capture-scapy", feature = "capture-tcpdump")))]
#[derive(Clone)]
pub struct Observer;

#[cfg(not(any(feature = "capture-scapy", feature = "capture-tcpdump")))]
impl Observer {
    pub fn observe(&self, _msgs: &[crate::report::Outgoing]) {}
}

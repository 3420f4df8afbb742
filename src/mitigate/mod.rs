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

#[cfg(not(any(feature = "capture-scapy", feature = "capture-tcpdump")))]
mod disabled;
#[cfg(not(any(feature = "capture-scapy", feature = "capture-tcpdump")))]
pub use disabled::{start, Mitigation, Observer};

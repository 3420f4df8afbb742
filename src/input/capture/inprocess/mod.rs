//! In-process capture (feature `capture-scapy`): `live` runs libpcap on its own thread;
//! [`ring`] keeps the pre-attack packets (built in every build: [`super::evidence`] writes
//! incident files from it). Without the feature, `disabled.rs`: `BUILT == false`, never started.

pub mod ring;

#[cfg(feature = "capture-scapy")]
pub mod live;
#[cfg(feature = "capture-scapy")]
pub use live::{open, BUILT};

#[cfg(not(feature = "capture-scapy"))]
mod disabled;
#[cfg(not(feature = "capture-scapy"))]
pub use disabled::{open, BUILT};

//! The capture front door: [`start`] and [`status`]. With a capture feature, `enabled.rs` decides
//! the mode and why not; in a build with neither, `disabled.rs` says capture is off and why.

#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
mod enabled;
#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
mod privilege;
#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
pub use enabled::{start, status, BUILT};

#[cfg(not(any(feature = "capture-scapy", feature = "capture-tcpdump")))]
mod disabled;
#[cfg(not(any(feature = "capture-scapy", feature = "capture-tcpdump")))]
pub use disabled::{start, status, BUILT};

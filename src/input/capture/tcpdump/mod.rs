//! tcpdump capture mode (feature `capture-tcpdump`, §7.5): a supervised `tcpdump` writes ring
//! files rotated every 30 s (the agent keeps the newest 3, so tcpdump never exits on its own and
//! there is no blind gap); an incident gets its own capture; at resolve ring and incident files
//! are merged by `mergecap`.
//!
//! `start` finds the tools and starts the ring (start-up may wait on tcpdump and a package
//! install); `TcpdumpCapture` is the agent's `PacketInsight`: its methods only send
//! commands to the supervisor thread and read shared state, never waiting on a child or disk.
//! Whether this mode runs at all (limited, `pcap_mode`, `pcap_enabled`, privilege, fallback) is
//! decided by the capture front door (`crate::input::capture::front`), which also resolves the
//! interface; this module decides neither.
//!
//! Without `capture-tcpdump` only `disabled.rs` is built: `BUILT == false`, and the front door
//! never starts this mode.

#[cfg(feature = "capture-tcpdump")]
pub mod analysis;
#[cfg(feature = "capture-tcpdump")]
mod capture;
#[cfg(feature = "capture-tcpdump")]
pub mod child;
#[cfg(feature = "capture-tcpdump")]
pub mod command;
#[cfg(feature = "capture-tcpdump")]
pub mod incident;
#[cfg(feature = "capture-tcpdump")]
pub mod install;
#[cfg(feature = "capture-tcpdump")]
pub mod merge;
#[cfg(feature = "capture-tcpdump")]
pub mod ring;
#[cfg(feature = "capture-tcpdump")]
pub mod setup;
#[cfg(feature = "capture-tcpdump")]
pub mod supervisor;
#[cfg(feature = "capture-tcpdump")]
pub mod tail;
#[cfg(feature = "capture-tcpdump")]
pub use capture::{open, start, TcpdumpCapture, BUILT};

#[cfg(not(feature = "capture-tcpdump"))]
mod disabled;
#[cfg(not(feature = "capture-tcpdump"))]
pub use disabled::{open, BUILT};

//! ftagent: a DDoS-detection agent for Linux servers.
//!
//! Crate map (data flows top to bottom; imports point down this list, never back up):
//! - [`error`], [`event`], [`util`]: the crate's `Error`, the event vocabulary (§6.1), small
//!   shared pieces (atomic writes, bounded joins, reopenable logs, state files, sketches).
//! - [`config`]: `Settings` and every sub-config type (§3.2), the reader, paths (`Env`, §3.1).
//! - [`input`]: one folder per source of traffic facts, each with one front door:
//!   `counters` (`/proc/net`), `capture` (engine in every build; libpcap and tcpdump modes
//!   feature-gated), `accesslog` (layer 7, §11), `sockets` (the TCP socket census, §5.7).
//! - [`detect`]: the pure core, `now` passed in: baseline, learn, detector, counter classification.
//! - [`report`] (sinks and the API spool/sender), [`mitigate`] (§10), [`status`] (`--status`,
//!   `--top`): what the agent's results go to.
//! - [`agent`]: one tick = sample → baseline → detect → messages ([`Agent::tick`]); the run loop,
//!   periodic reports, the status snapshot, `--test`. What happens on one tick is in this folder.
//! - [`install`]: `--setup`, service units, the service account, `--update`.
//! - [`cli`]: flags, help, dispatch, logging set-up, generated files. Only `main.rs` uses it.

pub mod agent;
pub mod cli;
pub mod config;
pub mod detect;
pub mod error;
pub mod event;
pub mod input;
pub mod install;
pub mod mitigate;
pub mod report;
pub mod status;
pub mod util;

pub use agent::Agent;
pub use config::Settings;
pub use error::{Error, Result};

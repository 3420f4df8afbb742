//! ftagent: a DDoS-detection agent for Linux servers.
//!
//! Crate map (data flows top to bottom; imports point down this list, never back up, which
//! `scripts/check-layout.sh` checks):
//! - [`error`], [`event`], [`util`]: the crate's one `Error`, the event vocabulary (§6.1), small
//!   shared pieces (atomic writes, bounded joins, reopenable logs, state files, sketches).
//! - [`config`]: `Settings` and every sub-config type (§3.2), the key reader, paths (`Env`, §3.1).
//! - [`input`]: one folder per source of traffic facts, each with one front door:
//!   `counters` (`/proc/net`), `capture` (the packet engine in every build; libpcap and tcpdump
//!   modes feature-gated; `capture::start`), `accesslog` (layer 7, §11), `sockets` (the TCP
//!   socket census, §5.7), `flows` (the sFlow / NetFlow / IPFIX collector, §12; `flows::start`).
//! - [`detect`]: the pure core, `now` passed in: baseline, learn, detector, counter classification,
//!   `hosts` (the per-address flow detector, §12).
//! - [`report`] (sinks, the API spool and sender), [`mitigate`] (§10), [`status`] (`--status`,
//!   `--top`): where the agent's results go.
//! - [`agent`]: one tick = sample → baseline → detect → messages ([`Agent::tick`]); the run loop,
//!   periodic reports, the status snapshot, `--test`, the access-log and flow-detection threads. What happens on one
//!   tick is in this folder.
//! - [`install`]: `--setup`, service units, the service account, `--update`.
//! - [`cli`]: flags, help, dispatch, logging set-up, generated files. Only `main.rs` uses it.
//!
//! Embedding without the CLI: build [`Settings`], start the inputs ([`start_capture`],
//! [`start_access_logs`], a [`Sampler`] over [`ProcSource`]), drive an [`Agent`] or call
//! [`run`], and hand its [`Outgoing`] messages to [`Sink`]s.

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

pub use agent::accesslog::start as start_access_logs;
pub use agent::run::run;
pub use agent::Agent;
pub use config::Settings;
pub use error::{Error, Result};
pub use input::capture::start as start_capture;
pub use input::counters::source::ProcSource;
pub use input::counters::Sampler;
pub use report::{Outgoing, Sink};

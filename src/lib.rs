//! ftagent: a DDoS-detection agent for Linux servers.
//!
//! Crate map (data flows top to bottom):
//! - [`cli`]: flags (§2), no I/O; [`cli_help`] its long help. [`app`]: what each invocation does.
//! - [`paths`], [`config`]: where files live (§3.1) and the validated settings (§3.2).
//! - [`counters`]: `/proc/net/dev` + `snmp` parsing (pure) and the one reader, rates; the one
//!   interface resolution (`auto`), for the counters and for capture.
//! - [`baseline`]: flat window + hour-of-day buckets → thresholds. Pure, time passed in.
//! - [`detect`]: the incident state machine. Pure, time passed in. [`mix`]: counter classification.
//! - [`classes`]: per-protocol rates and thresholds of capture builds (§5.6).
//! - [`learn`]: one direction's baseline + detector + the settle horizon between them (§5.4, §5.5).
//! - [`agent`]: one tick = sample → baseline → detect → messages. [`run`]: the only loop.
//! - [`report`]: sinks behind a bounded channel (event log, baseline file, Prometheus textfile) and
//!   the durable spool with its API/webhook sender threads.
//! - [`event`]: the event vocabulary (§6.1). [`insight`]: the seam to packet capture (the
//!   `PacketInsight` trait both capture modes implement, `CaptureStatus`, the `Running` handle).
//! - [`accesslog`]: layer-7 `http_flood` detection from web-server access logs (§11), on its own
//!   thread beside the sampling; `--analyze` on an access log.
//! - [`mitigate`]: the `mitigation` config (every build); in capture builds the planner, the
//!   nftables backend, its worker thread and the hook.
//! - [`capture`]: `capture::start` is the front door that decides whether and how packets are
//!   captured and why not (`capture/front.rs`); packet parsing, the analysis engine, capture
//!   files, in-process capture (`capture-scapy`). In the default build it is
//!   `capture/disabled.rs`: capture off, `--analyze` names the missing feature.
//! - [`sketch`]: bounded heavy-hitter and distinct counters, for capture tallies and access logs.
//! - [`statefile`]: reading back state files; a corrupt one is moved aside, never a crash.
//! - [`selftest`]: `--test`. [`fsutil`]: atomic 0600 writes. [`logging`]: binary log set-up.
//!   [`join`]: the one bounded thread join of every shutdown path.
//! - `tcpdump` (feature `capture-tcpdump`): the supervised tcpdump ring, incident capture, merge;
//!   started only by the capture front door (a stub in builds with `capture-scapy` alone).
//! - [`setup`]: `--setup`. [`service`], [`account`]: systemd units, `--install-service`.
//!   [`generate`]: man page, completions, units for packaging. [`update`]: `--update`, daily check.
//! - [`reopen`]: log files that follow logrotate (SIGHUP).
//! - [`status`]: the state file, `--status` and `--top` (§6.6).
//! - [`input`]: `input::flows`, the sFlow / NetFlow / IPFIX collector (§12).

pub mod accesslog;
pub mod account;
pub mod agent;
pub mod app;
pub mod baseline;
#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
pub mod capture;
#[cfg(not(any(feature = "capture-scapy", feature = "capture-tcpdump")))]
#[path = "capture/disabled.rs"]
pub mod capture;
pub mod classes;
pub mod cli;
pub mod cli_help;
pub mod config;
pub mod counters;
pub mod detect;
pub mod error;
pub mod event;
pub mod fsutil;
pub mod generate;
pub mod input;
pub mod insight;
pub mod join;
pub mod learn;
pub mod logging;
pub mod mitigate;
pub mod mix;
pub mod paths;
pub mod reopen;
pub mod report;
pub mod run;
pub mod selftest;
pub mod service;
pub mod setup;
pub mod sketch;
pub mod statefile;
pub mod status;
#[cfg(feature = "capture-tcpdump")]
pub mod tcpdump;
#[cfg(all(feature = "capture-scapy", not(feature = "capture-tcpdump")))]
#[path = "tcpdump/disabled.rs"]
pub mod tcpdump;
pub mod update;

pub use error::{Error, Result};

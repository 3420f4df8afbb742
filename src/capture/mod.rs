//! Packet capture and the packet analysis engine (§7), built with `capture-scapy` or
//! `capture-tcpdump`. The engine modules are shared by both capture modes and `--analyze`; only
//! `live`/`ring`/`evidence` (the in-process libpcap path) need `capture-scapy`.
//!
//! # Engine API (both features)
//! - [`parse::parse`]`(LinkType, &[u8]) -> Result<Packet, Malformed>`: one frame decoded
//!   (Ethernet/802.1Q/QinQ, SLL, SLL2, raw IP, BSD loopback; IPv4/IPv6 with fragments and
//!   extension headers; TCP/UDP/ICMP/ICMPv6/GRE/ESP). Pure, never panics.
//!   [`parse::dns_query_name`] decodes the first question of a DNS message.
//! - [`pcapfile::CaptureReader`]`::new(impl Read)` → `next_frame() -> Result<Option<Frame>>`:
//!   pcap (µs/ns, either byte order) and pcapng, by magic number. [`pcapfile::PcapWriter`]
//!   writes µs pcap. [`pcapfile::FileError`] names the byte offset of corruption/truncation.
//! - [`Engine`]: `Engine::new(Option<Arc<IocMatcher>>)`, then `push(link, ts_ns, wire_len,
//!   frame)` or `push_frame(&Frame)` for every packet; `classification()` gives a
//!   [`crate::event::Classification`] (`classified_by: "packets"`, `attack_family`,
//!   `attack_subtype`, `confidence`, evidence: `top_src_ips`, `source_ip_count`,
//!   `top_dst_ports`, `top_src_ports`, `protocol_breakdown`, `tcp_flag_breakdown`, `ioc_hits`,
//!   `attack_tool`, `vectors`, `packet_size`, `top_ttls`, `dns_queries`, `malformed_packets`,
//!   `dropped_packets`, `total_packets`); `summary_json()` is the `--analyze --json` object;
//!   `add_dropped(n)` records kernel drops; `reset()` starts a new window. `Engine` is `Clone`
//!   (a window can seed an incident). Memory is fixed (see [`stats`]).
//! - [`ioc::IocMatcher`]`::new(&[IocPattern]) -> Result<Option<_>>`: one Aho-Corasick automaton,
//!   behind the [`gram`] skip filter for large sets.
//! - [`analyze::analyze_file`]`(path, &[IocPattern]) -> Result<Engine>`; [`analyze::render_text`].
//! - [`synth`]: builders of synthetic frames for tests and benches.
//!
//! # The front door (both features)
//! [`start`] / [`status`] ([`front`]) decide whether capture runs and in which mode, with
//! [`privilege`] (the one privilege check) and the interface the counters resolve; they return
//! a [`crate::insight::Running`] handle. Nothing else starts a capture mode.
//!
//! # In-process capture (`capture-scapy`)
//! [`live`] runs libpcap on its own thread and implements [`crate::insight::PacketInsight`]
//! (without `capture-scapy`, `live_disabled.rs`: never started); [`ring`] keeps the pre-attack
//! ring; [`evidence`] writes incident PCAP files on a writer thread and owns the retention policy
//! of both modes (the only reader of `pcap_retention_days` / `pcap_max_disk_mb`).

pub mod analyze;
pub mod classify;
pub mod engine;
pub mod gram;
pub mod ioc;
pub mod parse;
pub mod pcapfile;
pub mod stats;
pub mod synth;
pub mod tally;

pub use engine::Engine;
pub use front::{start, status};
pub use ioc::IocMatcher;
pub use parse::LinkType;
pub mod evidence;
pub mod front;
pub mod options;
pub mod privilege;
pub mod ring;

/// This build has packet capture (`src/capture/disabled.rs` is the module without it).
pub const BUILT: bool = true;

#[cfg(feature = "capture-scapy")]
pub mod live;
#[cfg(not(feature = "capture-scapy"))]
#[path = "live_disabled.rs"]
pub mod live;

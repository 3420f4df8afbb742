//! Packet capture and the packet analysis engine (§7). The [`engine`] (parse, classify, tally,
//! ioc), capture files ([`pcapfile`]), [`evidence`] and [`analyze`] are built in every build;
//! only the capture modes are feature-gated: [`inprocess`] (libpcap, `capture-scapy`) and
//! [`tcpdump`] (`capture-tcpdump`), each with a `disabled` stub the front door never starts.
//!
//! # Engine API (both features)
//! - [`engine::parse::parse`]`(LinkType, &[u8]) -> Result<Packet, Malformed>`: one frame decoded
//!   (Ethernet/802.1Q/QinQ, SLL, SLL2, raw IP, BSD loopback; IPv4/IPv6 with fragments and
//!   extension headers; TCP/UDP/ICMP/ICMPv6/GRE/ESP). Pure, never panics.
//!   [`engine::parse::dns_query_name`] decodes the first question of a DNS message.
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
//!   (a window can seed an incident). Memory is fixed (see [`engine::stats`]).
//! - [`engine::ioc::IocMatcher`]`::new(&[IocPattern]) -> Result<Option<_>>`: one Aho-Corasick automaton,
//!   behind the [`engine::gram`] skip filter for large sets.
//! - [`analyze::analyze_file`]`(path, &[IocPattern]) -> Result<Engine>`; [`analyze::render_text`].
//! - [`engine::synth`]: builders of synthetic frames for tests and benches.
//!
//! # The front door (both features)
//! [`start`] / [`status`] (`front`) decide whether capture runs and in which mode, with
//! `privilege` (the one privilege check) and the interface the counters resolve; in a build with no capture mode, `front/disabled.rs` answers that capture is off and why; they return
//! a [`handle::Running`] handle. Nothing else starts a capture mode.
//!
//! # In-process capture (`capture-scapy`)
//! [`inprocess`] runs libpcap on its own thread and implements [`handle::PacketInsight`]
//! (without `capture-scapy`, `inprocess/disabled.rs`: never started); its `ring` keeps the pre-attack
//! ring; [`evidence`] writes incident PCAP files on a writer thread and owns the retention policy
//! of both modes (the only reader of `pcap_retention_days` / `pcap_max_disk_mb`).

//!
//! [`handle`]: the seam to the agent (the `PacketInsight` trait both modes implement,
//! `CaptureStatus`, the `Running` handle); it imports no capture mode.

pub mod analyze;
pub mod engine;
pub mod evidence;
mod front;
pub mod handle;
pub mod inprocess;
pub mod options;
pub mod pcapfile;
pub mod tcpdump;

pub use engine::ioc::IocMatcher;
pub use engine::parse::LinkType;
pub use engine::Engine;
pub use front::{start, status, BUILT};

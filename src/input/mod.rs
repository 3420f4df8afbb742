//! Every source of traffic facts, each started by one front door: [`counters`] (`/proc/net`),
//! [`capture`] (packets: the engine, in-process libpcap, tcpdump), [`accesslog`] (web-server
//! logs, layer 7), [`sockets`] (the TCP socket census: netlink `sock_diag` with `tcp_info`, falling
//! back to `<procfs_root>/net/tcp{,6}`, on its own thread, at most one dump a second while busy, §5.7),
//! [`flows`] (sFlow / NetFlow / IPFIX from routers, §12).
//! [`protocols`]: the per-protocol packet classes they count in.

pub mod accesslog;
pub mod capture;
pub mod counters;
pub mod flows;
pub mod protocols;
pub mod sockets;

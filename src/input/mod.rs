//! Every source of traffic facts, each started by one front door: [`counters`] (`/proc/net`),
//! [`capture`] (packets: the engine, in-process libpcap, tcpdump), [`accesslog`] (web-server
//! logs, layer 7), [`flows`] (sFlow / NetFlow / IPFIX from routers, §12). [`protocols`]: the
//! per-protocol packet classes they count in.

pub mod accesslog;
pub mod capture;
pub mod counters;
pub mod flows;
pub mod protocols;

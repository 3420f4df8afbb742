//! Sources of traffic facts. Each one is started by one front door and hands its results to the
//! sampling thread; none of them decides anything about attacks.
//!
//! - [`sockets`]: the TCP socket census (netlink `sock_diag` with `tcp_info`, falling back to
//!   `<procfs_root>/net/tcp{,6}`), on its own thread, at most one dump a second (§5.7).

pub mod sockets;

//! Delivery to the Flowtriq API (§6.2, §6.3): [`client`] (the HTTP seam, pure request
//! builders), [`spool`] (the durable queue), [`sender`] (the thread that drains a spool, with
//! [`retry`] timing and PCAP uploads), [`sink`] (the API sink that fills the spool),
//! [`remote`] (`GET /agent/config`) and [`health`] (the last accepted call). The webhook sink
//! reuses the spool and sender.

pub mod client;
pub mod health;
pub mod remote;
pub mod retry;
pub mod sender;
pub mod sink;
pub mod spool;

#[cfg(test)]
pub(crate) mod testserver;

//! Flow collection (§12): sFlow v5, NetFlow v5, NetFlow v9 and IPFIX over UDP.
//!
//! - [`record`]: the [`FlowRecord`] every decoder emits and the [`FlowSink`] that receives them.
//! - [`decode`]: one datagram → records; the version is told from its first bytes, so one port
//!   takes all four. [`sflow`], [`netflow5`], [`templates`] (v9 and IPFIX) are pure functions
//!   over `&[u8]`: every length checked, no panics, no allocation beyond the bounded template
//!   cache and the records themselves.
//! - [`collector`]: trusted exporters, per-exporter counters, sequence gaps, rate-limited logs.
//! - [`listen`]: a thread per UDP socket. [`start`] is the front door.
//!
//! Records are scaled by the sampling rate (the exporter's `sampling_rate` in the config wins
//! over what the exporter announces; an announced 0 is applied as 1 and counted) and placed on
//! the collector's clock (v5/v9 uptime fields by the header's uptime at arrival; IPFIX absolute
//! times as sent unless the exporter's clock is more than 2 s off, then shifted).

pub mod collector;
pub mod decode;
pub mod listen;
pub mod netflow5;
pub mod record;
pub mod sflow;
pub mod templates;
pub mod wire;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

pub use collector::{Collector, ExporterStats, Totals};
pub use decode::{Ctx, Decoder, Summary};
pub use record::{CountSink, FlowRecord, FlowSink, FlowSource};
pub use wire::DecodeError;

use crate::config::flows::FlowsConfig;
use crate::error::{Error, Result};

/// The running collector: its sockets' threads and the shared counters.
pub struct Flows {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    collector: Arc<Mutex<Collector>>,
    local: Vec<SocketAddr>,
}

impl Flows {
    /// Per-exporter counters, busiest first.
    pub fn exporters(&self) -> Vec<ExporterStats> {
        self.collector.lock().unwrap_or_else(PoisonError::into_inner).exporters()
    }

    pub fn totals(&self) -> Totals {
        self.collector.lock().unwrap_or_else(PoisonError::into_inner).totals()
    }

    /// The addresses actually bound (a `:0` port resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// Stop every listener and wait for it (bounded).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            crate::util::join::join_within(t, Duration::from_secs(2));
        }
    }
}

/// Start listening on `cfg.listen` (None when it is empty), records to `sink`.
pub fn start(cfg: &FlowsConfig, sink: Box<dyn FlowSink + Send>) -> Result<Option<Flows>> {
    start_on(cfg, &cfg.listen, sink)
}

/// As [`start`], on the given addresses (tests bind port 0).
pub fn start_on(cfg: &FlowsConfig, addrs: &[SocketAddr], sink: Box<dyn FlowSink + Send>) -> Result<Option<Flows>> {
    if addrs.is_empty() {
        return Ok(None);
    }
    let socks = listen::bind(addrs)?;
    let local: Vec<SocketAddr> = socks.iter().filter_map(|s| s.local_addr().ok()).collect();
    if cfg.exporters.is_empty() {
        log::warn!(
            "flows: no `flows.exporters` listed: datagrams from ANY source on {} are parsed (list your exporters)",
            local.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        );
    }
    log::info!("flows: listening on {}", local.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "));
    let stop = Arc::new(AtomicBool::new(false));
    let collector = Arc::new(Mutex::new(Collector::new(cfg)));
    let sink: listen::SharedSink = Arc::new(Mutex::new(sink));
    let mut threads = Vec::new();
    for s in socks {
        match listen::spawn(s, collector.clone(), sink.clone(), stop.clone()) {
            Ok(t) => threads.push(t),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                return Err(Error::Thread { what: "flows listener", source: e });
            }
        }
    }
    Ok(Some(Flows { stop, threads, collector, local }))
}

/// A sink that hands each datagram's records to another thread as one batch through a bounded
/// channel; a full channel drops the batch and counts it (the listener never blocks).
pub struct ChannelSink {
    tx: SyncSender<Vec<(FlowRecord, u64)>>,
    batch: Vec<(FlowRecord, u64)>,
    dropped: Arc<AtomicU64>,
}

impl ChannelSink {
    /// `tx` from `std::sync::mpsc::sync_channel(N)`; `dropped` counts records lost to a full queue.
    pub fn new(tx: SyncSender<Vec<(FlowRecord, u64)>>, dropped: Arc<AtomicU64>) -> Self {
        ChannelSink { tx, batch: Vec::new(), dropped }
    }
}

impl FlowSink for ChannelSink {
    fn record(&mut self, rec: &FlowRecord, arrived_ms: u64) {
        self.batch.push((rec.clone(), arrived_ms));
    }

    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        match self.tx.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(b)) | Err(TrySendError::Disconnected(b)) => {
                self.dropped.fetch_add(b.len() as u64, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! The flow-detection thread (§12): the collector's listener threads hand each datagram's
//! records over a bounded channel (a full channel drops and counts, the listener never blocks);
//! this thread feeds them to the per-address detector and closes a window at every wall-clock
//! second, so an incident opens at most one second after the first datagram carrying the flood
//! arrived. Its events go to the report worker through the same channel as the counters', then
//! to mitigation as incidents about other addresses: BGP plans them and the hook gets them, the
//! nftables planner never does (nftables protects only this host).
//!
//! This host's own addresses are watched by its own counters (and capture): a flood on them is
//! one incident, the local detector's. The flow view of them keeps counting (and still feeds
//! their prefix's totals) but opens no host incident of its own.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use log::{info, warn};

use crate::config::Settings;
use crate::detect::hosts::FlowDetector;
use crate::error::Result;
use crate::input::flows::{self, listen::now_ms, ChannelSink, FlowRecord, Flows};
use crate::report::{Outbox, Outgoing};

/// Datagram batches waiting for the detector.
pub const QUEUE_DEPTH: usize = 4096;

/// The running collector and detector.
pub struct Handle {
    flows: Flows,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    /// Records lost to a full queue.
    pub dropped: Arc<AtomicU64>,
}

impl Handle {
    /// Stop listening, resolve open flow incidents (`agent_stopped`), wait for the thread.
    pub fn stop(self) {
        self.flows.stop();
        self.stop.store(true, Ordering::Relaxed);
        if self.thread.join().is_err() {
            warn!("the flow-detection thread failed; see the log above");
        }
    }

    pub fn local_addrs(&self) -> &[std::net::SocketAddr] {
        self.flows.local_addrs()
    }
}

/// Start the collector on `settings.flows.listen` and the detector; None when flows are off.
/// `mitigation` (when it runs) gets the incidents after the sinks.
pub fn start(
    settings: &Settings,
    tx: SyncSender<Outgoing>,
    mitigation: Option<crate::mitigate::Observer>,
) -> Result<Option<Handle>> {
    start_on(settings, &settings.flows.listen, tx, mitigation)
}

/// As [`start`], on the given addresses (tests bind port 0).
pub fn start_on(
    settings: &Settings,
    addrs: &[std::net::SocketAddr],
    tx: SyncSender<Outgoing>,
    mitigation: Option<crate::mitigate::Observer>,
) -> Result<Option<Handle>> {
    if addrs.is_empty() {
        return Ok(None);
    }
    let (rec_tx, rec_rx) = mpsc::sync_channel::<Vec<(FlowRecord, u64)>>(QUEUE_DEPTH);
    let dropped = Arc::new(AtomicU64::new(0));
    let Some(flows) = flows::start_on(&settings.flows, addrs, Box::new(ChannelSink::new(rec_tx, dropped.clone())))?
    else {
        return Ok(None);
    };
    let mut detector = FlowDetector::new(&settings.detect, &settings.flows, now_ms());
    let own = own_addresses();
    detector.set_own(&own);
    info!(
        "flows: watching {} network(s), up to {} addresses; this host's {} address(es) are left to its own counters",
        settings.flows.networks.len(),
        settings.flows.max_hosts,
        own.len()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::Builder::new()
        .name("ftagent-flows".into())
        .spawn(move || run(detector, rec_rx, Outbox::new(tx), mitigation, s))
        .map_err(|source| crate::error::Error::Thread { what: "flow-detection", source })?;
    Ok(Some(Handle { flows, stop, thread, dropped }))
}

fn run(
    mut d: FlowDetector,
    rx: mpsc::Receiver<Vec<(FlowRecord, u64)>>,
    mut outbox: Outbox,
    mitigation: Option<crate::mitigate::Observer>,
    stop: Arc<AtomicBool>,
) {
    // The sinks first, so a `mitigation_apply` never overtakes the `incident_open` it answers.
    let hand_over = |outbox: &mut Outbox, events: &mut Vec<crate::event::Event>| {
        let msgs: Vec<Outgoing> = events.drain(..).map(Outgoing::Event).collect();
        match &mitigation {
            Some(m) => {
                outbox.send_all(msgs.clone());
                m.observe_remote(&msgs);
            }
            None => outbox.send_all(msgs),
        }
    };
    let mut events = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let now = now_ms();
        let next_second = (now / 1000 + 1) * 1000;
        match rx.recv_timeout(Duration::from_millis(next_second.saturating_sub(now).clamp(1, 1000))) {
            Ok(batch) => {
                for (r, arrived) in &batch {
                    d.record(r, *arrived);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        d.tick(now_ms(), &mut events);
        if !events.is_empty() {
            hand_over(&mut outbox, &mut events);
        }
    }
    d.stop(now_ms(), &mut events);
    hand_over(&mut outbox, &mut events);
    outbox.flush_blocking();
}

/// This host's addresses (getifaddrs); empty when they cannot be read. The same reading as the
/// protected set's (§10.1).
pub fn own_addresses() -> Vec<IpAddr> {
    crate::mitigate::protect::interface_addresses()
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_addresses_include_loopback() {
        let own = super::own_addresses();
        assert!(own.contains(&"127.0.0.1".parse().unwrap()), "{own:?}");
    }
}

//! Where the agent's output goes. The sampling thread hands [`Outgoing`] messages to one worker
//! thread through a bounded channel; the worker passes each to every [`Sink`]. Sinks may block
//! (disk, network); the sampling thread never does. Network sinks only write to their durable
//! spool here; their own sender threads talk to the network.

pub mod api;
pub mod bodies;
pub mod eventlog;
pub mod messages;
pub mod metrics_http;
pub mod sinks;
pub mod statefile;
pub mod textfile;
pub mod webhook;

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use log::{debug, warn};

pub use messages::{Heartbeat, InterfaceInfo, Metrics, Outgoing};

/// One destination for agent output.
pub trait Sink: Send {
    fn name(&self) -> String;
    /// Take one message. An error is logged by the worker and the message is not retried here:
    /// sinks that must not lose data keep their own durable queue.
    fn handle(&mut self, msg: &Outgoing) -> crate::error::Result<()>;
    /// The agent is stopping: persist whatever is pending. Must return promptly.
    fn shutdown(&mut self) {}
    /// `--test`: deliver now and say whether the destination accepted it. Sinks that queue
    /// (the API spool) override this to wait for the real answer.
    fn deliver_now(&mut self, msg: &Outgoing) -> crate::error::Result<()> {
        self.handle(msg)
    }
}

pub use crate::util::join::join_within;

/// Channel depth between the sampling thread and the worker.
pub const CHANNEL_DEPTH: usize = 4096;

/// Start the worker thread; it ends when every sender is dropped.
pub fn spawn_worker(rx: Receiver<Outgoing>, mut sinks: Vec<Box<dyn Sink>>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("ftagent-report".into())
        .spawn(move || {
            for msg in rx {
                for s in sinks.iter_mut() {
                    if let Err(e) = s.handle(&msg) {
                        warn!("{}: {e}", s.name());
                    }
                }
            }
            for s in sinks.iter_mut() {
                s.shutdown();
            }
            debug!("report worker stopped");
        })
        .expect("spawn report thread")
}

/// The sampling side of the channel: never blocks. When the worker falls behind, incident
/// events wait in a local queue (never dropped); metrics and heartbeats are dropped and counted.
pub struct Outbox {
    tx: SyncSender<Outgoing>,
    held: std::collections::VecDeque<Outgoing>,
    pub dropped: u64,
}

impl Outbox {
    pub fn new(tx: SyncSender<Outgoing>) -> Self {
        Outbox { tx, held: Default::default(), dropped: 0 }
    }

    pub fn send_all(&mut self, msgs: Vec<Outgoing>) {
        self.held.extend(msgs);
        while let Some(m) = self.held.pop_front() {
            match self.tx.try_send(m) {
                Ok(()) => {}
                Err(TrySendError::Full(m)) => {
                    self.held.push_front(m);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.held.clear();
                    return;
                }
            }
        }
        let before = self.held.len();
        self.held.retain(|m| m.is_event());
        let gone = (before - self.held.len()) as u64;
        if gone > 0 {
            if self.dropped == 0 {
                warn!("report worker is behind; dropping metrics/heartbeats (incident events are kept)");
            }
            self.dropped += gone;
        }
    }

    /// Block until everything held is handed over (used at shutdown only).
    pub fn flush_blocking(&mut self) {
        while let Some(m) = self.held.pop_front() {
            if self.tx.send(m).is_err() {
                break;
            }
        }
    }
}

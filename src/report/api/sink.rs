//! The Flowtriq API sink: turns agent output into API requests (§6.2) and puts them in the
//! durable spool; its own sender thread delivers them. `handle` only writes to disk, so a dead
//! API never holds up the report worker. `deliver_now` (`--test`) sends directly and waits for
//! the real answer, bounded by the request timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use log::warn;

use crate::error::{Error, Result};
use crate::report::api::client::{self as api, ApiClient, Reply};
use crate::report::api::remote::ConfigPoll;
use crate::report::api::sender::{self, Dest, Drain};
use crate::report::api::spool::{Kind, Spool};
use crate::report::bodies;
use crate::report::{Outgoing, Sink};

/// How long shutdown waits for a sender in the middle of a request before leaving it: the
/// spool is already on disk, so nothing is lost by not waiting.
pub const SHUTDOWN_WAIT: Duration = Duration::from_millis(500);

pub struct ApiSink {
    client: ApiClient,
    spool: Option<Arc<Spool>>,
    sender: Option<JoinHandle<()>>,
    /// `--test`: agent incident id → server uuid.
    direct_ids: HashMap<String, String>,
}

impl ApiSink {
    /// The running agent's sink: spool + sender thread (+ config polling).
    pub fn spooled(client: ApiClient, spool: Arc<Spool>, config: Option<ConfigPoll>) -> Self {
        let mut drain = Drain::new(spool.clone(), Dest::Api(client.clone()), format!("API {}", client.base));
        drain.config = config;
        let sender = Some(sender::spawn(drain));
        ApiSink { client, spool: Some(spool), sender, direct_ids: HashMap::new() }
    }

    /// No spool, no thread: every message is sent at once (`--test`).
    pub fn direct(client: ApiClient) -> Self {
        ApiSink { client, spool: None, sender: None, direct_ids: HashMap::new() }
    }
}

impl Sink for ApiSink {
    fn name(&self) -> String {
        format!("Flowtriq API {}", self.client.base)
    }

    fn handle(&mut self, msg: &Outgoing) -> Result<()> {
        let Some(spool) = &self.spool else { return self.deliver_now(msg) };
        for (kind, incident, key, body) in bodies::api_entries(msg) {
            spool.push(kind, incident, key, body)?;
        }
        Ok(())
    }

    fn shutdown(&mut self) {
        stop_sender(self.spool.as_deref(), self.sender.take());
    }

    fn deliver_now(&mut self, msg: &Outgoing) -> Result<()> {
        for (kind, incident, key, body) in bodies::api_entries(msg) {
            let item =
                crate::report::api::spool::Item { seq: 0, kind, incident: incident.clone(), key, body, done_chunks: 0 };
            let uuid = incident.as_ref().and_then(|i| self.direct_ids.get(i)).cloned();
            if matches!(kind, Kind::Update | Kind::Resolve) && uuid.is_none() {
                return Err(Error::Refused {
                    what: "incident open",
                    why: "the incident's open was not accepted".into(),
                });
            }
            let Some(req) = self.client.item_request(&item, uuid.as_deref(), 0) else { continue };
            let reply = api::send(&req, self.client.timeout_s)?;
            check_reply(&reply, Some(&self.client.node_uuid))?;
            if kind == Kind::Open {
                let uuid = sender::parse_uuid(&reply.body).ok_or_else(|| Error::Invalid {
                    what: "incident open answer",
                    why: format!("HTTP {} without an incident \"uuid\" in the answer: {}", reply.status, reply.text()),
                })?;
                self.direct_ids.insert(incident.unwrap_or_default(), uuid);
            }
        }
        Ok(())
    }
}

/// 2xx or a clear error naming the status (and for 401/403 the node whose key was refused).
pub fn check_reply(reply: &Reply, node: Option<&str>) -> Result<()> {
    match reply.status {
        200..=299 => Ok(()),
        401 | 403 if node.is_some() => Err(Error::Http {
            url: String::new(),
            status: Some(reply.status),
            why: format!(
                "API key rejected for node {} (HTTP {}): check api_key and node_uuid",
                node.unwrap_or_default(),
                reply.status
            ),
        }),
        s => Err(Error::Http { url: String::new(), status: Some(s), why: format!("HTTP {s}: {}", reply.text()) }),
    }
}

/// Stop a spool's sender: mark the spool stopped, then give its thread `SHUTDOWN_WAIT`.
pub(crate) fn stop_sender(spool: Option<&Spool>, sender: Option<JoinHandle<()>>) {
    if let Some(s) = spool {
        s.stop();
    }
    if let Some(h) = sender {
        if !crate::report::join_within(h, SHUTDOWN_WAIT) {
            warn!("a sender is still waiting on the network; leaving it (its items stay spooled)");
        }
    }
}

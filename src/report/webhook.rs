//! The webhook sink (§6.4): each incident open/resolve is POSTed as JSON (the §6.1 object plus a
//! one-line `text` summary for Slack/Discord-style receivers), through its own durable spool
//! (`<state dir>/spool/webhook`) and sender with the same retry rules as the API.
//! Logs only the URL's origin: webhook paths often hold secrets.

use std::sync::Arc;
use std::thread::JoinHandle;

use super::api::{self, origin};
use super::apisink::{check_reply, stop_sender};
use super::bodies;
use super::sender::{self, Dest, Drain};
use super::spool::{Kind, Spool};
use super::{Outgoing, Sink};
use crate::error::{Error, Result};

pub struct WebhookSink {
    url: String,
    host: String,
    spool: Option<Arc<Spool>>,
    sender: Option<JoinHandle<()>>,
}

impl WebhookSink {
    pub fn spooled(url: &str, spool: Arc<Spool>) -> Self {
        let dest = Dest::Webhook { url: url.to_string(), timeout_s: api::DEFAULT_TIMEOUT_S };
        let sender = Some(sender::spawn(Drain::new(spool.clone(), dest, format!("webhook {}", origin(url)))));
        WebhookSink { url: url.to_string(), host: bodies::hostname(), spool: Some(spool), sender }
    }

    pub fn direct(url: &str) -> Self {
        WebhookSink { url: url.to_string(), host: bodies::hostname(), spool: None, sender: None }
    }
}

impl Sink for WebhookSink {
    fn name(&self) -> String {
        format!("webhook {}", origin(&self.url))
    }

    fn handle(&mut self, msg: &Outgoing) -> Result<()> {
        let Outgoing::Event(e) = msg else { return Ok(()) };
        let Some(body) = bodies::webhook_body(e, &self.host) else { return Ok(()) };
        match &self.spool {
            Some(s) => s
                .push(Kind::Webhook, e.incident_id().map(str::to_string), uuid::Uuid::new_v4().to_string(), body)
                .map(|_| ()),
            None => self.deliver_now(msg),
        }
    }

    fn shutdown(&mut self) {
        stop_sender(self.spool.as_deref(), self.sender.take());
    }

    fn deliver_now(&mut self, msg: &Outgoing) -> Result<()> {
        let Outgoing::Event(e) = msg else { return Ok(()) };
        let Some(body) = bodies::webhook_body(e, &self.host) else { return Ok(()) };
        let req = sender::webhook_request(&self.url, &uuid::Uuid::new_v4().to_string(), &body);
        let reply = api::send(&req, api::DEFAULT_TIMEOUT_S).map_err(Error::Runtime)?;
        check_reply(&reply, None)
    }
}

//! The webhook sink (§6.4): each incident open/resolve is POSTed as JSON (the §6.1 object plus a
//! one-line `text` summary for Slack/Discord-style receivers), through its own durable spool
//! (`<state dir>/spool/webhook`) and sender with the same retry rules as the API.
//! `webhook_format` reshapes the body for Slack, Discord or PagerDuty and `webhook_secret` signs
//! each attempt (`webhook_format`). Logs only the URL's origin: webhook paths often hold secrets.

pub mod format;

use std::sync::Arc;
use std::thread::JoinHandle;

use self::format as webhook_format;
use crate::error::Result;
use crate::report::api::client::{self as api, origin};
use crate::report::api::sender::{self, Dest, Drain};
use crate::report::api::sink::{check_reply, stop_sender};
use crate::report::api::spool::{Kind, Spool};
use crate::report::bodies;
use crate::report::{Outgoing, Sink};
use format::Shape;

pub struct WebhookSink {
    url: String,
    host: String,
    opts: WebhookOptions,
    spool: Option<Arc<Spool>>,
    sender: Option<JoinHandle<()>>,
}

/// `webhook_format` (with PagerDuty's routing key) and `webhook_secret`.
#[derive(Debug, Clone, Default)]
pub struct WebhookOptions {
    pub shape: Shape,
    pub secret: String,
}

impl WebhookOptions {
    pub fn from_settings(s: &crate::config::Settings) -> Self {
        WebhookOptions {
            shape: Shape { format: s.ops.webhook_format, routing_key: s.ops.pagerduty_routing_key.clone() },
            secret: s.ops.webhook_secret.clone(),
        }
    }
}

impl WebhookSink {
    pub fn spooled(url: &str, spool: Arc<Spool>, opts: WebhookOptions) -> Self {
        let dest =
            Dest::Webhook { url: url.to_string(), timeout_s: api::DEFAULT_TIMEOUT_S, secret: opts.secret.clone() };
        let sender = Some(sender::spawn(Drain::new(spool.clone(), dest, format!("webhook {}", origin(url)))));
        WebhookSink { url: url.to_string(), host: bodies::hostname(), opts, spool: Some(spool), sender }
    }

    pub fn direct(url: &str, opts: WebhookOptions) -> Self {
        WebhookSink { url: url.to_string(), host: bodies::hostname(), opts, spool: None, sender: None }
    }

    /// The body for this event in the configured format; None for events webhooks do not get.
    fn body(&self, e: &crate::event::Event) -> Option<serde_json::Value> {
        let json = bodies::webhook_body(e, &self.host)?;
        Some(webhook_format::shape(&self.opts.shape, e, json, &self.host))
    }
}

impl Sink for WebhookSink {
    fn name(&self) -> String {
        format!("webhook {}", origin(&self.url))
    }

    fn handle(&mut self, msg: &Outgoing) -> Result<()> {
        let Outgoing::Event(e) = msg else { return Ok(()) };
        let Some(body) = self.body(e) else { return Ok(()) };
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
        let Some(body) = self.body(e) else { return Ok(()) };
        let req = sender::webhook_request(&self.url, &uuid::Uuid::new_v4().to_string(), &body, &self.opts.secret);
        let reply = api::send(&req, api::DEFAULT_TIMEOUT_S)?;
        check_reply(&reply, None)
    }
}

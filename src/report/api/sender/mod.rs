//! The spool drainer: one thread per destination (API, webhook) sends the spool's items strictly
//! in order, applying the retry rules of §6.3 (backoff, `Retry-After`, circuit breaker, 401/403,
//! other 4xx to `rejected/`), and for the API polls `GET /agent/config`. A reply's status maps to
//! one typed `Verdict`; nothing branches on message text.
//!
//! [`Drain::step`] makes at most one delivery attempt and takes `now`, so tests drive it without
//! sleeping; only [`spawn`] waits. Nothing here is called from the sampling thread.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use log::{debug, error, info, warn};

use crate::report::api::client::{self as api, ApiClient, HttpRequest, Method, Reply};
use crate::report::api::remote::ConfigPoll;
use crate::report::api::retry::{self, Breaker, RETRY_CAP};
use crate::report::api::spool::{Item, Kind, OpenAck, Spool};

mod attempt;
mod pcap;
use attempt::Attempt;

/// Where a spool goes.
pub enum Dest {
    Api(ApiClient),
    /// `secret` non-empty: every attempt is signed (§6.6, `report::webhook_format`).
    Webhook {
        url: String,
        timeout_s: u64,
        secret: String,
    },
}

/// What one step did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing to send.
    Idle,
    /// The breaker or backoff says wait (until the given time).
    Waiting(Option<Instant>),
    Delivered(Kind),
    /// Failed; will be retried after the given delay.
    Retry {
        reason: String,
        delay: Duration,
    },
    /// The server refused the item (4xx); it went to `rejected/`.
    Rejected(u16),
    /// 401/403: the key was refused; the item stays, retried slowly.
    AuthRejected(u16),
    /// A config poll ran.
    Config,
    /// The item cannot be sent yet for a reason of its own (its PCAP is still being written);
    /// it is retried after the delay while the other streams go on.
    Deferred(Duration),
}

/// How a reply's HTTP status is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// 2xx: delivered.
    Ok,
    /// 401/403: the key or node is not accepted; retried slowly, never dropped.
    Auth,
    /// Timeouts, rate limits, server errors and redirects: retried with backoff.
    Retry,
    /// Any other status: the item is moved to `rejected/`.
    Reject,
}

fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Ok,
        401 | 403 => Verdict::Auth,
        408 | 425 | 429 | 500..=599 => Verdict::Retry,
        300..=399 => Verdict::Retry,
        _ => Verdict::Reject,
    }
}

pub struct Drain {
    pub spool: Arc<Spool>,
    pub dest: Dest,
    pub breaker: Breaker,
    pub config: Option<ConfigPoll>,
    pub name: String,
    auth_logged: bool,
    /// Items waiting for their own retry (seq → when, and how many times deferred).
    deferred: std::collections::HashMap<u64, (Instant, u32)>,
}

impl Drain {
    pub fn new(spool: Arc<Spool>, dest: Dest, name: String) -> Self {
        Drain {
            spool,
            dest,
            breaker: Breaker::default(),
            config: None,
            name,
            auth_logged: false,
            deferred: Default::default(),
        }
    }

    /// At most one attempt (one request, or the chunks of one PCAP).
    pub fn step(&mut self, now: Instant) -> Outcome {
        if let (Dest::Api(client), Some(poll)) = (&self.dest, self.config.as_mut()) {
            if poll.due(now) && self.breaker.allow(now) {
                let r = api::send(&client.config_request(), client.timeout_s);
                let failed = poll.handle(now, r);
                self.settle_plain(now, failed);
                return Outcome::Config;
            }
        }
        let deferred = &self.deferred;
        let Some(item) = self.spool.head_where(|seq| deferred.get(&seq).is_some_and(|(t, _)| now < *t)) else {
            return match self.deferred.values().map(|(t, _)| *t).min() {
                Some(t) => Outcome::Waiting(Some(t)),
                None => Outcome::Idle,
            };
        };
        if !self.breaker.allow(now) {
            return Outcome::Waiting(self.breaker.next_attempt());
        }
        let result = self.attempt(&item);
        self.settle(now, &item, result)
    }

    /// Send one item; `Ok(reply)` carries the server's answer, `Err` a transport failure.
    fn attempt(&mut self, item: &Item) -> Attempt {
        match &self.dest {
            Dest::Webhook { url, timeout_s, secret } => {
                let req = webhook_request(url, &item.key, &item.body, secret);
                Attempt::Reply(api::send(&req, *timeout_s))
            }
            Dest::Api(client) => {
                let uuid = match item.kind {
                    Kind::Update | Kind::Resolve | Kind::Pcap => {
                        match item.incident.as_deref().and_then(|i| self.spool.ack(i)) {
                            Some(OpenAck::Uuid(u)) => Some(u),
                            Some(OpenAck::Rejected) => return Attempt::Local("the incident's open was rejected"),
                            None => return Attempt::Local("no acknowledged open for this incident"),
                        }
                    }
                    _ => None,
                };
                if item.kind == Kind::Pcap {
                    return pcap::upload(client, &self.spool, item, uuid.as_deref().unwrap_or(""));
                }
                let queue = self.spool.len();
                match client.item_request(item, uuid.as_deref(), queue) {
                    Some(req) => Attempt::Reply(api::send(&req, client.timeout_s)),
                    None => Attempt::Local("item kind not sent to the API"),
                }
            }
        }
    }

    fn settle(&mut self, now: Instant, item: &Item, result: Attempt) -> Outcome {
        let reply = match result {
            Attempt::NotReady(reason) => return self.defer(now, item, &reason),
            Attempt::Local(reason) => {
                warn!("{}: {} {}: {reason}; moved to rejected/", self.name, kind_name(item.kind), item.seq);
                self.spool.reject(item, 0, reason);
                return Outcome::Rejected(0);
            }
            Attempt::Reply(Err(e)) => return self.failed(now, e.to_string(), None, Duration::ZERO),
            Attempt::Reply(Ok(r)) => r,
        };
        let retry_after = reply.retry_after.as_deref().and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
        match verdict(reply.status) {
            Verdict::Ok => self.accepted(now, item, &reply),
            Verdict::Auth => {
                self.log_auth(reply.status);
                self.breaker.on_failure(now, retry_after, RETRY_CAP, retry::jitter());
                Outcome::AuthRejected(reply.status)
            }
            Verdict::Retry => {
                self.failed(now, format!("HTTP {}: {}", reply.status, reply.text()), retry_after, Duration::ZERO)
            }
            Verdict::Reject => self.refused(item, &reply),
        }
    }

    /// 2xx: record an open's server uuid (a 2xx without one is retried), delete the item.
    fn accepted(&mut self, now: Instant, item: &Item, reply: &Reply) -> Outcome {
        if item.kind == Kind::Open {
            let Some(uuid) = parse_uuid(&reply.body) else {
                let why = format!("HTTP {} with an unreadable answer (no \"uuid\"): {}", reply.status, reply.text());
                return self.failed(now, why, None, Duration::ZERO);
            };
            if let Err(e) = self.spool.record_ack(item.incident.as_deref().unwrap_or(""), OpenAck::Uuid(uuid)) {
                error!("{}: cannot record the incident's server id: {e}", self.name);
            }
        }
        self.spool.remove(item.seq);
        if matches!(self.dest, Dest::Api(_)) {
            crate::report::api::health::record_api_success(SystemTime::now());
        }
        if self.breaker.on_success() {
            info!("{}: delivering again; {} item(s) waiting", self.name, self.spool.len());
        }
        self.auth_logged = false;
        Outcome::Delivered(item.kind)
    }

    /// 401/403: one clear line until a call succeeds again.
    fn log_auth(&mut self, status: u16) {
        if std::mem::replace(&mut self.auth_logged, true) {
            return;
        }
        match &self.dest {
            Dest::Api(c) => error!(
                "API key rejected for node {} (HTTP {status}); events stay spooled and are retried every {} s — check api_key/node_uuid",
                c.node_uuid,
                RETRY_CAP.as_secs()
            ),
            Dest::Webhook { .. } => error!("{}: HTTP {status} (not authorised); retrying slowly", self.name),
        }
    }

    /// Other 4xx: keep the item and the answer under `rejected/`, go on with the rest.
    fn refused(&mut self, item: &Item, reply: &Reply) -> Outcome {
        warn!(
            "{}: HTTP {} for {} {}; moved to rejected/ with the answer: {}",
            self.name,
            reply.status,
            kind_name(item.kind),
            item.seq,
            reply.text()
        );
        if item.kind == Kind::Open {
            let _ = self.spool.record_ack(item.incident.as_deref().unwrap_or(""), OpenAck::Rejected);
        }
        self.spool.reject(item, reply.status, &reply.text());
        self.breaker.on_success();
        Outcome::Rejected(reply.status)
    }

    fn failed(&mut self, now: Instant, reason: String, retry_after: Option<Duration>, floor: Duration) -> Outcome {
        let was_open = self.breaker.is_open();
        let delay = self.breaker.on_failure(now, retry_after, floor, retry::jitter());
        if self.breaker.failures == 1 || (self.breaker.is_open() && !was_open) {
            warn!(
                "{}: {reason}; {} item(s) spooled, retrying in {:.1} s",
                self.name,
                self.spool.len(),
                delay.as_secs_f64()
            );
        } else {
            debug!("{}: {reason}; retry in {:.1} s", self.name, delay.as_secs_f64());
        }
        Outcome::Retry { reason, delay }
    }

    /// Retry this item later (backoff per item, capped); the breaker is not involved.
    fn defer(&mut self, now: Instant, item: &Item, reason: &str) -> Outcome {
        let live = |seq: &u64| *seq == item.seq;
        self.deferred.retain(|seq, _| live(seq) || self.spool.contains(*seq));
        let times = self.deferred.get(&item.seq).map(|(_, n)| n + 1).unwrap_or(1);
        let delay = retry::backoff(times, retry::jitter());
        self.deferred.insert(item.seq, (now + delay, times));
        debug!(
            "{}: {} {}: {reason}; retry in {:.1} s, other items go on",
            self.name,
            kind_name(item.kind),
            item.seq,
            delay.as_secs_f64()
        );
        Outcome::Deferred(delay)
    }

    fn settle_plain(&mut self, now: Instant, failed: Option<String>) {
        match failed {
            None => {
                crate::report::api::health::record_api_success(SystemTime::now());
                self.breaker.on_success();
            }
            Some(reason) => {
                self.failed(now, reason, None, Duration::ZERO);
            }
        }
    }
}

fn kind_name(k: Kind) -> String {
    serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// The server's incident id from an open's answer: `{"uuid": "..."}` (also accepted under `data`).
pub fn parse_uuid(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let u = v.get("uuid").or_else(|| v.get("data").and_then(|d| d.get("uuid")))?.as_str()?;
    let ok = !u.is_empty() && u.len() <= 128 && u.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    ok.then(|| u.to_string())
}

/// A webhook POST; signed with `secret` (when non-empty) at the time it is built.
pub fn webhook_request(url: &str, key: &str, body: &serde_json::Value, secret: &str) -> HttpRequest {
    let body = serde_json::to_vec(body).unwrap_or_default();
    let mut headers = vec![
        ("Content-Type".into(), "application/json".into()),
        ("User-Agent".into(), format!("ftagent/{}", crate::event::AGENT_VERSION)),
        ("Idempotency-Key".into(), key.to_string()),
    ];
    if !secret.is_empty() {
        let unix_s = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        headers.extend(crate::report::webhook::format::signature_headers(secret, unix_s, &body));
    }
    HttpRequest { method: Method::Post, url: url.to_string(), headers, body }
}

/// Run the drain on its own thread until the spool is stopped.
pub fn spawn(mut drain: Drain) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("ftagent-send".into())
        .spawn(move || {
            while !drain.spool.stopping() {
                let now = Instant::now();
                let wake = match drain.step(now) {
                    Outcome::Idle => drain.config.as_ref().map(|c| c.next_due()),
                    Outcome::Waiting(t) => t,
                    _ => continue,
                };
                let wait = wake.map(|t| t.saturating_duration_since(now)).unwrap_or(Duration::from_secs(1));
                drain.spool.wait(wait.clamp(Duration::from_millis(5), Duration::from_secs(1)));
            }
            debug!("{}: sender stopped with {} item(s) spooled", drain.name, drain.spool.len());
        })
        .expect("spawn sender thread")
}

#[cfg(test)]
mod tests;

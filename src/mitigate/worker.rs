//! The mitigation worker (§10): one thread that takes incident events from the sampling
//! thread (never blocking it), plans rules, applies them as one nftables batch, renews them
//! while the incident lasts, removes them at resolve + `ttl_s` or at expiry, reconciles the
//! table at start, and reports `mitigation_apply` / `mitigation_remove` to the sinks.
//! [`start`] is the front door: it decides whether mitigation can run and logs why not.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use log::{error, info, warn};
use serde_json::{json, Value};

use super::hook::HookRunner;
use super::lifecycle::{Refresher, State};
use super::nft::Nft;
use super::protect::{ProtectedSet, Roots};
use crate::config::mitigation::Mode;
use crate::config::Settings;
use crate::event::{Event, EventBody};
use crate::input::capture::handle::LiveClassification;
use crate::report::Outgoing;

/// Incident events waiting for the worker; past it they are dropped with a log line (the next
/// update re-plans).
const QUEUE: usize = 256;
/// How often the worker looks at expiries and renewals.
pub const TICK: Duration = Duration::from_millis(100);

/// The running mitigation: hand it each tick's messages; stop it after the sampling thread.
pub struct Mitigation {
    tx: SyncSender<(Event, Origin)>,
    thread: JoinHandle<()>,
}

impl Mitigation {
    /// A sender for the sampling loop.
    pub fn observer(&self) -> Observer {
        Observer { tx: self.tx.clone() }
    }

    /// Stop the worker (bounded); rules in force stay until their kernel-side timeouts.
    pub fn stop(self) {
        drop(self.tx);
        crate::report::join_within(self.thread, Duration::from_secs(3));
    }
}

/// Where an incident came from: this host's own detector, or the flow detector about other
/// addresses (§12), which only the hook sees here: nftables protects only this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Host,
    Remote,
}

/// Hands incident events to the worker from the sampling thread.
#[derive(Clone)]
pub struct Observer {
    tx: SyncSender<(Event, Origin)>,
}

impl Observer {
    /// Pass on the incident events among `msgs`; never blocks.
    pub fn observe(&self, msgs: &[Outgoing]) {
        self.send(msgs, Origin::Host);
    }

    /// Pass on incidents about other addresses (the flow detector's): the hook gets them, the
    /// nftables planner never does. Never blocks.
    pub fn observe_remote(&self, msgs: &[Outgoing]) {
        self.send(msgs, Origin::Remote);
    }

    fn send(&self, msgs: &[Outgoing], origin: Origin) {
        for m in msgs {
            let Outgoing::Event(e) = m else { continue };
            if !matches!(
                e.body,
                EventBody::IncidentOpen(_) | EventBody::IncidentUpdate(_) | EventBody::IncidentResolve(_)
            ) {
                continue;
            }
            if let Err(TrySendError::Full(_)) = self.tx.try_send((e.clone(), origin)) {
                warn!("mitigation worker is behind; an incident event was skipped");
            }
        }
    }
}

/// The fix printed when mitigation is off for lack of privilege. The privilege belongs to the
/// system service (`AmbientCapabilities=` in its unit), never to the binary itself: file
/// capabilities on a shared binary would let every local user run it with their own config.
pub const FIX: &str = "mitigation needs CAP_NET_ADMIN: run it as the system service, whose unit grants it \
(`AmbientCapabilities=CAP_NET_ADMIN`; `sudo ftagent --install-service` after `\"mode\": \"enforce\"` was set \
writes it), or as root";

/// Start mitigation when the config asks for it and the process may; else one log line.
/// `live` reads the capture's latest classification: an incident whose open carried too little
/// to act on is re-planned from it every tick until it has rules.
pub fn start(
    settings: &Settings,
    events: SyncSender<Outgoing>,
    live: Option<LiveClassification>,
) -> Option<Mitigation> {
    let cfg = settings.mitigation.clone();
    if cfg.mode == Mode::Off {
        return None;
    }
    if settings.limited {
        info!("nftables mitigation off: limited mode runs no root-level function; run without --limited and {FIX}");
        return None;
    }
    let nft = match cfg.mode {
        Mode::Enforce => {
            if let Err(why) = may_admin_net() {
                info!("mitigation off: {why}; {FIX}");
                return None;
            }
            Some(Nft::default())
        }
        _ => None,
    };
    let hook = if cfg.mode == Mode::Enforce { cfg.hook.clone().map(HookRunner::spawn) } else { None };
    let mut state = State::new(cfg.clone(), ProtectedSet::default(), nft, events);
    state.set_live(live);
    let refresher = Refresher::new(Roots::system(&settings.procfs_root), sinks(settings));
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let thread = std::thread::Builder::new()
        .name("ftagent-mitigate".into())
        .spawn(move || {
            // Found before anything is applied: sink names may need a DNS lookup.
            state.set_refresher(refresher, SystemTime::now());
            state.reconcile(SystemTime::now());
            run(&mut state, rx, hook);
        })
        .map_err(|e| error!("mitigation off: cannot start its thread: {e}"))
        .ok()?;
    info!(
        "mitigation {}: rules expire after {} s, at most {} rules{}",
        cfg.mode.as_str(),
        cfg.ttl.as_secs(),
        cfg.max_rules,
        if cfg.mode == Mode::DryRun { " (dry run: nothing is applied)" } else { "" }
    );
    Some(Mitigation { tx, thread })
}

/// Root, or CAP_NET_ADMIN effective; then make it ambient so the `nft` child has it too.
fn may_admin_net() -> crate::error::Result<()> {
    use caps::{CapSet, Capability};
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return Ok(());
    }
    if !caps::has_cap(None, CapSet::Effective, Capability::CAP_NET_ADMIN).unwrap_or(false) {
        return Err(crate::error::Error::Refused {
            what: "mitigation",
            why: format!("not root and no CAP_NET_ADMIN (uid {euid})"),
        });
    }
    let ambient = caps::raise(None, CapSet::Inheritable, Capability::CAP_NET_ADMIN)
        .and_then(|()| caps::raise(None, CapSet::Ambient, Capability::CAP_NET_ADMIN));
    ambient.map_err(|e| crate::error::Error::Refused {
        what: "mitigation",
        why: format!("CAP_NET_ADMIN cannot be passed to nft ({e})"),
    })
}

/// Every place the agent sends to (§10.1: their addresses are never blocked): (key, URL).
fn sinks(settings: &Settings) -> Vec<(String, String)> {
    let mut v = Vec::new();
    if settings.api_enabled() {
        v.push(("api_base".to_string(), settings.api_base.clone()));
    }
    if !settings.webhook_url.is_empty() {
        v.push(("webhook_url".to_string(), settings.webhook_url.clone()));
    }
    if settings.auto_update {
        v.push(("update_url".to_string(), settings.update_url.clone()));
    }
    if !settings.ops.pagerduty_routing_key.is_empty() {
        v.push(("pagerduty_routing_key".into(), "https://events.pagerduty.com/v2/enqueue".into()));
    }
    v
}

fn run(state: &mut State, rx: Receiver<(Event, Origin)>, hook: Option<HookRunner>) {
    loop {
        match rx.recv_timeout(TICK) {
            Ok((e, origin)) => {
                let now = SystemTime::now();
                let planned = match origin {
                    Origin::Host => state.on_event(&e, now),
                    Origin::Remote => Vec::new(),
                };
                if let (Some(h), false) = (&hook, outbound(&e)) {
                    h.send(hook_payload(&e, state.mode(), planned));
                }
                state.tick(now);
            }
            Err(RecvTimeoutError::Timeout) => state.tick(SystemTime::now()),
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let left = state.active_count();
    if left > 0 {
        info!("mitigation stopping: {left} rule(s) stay in force until their timeouts (at most {} s)", state.ttl_s());
    }
    if let Some(h) = hook {
        h.stop(Duration::from_secs(2));
    }
}

/// An outbound incident (§5.5) is this host attacking others: no rule and no hook run (an RTBH
/// of our own address would cut the host off).
fn outbound(e: &Event) -> bool {
    use crate::event::Direction::Outbound;
    match &e.body {
        EventBody::IncidentOpen(o) => o.direction == Outbound,
        EventBody::IncidentUpdate(u) => u.direction == Outbound,
        EventBody::IncidentResolve(r) => r.direction == Outbound,
        _ => false,
    }
}

/// What the hook reads on stdin.
fn hook_payload(e: &Event, mode: Mode, planned: Vec<Value>) -> Value {
    json!({
        "event": e.name(),
        "mode": mode.as_str(),
        "incident": e,
        "rules": planned,
    })
}

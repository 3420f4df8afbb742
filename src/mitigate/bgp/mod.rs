//! BGP as a mitigation backend (§10.2): FlowSpec rules and, past a floor, the blackhole of the
//! target, announced through a real BGP speaker (GoBGP, driven by its `gobgp` client with an
//! argv) so the routers upstream drop the flood before it fills the uplink.
//!
//! [`plan`] (pure: classification → routes, most specific first, refusals with reasons),
//! [`route`] (a route ↔ the exact argv; the one-address check), [`gobgp`] (runs the client with
//! a deadline, reads the RIB back), [`lifecycle`] (announce, renew, withdraw, reconcile at start,
//! withdraw all at stop), [`own`] (the host's addresses). [`start`] runs it all on its own thread,
//! off the sampling thread. Built in every build and allowed in limited mode: the speaker holds
//! whatever privilege BGP needs, the agent needs none.

pub mod gobgp;
pub mod lifecycle;
pub mod own;
pub mod plan;
pub mod route;

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use log::{error, info, warn};

use crate::config::flows::Prefix;
use crate::config::mitigation::{Cidr, Mode};
use crate::config::Settings;
use crate::event::{Event, EventBody};
use crate::input::capture::handle::LiveClassification;
use crate::report::Outgoing;

use lifecycle::State;

/// Incident events waiting for the worker; past it they are dropped with a log line.
const QUEUE: usize = 256;
/// How often the worker looks at expiries and renewals.
pub const TICK: Duration = Duration::from_millis(100);
/// How often the host's own addresses are read again.
const OWN_EVERY: Duration = Duration::from_secs(60);

/// The running BGP backend.
pub struct Bgp {
    tx: SyncSender<Event>,
    thread: JoinHandle<()>,
}

impl Bgp {
    pub fn sender(&self) -> SyncSender<Event> {
        self.tx.clone()
    }

    /// Stop the worker: it withdraws every route first (bounded by the client's timeout per route).
    pub fn stop(self) {
        drop(self.tx);
        crate::report::join_within(self.thread, Duration::from_secs(15));
    }
}

/// Hand one incident event to the worker; never blocks.
pub fn observe(tx: &SyncSender<Event>, e: &Event) {
    if !matches!(e.body, EventBody::IncidentOpen(_) | EventBody::IncidentUpdate(_) | EventBody::IncidentResolve(_)) {
        return;
    }
    if let Err(TrySendError::Full(_)) = tx.try_send(e.clone()) {
        warn!("bgp worker is behind; an incident event was skipped");
    }
}

/// Start the BGP backend when `mitigation.bgp` is set and the mode is not off.
/// `live` reads the capture's latest classification (capture builds): an incident whose open
/// carried too little to act on is planned again from it every tick until it has a route.
pub fn start(settings: &Settings, events: SyncSender<Outgoing>, live: Option<LiveClassification>) -> Option<Bgp> {
    let m = settings.mitigation.clone();
    let mut bgp = m.bgp.clone()?;
    if m.mode == Mode::Off {
        return None;
    }
    bgp.networks = allowed_networks(&bgp.networks, &settings.flows.networks);
    let driver = (m.mode == Mode::Enforce).then(|| gobgp::Gobgp::new(&bgp));
    let protected = crate::mitigate::protected_set(settings);
    let mut state = State::new(m.clone(), bgp.clone(), driver, own::addresses(), protected, events);
    state.set_classify(live);
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let thread = std::thread::Builder::new()
        .name("ftagent-bgp".into())
        .spawn(move || {
            state.reconcile();
            run(&mut state, rx);
            state.stop();
        })
        .map_err(|e| error!("bgp mitigation off: cannot start its thread: {e}"))
        .ok()?;
    let shown: Vec<String> = bgp.networks.iter().map(|c| c.to_string()).collect();
    info!(
        "bgp mitigation {} through gobgp at {}: FlowSpec {}, blackhole {}, at most {} routes, networks [{}] and this \
         host's addresses{}",
        m.mode.as_str(),
        bgp.api,
        if bgp.flowspec { "on" } else { "off" },
        match (bgp.rtbh_min_pps, bgp.rtbh_min_bps) {
            (None, None) => "off".to_string(),
            (p, b) => format!("at ≥ {} pps or ≥ {} bps", opt(p), opt(b)),
        },
        bgp.max_routes,
        shown.join(", "),
        if m.mode == Mode::DryRun { " (dry run: nothing is announced)" } else { "" }
    );
    Some(Bgp { tx, thread })
}

/// The networks routes may be announced for (§10.2 "only what is ours"): `mitigation.bgp.networks`
/// and the flow collector's `flows.networks` (§12), each prefix once.
pub fn allowed_networks(bgp: &[Cidr], flows: &[Prefix]) -> Vec<Cidr> {
    let mut out = bgp.to_vec();
    for p in flows {
        let c = Cidr { addr: p.addr, prefix: p.len };
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

fn opt(v: Option<f64>) -> String {
    v.map(|n| format!("{n}")).unwrap_or_else(|| "-".into())
}

fn run(state: &mut State, rx: Receiver<Event>) {
    let mut own_read = Instant::now();
    loop {
        match rx.recv_timeout(TICK) {
            Ok(e) => {
                let now = SystemTime::now();
                state.on_event(&e, now);
                state.tick(now);
            }
            Err(RecvTimeoutError::Timeout) => state.tick(SystemTime::now()),
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if own_read.elapsed() >= OWN_EVERY {
            state.set_own(own::addresses());
            own_read = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests;

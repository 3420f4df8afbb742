//! The rules in force and their life (§10): apply on open and re-classification, renew while
//! the incident lasts, remove at resolve + `ttl_s` or at expiry, adopt live rules at start.
//! Time is passed in; the only side effects are the [`Nft`] calls and the events sent to the
//! report worker. In dry-run there is no [`Nft`]: the same life is planned and reported only.
//!
//! §10.1: renewal needs a live incident, one whose open or update arrived within [`LIVE`]; a
//! lost resolve or a stalled sampler leaves its rules to expire at their TTL. The protected set
//! is found afresh every [`protect::REFRESH_EVERY`] and the established peers every
//! [`protect::PEERS_EVERY`] while no incident is open (so the snapshot predates the incident).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, SystemTime};

use log::{error, info, warn};
use serde_json::{json, Value};

use super::nft::{self, Applied, Nft};
use super::plan::{self, Planned, Refusal};
use super::protect::{self, Inputs, ProtectedSet, Roots, SinkResolver};
use crate::config::mitigation::{MitigationConfig, Mode};
use crate::event::{rfc3339_ms, Classification, Direction, Event, EventBody, MitigationEvent};
use crate::input::capture::handle::LiveClassification;
use crate::report::Outgoing;

/// One rule in force (or, in dry-run, planned).
#[derive(Debug, Clone)]
pub struct Active {
    pub applied: Applied,
    pub expires: SystemTime,
    /// Its incident resolved (or belonged to an earlier run): hold until `expires`, no renewal.
    pub resolved: bool,
    /// In its incident's latest plan: only these are renewed; the others run out (`expired`).
    pub wanted: bool,
    /// Packets dropped by earlier incarnations of the element (a renewal resets its counter).
    pub dropped_before: u64,
    pub dropped: u64,
}

/// An incident is live while its open or latest update is at most this old (the detector
/// updates an open incident every 5 s): only live incidents' rules are renewed.
pub const LIVE: Duration = Duration::from_secs(15);

/// Where the protected set is found afresh from (absent in unit tests, which set it).
pub struct Refresher {
    pub roots: Roots,
    sinks: SinkResolver,
    last: Option<SystemTime>,
    last_peers: Option<SystemTime>,
}

impl Refresher {
    /// `sinks`: (config key, URL) of every sink.
    pub fn new(roots: Roots, sinks: Vec<(String, String)>) -> Self {
        Refresher { roots, sinks: SinkResolver::new(sinks), last: None, last_peers: None }
    }
}

pub struct State {
    cfg: MitigationConfig,
    protected: ProtectedSet,
    refresher: Option<Refresher>,
    /// `ct state established,related accept` is in the table (None: no table built yet).
    conntrack: Option<bool>,
    /// When each open incident was last opened or updated.
    updated: HashMap<String, SystemTime>,
    /// The sources each incident's latest plan refused, as reported.
    refused: HashMap<String, Vec<Refusal>>,
    nft: Option<Nft>,
    events: SyncSender<Outgoing>,
    active: Vec<Active>,
    open: HashSet<String>,
    /// Our table exists with its sets and fixed rules.
    table: bool,
    handles: HashMap<String, u64>,
    capped_logged: bool,
    /// The capture's latest classification, read while an open incident still has no rule.
    live: Option<LiveClassification>,
    /// Open incidents whose last plan put nothing in force.
    pending: HashSet<String>,
    /// After nft refused a batch: no new try before this, and the delay doubles (§13).
    retry: Backoff,
}

/// Exponential back-off for failing nft: 100 ms doubling to 30 s, reset by a success.
#[derive(Debug, Default)]
struct Backoff {
    until: Option<SystemTime>,
    delay: Duration,
    failures: u64,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(30);

    fn waiting(&self, now: SystemTime) -> bool {
        self.until.is_some_and(|t| now < t)
    }

    /// Record a failure at `now`; true when it should be logged (the 1st, 2nd, 4th, 8th…).
    fn failed(&mut self, now: SystemTime) -> bool {
        self.delay = if self.failures == 0 { Self::FIRST } else { (self.delay * 2).min(Self::MAX) };
        self.until = Some(now + self.delay);
        self.failures += 1;
        self.failures.is_power_of_two()
    }

    /// True when failures were being retried.
    fn succeeded(&mut self) -> bool {
        let was = self.failures > 0;
        *self = Backoff::default();
        was
    }
}

impl State {
    pub fn new(cfg: MitigationConfig, protected: ProtectedSet, nft: Option<Nft>, events: SyncSender<Outgoing>) -> Self {
        State {
            cfg,
            protected,
            refresher: None,
            conntrack: None,
            updated: HashMap::new(),
            refused: HashMap::new(),
            nft,
            events,
            active: Vec::new(),
            open: HashSet::new(),
            table: false,
            handles: HashMap::new(),
            capped_logged: false,
            live: None,
            pending: HashSet::new(),
            retry: Backoff::default(),
        }
    }

    pub fn set_live(&mut self, live: Option<LiveClassification>) {
        self.live = live;
    }

    /// Find the protected set afresh from these roots and sinks (at once, then periodically).
    pub fn set_refresher(&mut self, r: Refresher, now: SystemTime) {
        self.refresher = Some(r);
        self.refresh(now);
    }

    pub fn protected(&self) -> &ProtectedSet {
        &self.protected
    }

    /// The protected set afresh when due; the established peers when due and no incident is
    /// open. The table's allow sets follow when they changed.
    fn refresh(&mut self, now: SystemTime) {
        let Some(r) = &mut self.refresher else { return };
        let due = |last: Option<SystemTime>, every: Duration| {
            last.is_none_or(|t| now.duration_since(t).unwrap_or_default() >= every || t > now)
        };
        if due(r.last_peers, protect::PEERS_EVERY) && self.open.is_empty() {
            r.last_peers = Some(now);
            self.protected.set_peers(protect::established_peers(&r.roots.proc));
        }
        if !due(r.last, protect::REFRESH_EVERY) {
            return;
        }
        let first = r.last.is_none();
        r.last = Some(now);
        // Names resolved now are used at the next refresh (a minute sooner the first time).
        r.sinks.lookup();
        if first {
            r.last = now.checked_sub(protect::REFRESH_EVERY - Duration::from_secs(30)).or(Some(now));
        }
        let before = self.protected.cidrs();
        let inputs = Inputs::read(&r.roots, r.sinks.known(), &self.cfg.allowlist, self.cfg.block_private);
        self.protected.refresh(&inputs);
        let after = self.protected.cidrs();
        if first {
            let shown: Vec<String> =
                self.protected.listed().iter().map(|(ip, why)| format!("{ip} ({})", short(why))).collect();
            info!("mitigation never blocks: {}", shown.join(", "));
        }
        if before != after && self.table {
            if let Some(nft) = &self.nft {
                if let Err(e) = nft.apply(nft::set_allow(&after)) {
                    warn!("mitigation: cannot update the protected addresses in table inet {}: {e}", nft::TABLE);
                }
            }
        }
    }

    /// Addresses with an ESTABLISHED TCP connection now (sources that completed a handshake).
    fn handshakes(&self) -> HashSet<IpAddr> {
        self.refresher.as_ref().map(|r| protect::established_peers(&r.roots.proc)).unwrap_or_default()
    }

    /// Build the table with `rules`: with the conntrack rule first, or, where conntrack is not
    /// available, without it (said once in the log and in every `mitigation_apply`).
    fn rebuild(&mut self, rules: &[Applied]) -> crate::error::Result<()> {
        let Some(nft) = &self.nft else { return Ok(()) };
        let allow = self.protected.cidrs();
        if self.conntrack != Some(false) {
            match nft.apply(nft::rebuild(&allow, rules, true)) {
                Ok(()) => {
                    self.conntrack = Some(true);
                    return Ok(());
                }
                Err(e) => warn!(
                    "mitigation: conntrack is not available ({e}); rules apply without `ct state established,related accept`, \
                     so they can also drop replies to the host's own traffic"
                ),
            }
        }
        let r = nft.apply(nft::rebuild(&allow, rules, false));
        if r.is_ok() {
            self.conntrack = Some(false);
        }
        r
    }
    pub fn mode(&self) -> Mode {
        self.cfg.mode
    }

    pub fn ttl_s(&self) -> u64 {
        self.cfg.ttl.as_secs()
    }

    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// At start: live rules left by an earlier run are adopted (re-applied with their remaining
    /// time, in a fresh table: no duplicates); expired ones are gone; an empty table is deleted.
    pub fn reconcile(&mut self, now: SystemTime) {
        let Some(nft) = &self.nft else { return };
        let listed = match nft.list() {
            Ok(None) => return,
            Ok(Some(text)) => nft::parse_listing(&text, self.cfg.syn_rate_pps, self.cfg.icmp_rate_pps),
            Err(e) => Err(e),
        };
        let live: Vec<nft::Listed> = match listed {
            Ok(l) => l.rules.into_iter().filter(|r| r.expires_s > 0).collect(),
            Err(e) => {
                warn!("mitigation: cannot read table inet {}: {e}; rebuilding it", nft::TABLE);
                Vec::new()
            }
        };
        if live.is_empty() {
            match nft.apply(nft::delete_table()) {
                Ok(()) => {
                    info!("mitigation: removed table inet {} left by an earlier run (nothing live in it)", nft::TABLE)
                }
                Err(e) => error!("mitigation: cannot remove the stale table inet {}: {e}", nft::TABLE),
            }
            return;
        }
        let adopted: Vec<Active> = live
            .into_iter()
            .map(|l| Active {
                applied: Applied { rule: l.rule, incident: l.incident, timeout_s: l.expires_s.max(1) },
                expires: now + Duration::from_secs(l.expires_s.max(1)),
                resolved: true,
                wanted: false,
                dropped_before: l.packets,
                dropped: l.packets,
            })
            .collect();
        let applied: Vec<Applied> = adopted.iter().map(|a| a.applied.clone()).collect();
        if let Err(e) = self.rebuild(&applied) {
            error!("mitigation: cannot re-apply {} live rule(s) from an earlier run: {e}", applied.len());
            return;
        }
        self.table = true;
        info!("mitigation: adopted {} live rule(s) from an earlier run; they expire by themselves", adopted.len());
        self.active = adopted;
        self.refresh_counters();
        for id in self.incident_ids() {
            self.report(true, &id, "adopted", |a| a.applied.incident == id);
        }
    }

    /// An incident event: plan, apply what is new, renew at resolve. Returns the incident's
    /// rules (for the hook).
    pub fn on_event(&mut self, e: &Event, now: SystemTime) -> Vec<Value> {
        match &e.body {
            // An outbound flood is this host attacking others: nothing to drop on the way in.
            EventBody::IncidentOpen(o) if o.direction == Direction::Outbound => Vec::new(),
            EventBody::IncidentUpdate(u) if u.direction == Direction::Outbound => Vec::new(),
            EventBody::IncidentOpen(o) => {
                self.updated.insert(o.incident_id.clone(), now);
                self.planned(&o.incident_id, &o.class, "incident_open", now)
            }
            EventBody::IncidentUpdate(u) => {
                self.updated.insert(u.incident_id.clone(), now);
                self.planned(&u.incident_id, &u.class, "reclassified", now)
            }
            EventBody::IncidentResolve(r) => {
                self.open.remove(&r.incident_id);
                self.pending.remove(&r.incident_id);
                self.updated.remove(&r.incident_id);
                self.refused.remove(&r.incident_id);
                let ttl = self.cfg.ttl;
                let due: Vec<usize> =
                    (0..self.active.len()).filter(|i| self.active[*i].applied.incident == r.incident_id).collect();
                for &i in &due {
                    self.active[i].resolved = true;
                }
                self.renew(&due, now, ttl);
                self.entries(|a| a.applied.incident == r.incident_id)
            }
            _ => Vec::new(),
        }
    }

    fn planned(&mut self, id: &str, class: &Classification, reason: &str, now: SystemTime) -> Vec<Value> {
        self.open.insert(id.to_string());
        let handshakes = self.handshakes();
        let ctx = plan::Context { protected: &self.protected, handshakes: &handshakes };
        let plan::Plan { rules: planned, refused } = plan::plan(class, &self.cfg, &ctx);
        let refused_changed = self.refused.get(id) != Some(&refused) && !refused.is_empty();
        if refused_changed {
            for r in &refused {
                info!("mitigation: incident {id}: {} {}", r.source, r.reason);
            }
        }
        self.refused.insert(id.to_string(), refused);
        let wanted: HashSet<String> = planned.iter().map(|p| p.rule.key()).collect();
        for a in self.active.iter_mut().filter(|a| a.applied.incident == id) {
            a.wanted = wanted.contains(&a.applied.rule.key());
        }
        let keys: HashSet<String> = self.active.iter().map(|a| a.applied.rule.key()).collect();
        let new: Vec<Planned> = planned.iter().filter(|p| !keys.contains(&p.rule.key())).cloned().collect();
        let wanted = new.len();
        let new = plan::cap(new, self.active.len(), self.cfg.max_rules);
        if new.len() < wanted && !self.capped_logged {
            warn!(
                "mitigation: max_rules ({}) reached; applying {} of {wanted} new rule(s), the widest first",
                self.cfg.max_rules,
                new.len()
            );
            self.capped_logged = true;
        }
        let timeout_s = self.cfg.ttl.as_secs();
        let fresh: Vec<Active> = new
            .into_iter()
            .map(|p| Active {
                applied: Applied { rule: p.rule, incident: id.to_string(), timeout_s },
                expires: now + self.cfg.ttl,
                resolved: false,
                wanted: true,
                dropped_before: 0,
                dropped: 0,
            })
            .collect();
        if !fresh.is_empty() && self.put_in_force(&fresh, now) {
            let keys: HashSet<String> = fresh.iter().map(|a| a.applied.rule.key()).collect();
            self.active.extend(fresh);
            self.report(true, id, reason, |a| keys.contains(&a.applied.rule.key()));
        } else if refused_changed {
            // Nothing new in force, but a decision was made: say which sources were spared and why.
            self.report_at(true, id, reason, now, |_| false);
        }
        if self.active.iter().any(|a| a.applied.incident == id) {
            self.pending.remove(id);
        } else {
            self.pending.insert(id.to_string());
        }
        // The hook hears the whole plan, including rules already in force.
        let keys: HashSet<String> = planned.iter().map(|p| p.rule.key()).collect();
        self.entries(|a| keys.contains(&a.applied.rule.key()))
    }

    /// Apply `fresh` in one batch (the whole table when it is not there). False on failure, and
    /// while backing off after one (the incident stays pending and is planned again later).
    fn put_in_force(&mut self, fresh: &[Active], now: SystemTime) -> bool {
        let Some(nft) = &self.nft else { return true };
        if self.retry.waiting(now) {
            return false;
        }
        let add: Vec<Value> = fresh.iter().flat_map(|a| nft::rule_commands(&a.applied)).collect();
        let missing = || crate::error::Error::Invalid { what: "nft table", why: "not there".into() };
        let result = if self.table { nft.apply(add) } else { Err(missing()) };
        let result = result.or_else(|_| {
            // Not there yet, or removed by hand: rebuild it with everything in force.
            let mut all: Vec<Applied> = self.active.iter().map(|a| a.applied.clone()).collect();
            all.extend(fresh.iter().map(|a| a.applied.clone()));
            self.rebuild(&all)
        });
        match result {
            Ok(()) => {
                self.table = true;
                if self.retry.succeeded() {
                    info!("mitigation: nft accepts batches again");
                }
                true
            }
            Err(e) => {
                if self.retry.failed(now) {
                    error!(
                        "mitigation: nft refused the batch ({} time(s) in a row; next try in {} ms): {e}",
                        self.retry.failures,
                        self.retry.delay.as_millis()
                    );
                }
                false
            }
        }
    }

    /// Periodic: renew rules of open incidents past half their time; remove expired ones.
    pub fn tick(&mut self, now: SystemTime) {
        self.refresh(now);
        self.forget_silent(now);
        self.replan_pending(now);
        let half = self.cfg.ttl / 2;
        let due: Vec<usize> = (0..self.active.len())
            .filter(|&i| {
                let a = &self.active[i];
                !a.resolved
                    && a.wanted
                    && self.open.contains(&a.applied.incident)
                    && self.live(&a.applied.incident, now)
                    && a.expires.duration_since(now).unwrap_or_default() <= half
            })
            .collect();
        if !due.is_empty() {
            self.renew(&due, now, self.cfg.ttl);
            for id in self.incident_ids() {
                let keys: HashSet<String> = due
                    .iter()
                    .filter_map(|&i| self.active.get(i))
                    .filter(|a| a.applied.incident == id)
                    .map(|a| a.applied.rule.key())
                    .collect();
                if !keys.is_empty() {
                    self.report(true, &id, "renewed", |a| keys.contains(&a.applied.rule.key()));
                }
            }
        }
        if self.active.iter().any(|a| a.expires <= now) {
            self.expire(now);
        }
    }

    /// Heard from within [`LIVE`]: its rules may be renewed.
    fn live(&self, id: &str, now: SystemTime) -> bool {
        self.updated.get(id).is_some_and(|t| now.duration_since(*t).unwrap_or_default() <= LIVE)
    }

    /// Incidents silent for long (their resolve was lost) with no rule left are forgotten, so the
    /// established peers are read again and nothing grows without bound.
    fn forget_silent(&mut self, now: SystemTime) {
        let stale: Vec<String> = self
            .open
            .iter()
            .filter(|id| !self.live(id, now) && !self.active.iter().any(|a| &a.applied.incident == *id))
            .cloned()
            .collect();
        for id in stale {
            self.open.remove(&id);
            self.pending.remove(&id);
            self.updated.remove(&id);
            self.refused.remove(&id);
        }
    }

    /// An incident opened on a classification too thin to act on (capture still catching up):
    /// plan again from the capture's latest packets instead of waiting for the next update.
    fn replan_pending(&mut self, now: SystemTime) {
        let Some(live) = self.live.clone() else { return };
        if self.pending.is_empty() || self.retry.waiting(now) {
            return;
        }
        let Some(class) = live().filter(|c| c.classified_by == "packets") else { return };
        let mut ids: Vec<String> = self.pending.iter().filter(|id| self.live(id, now)).cloned().collect();
        ids.sort();
        for id in ids {
            self.planned(&id, &class, "reclassified", now);
        }
    }

    /// Give the rules at `idx` a fresh `ttl` from `now`, in the kernel and here.
    fn renew(&mut self, idx: &[usize], now: SystemTime, ttl: Duration) {
        if idx.is_empty() {
            return;
        }
        self.refresh_counters();
        let timeout_s = ttl.as_secs().max(1);
        for &i in idx {
            let a = &mut self.active[i];
            a.expires = now + ttl;
            a.applied.timeout_s = timeout_s;
            a.dropped_before = a.dropped;
        }
        if let Some(nft) = &self.nft {
            let cmds: Vec<Value> = idx.iter().flat_map(|&i| nft::renew_commands(&self.active[i].applied)).collect();
            if let Err(e) = nft.apply(cmds) {
                error!("mitigation: cannot renew {} rule(s): {e}", idx.len());
            }
        }
    }

    fn expire(&mut self, now: SystemTime) {
        self.refresh_counters();
        let (gone, kept): (Vec<Active>, Vec<Active>) =
            std::mem::take(&mut self.active).into_iter().partition(|a| a.expires <= now);
        if let Some(nft) = &self.nft {
            let cmds = if kept.is_empty() {
                nft::delete_table()
            } else {
                gone.iter().flat_map(|a| nft::remove_commands(&a.applied.rule, &self.handles)).collect()
            };
            match nft.apply(cmds) {
                Ok(()) => self.table = !kept.is_empty(),
                Err(e) => error!("mitigation: cannot remove {} expired rule(s): {e}", gone.len()),
            }
        }
        self.active = gone;
        for id in self.incident_ids() {
            let resolved = !self.open.contains(&id);
            self.report(false, &id, if resolved { "resolved" } else { "expired" }, |a| a.applied.incident == id);
        }
        self.active = kept;
    }

    /// Read the drop counters (and rate-limit rule handles) back from the table.
    fn refresh_counters(&mut self) {
        let Some(nft) = &self.nft else { return };
        let Ok(Some(text)) = nft.list() else { return };
        let Ok(listing) = nft::parse_listing(&text, self.cfg.syn_rate_pps, self.cfg.icmp_rate_pps) else { return };
        let counters = listing.counters();
        self.handles = listing.handles;
        for a in &mut self.active {
            if let Some(n) = counters.get(&a.applied.rule.key()) {
                a.dropped = a.dropped_before + n;
            }
        }
    }

    fn incident_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.active.iter().map(|a| a.applied.incident.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    fn entries(&self, pick: impl Fn(&Active) -> bool) -> Vec<Value> {
        self.active.iter().filter(|a| pick(a)).map(entry).collect()
    }

    fn report(&self, apply: bool, id: &str, reason: &str, pick: impl Fn(&Active) -> bool) {
        let Some(last) = self.active.iter().filter(|a| pick(a)).map(|a| a.expires).max() else { return };
        self.report_at(apply, id, reason, last, pick);
    }

    /// The event for the rules `pick` chooses (possibly none: a plan that only refused sources).
    fn report_at(&self, apply: bool, id: &str, reason: &str, last: SystemTime, pick: impl Fn(&Active) -> bool) {
        let picked: Vec<&Active> = self.active.iter().filter(|a| pick(a)).collect();
        let refused = if apply { self.refused.get(id).cloned().unwrap_or_default() } else { Vec::new() };
        let ev = MitigationEvent {
            incident_id: id.to_string(),
            mode: self.cfg.mode.as_str().into(),
            rules: picked.iter().map(|a| entry(a)).collect(),
            expires_at: rfc3339_ms(last),
            reason: reason.into(),
            backend: "nftables".into(),
            refused: refused.iter().map(|r| json!({"source": r.source.to_string(), "reason": r.reason})).collect(),
            conntrack: if apply && self.nft.is_some() { self.conntrack } else { None },
        };
        let body = if apply { EventBody::MitigationApply(ev) } else { EventBody::MitigationRemove(ev) };
        if self.events.send(Outgoing::Event(Event::new(SystemTime::now(), body))).is_err() {
            warn!("mitigation: the report worker is gone; event not recorded");
        }
    }
}

/// The reason without its `protected: ` prefix, for the start log line.
fn short(r: &protect::Reason) -> String {
    let t = r.text();
    t.strip_prefix("protected: ").unwrap_or(&t).to_string()
}

/// One rule as events and the hook show it.
fn entry(a: &Active) -> Value {
    json!({
        "rule": a.applied.rule.key(),
        "action": a.applied.rule.action().as_str(),
        "nft": nft::rule_commands(&a.applied),
        "expires_at": rfc3339_ms(a.expires),
        "dropped_packets": a.dropped,
    })
}

#[cfg(test)]
mod tests;

//! The rules in force and their life (§10): apply on open and re-classification, renew while
//! the incident lasts, remove at resolve + `ttl_s` or at expiry, adopt live rules at start.
//! Time is passed in; the only side effects are the [`Nft`] calls and the events sent to the
//! report worker. In dry-run there is no [`Nft`]: the same life is planned and reported only.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::SyncSender;
use std::time::{Duration, SystemTime};

use log::{error, info, warn};
use serde_json::{json, Value};

use super::nft::{self, Applied, Nft};
use super::plan::{self, Planned};
use crate::config::mitigation::{Cidr, MitigationConfig, Mode};
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

pub struct State {
    cfg: MitigationConfig,
    allow: Vec<Cidr>,
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
}

impl State {
    pub fn new(cfg: MitigationConfig, allow: Vec<Cidr>, nft: Option<Nft>, events: SyncSender<Outgoing>) -> Self {
        State {
            cfg,
            allow,
            nft,
            events,
            active: Vec::new(),
            open: HashSet::new(),
            table: false,
            handles: HashMap::new(),
            capped_logged: false,
            live: None,
            pending: HashSet::new(),
        }
    }

    pub fn set_live(&mut self, live: Option<LiveClassification>) {
        self.live = live;
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
        if let Err(e) = nft.apply(nft::rebuild(&self.allow, &applied)) {
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
            EventBody::IncidentOpen(o) => self.planned(&o.incident_id, &o.class, "incident_open", now),
            EventBody::IncidentUpdate(u) => self.planned(&u.incident_id, &u.class, "reclassified", now),
            EventBody::IncidentResolve(r) => {
                self.open.remove(&r.incident_id);
                self.pending.remove(&r.incident_id);
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
        let planned = plan::plan(class, &self.cfg, &self.allow);
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
        if !fresh.is_empty() && self.put_in_force(&fresh) {
            let keys: HashSet<String> = fresh.iter().map(|a| a.applied.rule.key()).collect();
            self.active.extend(fresh);
            self.report(true, id, reason, |a| keys.contains(&a.applied.rule.key()));
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

    /// Apply `fresh` in one batch (the whole table when it is not there). False on failure.
    fn put_in_force(&mut self, fresh: &[Active]) -> bool {
        let Some(nft) = &self.nft else { return true };
        let add: Vec<Value> = fresh.iter().flat_map(|a| nft::rule_commands(&a.applied)).collect();
        let missing = || crate::error::Error::Invalid { what: "nft table", why: "not there".into() };
        let result = if self.table { nft.apply(add) } else { Err(missing()) };
        let result = result.or_else(|_| {
            // Not there yet, or removed by hand: rebuild it with everything in force.
            let mut all: Vec<Applied> = self.active.iter().map(|a| a.applied.clone()).collect();
            all.extend(fresh.iter().map(|a| a.applied.clone()));
            nft.apply(nft::rebuild(&self.allow, &all))
        });
        match result {
            Ok(()) => {
                self.table = true;
                true
            }
            Err(e) => {
                error!("mitigation: nft refused the batch: {e}");
                false
            }
        }
    }

    /// Periodic: renew rules of open incidents past half their time; remove expired ones.
    pub fn tick(&mut self, now: SystemTime) {
        self.replan_pending(now);
        let half = self.cfg.ttl / 2;
        let due: Vec<usize> = (0..self.active.len())
            .filter(|&i| {
                let a = &self.active[i];
                !a.resolved
                    && a.wanted
                    && self.open.contains(&a.applied.incident)
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

    /// An incident opened on a classification too thin to act on (capture still catching up):
    /// plan again from the capture's latest packets instead of waiting for the next update.
    fn replan_pending(&mut self, now: SystemTime) {
        let Some(live) = self.live.clone() else { return };
        if self.pending.is_empty() {
            return;
        }
        let Some(class) = live().filter(|c| c.classified_by == "packets") else { return };
        let mut ids: Vec<String> = self.pending.iter().cloned().collect();
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
        let picked: Vec<&Active> = self.active.iter().filter(|a| pick(a)).collect();
        let Some(last) = picked.iter().map(|a| a.expires).max() else { return };
        let ev = MitigationEvent {
            incident_id: id.to_string(),
            mode: self.cfg.mode.as_str().into(),
            rules: picked.iter().map(|a| entry(a)).collect(),
            expires_at: rfc3339_ms(last),
            reason: reason.into(),
        };
        let body = if apply { EventBody::MitigationApply(ev) } else { EventBody::MitigationRemove(ev) };
        if self.events.send(Outgoing::Event(Event::new(SystemTime::now(), body))).is_err() {
            warn!("mitigation: the report worker is gone; event not recorded");
        }
    }
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

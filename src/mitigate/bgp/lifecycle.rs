//! The BGP routes in force and their life (§10.2): announce on open and re-classification, keep
//! while the incident is live and updated, withdraw at resolve + hold (`ttl_s`) or at TTL; at
//! start withdraw every route of ours the speaker still holds (no incident of this run is live
//! yet); at stop withdraw all. Time is passed in; the only side effects are the [`Gobgp`] runs
//! and the events sent to the report worker. In dry-run there is no [`Gobgp`]: the same argv
//! are logged and reported, and nothing is run.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, SystemTime};

use log::{error, info, warn};
use serde_json::{json, Value};

use super::gobgp::Gobgp;
use super::plan::{self, Incident, Refused, Scope};
use super::route::{Route, Speaker};
use crate::config::bgp::BgpConfig;
use crate::config::mitigation::{Cidr, MitigationConfig};
use crate::detect::detector::UPDATE_EVERY;
use crate::event::{rfc3339_ms, Classification, Direction, Event, EventBody, MitigationEvent};
use crate::input::capture::handle::LiveClassification;
use crate::report::Outgoing;

/// How long a blackhole of this host's incident waits for the capture to name a FlowSpec rule
/// for the same target (the ladder: FlowSpec first); past it the blackhole goes alone.
pub const RTBH_WAIT: Duration = Duration::from_millis(500);

/// A live incident keeps its routes renewed only while its events keep coming: three missed
/// updates and its routes run out at their TTL.
pub const RECENT: Duration = Duration::from_secs(3 * UPDATE_EVERY.as_secs());

/// One route announced (or, in dry-run, planned).
#[derive(Debug, Clone)]
pub struct Announced {
    pub route: Route,
    pub incident: String,
    pub expires: SystemTime,
    pub resolved: bool,
}

/// An incident the detector still has open.
struct Live {
    last_seen: SystemTime,
    interface: String,
    refused: HashSet<String>,
    /// The rates of its latest event (for re-plans between events).
    pps: f64,
    bps: f64,
    /// Opened from this host's own counters or packets (not a flow collector's): the capture's
    /// live classification is about it.
    host: bool,
    opened: SystemTime,
}

impl Live {
    fn new(now: SystemTime) -> Self {
        Live {
            last_seen: now,
            interface: String::new(),
            refused: HashSet::new(),
            pps: 0.0,
            bps: 0.0,
            host: false,
            opened: now,
        }
    }
}

pub struct State {
    bgp: BgpConfig,
    m: MitigationConfig,
    speaker: Speaker,
    program: String,
    driver: Option<Gobgp>,
    events: SyncSender<Outgoing>,
    own: Vec<(String, IpAddr)>,
    protected: Vec<Cidr>,
    active: Vec<Announced>,
    live: HashMap<String, Live>,
    /// The capture's latest classification (capture builds), read while a live incident still
    /// has no route: its open may have come before the capture saw every target.
    classify: Option<LiveClassification>,
}

impl State {
    /// `driver` is None in dry-run. `own`: the host's addresses; `protected`: §10.1's set.
    pub fn new(
        m: MitigationConfig,
        bgp: BgpConfig,
        driver: Option<Gobgp>,
        own: Vec<(String, IpAddr)>,
        protected: Vec<Cidr>,
        events: SyncSender<Outgoing>,
    ) -> Self {
        let speaker = Speaker::new(&bgp.api, bgp.community, bgp.rtbh_community);
        State {
            program: bgp.client.clone(),
            bgp,
            m,
            speaker,
            driver,
            events,
            own,
            protected,
            active: Vec::new(),
            live: HashMap::new(),
            classify: None,
        }
    }

    pub fn set_classify(&mut self, classify: Option<LiveClassification>) {
        self.classify = classify;
    }

    pub fn set_own(&mut self, own: Vec<(String, IpAddr)>) {
        self.own = own;
    }

    pub fn active(&self) -> &[Announced] {
        &self.active
    }

    /// At start: every route carrying our community is stale (no incident of this run is live
    /// yet): withdraw it and report it.
    pub fn reconcile(&mut self) {
        let Some(d) = &self.driver else { return };
        let found = match d.ours() {
            Ok(f) => f,
            Err(e) => {
                error!(
                    "bgp: cannot read the speaker's RIB at {}: {e}; stale routes stay until it answers",
                    self.bgp.api
                );
                return;
            }
        };
        let mut gone = Vec::new();
        for f in found {
            match d.withdraw_found(&f) {
                Ok(()) => gone.push(json!({"rule": format!("stale:{}:{}", f.family, f.nlri), "backend": "bgp",
                    "family": f.family, "nlri": f.nlri, "argv": self.argv(f.del_argv(&self.speaker))})),
                Err(e) => error!("bgp: cannot withdraw stale route {} {}: {e}", f.family, f.nlri),
            }
        }
        if !gone.is_empty() {
            info!("bgp: withdrew {} route(s) of ours left by an earlier run", gone.len());
            self.send(false, "", "stale_at_start", gone, Vec::new(), SystemTime::now());
        }
    }

    /// An incident event: plan and announce on open/update, start the hold at resolve.
    pub fn on_event(&mut self, e: &Event, now: SystemTime) {
        match &e.body {
            EventBody::IncidentOpen(o) if o.direction != Direction::Outbound => {
                let l = self.live.entry(o.incident_id.clone()).or_insert_with(|| Live::new(now));
                (l.last_seen, l.interface, l.pps, l.bps) = (now, o.interface.clone(), o.pps, o.bps);
                l.host = matches!(o.class.classified_by.as_str(), "packets" | "counters");
                self.planned(&o.incident_id, &o.class, o.pps, o.bps, "incident_open", now);
            }
            EventBody::IncidentUpdate(u) if u.direction != Direction::Outbound => {
                let l = self.live.entry(u.incident_id.clone()).or_insert_with(|| Live::new(now));
                (l.last_seen, l.pps, l.bps) = (now, u.pps, u.bps);
                self.planned(&u.incident_id, &u.class, u.pps, u.bps, "reclassified", now);
            }
            EventBody::IncidentResolve(r) => {
                self.live.remove(&r.incident_id);
                let hold = now + self.m.ttl;
                for a in self.active.iter_mut().filter(|a| a.incident == r.incident_id) {
                    a.resolved = true;
                    a.expires = hold;
                }
            }
            _ => {}
        }
    }

    fn planned(&mut self, id: &str, class: &Classification, pps: f64, bps: f64, reason: &str, now: SystemTime) {
        let iface = self.live.get(id).map(|l| l.interface.clone()).unwrap_or_default();
        let host_targets: Vec<IpAddr> = self.own.iter().filter(|(n, _)| *n == iface).map(|(_, ip)| *ip).collect();
        let own: Vec<IpAddr> = self.own.iter().map(|(_, ip)| *ip).collect();
        let scope = Scope { networks: &self.bgp.networks, own: &own, protected: &self.protected };
        let inc = Incident { class, pps, bps, host_targets: &host_targets };
        let p = plan::plan(&inc, &self.bgp, &self.m, &scope, &self.speaker);
        let waiting = self.live.get(id).is_some_and(|l| {
            l.host && self.classify.is_some() && now.duration_since(l.opened).unwrap_or_default() < RTBH_WAIT
        });
        let (routes, mut refused) = (p.routes, p.refused);
        let mut fresh = Vec::new();
        for &route in &routes {
            // The ladder: while the capture may still name a FlowSpec rule for this target, its
            // blackhole waits (the re-plans of the first seconds announce it).
            let flow_for = |t| {
                let flow = |r: &Route| matches!(r, Route::Flow { target, .. } if *target == t);
                routes.iter().any(flow) || self.active.iter().any(|a| flow(&a.route))
            };
            if waiting && matches!(route, Route::Blackhole { .. }) && !flow_for(route.target()) {
                continue;
            }
            if self.active.iter().any(|a| a.route.key() == route.key()) {
                continue;
            }
            if self.active.len() + fresh.len() >= self.bgp.max_routes {
                let reason = format!("max_routes ({}) reached", self.bgp.max_routes);
                refused.push(Refused { target: route.target(), route: Some(route), reason });
                continue;
            }
            match self.announce(&route) {
                Ok(()) => {
                    fresh.push(Announced { route, incident: id.into(), expires: now + self.m.ttl, resolved: false })
                }
                Err(e) => refused.push(Refused { target: route.target(), route: Some(route), reason: e.to_string() }),
            }
        }
        let seen = self.live.get_mut(id).map(|l| &mut l.refused);
        let refused: Vec<Value> = match seen {
            // Each refusal is reported once per incident, not on every update.
            Some(seen) => refused.into_iter().filter(|r| seen.insert(refusal_key(r))).map(|r| refusal(&r)).collect(),
            None => refused.iter().map(refusal).collect(),
        };
        if fresh.is_empty() && refused.is_empty() {
            return;
        }
        for r in &refused {
            info!(
                "bgp: not announced for incident {id}: {} ({})",
                r["route"].as_str().unwrap_or("target"),
                r["reason"]
            );
        }
        let rules: Vec<Value> = fresh.iter().map(|a| self.entry(a)).collect();
        let expires = now + self.m.ttl;
        self.active.extend(fresh);
        self.send(true, id, reason, rules, refused, expires);
    }

    /// Announce through the speaker (enforce) or log the exact argv (dry-run).
    fn announce(&self, route: &Route) -> crate::Result<()> {
        let argv = route.add_argv(&self.speaker);
        match &self.driver {
            Some(d) => d.announce(route).map_err(|e| crate::Error::Program {
                program: self.program.clone(),
                why: format!("the speaker refused: {e}"),
            }),
            None => {
                info!("bgp dry run: would run {} {}", self.program, argv.join(" "));
                Ok(())
            }
        }
    }

    fn withdraw(&self, route: &Route) {
        match &self.driver {
            Some(d) => {
                if let Err(e) = d.withdraw(route) {
                    error!("bgp: cannot withdraw {}: {e}", route.key());
                }
            }
            None => info!("bgp dry run: would run {} {}", self.program, route.del_argv(&self.speaker).join(" ")),
        }
    }

    /// Periodic: renew the routes of live, recently updated incidents past half their time;
    /// withdraw the expired ones.
    pub fn tick(&mut self, now: SystemTime) {
        self.replan_young(now);
        let half = self.m.ttl / 2;
        let recent = |l: &Live| now.duration_since(l.last_seen).unwrap_or_default() <= RECENT;
        let due: Vec<usize> = (0..self.active.len())
            .filter(|&i| {
                let a = &self.active[i];
                !a.resolved
                    && self.live.get(&a.incident).is_some_and(recent)
                    && a.expires.duration_since(now).unwrap_or_default() <= half
            })
            .collect();
        for &i in &due {
            // Announcing again is harmless and heals a speaker that restarted meanwhile.
            if let Err(e) = self.announce(&self.active[i].route) {
                warn!("bgp: renewal of {}: {e}", self.active[i].route.key());
            }
            self.active[i].expires = now + self.m.ttl;
        }
        for id in incidents(due.iter().map(|&i| &self.active[i])) {
            let rules: Vec<Value> =
                due.iter().map(|&i| &self.active[i]).filter(|a| a.incident == id).map(|a| self.entry(a)).collect();
            self.send(true, &id, "renewed", rules, Vec::new(), now + self.m.ttl);
        }
        if self.active.iter().any(|a| a.expires <= now) {
            let (gone, kept): (Vec<Announced>, Vec<Announced>) =
                std::mem::take(&mut self.active).into_iter().partition(|a| a.expires <= now);
            self.active = kept;
            self.remove(gone, |id, me| if me.live.contains_key(id) { "expired" } else { "resolved" });
        }
    }

    /// This host's incidents in their first seconds (before their first update) are planned
    /// again from the capture's latest packets every tick: an open may come before the capture
    /// has seen every target or vector, and the FlowSpec rule must not wait for the update.
    fn replan_young(&mut self, now: SystemTime) {
        let Some(classify) = self.classify.clone() else { return };
        let young = |l: &Live| l.host && now.duration_since(l.opened).unwrap_or_default() < UPDATE_EVERY;
        let mut ids: Vec<String> = self.live.iter().filter(|(_, l)| young(l)).map(|(id, _)| id.clone()).collect();
        if ids.is_empty() {
            return;
        }
        let Some(class) = classify().filter(|c| c.classified_by == "packets") else { return };
        ids.sort();
        for id in ids {
            let (pps, bps) = self.live.get(&id).map(|l| (l.pps, l.bps)).unwrap_or_default();
            self.planned(&id, &class, pps, bps, "reclassified", now);
        }
    }

    /// At stop: withdraw everything.
    pub fn stop(&mut self) {
        let all = std::mem::take(&mut self.active);
        if !all.is_empty() {
            info!("bgp: withdrawing {} route(s) at stop", all.len());
        }
        self.remove(all, |_, _| "agent_stopped");
    }

    fn remove(&mut self, gone: Vec<Announced>, why: impl Fn(&str, &Self) -> &'static str) {
        for a in &gone {
            self.withdraw(&a.route);
        }
        for id in incidents(gone.iter()) {
            let rules: Vec<Value> = gone.iter().filter(|a| a.incident == id).map(|a| self.entry(a)).collect();
            let last = gone.iter().filter(|a| a.incident == id).map(|a| a.expires).max().unwrap_or(SystemTime::now());
            self.send(false, &id, why(&id, self), rules, Vec::new(), last);
        }
    }

    /// One route as events, `--status` and the hook show it; `argv` is exactly what enforce runs.
    fn entry(&self, a: &Announced) -> Value {
        json!({
            "rule": a.route.key(),
            "backend": "bgp",
            "action": a.route.action(),
            "route": a.route.describe(&self.speaker),
            "argv": self.argv(a.route.add_argv(&self.speaker)),
            "expires_at": rfc3339_ms(a.expires),
        })
    }

    fn argv(&self, rest: Vec<String>) -> Vec<String> {
        let mut v = vec![self.program.clone()];
        v.extend(rest);
        v
    }

    fn send(&self, apply: bool, id: &str, reason: &str, rules: Vec<Value>, refused: Vec<Value>, expires: SystemTime) {
        let ev = MitigationEvent {
            incident_id: id.to_string(),
            mode: self.m.mode.as_str().into(),
            rules,
            expires_at: rfc3339_ms(expires),
            reason: reason.into(),
            backend: "bgp".into(),
            refused,
            conntrack: None,
        };
        let body = if apply { EventBody::MitigationApply(ev) } else { EventBody::MitigationRemove(ev) };
        if self.events.send(Outgoing::Event(Event::new(SystemTime::now(), body))).is_err() {
            warn!("bgp: the report worker is gone; event not recorded");
        }
    }
}

fn incidents<'a>(it: impl Iterator<Item = &'a Announced>) -> Vec<String> {
    let mut ids: Vec<String> = it.map(|a| a.incident.clone()).collect();
    ids.sort();
    ids.dedup();
    ids
}

fn refusal_key(r: &Refused) -> String {
    format!("{}|{}|{}", r.target, r.route.map(|r| r.key()).unwrap_or_default(), r.reason)
}

fn refusal(r: &Refused) -> Value {
    json!({"target": r.target.to_string(), "route": r.route.map(|r| r.key()), "reason": r.reason})
}

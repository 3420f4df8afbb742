//! Closing a window: every tracked address, then every prefix and host group, steps its
//! state machine on the window's rates; incidents open, update and resolve.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::events::{self, Scope};
use super::table::{Entry, NO_EVIDENCE};
use super::watch::Verdict;
use super::{release, FlowDetector, Hit, Open, Rates, ScopeKey, METRICS};
use crate::detect::detector::UPDATE_EVERY;
use crate::event::{Direction, Event};

const DIRS: [Direction; 2] = [Direction::Inbound, Direction::Outbound];

impl FlowDetector {
    /// Close the window if `now_ms` is past it; the events it produced are appended to `out`.
    /// A gap of several seconds closes one window (the records counted are one window's).
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<Event>) {
        let sec = (now_ms / 1000) as u32;
        if sec <= self.cur_sec {
            return;
        }
        let closed = self.cur_sec;
        self.cur_sec = sec;
        let wall = UNIX_EPOCH + Duration::from_millis(now_ms);
        let mut top: Vec<Hit> = Vec::new();
        for i in 0..self.hosts.entries.len() {
            if !self.hosts.entries[i].live() {
                continue;
            }
            let mut e = std::mem::take(&mut self.hosts.entries[i]);
            for (d, &direction) in DIRS.iter().enumerate() {
                let scope = ScopeKey::Host(e.key);
                let v = self.step(&mut e, scope, d, closed, wall, out);
                if matches!(v, Verdict::Over | Verdict::Open(_) | Verdict::Continue) {
                    self.exclude(&e, d);
                }
                if e.acc[d][0] > 0.0 {
                    keep_top(
                        &mut top,
                        self.top_n,
                        Hit { ip: super::ip_of(e.key), direction, pps: e.acc[d][0], bits_per_s: e.acc[d][1] },
                    );
                }
            }
            e.acc = [[0.0; METRICS]; 2];
            self.hosts.entries[i] = e;
        }
        for i in 0..self.prefixes.entries.len() {
            if !self.prefixes.entries[i].live() {
                continue;
            }
            let mut e = std::mem::take(&mut self.prefixes.entries[i]);
            for d in 0..2 {
                let scope = ScopeKey::Prefix(e.key);
                self.step(&mut e, scope, d, closed, wall, out);
            }
            e.acc = [[0.0; METRICS]; 2];
            self.prefixes.entries[i] = e;
        }
        for g in 0..self.group_entries.len() {
            let mut e = std::mem::take(&mut self.group_entries[g]);
            for d in 0..2 {
                self.step(&mut e, ScopeKey::Group(g as u16), d, closed, wall, out);
            }
            e.acc = [[0.0; METRICS]; 2];
            self.group_entries[g] = e;
        }
        top.sort_by(|a, b| b.pps.total_cmp(&a.pps));
        self.top = top;
        let cooldown = self.rules.cooldown_s;
        self.resolved.retain(|_, (_, at)| sec < at.saturating_add(cooldown));
    }

    /// Take an address over its threshold out of its prefix's and group's totals.
    fn exclude(&mut self, host: &Entry, d: usize) {
        let sub = |into: &mut Entry| {
            for (a, v) in into.acc[d].iter_mut().zip(&host.acc[d]) {
                *a = (*a - v).max(0.0);
            }
        };
        if let Some(p) = self.prefixes.get(super::prefix_key(host.key)) {
            sub(&mut self.prefixes.entries[p as usize]);
        }
        if host.group > 0 {
            sub(&mut self.group_entries[host.group as usize - 1]);
        }
    }

    fn step(
        &mut self,
        e: &mut Entry,
        scope: ScopeKey,
        d: usize,
        sec: u32,
        wall: SystemTime,
        out: &mut Vec<Event>,
    ) -> Verdict {
        let tuning = &self.tuning[e.group as usize][usize::from(!matches!(scope, ScopeKey::Host(_)))];
        let (floors, mult) = (tuning.floors, tuning.multiplier);
        let w = &mut e.watch[d];
        let thr = w.thresholds(&floors, mult, &self.rules);
        let key = (scope, d as u8);
        let open_thr = self.open.get(&key).map(|o| o.thr);
        let r = e.acc[d];
        let v = w.step(sec, &r, &thr, open_thr.as_ref(), &floors, mult, &self.rules);
        let thr_pps = (0..METRICS).filter(|&i| i != 1 && i != 2).map(|i| thr[i]).fold(f32::INFINITY, f32::min);
        e.trip[d] = [0.5 * thr_pps, 0.5 * thr[1]];
        let ctx = Scope { key: scope, direction: DIRS[d], group: self.group_name(e.group), test: self.test };
        let own = matches!(scope, ScopeKey::Host(k) if self.own.contains(&k));
        if own {
            // One flood, one incident: the local detector's. Nothing opens here.
            if let Verdict::Open(_) = v {
                self.stats.own_incidents += 1;
                w.open = false;
                return Verdict::Over;
            }
            return v;
        }
        match v {
            Verdict::Open(trigger) => {
                let previous_id =
                    self.resolved.remove(&key).map(|(id, _)| id).filter(|_| w.in_cooldown(sec, &self.rules));
                let o = Open {
                    id: uuid::Uuid::new_v4().to_string(),
                    previous_id,
                    opened_sec: sec,
                    trigger,
                    thr,
                    baseline_pps: w.baseline.mean_pps(),
                    now: r,
                    peak: r,
                    last_update: sec,
                };
                out.push(events::open(&ctx, &o, self.evidence_of(e.ev[d]), wall));
                self.open.insert(key, o);
            }
            Verdict::Continue => {
                if let Some(o) = self.open.get_mut(&key) {
                    o.now = r;
                    for (p, v) in o.peak.iter_mut().zip(&r) {
                        *p = p.max(*v);
                    }
                    if sec.saturating_sub(o.last_update) >= UPDATE_EVERY.as_secs() as u32 {
                        o.last_update = sec;
                        let o = o.clone();
                        out.push(events::update(&ctx, &o, sec, self.evidence_of(e.ev[d]), wall));
                    }
                }
            }
            Verdict::Resolve => {
                if let Some(o) = self.open.remove(&key) {
                    out.push(events::resolve(&ctx, &o, sec, "traffic_normal", self.evidence_of(e.ev[d]), wall));
                    self.resolved.insert(key, (o.id, sec));
                }
            }
            Verdict::Normal | Verdict::Over => {}
        }
        // Evidence is kept while the scope is suspect or in an incident, else the slot is freed.
        if matches!(v, Verdict::Normal | Verdict::Resolve) && e.ev[d] != NO_EVIDENCE {
            release(e.ev[d], &mut self.evidence, &mut self.free_evidence);
            e.ev[d] = NO_EVIDENCE;
        }
        v
    }

    fn evidence_of(&self, slot: u32) -> Option<&super::evidence::Evidence> {
        self.evidence.get(slot as usize).and_then(Option::as_ref)
    }

    fn group_name(&self, g: u16) -> Option<String> {
        g.checked_sub(1).and_then(|i| self.groups.get(i as usize)).map(|(n, _)| n.clone())
    }

    /// The agent stops: every open incident resolves with `agent_stopped`.
    pub fn stop(&mut self, now_ms: u64, out: &mut Vec<Event>) {
        let sec = (now_ms / 1000) as u32;
        let wall = UNIX_EPOCH + Duration::from_millis(now_ms);
        let open: Vec<_> = self.open.drain().collect();
        for ((scope, d), o) in open {
            let e = match scope {
                ScopeKey::Host(k) => self.hosts.get(k).map(|i| &mut self.hosts.entries[i as usize]),
                ScopeKey::Prefix(k) => self.prefixes.get(k).map(|i| &mut self.prefixes.entries[i as usize]),
                ScopeKey::Group(g) => self.group_entries.get_mut(g as usize),
            };
            let (group, slot) = match e {
                Some(e) => {
                    e.watch[d as usize].stop();
                    (e.group, e.ev[d as usize])
                }
                None => (0, NO_EVIDENCE),
            };
            let ctx = Scope { key: scope, direction: DIRS[d as usize], group: self.group_name(group), test: self.test };
            out.push(events::resolve(&ctx, &o, sec, "agent_stopped", self.evidence_of(slot), wall));
        }
    }

    /// Open incidents now (scope, direction).
    pub fn open_incidents(&self) -> impl Iterator<Item = (ScopeKey, Direction, &str)> {
        self.open.iter().map(|((s, d), o)| (*s, DIRS[*d as usize], o.id.as_str()))
    }
}

fn keep_top(top: &mut Vec<Hit>, n: usize, h: Hit) {
    if n == 0 {
        return;
    }
    if top.len() < n {
        top.push(h);
    } else if let Some(min) = top.iter_mut().min_by(|a, b| a.pps.total_cmp(&b.pps)) {
        if h.pps > min.pps {
            *min = h;
        }
    }
}

/// Severity from the peak over the thresholds at open (§5.3).
pub(super) fn severity(peak: &Rates, thr: &Rates) -> &'static str {
    let r = (0..METRICS).map(|i| if thr[i] > 0.0 { peak[i] / thr[i] } else { 0.0 }).fold(0.0, f32::max);
    if r >= 5.0 {
        "critical"
    } else if r >= 2.0 {
        "high"
    } else {
        "medium"
    }
}

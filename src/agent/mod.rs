//! The agent's per-tick pipeline: sample → rates → baseline → detect → messages for sinks.
//! [`Agent::tick`] takes the time as arguments; only [`crate::agent::run`] reads a clock, so `--test`
//! and the tests drive the same code on virtual time.

use std::time::{Duration, Instant, SystemTime};

use crate::config::Settings;
use crate::detect::attribution::{Attributor, Conn, Judged, Surge};
use crate::detect::baseline::{Baseline, Snapshot};
use crate::detect::classify as mix;
use crate::detect::detector::{Change, Direction, Incident, ResolveReason};
use crate::detect::learn::Watch;
use crate::event::{
    rfc3339_ms, Classification, Event, EventBody, IncidentOpen, IncidentResolve, IncidentUpdate, ProtocolRates,
};
use crate::input::capture::handle::PacketInsight;
use crate::input::counters::{Rates, Sampler};
use crate::report::Outgoing;

/// The baseline is saved this often while running (and at exit).
pub const SAVE_EVERY: Duration = Duration::from_secs(60);

pub use crate::input::capture::handle::CaptureStatus;

pub struct Agent {
    settings: Settings,
    sampler: Sampler,
    /// Received traffic (offered load: received + dropped), and sent traffic (§5.5).
    inbound: Watch,
    outbound: Watch,
    insight: Option<Box<dyn PacketInsight>>,
    capture: CaptureStatus,
    restored: bool,
    /// Mark incident events as synthetic (`--test`).
    test: bool,
    acc: MetricsAcc,
    last_rates: Option<Rates>,
    /// The last per-protocol totals from capture and when they were read (§5.6).
    class_prev: Option<(Instant, crate::input::protocols::ClassTotals)>,
    next_metrics: Instant,
    next_heartbeat: Instant,
    next_save: Instant,
    incidents_total: u64,
    /// The state file's clock and history (§6.6), see `snapshot.rs`.
    status: snapshot::StatusClock,
    /// Traffic the host asked for (§5.8): the socket census's attribution, and its surges.
    attribution: Attributor,
    surge: Surge,
    last_judged: Option<Judged>,
    /// The time of the tick running (or last run).
    now: Instant,
    /// The socket census thread (§5.7), when running, and the connection-flood detector.
    census: Option<crate::input::sockets::CensusHandle>,
    conn: crate::detect::connflood::ConnWatch,
    /// When the census last handed to attribution and the connection detector was taken.
    census_seen: Option<Instant>,
    /// The kernel's figures (§5.7) at their peak over the open inbound incident.
    kernel_peak: crate::input::counters::kernel::KernelRates,
}

impl Agent {
    /// Builds the agent; `saved` is the baseline read from disk, used when under 24 h old.
    pub fn new(
        settings: Settings,
        sampler: Sampler,
        insight: Option<Box<dyn PacketInsight>>,
        capture: CaptureStatus,
        saved: Option<Snapshot>,
        now: Instant,
        wall: SystemTime,
    ) -> Self {
        let cfg = &settings.detect;
        let settings_detect = cfg.clone();
        let (rx, tx) = restore(cfg, saved.as_ref(), wall);
        let restored = rx.is_some();
        let inbound = Watch::new(cfg, Direction::Inbound, now, wall, rx);
        let outbound = Watch::new(cfg, Direction::Outbound, now, wall, tx);
        Agent {
            next_metrics: now + settings.metrics_interval,
            next_heartbeat: now,
            next_save: now + SAVE_EVERY,
            settings,
            sampler,
            inbound,
            outbound,
            insight,
            capture,
            restored,
            test: false,
            acc: MetricsAcc::default(),
            last_rates: None,
            class_prev: None,
            incidents_total: 0,
            status: snapshot::StatusClock::new(now, wall),
            attribution: Attributor::new(),
            surge: Surge::default(),
            last_judged: None,
            now,
            census: None,
            conn: crate::detect::connflood::ConnWatch::new(&settings_detect, now, wall),
            kernel_peak: Default::default(),
            census_seen: None,
        }
    }

    /// A socket census (§5.7, §5.8): its established connections with their `tcp_info`
    /// counters. Called on the sampling thread when the census thread has handed over a new one.
    pub fn observe_connections(&mut self, taken_at: Instant, truncated: bool, conns: impl IntoIterator<Item = Conn>) {
        self.attribution.observe(taken_at, truncated, conns);
    }

    /// A census from the census thread (`input::sockets`), taken once per `taken_at`.
    pub fn observe_census(&mut self, census: &crate::input::sockets::Census) {
        self.attribution.observe(census.taken_at, census.truncated, crate::detect::attribution::conns(census));
    }

    /// The last inbound verdict: what was attributed and what was judged.
    pub fn last_judged(&self) -> Option<&Judged> {
        self.last_judged.as_ref()
    }

    /// Use this socket census (§5.7): connection floods are detected from its dumps.
    pub fn attach_census(&mut self, census: crate::input::sockets::CensusHandle) {
        self.census = Some(census);
    }

    /// Mark every incident event as a test (`--test`).
    pub fn set_test(&mut self, test: bool) {
        self.test = test;
    }

    /// An incident is being confirmed: the run loop samples again sooner.
    pub fn confirming(&self) -> bool {
        self.inbound.detector.confirming() || self.outbound.detector.confirming()
    }

    /// The thresholds in force at the last tick: (inbound, outbound).
    pub fn thresholds(&self) -> (crate::detect::baseline::Thresholds, crate::detect::baseline::Thresholds) {
        (self.inbound.thresholds(), self.outbound.thresholds())
    }

    pub fn baseline_restored(&self) -> bool {
        self.restored
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Apply new detection tuning (API `/agent/config`) without losing state.
    pub fn set_detect_config(&mut self, cfg: crate::config::DetectConfig) {
        self.inbound.set_config(&cfg);
        self.outbound.set_config(&cfg);
        self.conn.set_config(&cfg);
        self.settings.detect = cfg;
    }

    /// Apply capture options from the API config (`pcap_enabled`, `ioc_patterns`).
    /// The running capture gets them too (it never waits: see [`PacketInsight::set_options`]).
    pub fn set_capture_options(&mut self, pcap_enabled: bool, ioc_patterns: Vec<crate::config::IocPattern>) {
        if pcap_enabled == self.settings.pcap_enabled && ioc_patterns == self.settings.ioc_patterns {
            return;
        }
        if let Some(i) = self.insight.as_mut() {
            i.set_options(pcap_enabled, &ioc_patterns);
        }
        self.settings.pcap_enabled = pcap_enabled;
        self.settings.ioc_patterns = ioc_patterns;
    }

    pub fn interface(&self) -> String {
        self.sampler.interface().unwrap_or("none").to_string()
    }

    /// The `agent_start` event; resolves the interface first.
    pub fn start(&mut self, wall: SystemTime) -> Outgoing {
        self.sampler.resolve_interface();
        Outgoing::Event(Event::new(
            wall,
            EventBody::AgentStart {
                interface: self.interface(),
                mode: self.capture.mode.clone(),
                capture_reason: self.capture.reason.clone(),
                baseline_restored: self.restored,
            },
        ))
    }

    /// One sampling tick.
    pub fn tick(&mut self, now: Instant, wall: SystemTime) -> Vec<Outgoing> {
        self.take_census();
        let rates = self.sampler.sample(now);
        self.tick_with(now, wall, rates)
    }

    /// The tick after sampling; `--test` feeds synthetic rates here.
    pub fn tick_with(&mut self, now: Instant, wall: SystemTime, rates: Option<Rates>) -> Vec<Outgoing> {
        self.now = now;
        // Without packets, the SYN class comes from the kernel's SYN cookies and listen drops.
        let classes =
            self.class_rates(now).or_else(|| rates.as_ref().and_then(|r| limited::counter_classes(&r.kernel)));
        let inbound = rates.map(|r| crate::input::counters::Sample { classes, ..r.inbound() });
        // §5.8: the detector judges (and the baseline learns) what no connection asked for.
        let thr = self.inbound.thresholds();
        let judged = rates.as_ref().zip(inbound.as_ref()).map(|(r, s)| self.attribution.judge(now, s, r, &thr));
        self.last_judged = judged;
        let surge = judged.is_some_and(|j| self.surge.step(now, j.attributed_pps, j.attributed_bps, &thr));
        let cfg = &self.settings.detect;
        let rx = self.inbound.step_judged(
            now,
            wall,
            judged.as_ref().map(|j| &j.sample),
            cfg,
            judged.is_none_or(|j| j.learnable()),
        );
        let tx = self.outbound.step(now, wall, rates.map(|r| r.outbound()).as_ref(), cfg);
        if let Some(r) = &rates {
            self.accumulate(r);
            self.last_rates = Some(*r);
            self.kernel_peak = match rx {
                Some(Change::Opened) => r.kernel,
                _ => limited::max_rates(&self.kernel_peak, &r.kernel),
            };
        }
        let mut out = Vec::new();
        if let (true, Some(j), Some(r)) = (surge, judged, rates) {
            out.push(self.surge_event(&j, &r, wall));
        }
        for (dir, change) in [(Direction::Inbound, rx), (Direction::Outbound, tx)] {
            match change {
                Some(Change::Opened) => out.push(self.opened(dir, wall)),
                Some(Change::Updated) => out.push(self.updated(dir, now, wall)),
                Some(Change::Resolved(inc, reason)) => out.push(self.resolved(&inc, reason, now, wall)),
                None => {}
            }
        }
        self.census_step(now, wall, &mut out);
        self.periodic(now, wall, &mut out);
        out
    }

    /// A new census, if the census thread has one: the connection detector's step. The census
    /// is woken to its one-a-second cadence while TCP is busy or anything is over threshold.
    /// A census the census thread has handed over since the last tick (an `Arc` clone, never a
    /// wait) goes to attribution (§5.8) before the tick judges anything.
    fn take_census(&mut self) {
        let Some(c) = self.census.as_ref().and_then(|h| h.latest()) else { return };
        if self.census_seen != Some(c.taken_at) {
            self.census_seen = Some(c.taken_at);
            self.observe_census(&c);
        }
    }

    fn census_step(&mut self, now: Instant, wall: SystemTime, out: &mut Vec<Outgoing>) {
        if self.census.is_some() && self.tcp_busy() {
            if let Some(c) = &self.census {
                c.wake();
            }
        }
        let Some(census) = self.census.as_ref().and_then(|c| c.latest()) else { return };
        if let Some(change) = self.conn.step(now, wall, &census) {
            if change == Change::Opened {
                self.incidents_total += 1;
            }
            let iface = self.interface();
            if let Some(e) = limited::conn_event(&self.conn, &change, &iface, self.test, now, wall) {
                out.push(Outgoing::Event(e));
            }
        }
    }

    /// TCP is doing more than an idle host's: segments in over [`limited::BUSY_TCP_PPS`], SYN
    /// cookies or listen drops, connections near their thresholds, or any incident open or
    /// confirming.
    fn tcp_busy(&self) -> bool {
        let r = self.last_rates.as_ref();
        let secs = r.map_or(0.0, |r| r.interval.as_secs_f64());
        let tcp_pps = r.and_then(|r| r.proto).map_or(0.0, |p| p.tcp as f64 / secs.max(0.001));
        let syn = r.and_then(|r| r.kernel.syn_pressure_pps()).unwrap_or(0.0);
        tcp_pps > limited::BUSY_TCP_PPS
            || syn > 0.0
            || self.conn.near_threshold()
            || self.confirming()
            || self.inbound.detector.incident().is_some()
            || self.conn.incident().is_some()
    }

    /// Stop: resolve open incidents (`agent_stopped`), then `agent_stop` and a baseline save.
    pub fn stop(&mut self, now: Instant, wall: SystemTime) -> Vec<Outgoing> {
        let mut out = Vec::new();
        for change in [self.inbound.detector.stop(), self.outbound.detector.stop()] {
            if let Some(Change::Resolved(inc, reason)) = change {
                out.push(self.resolved(&inc, reason, now, wall));
            }
        }
        if let Some(change) = self.conn.stop() {
            let iface = self.interface();
            if let Some(e) = limited::conn_event(&self.conn, &change, &iface, self.test, now, wall) {
                out.push(Outgoing::Event(e));
            }
        }
        if let Some(c) = self.census.take() {
            c.stop();
        }
        out.push(Outgoing::Event(Event::new(wall, EventBody::AgentStop {})));
        out.push(Outgoing::SaveBaseline(Box::new(self.snapshot(wall))));
        out
    }

    /// Per-protocol rates since the last tick, from capture's running totals.
    fn class_rates(&mut self, now: Instant) -> Option<crate::input::protocols::ClassRates> {
        let cur = self.insight.as_ref().and_then(|i| i.class_totals())?;
        let prev = self.class_prev.replace((now, cur));
        let (at, before) = prev?;
        crate::input::protocols::rates(&before, &cur, now.saturating_duration_since(at).as_secs_f64())
    }

    fn snapshot(&self, wall: SystemTime) -> Snapshot {
        Snapshot::new(wall, &self.settings.detect, self.inbound.baseline.snapshot(), self.outbound.baseline.snapshot())
    }

    fn watch(&self, dir: Direction) -> &Watch {
        match dir {
            Direction::Inbound => &self.inbound,
            Direction::Outbound => &self.outbound,
        }
    }

    /// Packet capture sees received traffic: it classifies inbound incidents; outbound ones are
    /// classified from the host's sent-packet counters.
    fn classification(&mut self, inc: &Incident) -> Classification {
        let from_packets = match inc.direction {
            Direction::Inbound => self.insight.as_mut().and_then(|i| i.classify()),
            Direction::Outbound => None,
        };
        let by_packets = from_packets.is_some();
        let mut class = from_packets.unwrap_or_else(|| mix::classify(&inc.proto));
        if inc.direction == Direction::Inbound {
            class = limited::with_kernel_view(class, inc, &self.kernel_peak, by_packets);
            self.attribution_evidence(&mut class, self.now);
        }
        class
    }

    /// §5.8 in the incident's evidence: what was attributed (and so not judged), the connections
    /// carrying it (never blocked), and a real-connection flood's new peers.
    fn attribution_evidence(&self, class: &mut crate::event::Classification, now: Instant) {
        use serde_json::json;
        let Some(j) = self.last_judged else { return };
        let e = &mut class.evidence;
        e.insert("attributed_pps".into(), json!(round1(j.attributed_pps)));
        e.insert("attributed_bps".into(), json!(j.attributed_bps.round()));
        let last = self.attribution.last();
        if j.attributed_pps > 0.0 && !last.top.is_empty() {
            e.insert("attributed_connections".into(), last.top.iter().map(|c| c.to_json()).collect());
        }
        if let Some(i) = self.attribution.data_flood(now) {
            if matches!(class.attack_family.as_str(), "tcp_flood" | "unknown") {
                class.attack_family = "tcp_data_flood".into();
            }
            e.insert("new_peers".into(), json!(i.new_peers));
            e.insert("new_peers_limit".into(), json!(self.attribution.new_peers_limit().round()));
            if !e.contains_key("top_src_ips") {
                let total: u64 = i.flood_peers.iter().map(|p| p.1).sum::<u64>().max(1);
                let top: Vec<serde_json::Value> = i
                    .flood_peers
                    .iter()
                    .map(|(ip, b)| json!({"ip": ip.to_string(), "bytes": b, "pct": round1(100.0 * *b as f64 / total as f64)}))
                    .collect();
                e.insert("top_src_ips".into(), top.into());
            }
        }
    }

    /// `traffic_surge` (§5.8): attributed traffic far over its normal. Informational.
    fn surge_event(&self, j: &Judged, r: &Rates, wall: SystemTime) -> Outgoing {
        let thr = self.inbound.thresholds();
        Outgoing::Event(Event::new(
            wall,
            EventBody::TrafficSurge(crate::event::TrafficSurge {
                interface: self.interface(),
                pps: round1(r.inbound().pps),
                bps: r.bits_per_s.round(),
                attributed_pps: round1(j.attributed_pps),
                attributed_bps: j.attributed_bps.round(),
                threshold_pps: round1(thr.pps),
                threshold_bps: round1(thr.bits_per_s),
                attributed_connections: self.attribution.last().top.iter().map(|c| c.to_json()).collect(),
            }),
        ))
    }

    fn opened(&mut self, dir: Direction, wall: SystemTime) -> Outgoing {
        self.incidents_total += 1;
        let inc = self.watch(dir).detector.incident().expect("just opened").clone();
        if let (Some(i), Direction::Inbound) = (self.insight.as_mut(), dir) {
            i.incident_opened(&inc.id, wall);
        }
        let class = self.classification(&inc);
        Outgoing::Event(Event::new(
            wall,
            EventBody::IncidentOpen(IncidentOpen {
                incident_id: inc.id.clone(),
                direction: dir,
                previous_incident_id: inc.previous_id.clone(),
                interface: self.interface(),
                pps: round1(inc.pps),
                bps: round1(inc.bits_per_s),
                dropped_pps: round1(inc.dropped_pps),
                threshold_pps: round1(inc.thresholds.pps),
                threshold_bps: round1(inc.thresholds.bits_per_s),
                baseline_pps: round1(inc.thresholds.baseline_pps),
                severity: inc.severity().into(),
                trigger: inc.trigger.as_str().into(),
                protocol: inc.classes.map(|c| {
                    Box::new(ProtocolRates {
                        protocol_pps: class_map(c, c),
                        protocol_threshold_pps: class_map(inc.thresholds.classes, c),
                    })
                }),
                test: self.test,
                started_at: rfc3339_ms(inc.started_wall),
                class,
            }),
        ))
    }

    fn updated(&mut self, dir: Direction, now: Instant, wall: SystemTime) -> Outgoing {
        let inc = self.watch(dir).detector.incident().expect("open").clone();
        let class = self.classification(&inc);
        Outgoing::Event(Event::new(
            wall,
            EventBody::IncidentUpdate(IncidentUpdate {
                incident_id: inc.id.clone(),
                direction: dir,
                pps: round1(inc.pps),
                bps: round1(inc.bits_per_s),
                dropped_pps: round1(inc.dropped_pps),
                peak_pps: round1(inc.peak_pps),
                peak_bps: round1(inc.peak_bits_per_s),
                duration_s: round1(inc.duration(now).as_secs_f64()),
                severity: inc.severity().into(),
                test: self.test,
                class,
            }),
        ))
    }

    fn resolved(&mut self, inc: &Incident, reason: ResolveReason, now: Instant, wall: SystemTime) -> Outgoing {
        let class = self.classification(inc);
        let pcap_file = match inc.direction {
            Direction::Inbound => self.insight.as_mut().and_then(|i| i.incident_resolved(&inc.id, wall)),
            Direction::Outbound => None,
        };
        Outgoing::Event(Event::new(
            wall,
            EventBody::IncidentResolve(IncidentResolve {
                incident_id: inc.id.clone(),
                direction: inc.direction,
                peak_pps: round1(inc.peak_pps),
                peak_bps: round1(inc.peak_bits_per_s),
                duration_s: round1(inc.duration(now).as_secs_f64()),
                severity: inc.severity().into(),
                reason: reason.as_str().into(),
                test: self.test,
                pcap_file,
                class,
            }),
        ))
    }

    fn periodic(&mut self, now: Instant, wall: SystemTime, out: &mut Vec<Outgoing>) {
        if now >= self.next_metrics {
            self.next_metrics = now + self.settings.metrics_interval;
            out.push(Outgoing::Metrics(self.metrics(wall)));
        }
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.settings.heartbeat_interval;
            out.push(Outgoing::Heartbeat(self.heartbeat(wall)));
        }
        if now >= self.next_save {
            self.next_save = now + SAVE_EVERY;
            out.push(Outgoing::SaveBaseline(Box::new(self.snapshot(wall))));
        }
        self.publish_status(now, wall, out);
    }
}

/// Both directions' baselines from a saved file, or none (with one log line saying why).
fn restore(
    cfg: &crate::config::DetectConfig,
    saved: Option<&Snapshot>,
    wall: SystemTime,
) -> (Option<Baseline>, Option<Baseline>) {
    let Some(snap) = saved else { return (None, None) };
    let restored = snap.usable(wall).and_then(|()| {
        let rx = Baseline::restore(cfg, snap.inbound.as_ref().expect("usable checked"))?;
        let tx = snap.outbound.as_ref().map(|o| Baseline::restore(cfg, o)).transpose()?;
        Ok((rx, tx))
    });
    match restored {
        Ok((rx, tx)) => (Some(rx), tx),
        Err(why) => {
            log::info!("saved baseline not used: {why}; learning afresh");
            (None, None)
        }
    }
}

/// `{"syn": .., "udp": .., "icmp": .., "fragments": ..}` for events.
/// Classes not measured (NaN: limited mode counts SYNs only) are left out; `like` names the
/// measured ones, so thresholds are shown for those only.
fn class_map(
    r: crate::input::protocols::ClassRates,
    like: crate::input::protocols::ClassRates,
) -> std::collections::BTreeMap<String, f64> {
    crate::input::protocols::CLASSES
        .iter()
        .zip(r.iter().zip(like))
        .filter(|(_, (_, l))| !l.is_nan())
        .map(|(k, (v, _))| (k.to_string(), round1(*v)))
        .collect()
}

pub mod accesslog;
pub mod run;
pub mod selftest;

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

pub mod flows;
mod limited;
mod reports;
use reports::MetricsAcc;

mod snapshot;
pub use snapshot::STATUS_EVERY;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod scenarios;

#[cfg(test)]
mod attribution_scenarios;

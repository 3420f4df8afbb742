//! The agent's per-tick pipeline: sample → rates → baseline → detect → messages for sinks.
//! [`Agent::tick`] takes the time as arguments; only [`crate::run`] reads a clock, so `--test`
//! and the tests drive the same code on virtual time.

use std::time::{Duration, Instant, SystemTime};

use crate::baseline::{Baseline, Snapshot, Thresholds, MAX_RESTORE_AGE};
use crate::config::Settings;
use crate::counters::{ProtoCounters, Rates, Sampler};
use crate::detect::{Change, Detector, Incident, ResolveReason};
use crate::event::{rfc3339_ms, Classification, Event, EventBody, IncidentOpen, IncidentResolve, IncidentUpdate};
use crate::insight::PacketInsight;
use crate::mix;
use crate::report::messages::LocalMetrics;
use crate::report::{Heartbeat, InterfaceInfo, Metrics, Outgoing};

/// The baseline is saved this often while running (and at exit).
pub const SAVE_EVERY: Duration = Duration::from_secs(60);

/// How capture stands for this run, for `agent_start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureStatus {
    /// `limited`, `capture-scapy` or `capture-tcpdump`.
    pub mode: String,
    /// Why capture is off, when it is.
    pub reason: Option<String>,
}

pub struct Agent {
    settings: Settings,
    sampler: Sampler,
    baseline: Baseline,
    detector: Detector,
    insight: Option<Box<dyn PacketInsight>>,
    capture: CaptureStatus,
    restored: bool,
    /// Mark incident events as synthetic (`--test`).
    test: bool,
    acc: MetricsAcc,
    last_thresholds: Thresholds,
    last_rates: Option<Rates>,
    next_metrics: Instant,
    next_heartbeat: Instant,
    next_save: Instant,
    incidents_total: u64,
    /// The state file's clock and history (§6.6), see `agent_status.rs`.
    status: status::StatusClock,
}

#[derive(Debug, Default)]
struct MetricsAcc {
    max_pps: f64,
    max_bps: f64,
    sum_pps: f64,
    samples: u32,
    proto: ProtoCounters,
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
        let restored_baseline = saved.as_ref().and_then(|s| Baseline::restore(cfg, s, wall));
        let restored = restored_baseline.is_some();
        if let (Some(s), false) = (&saved, restored) {
            let age = wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
                .saturating_sub(s.saved_at);
            log::info!("saved baseline not used (age {age} s, limit {} s); learning afresh", MAX_RESTORE_AGE.as_secs());
        }
        let baseline = restored_baseline.unwrap_or_else(|| Baseline::new(cfg));
        let detector = Detector::new(cfg, now, restored);
        let last_thresholds = baseline.thresholds(wall, cfg);
        Agent {
            next_metrics: now + settings.metrics_interval,
            next_heartbeat: now,
            next_save: now + SAVE_EVERY,
            settings,
            sampler,
            baseline,
            detector,
            insight,
            capture,
            restored,
            test: false,
            acc: MetricsAcc::default(),
            last_thresholds,
            last_rates: None,
            incidents_total: 0,
            status: status::StatusClock::new(now, wall),
        }
    }

    /// Mark every incident event as a test (`--test`).
    pub fn set_test(&mut self, test: bool) {
        self.test = test;
    }

    /// An incident is being confirmed: the run loop samples again sooner.
    pub fn confirming(&self) -> bool {
        self.detector.confirming()
    }

    pub fn baseline_restored(&self) -> bool {
        self.restored
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Apply new detection tuning (API `/agent/config`) without losing state.
    pub fn set_detect_config(&mut self, cfg: crate::config::DetectConfig) {
        self.detector.set_config(&cfg);
        self.settings.detect = cfg;
    }

    /// Apply capture options from the API config (`pcap_enabled`, `ioc_patterns`).
    pub fn set_capture_options(&mut self, pcap_enabled: bool, ioc_patterns: Vec<crate::config::IocPattern>) {
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
        let rates = self.sampler.sample(now);
        self.tick_with(now, wall, rates)
    }

    /// The tick after sampling; `--test` feeds synthetic rates here.
    pub fn tick_with(&mut self, now: Instant, wall: SystemTime, rates: Option<Rates>) -> Vec<Outgoing> {
        let cfg = &self.settings.detect;
        let thr = self.baseline.thresholds(wall, cfg);
        self.last_thresholds = thr;
        let step = self.detector.step(now, wall, rates.as_ref(), &thr);
        let mut out = Vec::new();
        if let Some(r) = &rates {
            if step.learn {
                self.baseline.observe(wall, r.pps, r.bits_per_s);
            }
            self.accumulate(r);
            self.last_rates = Some(*r);
        }
        match step.change {
            Some(Change::Opened) => out.push(self.opened(wall)),
            Some(Change::Updated) => out.push(self.updated(now, wall)),
            Some(Change::Resolved(inc, reason)) => out.push(self.resolved(&inc, reason, now, wall)),
            None => {}
        }
        self.periodic(now, wall, &mut out);
        out
    }

    /// Stop: resolve an open incident (`agent_stopped`), then `agent_stop` and a baseline save.
    pub fn stop(&mut self, now: Instant, wall: SystemTime) -> Vec<Outgoing> {
        let mut out = Vec::new();
        if let Some(Change::Resolved(inc, reason)) = self.detector.stop() {
            out.push(self.resolved(&inc, reason, now, wall));
        }
        out.push(Outgoing::Event(Event::new(wall, EventBody::AgentStop {})));
        out.push(Outgoing::SaveBaseline(Box::new(self.baseline.snapshot(wall))));
        out
    }

    fn classification(&mut self, proto: &ProtoCounters) -> Classification {
        self.insight.as_mut().and_then(|i| i.classify()).unwrap_or_else(|| mix::classify(proto))
    }

    fn opened(&mut self, wall: SystemTime) -> Outgoing {
        self.incidents_total += 1;
        let inc = self.detector.incident().expect("just opened").clone();
        if let Some(i) = self.insight.as_mut() {
            i.incident_opened(&inc.id, wall);
        }
        let class = self.classification(&inc.proto);
        Outgoing::Event(Event::new(
            wall,
            EventBody::IncidentOpen(IncidentOpen {
                incident_id: inc.id.clone(),
                interface: self.interface(),
                pps: round1(inc.pps),
                bps: round1(inc.bits_per_s),
                threshold_pps: round1(inc.thresholds.pps),
                threshold_bps: round1(inc.thresholds.bits_per_s),
                baseline_pps: round1(inc.thresholds.baseline_pps),
                severity: inc.severity().into(),
                trigger: inc.trigger.as_str().into(),
                test: self.test,
                started_at: rfc3339_ms(inc.started_wall),
                class,
            }),
        ))
    }

    fn updated(&mut self, now: Instant, wall: SystemTime) -> Outgoing {
        let inc = self.detector.incident().expect("open").clone();
        let class = self.classification(&inc.proto);
        Outgoing::Event(Event::new(
            wall,
            EventBody::IncidentUpdate(IncidentUpdate {
                incident_id: inc.id.clone(),
                pps: round1(inc.pps),
                bps: round1(inc.bits_per_s),
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
        let class = self.classification(&inc.proto);
        let pcap_file = self.insight.as_mut().and_then(|i| i.incident_resolved(&inc.id, wall));
        Outgoing::Event(Event::new(
            wall,
            EventBody::IncidentResolve(IncidentResolve {
                incident_id: inc.id.clone(),
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

    fn accumulate(&mut self, r: &Rates) {
        let a = &mut self.acc;
        a.max_pps = a.max_pps.max(r.pps);
        a.max_bps = a.max_bps.max(r.bits_per_s);
        a.sum_pps += r.pps;
        a.samples += 1;
        if let Some(p) = &r.proto {
            a.proto.add(p);
        }
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
            out.push(Outgoing::SaveBaseline(Box::new(self.baseline.snapshot(wall))));
        }
        self.publish_status(now, wall, out);
    }

    fn metrics(&mut self, wall: SystemTime) -> Metrics {
        let a = std::mem::take(&mut self.acc);
        let total = a.proto.total().max(1) as f64;
        let pct = |n: u64| round1(100.0 * n as f64 / total);
        let q = self.baseline.quality(wall);
        Metrics {
            ts: rfc3339_ms(wall),
            pps: round1(a.max_pps),
            bps: round1(a.max_bps),
            avg_pps: round1(if a.samples > 0 { a.sum_pps / a.samples as f64 } else { 0.0 }),
            tcp_pct: pct(a.proto.tcp_in),
            udp_pct: pct(a.proto.udp_in),
            icmp_pct: pct(a.proto.icmp_in),
            threshold: round1(self.last_thresholds.pps),
            samples: a.samples,
            local: LocalMetrics {
                interface: self.interface(),
                last_pps: self.last_rates.map(|r| r.pps).unwrap_or(0.0),
                last_bits_per_s: self.last_rates.map(|r| r.bits_per_s).unwrap_or(0.0),
                threshold_bits_per_s: self.last_thresholds.bits_per_s,
                baseline_p99_pps: q.baseline_p99_pps,
                incident_active: self.detector.incident().is_some(),
                incidents_total: self.incidents_total,
                capture_dropped_packets: self.insight.as_ref().map(|i| i.dropped_packets()).unwrap_or(0),
            },
        }
    }

    fn heartbeat(&self, wall: SystemTime) -> Heartbeat {
        let available_interfaces = self
            .sampler
            .last_table()
            .ifaces
            .iter()
            .map(|i| InterfaceInfo {
                name: i.name.clone(),
                rx_bytes: i.rx_bytes,
                tx_bytes: i.tx_bytes,
                has_traffic: i.rx_packets > 0,
            })
            .collect();
        Heartbeat {
            ts: rfc3339_ms(wall),
            version: crate::event::AGENT_VERSION.into(),
            quality: self.baseline.quality(wall),
            interface: self.interface(),
            available_interfaces,
            pcap_active: self.insight.as_ref().is_some_and(|i| i.active()),
            retry_queue_size: 0,
        }
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[path = "agent_status.rs"]
mod status;
pub use status::STATUS_EVERY;

#[cfg(test)]
#[path = "agent_tests.rs"]
mod tests;

//! `metrics_listen` (§6.6): `/metrics` over HTTP for Prometheus, from a small bounded server
//! (`httpd`: one thread, poll(2), no async runtime; §13 limits). The report worker renders the text from each
//! once-a-second state snapshot (the textfile's rendering, plus `ftagent_threshold_bps`,
//! `ftagent_baseline_quality` and per-direction rates) and the server thread only hands out the
//! latest text, so a scrape never touches the agent's state and never waits on the sampling thread.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::report::api::spool::Spool;
use crate::report::messages::LocalMetrics;
use crate::report::textfile::{escape, fmt, render};
use crate::report::{Metrics, Outgoing, Sink};
use crate::status::snapshot::{quality_level, StatusSnapshot};

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub struct MetricsHttp {
    addr: SocketAddr,
    text: Arc<Mutex<String>>,
    spools: Vec<Arc<Spool>>,
    /// Access-log figures (§11), the same the textfile writes.
    http: Arc<crate::input::accesslog::gauges::HttpGauges>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsHttp {
    /// Bind now, so a taken port is a start-up error naming the key.
    pub fn start(
        addr: SocketAddr,
        spools: Vec<Arc<Spool>>,
        http: Arc<crate::input::accesslog::gauges::HttpGauges>,
    ) -> Result<Self> {
        let listener = super::httpd::bind(addr)
            .map_err(|e| Error::Setting { key: "metrics_listen", why: format!("cannot listen on {addr}: {e}") })?;
        let text = Arc::new(Mutex::new(String::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, served) = (stop.clone(), text.clone());
        let thread = std::thread::Builder::new()
            .name("ftagent-metrics".into())
            .spawn(move || {
                super::httpd::serve(listener, super::httpd::Limits::default(), st, |_, path| answer(path, &served))
            })
            .map_err(|e| Error::Thread { what: "metrics server", source: e })?;
        log::info!("serving Prometheus metrics at http://{addr}/metrics");
        Ok(MetricsHttp { addr, text, spools, http, stop, thread: Some(thread) })
    }
}

fn answer(path: &str, text: &Mutex<String>) -> super::httpd::Reply {
    use super::httpd::Reply;
    if path != "/metrics" {
        return Reply { status: 404, content_type: "text/plain", body: "not found; metrics are at /metrics\n".into() };
    }
    let body = text.lock().map(|t| t.clone()).unwrap_or_default();
    if body.is_empty() {
        Reply { status: 503, content_type: "text/plain", body: "no sample yet\n".into() }
    } else {
        Reply { status: 200, content_type: CONTENT_TYPE, body }
    }
}

impl Sink for MetricsHttp {
    fn name(&self) -> String {
        format!("metrics http://{}/metrics", self.addr)
    }

    fn handle(&mut self, msg: &Outgoing) -> Result<()> {
        let Outgoing::Status(s) = msg else { return Ok(()) };
        let spooled = self.spools.iter().map(|sp| sp.len()).sum();
        let body = render_all(s, spooled) + &crate::report::textfile::render_http(&self.http.snapshot());
        if let Ok(mut t) = self.text.lock() {
            *t = body;
        }
        Ok(())
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The textfile's metrics as of this snapshot.
pub fn as_metrics(s: &StatusSnapshot) -> Metrics {
    Metrics {
        ts: s.updated_at.clone(),
        pps: s.rates.rx_pps,
        bps: s.rates.rx_bps,
        avg_pps: s.rates.rx_pps,
        tcp_pct: s.proto.tcp_pct,
        udp_pct: s.proto.udp_pct,
        icmp_pct: s.proto.icmp_pct,
        threshold: s.thresholds.pps,
        samples: 1,
        local: LocalMetrics {
            interface: s.interface.clone(),
            last_pps: s.rates.rx_pps,
            last_bits_per_s: s.rates.rx_bps,
            threshold_bits_per_s: s.thresholds.bps,
            baseline_p99_pps: s.baseline.p99_pps,
            incident_active: s.incident.is_some(),
            incidents_total: s.incidents_total,
            capture_dropped_packets: s.capture_dropped_packets,
        },
    }
}

/// The whole `/metrics` body: the textfile set, then what only the endpoint adds.
pub fn render_all(s: &StatusSnapshot, spooled: u64) -> String {
    let mut out = render(&as_metrics(s), spooled);
    let iface = escape(&s.interface);
    let mut gauge = |name: &str, help: &str, values: &[(&str, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, v) in values {
            let _ = writeln!(out, "{name}{{interface=\"{iface}\"{labels}}} {}", fmt(*v));
        }
    };
    gauge("ftagent_threshold_bps", "Bits-per-second threshold in force.", &[("", s.thresholds.bps)]);
    gauge(
        "ftagent_baseline_quality",
        "Baseline quality: 0 learning, 1 low, 2 medium, 3 high.",
        &[("", quality_level(&s.baseline.quality))],
    );
    gauge(
        "ftagent_detection_active",
        "1 once the grace period is over and incidents can open.",
        &[("", if s.baseline.detection_active { 1.0 } else { 0.0 })],
    );
    let bgp = s.mitigations.iter().filter(|m| m["backend"] == "bgp").count();
    gauge(
        "ftagent_mitigation_bgp_routes",
        "BGP routes announced by the agent (FlowSpec and blackhole, §10.2).",
        &[("", bgp as f64)],
    );
    let r = &s.rates;
    gauge(
        "ftagent_packets_per_second",
        "Packets per second on the monitored interface by direction (last sample).",
        &[(",direction=\"rx\"", r.rx_pps), (",direction=\"tx\"", r.tx_pps)],
    );
    gauge(
        "ftagent_bytes_per_second",
        "Bytes per second on the monitored interface by direction (last sample).",
        &[(",direction=\"rx\"", r.rx_bps / 8.0), (",direction=\"tx\"", r.tx_bps / 8.0)],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_adds_thresholds_quality_and_directions_to_the_textfile_set() {
        let mut s = StatusSnapshot { interface: "eth0".into(), ..Default::default() };
        s.thresholds.pps = 5000.0;
        s.thresholds.bps = 5e7;
        s.baseline.quality = "medium".into();
        s.rates.tx_bps = 800.0;
        s.mitigations = vec![serde_json::json!({"backend": "bgp"}), serde_json::json!({"rule": "amp:x"})];
        let text = render_all(&s, 2);
        assert!(text.contains("ftagent_mitigation_bgp_routes{interface=\"eth0\"} 1\n"), "{text}");
        assert!(text.contains("ftagent_threshold_pps{interface=\"eth0\"} 5000\n"), "{text}");
        assert!(text.contains("ftagent_threshold_bps{interface=\"eth0\"} 50000000\n"), "{text}");
        assert!(text.contains("ftagent_baseline_quality{interface=\"eth0\"} 2\n"), "{text}");
        assert!(text.contains("ftagent_bytes_per_second{interface=\"eth0\",direction=\"tx\"} 100\n"), "{text}");
        assert!(text.contains("ftagent_spool_events{interface=\"eth0\"} 2\n"), "{text}");
    }
}

//! `metrics_listen` (§6.6): `/metrics` over HTTP for Prometheus, from a small blocking server
//! (`tiny_http`, one thread, no async runtime). The report worker renders the text from each
//! once-a-second state snapshot (the textfile's rendering, plus `ftagent_threshold_bps`,
//! `ftagent_baseline_quality` and per-direction rates) and the server thread only hands out the
//! latest text, so a scrape never touches the agent's state and never waits on the sampling thread.

use std::fmt::Write as _;
use std::net::SocketAddr;
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
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsHttp {
    /// Bind now, so a taken port is a start-up error naming the key.
    pub fn start(
        addr: SocketAddr,
        spools: Vec<Arc<Spool>>,
        http: Arc<crate::input::accesslog::gauges::HttpGauges>,
    ) -> Result<Self> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| Error::Setting { key: "metrics_listen", why: format!("cannot listen on {addr}: {e}") })?;
        let server = Arc::new(server);
        let text = Arc::new(Mutex::new(String::new()));
        let (srv, served) = (server.clone(), text.clone());
        let thread = std::thread::Builder::new()
            .name("ftagent-metrics".into())
            .spawn(move || serve(&srv, &served))
            .map_err(|e| Error::Thread { what: "metrics server", source: e })?;
        log::info!("serving Prometheus metrics at http://{addr}/metrics");
        Ok(MetricsHttp { addr, text, spools, http, server, thread: Some(thread) })
    }
}

fn serve(server: &tiny_http::Server, text: &Mutex<String>) {
    for rq in server.incoming_requests() {
        let path = rq.url().split('?').next().unwrap_or("");
        let response = if path != "/metrics" {
            tiny_http::Response::from_string("not found; metrics are at /metrics\n").with_status_code(404)
        } else if *rq.method() != tiny_http::Method::Get && *rq.method() != tiny_http::Method::Head {
            tiny_http::Response::from_string("GET only\n").with_status_code(405)
        } else {
            let body = text.lock().map(|t| t.clone()).unwrap_or_default();
            if body.is_empty() {
                tiny_http::Response::from_string("no sample yet\n").with_status_code(503)
            } else {
                let header = tiny_http::Header::from_bytes("Content-Type", CONTENT_TYPE).expect("static header");
                tiny_http::Response::from_string(body).with_header(header)
            }
        };
        let _ = rq.respond(response);
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
        self.server.unblock();
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
        let text = render_all(&s, 2);
        assert!(text.contains("ftagent_threshold_pps{interface=\"eth0\"} 5000\n"), "{text}");
        assert!(text.contains("ftagent_threshold_bps{interface=\"eth0\"} 50000000\n"), "{text}");
        assert!(text.contains("ftagent_baseline_quality{interface=\"eth0\"} 2\n"), "{text}");
        assert!(text.contains("ftagent_bytes_per_second{interface=\"eth0\",direction=\"tx\"} 100\n"), "{text}");
        assert!(text.contains("ftagent_spool_events{interface=\"eth0\"} 2\n"), "{text}");
    }
}

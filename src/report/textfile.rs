//! The Prometheus textfile sink (§6.4): every metrics interval, atomically rewrite a
//! node_exporter textfile-collector file (HELP/TYPE lines, `interface` label). Rendering is
//! pure; the only I/O is the atomic write. Never touches the network.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::Result;
use crate::input::accesslog::gauges::LogGauge;
use crate::report::api::spool::Spool;
use crate::report::{Metrics, Outgoing, Sink};
use crate::util::fs as fsutil;

pub struct TextfileSink {
    pub path: PathBuf,
    /// Spools whose sizes make `ftagent_spool_events`.
    pub spools: Vec<Arc<Spool>>,
    /// Requests/s per access log (§11).
    pub http: Arc<crate::input::accesslog::gauges::HttpGauges>,
}

impl Sink for TextfileSink {
    fn name(&self) -> String {
        format!("prometheus textfile {}", self.path.display())
    }

    fn handle(&mut self, msg: &Outgoing) -> Result<()> {
        let Outgoing::Metrics(m) = msg else { return Ok(()) };
        let spooled = self.spools.iter().map(|s| s.len()).sum();
        // 0644: node_exporter usually runs as another user; metrics are not secret.
        let text = render(m, spooled) + &render_http(&self.http.snapshot());
        fsutil::write_atomic(&self.path, text.as_bytes(), 0o644)
    }
}

/// The textfile body for one metrics interval.
pub fn render(m: &Metrics, spooled: u64) -> String {
    let l = &m.local;
    let iface = escape(&l.interface);
    let rows: [(&str, &str, &str, f64); 8] = [
        (
            "ftagent_rx_packets_per_second",
            "gauge",
            "Received packets per second on the monitored interface (last sample).",
            l.last_pps,
        ),
        // §6.4 names this `ftagent_rx_bits_per_second`, but promtool's lint (fatal in `check
        // metrics`) demands base units, so it is exported in bytes, as Prometheus conventions ask.
        (
            "ftagent_rx_bytes_per_second",
            "gauge",
            "Received bytes per second on the monitored interface (last sample).",
            l.last_bits_per_s / 8.0,
        ),
        ("ftagent_threshold_pps", "gauge", "Packets-per-second threshold in force.", m.threshold),
        (
            "ftagent_baseline_p99_pps",
            "gauge",
            "99th percentile of the learned packets-per-second baseline.",
            l.baseline_p99_pps,
        ),
        ("ftagent_incident_active", "gauge", "1 while an incident is open.", if l.incident_active { 1.0 } else { 0.0 }),
        ("ftagent_incidents_total", "counter", "Incidents opened since the agent started.", l.incidents_total as f64),
        ("ftagent_spool_events", "gauge", "Events waiting in the durable delivery spool.", spooled as f64),
        (
            "ftagent_capture_dropped_packets_total",
            "counter",
            "Packets the kernel or capture dropped.",
            l.capture_dropped_packets as f64,
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in rows {
        let _ =
            writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{interface=\"{iface}\"}} {}", fmt(value));
    }
    out
}

/// `ftagent_http_requests_per_second`, `ftagent_http_requests_total` and
/// `ftagent_http_malformed_lines_total`, with a `log` label, for each followed access log
/// (no log: nothing).
pub fn render_http(logs: &[LogGauge]) -> String {
    if logs.is_empty() {
        return String::new();
    }
    type Row = (&'static str, &'static str, &'static str, fn(&LogGauge) -> f64);
    let rows: [Row; 3] = [
        (
            "ftagent_http_requests_per_second",
            "gauge",
            "Requests per second in a followed access log (last second).",
            |g| g.requests_per_second,
        ),
        ("ftagent_http_requests_total", "counter", "Requests read from a followed access log.", |g| {
            g.requests_total as f64
        }),
        (
            "ftagent_http_malformed_lines_total",
            "counter",
            "Lines of a followed access log not in its configured format.",
            |g| g.malformed_total as f64,
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in rows {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for g in logs {
            let _ = writeln!(out, "{name}{{log=\"{}\"}} {}", escape(&g.log), fmt(value(g)));
        }
    }
    out
}

pub(crate) fn fmt(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "NaN".into()
    }
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::messages::LocalMetrics;

    #[test]
    fn renders_every_metric_with_help_type_and_label() {
        let m = Metrics {
            ts: String::new(),
            pps: 0.0,
            bps: 0.0,
            avg_pps: 0.0,
            tcp_pct: 0.0,
            udp_pct: 0.0,
            icmp_pct: 0.0,
            threshold: 5000.0,
            samples: 1,
            local: LocalMetrics {
                interface: "eth\"0".into(),
                last_pps: 12.5,
                incident_active: true,
                incidents_total: 3,
                ..LocalMetrics::default()
            },
        };
        let text = render(&m, 4);
        assert!(text.contains("ftagent_rx_packets_per_second{interface=\"eth\\\"0\"} 12.5\n"), "{text}");
        assert!(text
            .contains("# TYPE ftagent_incidents_total counter\nftagent_incidents_total{interface=\"eth\\\"0\"} 3\n"));
        assert!(text.contains("ftagent_spool_events{interface=\"eth\\\"0\"} 4\n"));
        assert!(text.contains("ftagent_incident_active{interface=\"eth\\\"0\"} 1\n"));
        assert_eq!(text.matches("# HELP ").count(), 8);
    }

    #[test]
    fn renders_requests_per_second_per_log() {
        assert_eq!(render_http(&[]), "");
        let g = |log: &str, requests_per_second| LogGauge {
            log: log.into(),
            requests_per_second,
            requests_total: 7,
            malformed_total: 2,
        };
        let text = render_http(&[g("/var/log/a.log", 1500.0), g("/b\"", 0.5)]);
        assert!(text.contains("# TYPE ftagent_http_requests_total counter\n"), "{text}");
        assert!(text.contains("ftagent_http_requests_total{log=\"/var/log/a.log\"} 7\n"), "{text}");
        assert!(text.contains("ftagent_http_malformed_lines_total{log=\"/var/log/a.log\"} 2\n"), "{text}");
        assert!(text.starts_with("# HELP ftagent_http_requests_per_second "), "{text}");
        assert!(text.contains("# TYPE ftagent_http_requests_per_second gauge\n"));
        assert!(text.contains("ftagent_http_requests_per_second{log=\"/var/log/a.log\"} 1500\n"), "{text}");
        assert!(text.contains("ftagent_http_requests_per_second{log=\"/b\\\"\"} 0.5\n"), "{text}");
    }
}

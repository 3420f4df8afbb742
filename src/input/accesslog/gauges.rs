//! The access logs' live figures (§11): written once a second by the access-log thread
//! (`crate::agent::accesslog`), read by the Prometheus textfile and `/metrics`.

use std::sync::Mutex;

/// What the Prometheus textfile shows of one log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogGauge {
    pub log: String,
    /// Requests in the last second.
    pub requests_per_second: f64,
    /// Requests read since the agent started.
    pub requests_total: u64,
    /// Lines not understood since the agent started.
    pub malformed_total: u64,
}

/// The figures of each followed log, for the Prometheus textfile.
#[derive(Debug, Default)]
pub struct HttpGauges(Mutex<Vec<LogGauge>>);

impl HttpGauges {
    pub fn snapshot(&self) -> Vec<LogGauge> {
        self.0.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// The access-log thread's figures of this second.
    pub fn set(&self, values: Vec<LogGauge>) {
        if let Ok(mut g) = self.0.lock() {
            *g = values;
        }
    }
}

//! Builds the delivery sinks a run or `--test` needs from the settings: the API (spool, sender
//! and config polling), the webhook (its own spool and sender) and the Prometheus textfile;
//! applies the cached `GET /agent/config` answer before the agent starts. No delivery logic here.

use std::sync::{mpsc, Arc};
use std::time::Instant;

use log::info;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::report::api::client::ApiClient;
use crate::report::api::remote::{self, ConfigPoll, Control};
use crate::report::api::sink::ApiSink;
use crate::report::api::spool::Spool;
use crate::report::textfile::TextfileSink;
use crate::report::webhook::{WebhookOptions, WebhookSink};
use crate::report::Sink;

/// What `run` needs from the reporting side.
pub struct Wiring {
    pub sinks: Vec<Box<dyn Sink>>,
    /// Control messages (API config) for the sampling loop.
    pub control: Option<mpsc::Receiver<Control>>,
    /// Requests/s of the access-log thread, shown by the Prometheus textfile.
    pub http_gauges: Arc<crate::input::accesslog::gauges::HttpGauges>,
}

fn check_webhook(url: &str) -> Result<()> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(Error::Setting { key: "webhook_url", why: "must start with http:// or https://".into() })
    }
}

/// Sinks for the running agent. Applies the cached API config to `settings` first.
pub fn for_run(settings: &mut Settings) -> Result<Wiring> {
    let spool_root = settings.state_dir.join("spool");
    let max_bytes = settings.spool_max_mb.saturating_mul(1024 * 1024);
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    let mut spools = Vec::new();
    let mut control = None;
    if settings.api_enabled() {
        if let Some(cached) = remote::load_cache(&settings.state_dir) {
            info!("applying the cached agent config from {}", remote::cache_path(&settings.state_dir).display());
            cached.apply_to(settings);
        }
        let spool = Arc::new(Spool::open(&spool_root, max_bytes)?);
        let (tx, rx) = mpsc::channel();
        let poll = ConfigPoll::new(Instant::now(), tx, &settings.state_dir);
        sinks.push(Box::new(ApiSink::spooled(ApiClient::from_settings(settings), spool.clone(), Some(poll))));
        spools.push(spool);
        control = Some(rx);
    }
    if !settings.webhook_url.is_empty() {
        check_webhook(&settings.webhook_url)?;
        let spool = Arc::new(Spool::open(&spool_root.join("webhook"), max_bytes)?);
        sinks.push(Box::new(WebhookSink::spooled(
            &settings.webhook_url,
            spool.clone(),
            WebhookOptions::from_settings(settings),
        )));
        spools.push(spool);
    }
    let http_gauges = Arc::new(crate::input::accesslog::gauges::HttpGauges::default());
    if let Some(addr) = settings.ops.metrics_listen {
        sinks.push(Box::new(crate::report::metrics_http::MetricsHttp::start(
            addr,
            spools.clone(),
            http_gauges.clone(),
        )?));
    }
    let status_path = crate::status::state_file(&settings.state_dir);
    sinks.push(Box::new(super::statefile::StatusSink::new(status_path, spools.clone(), settings.api_enabled())));
    if let Some(path) = &settings.prometheus_textfile {
        sinks.push(Box::new(TextfileSink { path: path.clone(), spools, http: http_gauges.clone() }));
    }
    Ok(Wiring { sinks, control, http_gauges })
}

/// Sinks for `--test`: direct delivery, no spool and no sender threads (a running agent may
/// own the spool).
pub fn for_test(settings: &Settings) -> Result<Vec<Box<dyn Sink>>> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if settings.api_enabled() {
        sinks.push(Box::new(ApiSink::direct(ApiClient::from_settings(settings))));
    }
    if !settings.webhook_url.is_empty() {
        check_webhook(&settings.webhook_url)?;
        sinks.push(Box::new(WebhookSink::direct(&settings.webhook_url, WebhookOptions::from_settings(settings))));
    }
    Ok(sinks)
}

//! The foreground agent: the only place that reads clocks and loops. Sampling runs on its own
//! thread and hands messages to the report worker through a bounded channel; the main thread
//! waits for SIGTERM/SIGINT and then stops both, within a few seconds, whatever the sinks do.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use log::{info, warn};

use crate::agent::{Agent, CaptureStatus};
use crate::baseline::Snapshot;
use crate::config::Settings;
use crate::counters::{ProcSource, Sampler};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::insight::PacketInsight;
use crate::report::eventlog::{BaselineFile, EventLog};
use crate::report::{self, Outbox, Sink};

/// Everything `run` needs besides the settings.
pub struct RunOptions {
    pub capture: CaptureStatus,
    pub insight: Option<Box<dyn PacketInsight>>,
    /// Extra sinks (API, webhook, Prometheus) built by the caller.
    pub extra_sinks: Vec<Box<dyn Sink>>,
    /// Control messages for the sampling loop (API config), drained with `try_recv` each tick.
    pub control: Option<mpsc::Receiver<crate::report::remote::Control>>,
    /// Where the access-log thread leaves its requests/s for the Prometheus textfile.
    pub http_gauges: std::sync::Arc<crate::accesslog::worker::HttpGauges>,
}

pub fn baseline_path(settings: &Settings) -> std::path::PathBuf {
    settings.state_dir.join("baseline.json")
}

/// Read a saved baseline; a missing or unreadable one is logged and ignored.
pub fn load_baseline(path: &Path) -> Option<Snapshot> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            warn!("{}: cannot read saved baseline: {e}", path.display());
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!("{}: ignoring unreadable saved baseline: {e}", path.display());
            None
        }
    }
}

/// The local sinks every run has: the event log (unless disabled) and the baseline file.
pub fn local_sinks(settings: &Settings) -> Result<Vec<Box<dyn Sink>>> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(p) = &settings.events_file {
        sinks.push(Box::new(EventLog::open(p)?));
    }
    sinks.push(Box::new(BaselineFile { path: baseline_path(settings) }));
    Ok(sinks)
}

/// Run until SIGTERM/SIGINT. Returns after the final events are written.
pub fn run(settings: Settings, opts: RunOptions) -> Result<()> {
    fsutil::ensure_private_dir(&settings.state_dir)?;
    let mut sinks = local_sinks(&settings)?;
    sinks.extend(opts.extra_sinks);
    let signals = signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT])
        .map_err(|e| Error::Runtime(format!("cannot install signal handlers: {e}")))?;

    let saved = load_baseline(&baseline_path(&settings));
    let sampler = Sampler::new(Box::new(ProcSource::new(&settings.procfs_root)), &settings.interface);
    let interval = settings.detect.sample_interval;
    let (tx, rx) = mpsc::sync_channel(report::CHANNEL_DEPTH);
    // Access logs (§11) on their own thread beside the counters, through the same channel.
    let access_logs = crate::accesslog::worker::start(&settings, tx.clone(), opts.http_gauges.clone());
    let mut agent = Agent::new(settings, sampler, opts.insight, opts.capture, saved, Instant::now(), SystemTime::now());

    let worker = report::spawn_worker(rx, sinks);
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    // If the sampling thread ends for any reason (even a panic), the signal wait ends too.
    let close_signals = CloseOnDrop(signals.handle());
    let sampling = std::thread::Builder::new()
        .name("ftagent-sample".into())
        .spawn(move || {
            let _close = close_signals;
            sample_loop(&mut agent, Outbox::new(tx), interval, stop_rx, opts.control)
        })
        .map_err(|e| Error::Runtime(format!("cannot start sampling thread: {e}")))?;

    let mut signals = signals;
    if let Some(sig) = signals.forever().next() {
        info!("received signal {sig}; stopping");
    }
    // Access-log incidents resolve before the sampling thread writes `agent_stop`.
    if let Some(a) = access_logs {
        a.stop();
    }
    let _ = stop_tx.send(());
    if sampling.join().is_err() {
        return Err(Error::Runtime("the sampling thread failed; see the log above".into()));
    }
    // The worker ends when the sampling thread's sender is dropped; sinks flush to disk first.
    if !report::join_within(worker, Duration::from_secs(4)) {
        warn!("sinks did not finish within 4 s; exiting anyway (spooled data is on disk)");
    }
    Ok(())
}

fn sample_loop(
    agent: &mut Agent,
    mut outbox: Outbox,
    interval: Duration,
    stop: mpsc::Receiver<()>,
    control: Option<mpsc::Receiver<crate::report::remote::Control>>,
) {
    let start = agent.start(SystemTime::now());
    if let crate::report::Outgoing::Event(e) = &start {
        if let crate::event::EventBody::AgentStart { interface, mode, .. } = &e.body {
            info!(
                "ftagent {} started: interface {interface}, mode {mode}, sampling every {} ms{}",
                crate::event::AGENT_VERSION,
                interval.as_millis(),
                if agent.baseline_restored() { ", saved baseline restored" } else { "" }
            );
        }
    }
    outbox.send_all(vec![start]);
    let mut next = Instant::now();
    loop {
        if let Some(rx) = &control {
            while let Ok(c) = rx.try_recv() {
                c.apply(agent);
            }
        }
        let msgs = agent.tick(Instant::now(), SystemTime::now());
        outbox.send_all(msgs);
        let now = Instant::now();
        next = if agent.confirming() {
            // Over threshold: confirm with a quick second look instead of a whole interval.
            now + confirm_interval(interval)
        } else if next + interval < now {
            // Fell behind (suspend, overload): skip missed ticks rather than burst.
            now + interval
        } else {
            next + interval
        };
        match stop.recv_timeout(next - now) {
            Err(RecvTimeoutError::Timeout) => continue,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    outbox.send_all(agent.stop(Instant::now(), SystemTime::now()));
    outbox.flush_blocking();
}

/// The sampling delay while an incident is confirming: a quarter interval, at least 50 ms.
pub fn confirm_interval(interval: Duration) -> Duration {
    (interval / 4).max(Duration::from_millis(50)).min(interval)
}

struct CloseOnDrop(signal_hook::iterator::Handle);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirm_interval_is_a_quarter_with_a_floor() {
        assert_eq!(confirm_interval(Duration::from_millis(200)), Duration::from_millis(50));
        assert_eq!(confirm_interval(Duration::from_millis(1000)), Duration::from_millis(250));
        assert_eq!(confirm_interval(Duration::from_millis(100)), Duration::from_millis(50));
    }
}

//! The access-log thread (§11): once a second, read what each followed log gained, aggregate
//! it, step its detector and hand events to the report worker through the same bounded channel
//! as the counters (never blocking: [`Outbox`]). It is its own thread so a slow disk or a huge
//! burst of lines never delays the counter sampling. [`start`] is the one front door.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use log::{info, warn};

use crate::config::Settings;
use crate::input::accesslog::aggregate::Window;
use crate::input::accesslog::baseline::HttpDetectConfig;
use crate::input::accesslog::detect::HttpDetector;
use crate::input::accesslog::events;
use crate::input::accesslog::follow::Follower;
use crate::input::accesslog::gauges::{HttpGauges, LogGauge};
use crate::input::accesslog::parse::{parse_line, Format};
use crate::input::accesslog::AccessLog;
use crate::report::{Outbox, Outgoing};

pub const TICK: Duration = Duration::from_secs(1);

/// The running access-log thread.
pub struct Handle {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Handle {
    /// Stop: open incidents resolve with `agent_stopped`; returns when the thread has ended.
    pub fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            warn!("the access-log thread failed; see the log above");
        }
    }
}

struct Followed {
    path: PathBuf,
    format: Format,
    follower: Follower,
    window: Window,
    detector: HttpDetector,
    requests_total: u64,
    malformed_total: u64,
}

impl Followed {
    fn read(&mut self) {
        let (format, window, malformed) = (self.format, &mut self.window, &mut self.malformed_total);
        let path = &self.path;
        self.follower.poll(&mut |line| match parse_line(format, line) {
            Ok(r) => window.add(&r),
            Err(why) => {
                window.add_malformed();
                if *malformed == 0 {
                    let shown = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
                    warn!(
                        "{}: a line not in `{}` format ({why:?}), counted and skipped: {shown}",
                        path.display(),
                        format.as_str()
                    );
                }
                *malformed += 1;
            }
        });
    }
}

/// Start following `settings.access_logs`; None when none is configured.
pub fn start(settings: &Settings, tx: SyncSender<Outgoing>, gauges: Arc<HttpGauges>) -> Option<Handle> {
    if settings.access_logs.is_empty() {
        return None;
    }
    let cfg = HttpDetectConfig::from_detect(&settings.detect, settings.http_min_rps_threshold);
    let now = Instant::now();
    let logs: Vec<Followed> = settings
        .access_logs
        .iter()
        .map(|l: &AccessLog| {
            info!("following access log {} ({} format)", l.path.display(), l.format.as_str());
            Followed {
                path: l.path.clone(),
                format: l.format,
                follower: Follower::new(&l.path),
                window: Window::default(),
                detector: HttpDetector::new(&cfg, now),
                requests_total: 0,
                malformed_total: 0,
            }
        })
        .collect();
    let (stop, stop_rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("ftagent-accesslog".into())
        .spawn(move || run(logs, Outbox::new(tx), stop_rx, gauges))
        .map_err(|e| warn!("cannot start the access-log thread: {e}"))
        .ok()?;
    Some(Handle { stop, thread })
}

fn run(mut logs: Vec<Followed>, mut outbox: Outbox, stop: mpsc::Receiver<()>, gauges: Arc<HttpGauges>) {
    let mut last = Instant::now();
    let mut next = last + TICK;
    // Until stopped (or the agent's side of the channel is gone).
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(next.saturating_duration_since(Instant::now())) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let secs = now.saturating_duration_since(last).as_secs_f64().max(0.001);
        last = now;
        let mut msgs = Vec::new();
        let mut values = Vec::new();
        for log in logs.iter_mut() {
            log.read();
            let rps = log.window.requests() as f64 / secs;
            let summary = log.window.summary();
            if let Some(change) = log.detector.step(now, wall, rps, &summary) {
                msgs.push(Outgoing::Event(events::event(&log.path, &change, now, wall)));
            }
            log.requests_total += log.window.requests();
            log.window.reset();
            values.push(LogGauge {
                log: log.path.display().to_string(),
                requests_per_second: rps,
                requests_total: log.requests_total,
                malformed_total: log.malformed_total,
            });
        }
        gauges.set(values);
        outbox.send_all(msgs);
        // Fell behind (suspend, overload): skip missed ticks rather than burst.
        next = if next + TICK < now { now + TICK } else { next + TICK };
    }
    let (now, wall) = (Instant::now(), SystemTime::now());
    let msgs = logs
        .iter_mut()
        .filter_map(|l| l.detector.stop().map(|c| Outgoing::Event(events::event(&l.path, &c, now, wall))))
        .collect();
    outbox.send_all(msgs);
    outbox.flush_blocking();
}

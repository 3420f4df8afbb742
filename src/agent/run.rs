//! The foreground agent: the only place that reads clocks and loops. Sampling runs on its own
//! thread and hands messages to the report worker through a bounded channel; the main thread
//! waits for SIGTERM/SIGINT and then stops both, within a few seconds, whatever the sinks do;
//! SIGHUP makes the log file and the event log reopen (logrotate).

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use log::{info, warn};

use crate::agent::{Agent, CaptureStatus};
use crate::config::Settings;
use crate::detect::baseline::Snapshot;
use crate::error::{Error, Result};
use crate::input::capture::handle::PacketInsight;
use crate::input::counters::{ProcSource, Sampler};
use crate::report::eventlog::{BaselineFile, EventLog};
use crate::report::{self, Outbox, Sink};
use crate::util::fs as fsutil;

/// Everything `run` needs besides the settings.
pub struct RunOptions {
    pub capture: CaptureStatus,
    pub insight: Option<Box<dyn PacketInsight>>,
    /// Extra sinks (API, webhook, Prometheus) built by the caller.
    pub extra_sinks: Vec<Box<dyn Sink>>,
    /// Control messages for the sampling loop (API config), drained with `try_recv` each tick.
    pub control: Option<mpsc::Receiver<crate::report::api::remote::Control>>,
    /// Where the access-log thread leaves its requests/s for the Prometheus textfile.
    pub http_gauges: std::sync::Arc<crate::input::accesslog::gauges::HttpGauges>,
}

pub fn baseline_path(settings: &Settings) -> std::path::PathBuf {
    settings.state_dir.join("baseline.json")
}

/// Read a saved baseline; a missing one is a fresh start, a corrupt one is moved aside
/// (`baseline.json.corrupt`) with one warning ([`crate::util::statefile`]).
pub fn load_baseline(path: &Path) -> Option<Snapshot> {
    crate::util::statefile::load_json(path, "saved baseline", |s: &Snapshot| {
        crate::util::statefile::epoch_secs("saved_at", s.saved_at)?;
        s.check()
    })
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
    let signals = signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT, libc::SIGHUP])
        .map_err(|e| Error::Thread { what: "signal", source: e })?;

    let saved = load_baseline(&baseline_path(&settings));
    let sampler = Sampler::new(Box::new(ProcSource::new(&settings.procfs_root)), &settings.interface);
    let interval = settings.detect.sample_interval;
    let (tx, rx) = mpsc::sync_channel(report::CHANNEL_DEPTH);
    // Access logs (§11) on their own thread beside the counters, through the same channel.
    let access_logs = crate::agent::accesslog::start(&settings, tx.clone(), opts.http_gauges.clone());
    let worker = report::spawn_worker(rx, sinks);
    // Mitigation consumes incident events on its own thread and reports through the same sinks.
    let live = opts.insight.as_ref().and_then(|i| i.live_classification());
    let mitigation = crate::mitigate::start(&settings, tx.clone(), live);
    let observer = mitigation.as_ref().map(|m| m.observer());
    // Flow collection (§12): its own threads; its incidents go to the sinks, then to BGP and the
    // hook, never to nftables.
    let flows = crate::agent::flows::start(&settings, tx.clone(), observer.clone())?;
    let census = crate::input::sockets::start(&settings.procfs_root, settings.socket_census_max);
    let mut agent = Agent::new(settings, sampler, opts.insight, opts.capture, saved, Instant::now(), SystemTime::now());
    if let Some(c) = census {
        agent.attach_census(c);
    }

    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    // If the sampling thread ends for any reason (even a panic), the signal wait ends too.
    let close_signals = CloseOnDrop(signals.handle());
    let sampling = std::thread::Builder::new()
        .name("ftagent-sample".into())
        .spawn(move || {
            let _close = close_signals;
            sample_loop(&mut agent, Outbox::new(tx), interval, stop_rx, opts.control, observer)
        })
        .map_err(|e| Error::Thread { what: "sampling", source: e })?;

    let mut signals = signals;
    for sig in signals.forever() {
        if sig == libc::SIGHUP {
            // logrotate: the log file and the event log reopen their paths before the next write.
            crate::util::reopen::request();
            info!("SIGHUP: reopening the log file and the event log");
            continue;
        }
        info!("received signal {sig}; stopping");
        break;
    }
    // Access-log incidents resolve before the sampling thread writes `agent_stop`.
    if let Some(a) = access_logs {
        a.stop();
    }
    if let Some(f) = flows {
        f.stop();
    }
    let _ = stop_tx.send(());
    let sampled = sampling.join();
    if let Some(m) = mitigation {
        m.stop();
    }
    if sampled.is_err() {
        return Err(Error::Refused {
            what: "sampling thread",
            why: "the sampling thread failed; see the log above".into(),
        });
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
    control: Option<mpsc::Receiver<crate::report::api::remote::Control>>,
    mitigation: Option<crate::mitigate::Observer>,
) {
    // Incident events reach the sinks before mitigation sees them, so a `mitigation_apply` never
    // overtakes the `incident_open` it answers.
    let hand_over = |outbox: &mut Outbox, msgs: Vec<crate::report::Outgoing>| {
        let incidents: Vec<crate::report::Outgoing> = match &mitigation {
            Some(_) => msgs.iter().filter(|m| matches!(m, crate::report::Outgoing::Event(_))).cloned().collect(),
            None => Vec::new(),
        };
        outbox.send_all(msgs);
        if let Some(m) = &mitigation {
            m.observe(&incidents);
        }
    };
    let start = agent.start(SystemTime::now());
    if let crate::report::Outgoing::Event(e) = &start {
        if let crate::event::EventBody::AgentStart { interface, mode, .. } = &e.body {
            info!(
                "ftagent {} started: interface {interface}, mode {mode}, sampling every {} ms{}",
                crate::event::AGENT_VERSION,
                interval.as_millis(),
                if agent.baseline_restored() { ", saved baseline restored" } else { "" }
            );
            info!("{}", agent.learning_line());
        }
    }
    outbox.send_all(vec![start]);
    let mut next = Instant::now();
    loop {
        if let Some(rx) = &control {
            while let Ok(c) = rx.try_recv() {
                apply_control(agent, &c);
            }
        }
        let msgs = agent.tick(Instant::now(), SystemTime::now());
        hand_over(&mut outbox, msgs);
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
    hand_over(&mut outbox, agent.stop(Instant::now(), SystemTime::now()));
    outbox.flush_blocking();
}

/// Apply a message from a worker thread (the API's `/agent/config`) to the running agent: the
/// detection tuning, and the capture options, which reach the running capture.
pub fn apply_control(agent: &mut Agent, c: &crate::report::api::remote::Control) {
    let crate::report::api::remote::Control::Remote(c) = c;
    let s = agent.settings();
    let detect = c.detect(&s.detect);
    let pcap = c.pcap_enabled.unwrap_or(s.pcap_enabled);
    let ioc = c.ioc_patterns.clone().unwrap_or_else(|| s.ioc_patterns.clone());
    if detect != s.detect || pcap != s.pcap_enabled || ioc != s.ioc_patterns {
        let confirm = match detect.confirm_for {
            Some(d) => format!("{} s over threshold", d.as_secs()),
            None => format!("{} samples", detect.confirm_ticks),
        };
        info!(
            "applying agent config from the API: pps threshold floor {}, dynamic {}, confirm {confirm}, holddown {} samples, cooldown {} s, {} IOC pattern(s), pcap {}",
            detect.min_pps_threshold,
            detect.dynamic_threshold,
            detect.holddown_ticks,
            detect.cooldown.as_secs(),
            ioc.len(),
            if pcap { "on" } else { "off" }
        );
    }
    agent.set_detect_config(detect);
    agent.set_capture_options(pcap, ioc);
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

    #[test]
    fn control_message_changes_the_running_agent() {
        use crate::agent::CaptureStatus;
        use crate::config::paths::{Env, Paths};
        use crate::config::Settings;
        use crate::input::counters::{ProcSource, Sampler};
        use crate::report::api::remote::{parse, Control};
        let dir = tempfile::tempdir().unwrap();
        let env = Env { euid: 1000, home: Some(dir.path().into()), root: "/".into(), ..Env::default() };
        let s = Settings::defaults(&Paths::resolve(&env, false));
        let sampler = Sampler::new(Box::new(ProcSource::new(dir.path())), "auto");
        let cap = CaptureStatus { mode: "limited".into(), reason: None };
        let mut agent = Agent::new(s, sampler, None, cap, None, Instant::now(), std::time::SystemTime::now());
        let c = parse(
            br#"{"pps_threshold": 42000, "dynamic_threshold": false, "attack_holddown": 2,
            "pcap_enabled": false, "ioc_patterns": [{"pattern": "xyz"}]}"#,
        )
        .unwrap();
        apply_control(&mut agent, &Control::Remote(c));
        let s = agent.settings();
        assert_eq!(
            (s.detect.min_pps_threshold, s.detect.dynamic_threshold),
            (42000.0, false),
            "raised: above the local floor"
        );
        assert_eq!(s.detect.holddown_ticks, 10, "2 s at 200 ms");
        assert!(!s.pcap_enabled);
        assert_eq!(s.ioc_patterns[0].pattern, "xyz");
    }

    /// The service's `confirm_ticks` are seconds: on virtual time, with confirmation samples
    /// every quarter interval, the incident opens only once the rate was over for that long.
    #[test]
    fn server_confirm_ticks_last_the_servers_seconds() {
        use crate::detect::baseline::Thresholds;
        use crate::detect::detector::{Change, Detector};
        use crate::input::counters::Rates;
        let c = crate::report::api::remote::parse(br#"{"confirm_ticks": 3}"#).unwrap();
        let base = crate::config::DetectConfig { grace_period: Duration::ZERO, ..Default::default() };
        let cfg = c.detect(&base);
        let t0 = Instant::now();
        let step = confirm_interval(cfg.sample_interval);
        let mut d = Detector::new(&cfg, crate::detect::detector::Direction::Inbound, t0, true);
        let thr = Thresholds { pps: 1000.0, bits_per_s: 1e12, baseline_pps: 10.0, classes: [1e12; 4] };
        let rates = Rates { pps: 3000.0, bits_per_s: 1e6, interval: step, ..Rates::default() }.inbound();
        let mut now = t0;
        let opened = loop {
            let s = d.step(now, SystemTime::now(), Some(&rates), &thr);
            if s.change == Some(Change::Opened) {
                break now - t0;
            }
            assert!(now - t0 < Duration::from_secs(10), "never opened");
            now += step;
        };
        assert!(opened >= Duration::from_secs(3), "opened after {opened:?}, not the server's 3 s");
        assert!(opened < Duration::from_secs(3) + step * 2, "opened after {opened:?}");
    }
}

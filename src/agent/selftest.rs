//! `--test` (§6.5): a synthetic spike through the real agent pipeline on a virtual clock, then
//! the resulting `incident_open`/`incident_resolve` (marked `"test": true`) handed to every
//! configured sink. One line per sink; success only when all accepted.

use std::time::{Duration, Instant, SystemTime};

use crate::agent::{Agent, CaptureStatus};
use crate::config::Settings;
use crate::event::EventBody;
use crate::input::counters::{ProcSource, Rates, Sampler};
use crate::report::{Outgoing, Sink};

/// The synthetic incident's events, from the real detector and agent code.
pub fn synthetic_incident(settings: &Settings, capture: CaptureStatus) -> Vec<Outgoing> {
    let mut s = settings.clone();
    s.detect.grace_period = Duration::ZERO;
    let sampler = Sampler::new(Box::new(ProcSource::new(&s.procfs_root)), &s.interface);
    let interval = s.detect.sample_interval;
    let holddown = s.detect.holddown_ticks;
    let t0 = Instant::now();
    let wall0 = SystemTime::now();
    let mut agent = Agent::new(s, sampler, None, capture, None, t0, wall0);
    agent.set_test(true);
    agent.start(wall0);
    let base = settings.detect.min_pps_threshold.max(1.0);
    let rates = |pps: f64| Rates { pps, bits_per_s: pps * 8.0 * 64.0, interval, ..Rates::default() };
    let mut events = Vec::new();
    let mut n = 0u32;
    let mut feed = |agent: &mut Agent, pps: f64, count: u32| {
        for _ in 0..count {
            n += 1;
            let out = agent.tick_with(t0 + interval * n, wall0 + interval * n, Some(rates(pps)));
            events.extend(out.into_iter().filter(|m| {
                matches!(m, Outgoing::Event(e) if matches!(e.body, EventBody::IncidentOpen(_) | EventBody::IncidentResolve(_)))
            }));
        }
    };
    feed(&mut agent, base * 0.1, 5);
    feed(&mut agent, base * 20.0, 3);
    feed(&mut agent, base * 0.1, holddown);
    events
}

/// Deliver to each sink; returns (sink name, Ok or the reason) per sink.
pub fn deliver(events: &[Outgoing], sinks: &mut [Box<dyn Sink>]) -> Vec<(String, crate::error::Result<()>)> {
    sinks
        .iter_mut()
        .map(|s| {
            let r = events.iter().try_for_each(|e| s.deliver_now(e));
            (s.name(), r)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::paths::{Env, Paths};

    #[test]
    fn synthetic_incident_opens_and_resolves_as_test() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env { euid: 1000, home: Some(dir.path().into()), root: "/".into(), ..Env::default() };
        let settings = Settings::defaults(&Paths::resolve(&env, false));
        let events = synthetic_incident(&settings, CaptureStatus { mode: "limited".into(), reason: None });
        let names: Vec<&str> = events
            .iter()
            .filter_map(|m| match m {
                Outgoing::Event(e) => Some(e.name()),
                _ => None,
            })
            .collect();
        assert_eq!(names, vec!["incident_open", "incident_resolve"]);
        for m in &events {
            if let Outgoing::Event(e) = m {
                match &e.body {
                    EventBody::IncidentOpen(o) => assert!(o.test),
                    EventBody::IncidentResolve(r) => assert!(r.test && r.reason == "traffic_normal"),
                    _ => unreachable!(),
                }
            }
        }
    }
}

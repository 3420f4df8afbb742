//! Agent pipeline tests: a fake `/proc` tree in a temp dir, the real reader, virtual time.

use std::fs;
use std::path::Path;

use super::*;
use crate::config::paths::{Env, Paths};
use crate::event::EventBody;
use crate::input::counters::ProcSource;

const TICK: Duration = Duration::from_millis(200);

fn write_proc(root: &Path, packets: u64, udp_no_ports: u64) {
    fs::create_dir_all(root.join("net")).unwrap();
    let tmp = root.join("net/.dev");
    fs::write(&tmp, format!("  eth0: {} {packets} 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n", packets * 100)).unwrap();
    fs::rename(tmp, root.join("net/dev")).unwrap();
    fs::write(
        root.join("net/snmp"),
        format!("Udp: InDatagrams NoPorts InErrors\nUdp: 0 {udp_no_ports} 0\nTcp: InSegs\nTcp: 10\n"),
    )
    .unwrap();
}

fn agent(root: &Path, saved: Option<Snapshot>, t0: Instant, wall: SystemTime) -> Agent {
    let env = Env { euid: 1000, home: Some(root.into()), root: "/".into(), ..Env::default() };
    let mut s = Settings::defaults(&Paths::resolve(&env, false));
    s.detect.grace_period = Duration::from_secs(2);
    s.detect.holddown_ticks = 5;
    s.procfs_root = root.into();
    let sampler = Sampler::new(Box::new(ProcSource::new(root)), "auto");
    let cap = CaptureStatus { mode: "limited".into(), reason: Some("test".into()) };
    Agent::new(s, sampler, None, cap, saved, t0, wall)
}

fn events(out: &[Outgoing]) -> Vec<&Event> {
    out.iter().filter_map(|m| if let Outgoing::Event(e) = m { Some(e) } else { None }).collect()
}

#[test]
fn udp_flood_from_counters_opens_classifies_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let (t0, wall0) = (Instant::now(), SystemTime::now());
    let mut a = agent(dir.path(), None, t0, wall0);
    let mut packets = 0;
    let mut udp = 0;
    write_proc(dir.path(), packets, udp);
    match &events(&[a.start(wall0)])[0].body {
        EventBody::AgentStart { interface, mode, .. } => {
            assert_eq!((interface.as_str(), mode.as_str()), ("eth0", "limited"))
        }
        other => panic!("{other:?}"),
    }
    let mut log = Vec::new();
    for n in 1..=200u32 {
        // 1000 pps normally; from tick 50 to 100 a 100k pps flood to closed UDP ports.
        let step = if (50..100).contains(&n) { 20_000 } else { 200 };
        packets += step;
        if (50..100).contains(&n) {
            udp += step;
        }
        write_proc(dir.path(), packets, udp);
        for e in events(&a.tick(t0 + TICK * n, wall0 + TICK * n)) {
            log.push((n, e.clone()));
        }
    }
    let names: Vec<(u32, &str)> = log.iter().map(|(n, e)| (*n, e.name())).collect();
    assert_eq!(names.first(), Some(&(50, "incident_open")), "{names:?}");
    assert_eq!(names.last(), Some(&(104, "incident_resolve")), "{names:?}");
    match &log[0].1.body {
        EventBody::IncidentOpen(o) => {
            assert_eq!(o.pps, 100_000.0);
            assert_eq!(o.trigger, "pps");
            assert_eq!(o.class.attack_family, "udp_flood");
            assert_eq!(o.class.classified_by, "counters");
            assert_eq!(o.severity, "critical");
            assert!(!o.test);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn stop_resolves_open_incident_and_saves_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let (t0, wall0) = (Instant::now(), SystemTime::now());
    let mut a = agent(dir.path(), None, t0, wall0);
    write_proc(dir.path(), 0, 0);
    a.start(wall0);
    let mut packets = 0;
    for n in 1..=20u32 {
        packets += if n > 15 { 50_000 } else { 100 };
        write_proc(dir.path(), packets, 0);
        a.tick(t0 + TICK * n, wall0 + TICK * n);
    }
    let out = a.stop(t0 + TICK * 21, wall0 + TICK * 21);
    let names: Vec<&str> = events(&out).iter().map(|e| e.name()).collect();
    assert_eq!(names, vec!["incident_resolve", "agent_stop"]);
    match &events(&out)[0].body {
        EventBody::IncidentResolve(r) => assert_eq!(r.reason, "agent_stopped"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(out.last(), Some(Outgoing::SaveBaseline(_))));
}

#[test]
fn restart_with_saved_baseline_skips_grace() {
    let dir = tempfile::tempdir().unwrap();
    let (t0, wall0) = (Instant::now(), SystemTime::now());
    let mut a = agent(dir.path(), None, t0, wall0);
    let mut packets = 0;
    write_proc(dir.path(), 0, 0);
    a.start(wall0);
    for n in 1..=5u32 {
        packets += 100;
        write_proc(dir.path(), packets, 0);
        a.tick(t0 + TICK * n, wall0 + TICK * n);
    }
    let Some(Outgoing::SaveBaseline(snap)) = a.stop(t0 + TICK * 6, wall0 + TICK * 6).pop() else { panic!() };
    let mut b = agent(dir.path(), Some(*snap), t0, wall0 + Duration::from_secs(60));
    assert!(b.baseline_restored());
    b.tick(t0, wall0);
    packets += 100_000;
    write_proc(dir.path(), packets, 0);
    let out = b.tick(t0 + TICK, wall0 + TICK);
    assert_eq!(events(&out).first().map(|e| e.name()), Some("incident_open"), "no grace after restore");
}

#[test]
fn metrics_and_heartbeat_are_periodic() {
    let dir = tempfile::tempdir().unwrap();
    let (t0, wall0) = (Instant::now(), SystemTime::now());
    let mut a = agent(dir.path(), None, t0, wall0);
    write_proc(dir.path(), 0, 0);
    a.start(wall0);
    let (mut metrics, mut heartbeats) = (Vec::new(), 0);
    for n in 1..=160u32 {
        write_proc(dir.path(), n as u64 * 100, 0);
        for m in a.tick(t0 + TICK * n, wall0 + TICK * n) {
            match m {
                Outgoing::Metrics(m) => metrics.push(m),
                Outgoing::Heartbeat(h) => {
                    heartbeats += 1;
                    assert_eq!(h.interface, "eth0");
                    assert_eq!(h.available_interfaces.len(), 1);
                }
                _ => {}
            }
        }
    }
    assert_eq!(metrics.len(), 3, "30 s at a 10 s interval");
    assert_eq!(heartbeats, 2, "at start and after 30 s");
    assert_eq!(metrics[1].samples, 50);
    assert_eq!(metrics[1].avg_pps, 500.0);
}

//! What the agent makes of the kernel's own counters and the socket census (§5.7): the SYN class
//! fed from TcpExt when no packet capture counts SYNs, the `syn_flood` label those counters
//! justify, the kernel figures reported beside an inbound incident, and `connection_flood`
//! events from the census. Pure mapping; the detectors decide.

use std::time::{Instant, SystemTime};

use serde_json::{json, Map, Value};

use crate::detect::connflood::{self, ConnWatch, Tally};
use crate::detect::detector::{Change, Incident, Trigger};
use crate::event::{
    rfc3339_ms, Classification, Direction, Event, EventBody, IncidentOpen, IncidentResolve, IncidentUpdate,
};
use crate::input::counters::kernel::KernelRates;
use crate::input::protocols::ClassRates;

/// TCP segments received per second over which the socket census runs every second (below it,
/// every 10 s): more than an idle host's keep-alives, less than any connection flood.
pub(super) const BUSY_TCP_PPS: f64 = 200.0;

/// The SYN class from the counters: SYNs the listen path could not take the normal way, per
/// second. The other classes are not measured without packets (NaN: neither learned nor
/// compared).
pub(super) fn counter_classes(k: &KernelRates) -> Option<ClassRates> {
    Some([k.syn_pressure_pps()?, f64::NAN, f64::NAN, f64::NAN])
}

/// The larger of each rate: the kernel's figures over an incident.
pub(super) fn max_rates(a: &KernelRates, b: &KernelRates) -> KernelRates {
    let m = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    KernelRates {
        syncookies_sent_pps: m(a.syncookies_sent_pps, b.syncookies_sent_pps),
        listen_overflows_pps: m(a.listen_overflows_pps, b.listen_overflows_pps),
        listen_drops_pps: m(a.listen_drops_pps, b.listen_drops_pps),
        req_q_full_drops_pps: m(a.req_q_full_drops_pps, b.req_q_full_drops_pps),
        softnet_dropped_pps: m(a.softnet_dropped_pps, b.softnet_dropped_pps),
        time_squeeze_per_s: m(a.time_squeeze_per_s, b.time_squeeze_per_s),
        udp_rcvbuf_errors_pps: m(a.udp_rcvbuf_errors_pps, b.udp_rcvbuf_errors_pps),
        udp_in_errors_pps: m(a.udp_in_errors_pps, b.udp_in_errors_pps),
    }
}

/// `kernel_counters`: the peak rates of the incident, those the kernel gave.
fn kernel_counters(k: &KernelRates) -> Value {
    let mut m = Map::new();
    for (name, v) in [
        ("syn_cookies_sent_pps", k.syncookies_sent_pps),
        ("listen_overflows_pps", k.listen_overflows_pps),
        ("listen_drops_pps", k.listen_drops_pps),
        ("syn_queue_full_drops_pps", k.req_q_full_drops_pps),
        ("softnet_dropped_pps", k.softnet_dropped_pps),
        ("softnet_time_squeeze_per_s", k.time_squeeze_per_s),
        ("udp_rcvbuf_errors_pps", k.udp_rcvbuf_errors_pps),
        ("udp_in_errors_pps", k.udp_in_errors_pps),
    ] {
        if let Some(v) = v {
            m.insert(name.into(), round1(v).into());
        }
    }
    Value::Object(m)
}

/// Whether the counters call this incident a SYN flood: it opened on the SYN class while no
/// packets were counted, or SYN cookies and listen drops reached the SYN threshold in force.
fn counters_see_syn_flood(inc: &Incident, k: &KernelRates, by_packets: bool) -> bool {
    let opened_on_it = inc.trigger == Trigger::Class(0) && !by_packets;
    let thr = inc.thresholds.classes[0];
    opened_on_it || k.syn_pressure_pps().is_some_and(|p| thr > 0.0 && p >= thr)
}

/// An inbound incident's classification with the kernel's view: in limited mode the counters
/// may name it `syn_flood`; with packets, the event says what the counters saw and whether the
/// two views agree. UDP receive-buffer errors and softnet drops are reported beside it.
pub(super) fn with_kernel_view(
    mut class: Classification,
    inc: &Incident,
    k: &KernelRates,
    by_packets: bool,
) -> Classification {
    let syn = counters_see_syn_flood(inc, k, by_packets);
    if syn && !by_packets {
        class.attack_family = "syn_flood".into();
        class.classified_by = "counters".into();
        class.confidence = Some(85);
    }
    if by_packets && syn {
        class.evidence.insert("counters_attack_family".into(), "syn_flood".into());
        class.evidence.insert("views_agree".into(), (class.attack_family == "syn_flood").into());
    }
    let counters = kernel_counters(k);
    if counters.as_object().is_some_and(|m| !m.is_empty()) {
        class.evidence.insert("kernel_counters".into(), counters);
    }
    class
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The `connection_flood` classification: counts, thresholds and who holds the sockets.
fn conn_class(w: &ConnWatch, t: &Tally, inc: &Incident) -> Classification {
    let (thr_est, thr_half, thr_peers) = (inc.thresholds.pps, inc.thresholds.bits_per_s, inc.thresholds.classes[0]);
    let total = (t.established + t.half_open).max(1);
    let top_src_ips: Vec<Value> = t
        .top_peers
        .iter()
        .map(|(ip, n)| json!({"ip": ip.to_string(), "count": n, "share": round1(1000.0 * f64::from(*n) / f64::from(total)) / 1000.0}))
        .collect();
    let top_dst_ports: Vec<Value> = t
        .top_ports
        .iter()
        .map(|p| json!({"port": p.port, "count": p.established + p.half_open, "established": p.established, "half_open": p.half_open}))
        .collect();
    let mut ev = Map::new();
    ev.insert("established_connections".into(), t.established.into());
    ev.insert("half_open_connections".into(), t.half_open.into());
    ev.insert("distinct_peers".into(), t.peers.into());
    ev.insert("source_ip_count".into(), t.peers.into());
    ev.insert("threshold_established".into(), round1(thr_est).into());
    ev.insert("threshold_half_open".into(), round1(thr_half).into());
    ev.insert("threshold_distinct_peers".into(), round1(thr_peers).into());
    ev.insert("baseline_established".into(), round1(w.baseline_established()).into());
    ev.insert("top_src_ips".into(), top_src_ips.into());
    ev.insert("top_dst_ports".into(), top_dst_ports.into());
    ev.insert(
        "census".into(),
        if t.via == Some(crate::input::sockets::Via::ProcNet) { "proc_net_tcp" } else { "sock_diag" }.into(),
    );
    if t.truncated {
        ev.insert("census_truncated".into(), true.into());
    }
    let subtype = if t.half_open > t.established { "half_open" } else { "established" };
    Classification {
        attack_family: "connection_flood".into(),
        attack_subtype: Some(subtype.into()),
        classified_by: "sockets".into(),
        confidence: Some(80),
        evidence: ev,
    }
}

/// The event of one change of the connection detector.
pub(super) fn conn_event(
    w: &ConnWatch,
    change: &Change,
    interface: &str,
    test: bool,
    now: Instant,
    wall: SystemTime,
) -> Option<Event> {
    let body = match change {
        Change::Opened => {
            let inc = w.incident()?;
            EventBody::IncidentOpen(IncidentOpen {
                incident_id: inc.id.clone(),
                direction: Direction::Inbound,
                previous_incident_id: inc.previous_id.clone(),
                interface: interface.into(),
                pps: 0.0,
                bps: 0.0,
                dropped_pps: 0.0,
                threshold_pps: 0.0,
                threshold_bps: 0.0,
                baseline_pps: 0.0,
                severity: inc.severity().into(),
                trigger: connflood::trigger_name(inc.trigger).into(),
                protocol: None,
                test,
                started_at: rfc3339_ms(inc.started_wall),
                class: conn_class(w, w.peak(), inc),
            })
        }
        Change::Updated => {
            let inc = w.incident()?;
            EventBody::IncidentUpdate(IncidentUpdate {
                incident_id: inc.id.clone(),
                direction: Direction::Inbound,
                pps: 0.0,
                bps: 0.0,
                dropped_pps: 0.0,
                peak_pps: 0.0,
                peak_bps: 0.0,
                duration_s: round1(inc.duration(now).as_secs_f64()),
                severity: inc.severity().into(),
                test,
                class: conn_class(w, w.last(), inc),
            })
        }
        Change::Resolved(inc, reason) => EventBody::IncidentResolve(IncidentResolve {
            incident_id: inc.id.clone(),
            direction: Direction::Inbound,
            peak_pps: 0.0,
            peak_bps: 0.0,
            duration_s: round1(inc.duration(now).as_secs_f64()),
            severity: inc.severity().into(),
            reason: reason.as_str().into(),
            test,
            pcap_file: None,
            class: conn_class(w, w.peak(), inc),
        }),
    };
    Some(Event::new(wall, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::baseline::Thresholds;
    use crate::input::counters::ProtoCounters;

    fn incident(trigger: Trigger) -> Incident {
        let mut d = crate::detect::detector::Detector::new(
            &crate::config::DetectConfig::default(),
            Direction::Inbound,
            Instant::now(),
            true,
        );
        let thr = Thresholds { pps: 5000.0, bits_per_s: 1e9, baseline_pps: 100.0, classes: [2000.0; 4] };
        let s = crate::input::counters::Sample {
            pps: 4000.0,
            bits_per_s: 1e6,
            dropped_pps: 0.0,
            proto: Some(ProtoCounters { tcp: 4000, udp: 0, icmp: 0 }),
            classes: Some([30_000.0, f64::NAN, f64::NAN, f64::NAN]),
        };
        d.step(Instant::now(), SystemTime::now(), Some(&s), &thr);
        let mut inc = d.incident().expect("10x the SYN threshold opens at once").clone();
        inc.trigger = trigger;
        inc
    }

    fn cookies(pps: f64) -> KernelRates {
        KernelRates { syncookies_sent_pps: Some(pps), listen_drops_pps: Some(0.0), ..KernelRates::default() }
    }

    #[test]
    fn limited_mode_names_a_syn_flood_from_the_counters() {
        let c = with_kernel_view(Classification::unknown(), &incident(Trigger::Class(0)), &cookies(3000.0), false);
        assert_eq!((c.attack_family.as_str(), c.classified_by.as_str()), ("syn_flood", "counters"));
        assert_eq!(c.evidence["kernel_counters"]["syn_cookies_sent_pps"], 3000.0);
        // A PPS-opened incident with no cookies keeps its mix label.
        let mut tcp = Classification::unknown();
        tcp.attack_family = "tcp_flood".into();
        let c = with_kernel_view(tcp, &incident(Trigger::Pps), &cookies(0.0), false);
        assert_eq!(c.attack_family, "tcp_flood");
    }

    #[test]
    fn with_packets_the_event_says_what_each_view_saw() {
        let mut udp = Classification::unknown();
        udp.attack_family = "udp_flood".into();
        udp.classified_by = "packets".into();
        let c = with_kernel_view(udp, &incident(Trigger::Pps), &cookies(3000.0), true);
        assert_eq!((c.attack_family.as_str(), c.classified_by.as_str()), ("udp_flood", "packets"));
        assert_eq!(
            (&c.evidence["counters_attack_family"], &c.evidence["views_agree"]),
            (&"syn_flood".into(), &false.into())
        );
        let mut syn = Classification::unknown();
        syn.attack_family = "syn_flood".into();
        syn.classified_by = "packets".into();
        let c = with_kernel_view(syn, &incident(Trigger::Class(0)), &cookies(3000.0), true);
        assert_eq!(c.evidence["views_agree"], true);
        // Counters with no opinion: nothing claimed.
        let c = with_kernel_view(Classification::unknown(), &incident(Trigger::Pps), &cookies(10.0), true);
        assert!(c.evidence.get("views_agree").is_none());
    }
}

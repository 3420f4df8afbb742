//! Snapshot tests of every API request against §6.2: method, path, headers and JSON body, with
//! timestamps and random idempotency keys redacted.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};

use super::*;
use crate::event::{Classification, Event, EventBody, IncidentOpen, IncidentResolve, IncidentUpdate};
use crate::report::bodies::api_entries;
use crate::report::messages::{Heartbeat, InterfaceInfo, LocalMetrics, Metrics};
use crate::report::Outgoing;

const KEY: &str = "ftk_0123456789abcdef";

fn client() -> ApiClient {
    ApiClient::new("https://api.example.test/api/v1/", KEY, "node-1")
}

fn wall() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_000_000)
}

fn class() -> Classification {
    let mut c = Classification::unknown();
    c.attack_family = "udp_flood".into();
    c.evidence.insert("top_src_ips".into(), json!([{"ip": "10.0.0.9", "count": 7}]));
    c
}

fn open() -> Outgoing {
    Outgoing::Event(Event::new(
        wall(),
        EventBody::IncidentOpen(IncidentOpen {
            incident_id: "inc-1".into(),
            direction: crate::event::Direction::Inbound,
            previous_incident_id: Some("inc-0".into()),
            interface: "eth0".into(),
            pps: 50000.0,
            bps: 2.56e7,
            dropped_pps: 1200.0,
            threshold_pps: 5000.0,
            threshold_bps: 5e7,
            baseline_pps: 120.0,
            severity: "critical".into(),
            trigger: "pps".into(),
            protocol: None,
            test: false,
            started_at: crate::event::rfc3339_ms(wall()),
            class: class(),
        }),
    ))
}

fn update() -> Outgoing {
    Outgoing::Event(Event::new(
        wall(),
        EventBody::IncidentUpdate(IncidentUpdate {
            incident_id: "inc-1".into(),
            direction: crate::event::Direction::Inbound,
            pps: 40000.0,
            bps: 2e7,
            dropped_pps: 0.0,
            peak_pps: 50000.0,
            peak_bps: 2.56e7,
            duration_s: 5.0,
            severity: "critical".into(),
            test: false,
            class: class(),
        }),
    ))
}

fn resolve(pcap: Option<&str>) -> Outgoing {
    Outgoing::Event(Event::new(
        wall(),
        EventBody::IncidentResolve(IncidentResolve {
            incident_id: "inc-1".into(),
            direction: crate::event::Direction::Inbound,
            peak_pps: 50000.0,
            peak_bps: 2.56e7,
            duration_s: 12.5,
            severity: "critical".into(),
            reason: "traffic_normal".into(),
            test: false,
            pcap_file: pcap.map(str::to_string),
            class: class(),
        }),
    ))
}

/// (method, url, headers, body) with volatile values replaced by "<redacted>".
fn snapshot(req: &HttpRequest) -> Value {
    let mut body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut body {
        for k in ["ts", "resolved_at", "started_at"] {
            if m.contains_key(k) {
                m.insert(k.into(), "<redacted>".into());
            }
        }
    }
    let headers: Vec<Value> = req
        .headers
        .iter()
        .map(|(k, v)| {
            let v = if k == "Idempotency-Key" && v != "inc-1" { "<redacted>".to_string() } else { v.clone() };
            json!([k, v])
        })
        .collect();
    json!({ "method": format!("{:?}", req.method), "url": req.url, "headers": headers, "body": body })
}

fn item_of(msg: &Outgoing) -> Item {
    let (kind, incident, key, body) = api_entries(msg).remove(0);
    Item { seq: 1, kind, incident, key, body, done_chunks: 0 }
}

fn common_headers(extra: &[(&str, &str)]) -> Vec<Value> {
    let mut h = vec![
        json!(["Authorization", format!("Bearer {KEY}")]),
        json!(["X-Node-UUID", "node-1"]),
        json!(["User-Agent", format!("ftagent/{}", crate::event::AGENT_VERSION)]),
        json!(["Accept", "application/json"]),
    ];
    h.extend(extra.iter().map(|(k, v)| json!([k, v])));
    h
}

#[test]
fn open_request_snapshot() {
    let req = client().item_request(&item_of(&open()), None, 0).unwrap();
    let expected = json!({
        "method": "Post",
        "url": "https://api.example.test/api/v1/agent/incidents",
        "headers": common_headers(&[("Content-Type", "application/json"), ("Idempotency-Key", "inc-1")]),
        "body": {
            "client_incident_id": "inc-1", "peak_pps": 50000.0, "peak_bps": 2.56e7, "started_at": "<redacted>",
            "attack_family": "udp_flood", "attack_subtype": null, "baseline_pps": 120.0, "duration": 0,
            "severity": "critical", "trigger": "pps", "threshold_pps": 5000.0, "threshold_bps": 5e7,
            "interface": "eth0", "classified_by": "counters", "top_src_ips": [{"ip": "10.0.0.9", "count": 7}],
            "direction": "inbound", "dropped_pps": 1200.0, "previous_client_incident_id": "inc-0"
        }
    });
    assert_eq!(snapshot(&req), expected);
}

#[test]
fn update_and_resolve_snapshots_use_the_server_uuid() {
    let req = client().item_request(&item_of(&update()), Some("srv-9"), 0).unwrap();
    let expected = json!({
        "method": "Post",
        "url": "https://api.example.test/api/v1/agent/incidents/srv-9",
        "headers": common_headers(&[("Content-Type", "application/json"), ("Idempotency-Key", "<redacted>")]),
        "body": {
            "client_incident_id": "inc-1", "pps": 40000.0, "bps": 2e7, "peak_pps": 50000.0, "peak_bps": 2.56e7,
            "duration_seconds": 5.0, "severity": "critical", "ts": "<redacted>", "attack_family": "udp_flood",
            "attack_subtype": null, "classified_by": "counters", "top_src_ips": [{"ip": "10.0.0.9", "count": 7}],
            "direction": "inbound", "dropped_pps": 0.0
        }
    });
    assert_eq!(snapshot(&req), expected);
    assert!(client().item_request(&item_of(&update()), None, 0).is_none(), "no uuid, no request");

    let req = client().item_request(&item_of(&resolve(None)), Some("srv-9"), 0).unwrap();
    let expected = json!({
        "method": "Post",
        "url": "https://api.example.test/api/v1/agent/incidents/srv-9/resolve",
        "headers": common_headers(&[("Content-Type", "application/json"), ("Idempotency-Key", "<redacted>")]),
        "body": {
            "client_incident_id": "inc-1", "peak_pps": 50000.0, "peak_bps": 2.56e7, "duration_seconds": 12.5,
            "severity": "critical", "reason": "traffic_normal", "resolved_at": "<redacted>", "direction": "inbound",
            "attack_family": "udp_flood", "attack_subtype": null, "classified_by": "counters",
            "top_src_ips": [{"ip": "10.0.0.9", "count": 7}]
        }
    });
    assert_eq!(snapshot(&req), expected);
}

#[test]
fn heartbeat_and_metrics_snapshots() {
    let hb = Outgoing::Heartbeat(Heartbeat {
        ts: crate::event::rfc3339_ms(wall()),
        version: "0.1.0".into(),
        quality: crate::detect::baseline::Baseline::new(&crate::config::DetectConfig::default()).quality(wall()),
        interface: "eth0".into(),
        available_interfaces: vec![InterfaceInfo {
            name: "eth0".into(),
            rx_bytes: 10,
            tx_bytes: 20,
            has_traffic: true,
        }],
        pcap_active: false,
        retry_queue_size: 0,
    });
    let req = client().item_request(&item_of(&hb), None, 17).unwrap();
    let snap = snapshot(&req);
    assert_eq!(snap["url"], "https://api.example.test/api/v1/agent/heartbeat");
    assert_eq!(
        snap["headers"],
        json!(common_headers(&[("Content-Type", "application/json"), ("Idempotency-Key", "<redacted>")]))
    );
    let body = &snap["body"];
    assert_eq!(body["retry_queue_size"], 17, "the spool size at send time");
    assert_eq!(body["ts"], "<redacted>");
    for k in [
        "version",
        "baseline_ready",
        "baseline_quality",
        "baseline_total_samples",
        "baseline_avg_pps",
        "baseline_p99_pps",
        "baseline_hourly_ready",
        "baseline_current_hour_p99",
        "interface",
        "pcap_active",
    ] {
        assert!(body.get(k).is_some(), "heartbeat lacks {k}: {body}");
    }
    assert_eq!(
        body["available_interfaces"],
        json!([{"name": "eth0", "rx_bytes": 10, "tx_bytes": 20, "has_traffic": true}])
    );

    let m = Outgoing::Metrics(Metrics {
        ts: crate::event::rfc3339_ms(wall()),
        pps: 10.0,
        bps: 80.0,
        avg_pps: 5.0,
        tcp_pct: 50.0,
        udp_pct: 25.0,
        icmp_pct: 0.0,
        threshold: 5000.0,
        samples: 50,
        local: LocalMetrics::default(),
    });
    let req = client().item_request(&item_of(&m), None, 0).unwrap();
    assert_eq!(
        snapshot(&req)["body"],
        json!({"ts": "<redacted>", "pps": 10.0, "bps": 80.0, "avg_pps": 5.0, "tcp_pct": 50.0, "udp_pct": 25.0,
               "icmp_pct": 0.0, "threshold": 5000.0, "samples": 50})
    );
}

#[test]
fn config_and_pcap_request_snapshots() {
    let req = client().config_request();
    assert_eq!((req.method, req.url.as_str()), (Method::Get, "https://api.example.test/api/v1/agent/config"));
    assert_eq!(snapshot(&req)["headers"], json!(common_headers(&[])));

    let entries = api_entries(&resolve(Some("/var/lib/ftagent/pcaps/inc-1.pcap")));
    assert_eq!(entries.len(), 2, "a resolve with a capture also uploads it");
    assert_eq!(entries[1].0, Kind::Pcap);

    let small = client().pcap_request("srv-9", "up-1", "inc-1.pcap", b"PCAPDATA", 0, 1);
    assert_eq!(small.url, "https://api.example.test/api/v1/agent/incidents/srv-9/pcap");
    let ct = small.headers.iter().find(|(k, _)| k == "Content-Type").unwrap().1.clone();
    assert_eq!(ct, "multipart/form-data; boundary=ftagent-up-1");
    let body = String::from_utf8(small.body).unwrap();
    assert_eq!(
        body,
        "--ftagent-up-1\r\nContent-Disposition: form-data; name=\"pcap\"; filename=\"inc-1.pcap\"\r\n\
         Content-Type: application/vnd.tcpdump.pcap\r\n\r\nPCAPDATA\r\n--ftagent-up-1--\r\n"
    );
    let chunk = client().pcap_request("srv-9", "up-1", "inc-1.pcap", b"CHUNK", 1, 3);
    let h: Vec<(String, String)> = chunk.headers[4..].to_vec();
    assert_eq!(
        h,
        vec![
            ("Content-Type".into(), "application/octet-stream".into()),
            ("X-Chunk-Index".into(), "1".into()),
            ("X-Chunk-Total".into(), "3".into()),
            ("X-Upload-Id".into(), "up-1".into())
        ]
    );
    assert_eq!(pcap_chunks(PCAP_CHUNK as u64), 1);
    assert_eq!(pcap_chunks(PCAP_CHUNK as u64 + 1), 2);
}

#[test]
fn debug_output_and_origin_never_show_secrets() {
    assert!(!format!("{:?}", client()).contains(KEY));
    assert_eq!(origin("https://user:pw@hooks.example.test/services/T000/B000/XXXX?x=1"), "https://hooks.example.test");
}

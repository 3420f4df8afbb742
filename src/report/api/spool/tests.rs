//! Tests of the durable outbox: order across reopen, the size cap, corrupt files, streams.

use super::*;
use serde_json::json;

fn push(s: &Spool, kind: Kind, n: u64) -> u64 {
    s.push(kind, Some("inc".into()), format!("k{n}"), json!({ "n": n, "pad": "x".repeat(200) })).unwrap()
}

#[test]
fn items_survive_reopen_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spool::open(dir.path(), 1 << 20).unwrap();
    let a = push(&s, Kind::Open, 1);
    push(&s, Kind::Heartbeat, 2);
    push(&s, Kind::Resolve, 3);
    s.remove(a);
    assert!(Spool::open(dir.path(), 1 << 20).err().unwrap().to_string().contains("already running"));
    drop(s);
    let s = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(s.len(), 2);
    let h = s.head().unwrap();
    assert_eq!((h.kind, h.body["n"].clone()), (Kind::Heartbeat, json!(2)));
    s.remove(h.seq);
    assert_eq!(s.head().unwrap().kind, Kind::Resolve);
    let next = push(&s, Kind::Metrics, 4);
    assert!(next > h.seq + 1, "sequence continues after restart");
}

#[test]
fn cap_drops_oldest_metrics_and_heartbeats_never_incident_items() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spool::open(dir.path(), 1000).unwrap();
    push(&s, Kind::Open, 1);
    push(&s, Kind::Metrics, 2);
    push(&s, Kind::Heartbeat, 3);
    push(&s, Kind::Update, 4);
    push(&s, Kind::Resolve, 5);
    push(&s, Kind::Metrics, 6);
    assert!(s.dropped() >= 2, "dropped {}", s.dropped());
    let mut kinds = Vec::new();
    while let Some(i) = s.head() {
        kinds.push(i.kind);
        s.remove(i.seq);
    }
    assert_eq!(&kinds[..3], &[Kind::Open, Kind::Update, Kind::Resolve]);
    assert!(!kinds[..3].iter().any(|k| k.droppable()));
}

#[test]
fn corrupt_file_is_moved_aside_and_the_rest_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spool::open(dir.path(), 1 << 20).unwrap();
    let a = push(&s, Kind::Open, 1);
    let b = push(&s, Kind::Update, 2);
    let c = push(&s, Kind::Resolve, 3);
    std::fs::write(s.path(a), b"{ not json").unwrap();
    assert_eq!(s.head().unwrap().kind, Kind::Update);
    assert!(statefile::corrupt_path(&s.path(a)).exists());
    // At reopen: an item whose seq is not its name's, and a broken index.
    let moved = std::fs::read_to_string(s.path(c)).unwrap().replace(&format!("\"seq\":{c}"), "\"seq\":999");
    std::fs::write(s.path(c), moved).unwrap();
    std::fs::write(dir.path().join("incidents.json"), b"\x00\x01").unwrap();
    drop(s);
    let s = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s.head().unwrap().seq, b);
    assert!(statefile::corrupt_path(&s.path(c)).exists());
    assert!(dir.path().join("incidents.json.corrupt").exists());
}

#[test]
fn a_held_item_blocks_only_its_own_stream() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spool::open(dir.path(), 1 << 20).unwrap();
    let pcap = s.push(Kind::Pcap, Some("a".into()), "p".into(), json!({})).unwrap();
    let hb = s.push(Kind::Heartbeat, None, "h".into(), json!({})).unwrap();
    let open_b = s.push(Kind::Open, Some("b".into()), "o".into(), json!({})).unwrap();
    assert_eq!(s.head().unwrap().seq, pcap);
    assert_eq!(s.head_where(|q| q == pcap).unwrap().seq, hb);
    assert_eq!(s.head_where(|q| q == pcap || q == hb).unwrap().seq, open_b);
    // Within a stream order holds: b's update waits while b's open is held.
    s.push(Kind::Update, Some("b".into()), "u".into(), json!({})).unwrap();
    assert!(s.head_where(|q| q == pcap || q == hb || q == open_b).is_none(), "b's update waits for b's open");
}

#[test]
fn rejected_items_keep_the_response_and_acks_persist() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spool::open(dir.path(), 1 << 20).unwrap();
    push(&s, Kind::Open, 1);
    let item = s.head().unwrap();
    s.reject(&item, 422, "{\"error\":\"bad\"}");
    assert!(s.is_empty());
    let note: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(format!("rejected/{:020}.json", item.seq))).unwrap())
            .unwrap();
    assert_eq!(note["status"], 422);
    s.record_ack("inc-a", OpenAck::Uuid("srv-1".into())).unwrap();
    s.record_ack("inc-b", OpenAck::Rejected).unwrap();
    drop(s);
    let s = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(s.ack("inc-a"), Some(OpenAck::Uuid("srv-1".into())));
    assert_eq!(s.ack("inc-b"), Some(OpenAck::Rejected));
    assert_eq!(s.ack("inc-c"), None);
}

//! Tests of incident files: naming, permissions, ring + incident packets, retention.

use super::*;
use std::os::unix::fs::PermissionsExt;

use crate::input::capture::pcapfile::CaptureReader;

#[test]
fn incident_file_is_named_by_id_and_utc_time() {
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_300_040);
    let p = incident_path(Path::new("/x"), "abc", wall);
    assert_eq!(p, PathBuf::from("/x/abc_20261121T222720Z.pcap"));
}

#[test]
fn writer_keeps_ring_then_incident_packets_in_a_private_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pcaps");
    let r = Retention { dir: dir.clone(), max_age: Some(Duration::from_secs(3600)), max_bytes: 1 << 30 };
    let mut w = EvidenceWriter::spawn(r).unwrap();
    let path = dir.join("id_20260101T000000Z.pcap");
    let ring = vec![RingPacket { ts_ns: 1_000, wire_len: 60, data: vec![1; 60] }];
    w.start(path.clone(), 1, 0, ring);
    w.packet(2_000_000, 70, &[2; 70]);
    assert!(!path.exists(), "the final name appears only when the file is complete");
    w.finish();
    drop(w);
    assert!(!dir.join(".id_20260101T000000Z.pcap.partial").exists());
    assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let mut rd = CaptureReader::new(File::open(&path).unwrap()).unwrap();
    let a = rd.next_frame().unwrap().unwrap();
    assert_eq!((a.data.len(), a.data[0]), (60, 1));
    let b = rd.next_frame().unwrap().unwrap();
    assert_eq!((b.data.len(), b.ts_ns), (70, 2_000_000));
    assert!(rd.next_frame().unwrap().is_none());
}

#[test]
fn retention_deletes_old_files_then_oldest_above_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let mk = |name: &str, age_s: u64, len: usize| {
        let p = tmp.path().join(name);
        fs::write(&p, vec![0u8; len]).unwrap();
        let f = File::options().write(true).open(&p).unwrap();
        f.set_modified(now - Duration::from_secs(age_s)).unwrap();
        p
    };
    let ancient = mk("a.pcap", 10 * 86_400, 10);
    let older = mk("b.pcap", 300, 600);
    let newer = mk("c.pcap", 100, 600);
    let other = mk("notes.txt", 20 * 86_400, 10);
    let r = Retention { dir: tmp.path().into(), max_age: Some(Duration::from_secs(7 * 86_400)), max_bytes: 1000 };
    let deleted = apply_retention(&r, now);
    assert_eq!(deleted, vec![ancient, older]);
    assert!(newer.exists() && other.exists());
}

fn settings_with_retention_days(days: u32, dir: &Path) -> crate::config::Settings {
    let env = crate::config::paths::Env { euid: 1000, home: Some(dir.into()), root: "/".into(), ..Default::default() };
    let mut s = crate::config::Settings::defaults(&crate::config::paths::Paths::resolve(&env, false));
    s.pcap_retention_days = days;
    s.pcap_dir = dir.join("pcaps");
    s
}

/// `pcap_retention_days: 0` means no age limit: the incident's own file, just written, stays,
/// and so does a year-old one; only the disk cap deletes. (It used to mean a zero maximum age.)
#[test]
fn retention_days_zero_keeps_every_file_in_process_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let r = retention(&settings_with_retention_days(0, tmp.path()));
    assert_eq!(r.max_age, None);
    fs::create_dir_all(&r.dir).unwrap();
    let old = r.dir.join("old_20251101T000000Z.pcap");
    fs::write(&old, [0u8; 24]).unwrap();
    File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(400 * 86_400))
        .unwrap();
    let mut w = EvidenceWriter::spawn(r.clone()).unwrap();
    let path = r.dir.join("id_20261201T000000Z.pcap");
    w.start(path.clone(), 1, 0, vec![RingPacket { ts_ns: 1_000, wire_len: 60, data: vec![1; 60] }]);
    w.packet(2_000, 60, &[2; 60]);
    w.finish();
    drop(w);
    assert!(path.exists(), "the incident's own file was deleted");
    assert!(old.exists(), "0 = no age limit");
    let week = retention(&settings_with_retention_days(7, tmp.path()));
    assert_eq!(apply_retention(&week, SystemTime::now()), vec![old]);
}

/// A file still being written counts towards the disk cap (and is never deleted).
#[test]
fn the_file_being_written_counts_towards_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    fs::write(tmp.path().join("done_20261201T000000Z.pcap"), [0u8; 600]).unwrap();
    fs::write(tmp.path().join(".cur_20261201T000100Z.pcap.partial"), [0u8; 600]).unwrap();
    let r = Retention { dir: tmp.path().into(), max_age: None, max_bytes: 1000 };
    assert_eq!(apply_retention(&r, now + Duration::from_secs(1)), vec![tmp.path().join("done_20261201T000000Z.pcap")]);
    assert!(tmp.path().join(".cur_20261201T000100Z.pcap.partial").exists());
}

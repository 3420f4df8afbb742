//! Every state file the agent reads back (§9: baseline, API config cache, spool items and index,
//! update-check stamp), corrupted every way the table lists, against the real binary: the agent
//! starts, logs one warning naming the file, moves it aside as `<name>.corrupt`, keeps running
//! and exits 0 on SIGTERM. A good file of each kind is the control: it stays where it is.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use serde_json::{json, Value};

use crate::fakeproc::{self, FakeProc};
use crate::reporting::{agent_log, wait_events};
use crate::util::{self, Home};

/// One corruption: its name and the bytes written, made from a good file's bytes.
type Corrupt = (&'static str, fn(&[u8]) -> Vec<u8>);

const COMMON: [Corrupt; 4] = [
    ("empty", |_| Vec::new()),
    ("truncated", |good| good[..good.len() / 2].to_vec()),
    ("garbage", |_| b"}{ this is not what the agent wrote ]".to_vec()),
    ("binary", |_| vec![0x00, 0xff, 0x13, 0x37, 0x80, 0x00, 0xc3, 0x28]),
];

/// One state file: where it lives, the warning's words for it, a good version, and the
/// corruptions only its format has (wrong types, out-of-range numbers).
struct StateFile {
    rel: &'static str,
    what: &'static str,
    extra: Vec<(&'static str, Vec<u8>)>,
}

fn api_config(home: &Home, fake: &FakeProc, closed_port: u16) -> PathBuf {
    let mut c = fakeproc::agent_config(fake);
    c["api_key"] = json!("ftk_test_0123456789abcdef");
    c["node_uuid"] = json!("node-it-state");
    c["api_base"] = json!(format!("http://127.0.0.1:{closed_port}/api/v1"));
    c["auto_update"] = json!(true);
    c["update_url"] = json!(format!("http://127.0.0.1:{closed_port}/releases"));
    home.write_config(c)
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Start without `--no-update-check`, so the update stamp is read too.
fn start(home: &Home, cfg: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(home.path().join("agent.log")).unwrap();
    home.command()
        .args(["-v", "--config"])
        .arg(cfg)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn agent")
}

/// A run that writes real state files (baseline, spooled heartbeats) to corrupt afterwards.
fn good_files(home: &Home, cfg: &Path) {
    let mut a = start(home, cfg);
    assert_eq!(wait_events(home, "agent_start", 1, Duration::from_secs(10)).len(), 1, "{}", agent_log(home));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(util::terminate(&mut a, Duration::from_secs(8)).is_some_and(|s| s.success()), "{}", agent_log(home));
}

fn files(home: &Home) -> Vec<StateFile> {
    let state = home.state();
    let first_item = std::fs::read_dir(state.join("spool"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && !p.ends_with("incidents.json"))
        .min()
        .expect("a spooled heartbeat from the first run");
    let item_rel: &'static str =
        Box::leak(first_item.strip_prefix(&state).unwrap().to_string_lossy().into_owned().into_boxed_str());
    let baseline: Value = serde_json::from_slice(&std::fs::read(state.join("baseline.json")).unwrap()).unwrap();
    let with = |v: &Value, key: &str, x: Value| {
        let mut v = v.clone();
        v[key] = x;
        serde_json::to_vec(&v).unwrap()
    };
    let item: Value = serde_json::from_slice(&std::fs::read(&first_item).unwrap()).unwrap();
    std::fs::write(state.join("agent_config.json"), br#"{"pps_threshold": 1000}"#).unwrap();
    std::fs::write(state.join("spool/incidents.json"), br#"[["inc-1", {"uuid": "srv-1"}]]"#).unwrap();
    std::fs::write(state.join("update-check"), b"1800000000\n").unwrap();
    vec![
        StateFile {
            rel: "baseline.json",
            what: "saved baseline",
            extra: vec![
                ("wrong types", with(&baseline, "inbound", json!("many"))),
                ("out of range", with(&baseline, "saved_at", json!(u64::MAX))),
            ],
        },
        StateFile {
            rel: "agent_config.json",
            what: "cached agent config",
            extra: vec![
                ("wrong types", br#"["pps_threshold", 1000]"#.to_vec()),
                ("out of range", br#"{"pps_threshold": 1e999}"#.to_vec()),
            ],
        },
        StateFile {
            rel: item_rel,
            what: "spool item",
            extra: vec![
                ("wrong types", with(&item, "kind", json!(7))),
                ("out of range", with(&item, "done_chunks", json!(1u64 << 40))),
            ],
        },
        StateFile {
            rel: "spool/incidents.json",
            what: "spool index",
            extra: vec![
                ("wrong types", br#"{"inc-1": true}"#.to_vec()),
                ("out of range", br#"[["inc-1", {"uuid": "srv-1"}], 1e999]"#.to_vec()),
            ],
        },
        StateFile {
            rel: "update-check",
            what: "update-check stamp",
            extra: vec![
                ("wrong types", b"yesterday\n".to_vec()),
                ("out of range", format!("{}\n", u64::MAX).into_bytes()),
            ],
        },
    ]
}

/// One run with `bytes` in place of the file: one warning, moved aside, running, exit 0.
fn check_one(home: &Home, cfg: &Path, f: &StateFile, kind: &str, bytes: &[u8]) {
    let path = home.state().join(f.rel);
    let corrupt = PathBuf::from(format!("{}.corrupt", path.display()));
    let _ = std::fs::remove_file(&corrupt);
    std::fs::write(&path, bytes).unwrap();
    let _ = std::fs::remove_file(home.path().join("agent.log"));
    let starts = wait_events(home, "agent_start", 0, Duration::ZERO).len();
    let mut agent = start(home, cfg);
    let case = format!("{} {kind}", f.rel);
    let started = wait_events(home, "agent_start", starts + 1, Duration::from_secs(10)).len() > starts;
    assert!(started, "{case}: no agent_start; log:\n{}", agent_log(home));
    std::thread::sleep(Duration::from_millis(300));
    assert!(agent.try_wait().unwrap().is_none(), "{case}: the agent ended; log:\n{}", agent_log(home));
    let log = agent_log(home);
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(&format!("ignoring the {}", f.what))).collect();
    assert_eq!(warnings.len(), 1, "{case}: want one warning; log:\n{log}");
    assert!(warnings[0].contains(&path.display().to_string()), "{case}: warning names the file: {}", warnings[0]);
    assert_eq!(std::fs::read(&corrupt).ok().as_deref(), Some(bytes), "{case}: moved aside as .corrupt");
    let st = util::terminate(&mut agent, Duration::from_secs(8));
    assert!(st.is_some_and(|s| s.success()), "{case}: exit {st:?}; log:\n{}", agent_log(home));
}

fn check_file(index: usize) {
    let home = Home::new();
    let fake = FakeProc::start(home.path(), 100);
    let cfg = api_config(&home, &fake, closed_port());
    good_files(&home, &cfg);
    let f = files(&home).swap_remove(index);
    let good = std::fs::read(home.state().join(f.rel)).unwrap();
    let mut table: Vec<(&str, Vec<u8>)> = COMMON.iter().map(|(k, make)| (*k, make(&good))).collect();
    // A stamp cut short is still a number; its truncation is not detectable, so not in its table.
    table.retain(|(k, _)| !(f.rel == "update-check" && *k == "truncated"));
    table.extend(f.extra.iter().cloned());
    for (kind, bytes) in &table {
        check_one(&home, &cfg, &f, kind, bytes);
    }
    // The control: the good file is read back and stays.
    std::fs::write(home.state().join(f.rel), &good).unwrap();
    let _ = std::fs::remove_file(home.path().join("agent.log"));
    let mut agent = start(&home, &cfg);
    wait_events(&home, "agent_start", 2 + table.len(), Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!agent_log(&home).contains(&format!("ignoring the {}", f.what)), "{}", agent_log(&home));
    util::terminate(&mut agent, Duration::from_secs(8));
}

#[test]
fn corrupt_baseline_is_moved_aside_and_the_agent_runs() {
    check_file(0);
}

#[test]
fn corrupt_api_config_cache_is_moved_aside_and_the_agent_runs() {
    check_file(1);
}

#[test]
fn corrupt_spool_item_is_moved_aside_and_the_agent_runs() {
    check_file(2);
}

#[test]
fn corrupt_spool_index_is_moved_aside_and_the_agent_runs() {
    check_file(3);
}

#[test]
fn corrupt_update_stamp_is_moved_aside_and_the_agent_runs() {
    check_file(4);
}

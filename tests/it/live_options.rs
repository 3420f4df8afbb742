//! Server config applied to a running capture (§6.2, §7.4), both capture modes: the agent
//! starts with no IOC pattern and evidence files on; the API's first `/agent/config` answer
//! adds an IOC and turns `pcap_enabled` off. A UDP flood whose payload carries the pattern must
//! then be labelled by it, and no evidence file may be written — without a restart.
//!
//! The loopback API server listens inside the agent's namespace (its socket is bound by a
//! thread that joined that namespace), so no traffic leaves the namespaces the test made.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::apiserver::{self, Server};
use crate::util::{self, Home, NetnsPair};

const PATTERN: &str = "FTAGENT-IOC-PROBE-4242";

/// A loopback API server bound inside network namespace `ns`.
fn server_in_netns(ns: &str, handler: apiserver::Handler) -> Server {
    let path = Path::new("/run/netns").join(ns);
    std::thread::scope(|s| {
        s.spawn(|| {
            let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // SAFETY: setns on a namespace fd we hold open; it changes this thread only.
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {ns}");
            Server::http(0, handler)
        })
        .join()
        .expect("server thread")
    })
}

fn log(home: &Home) -> String {
    std::fs::read_to_string(home.path().join("agent.log")).unwrap_or_default()
}

/// A UDP flood from `b` whose every payload holds [`PATTERN`].
fn ioc_flood(pair: &NetnsPair, home: &Home, secs: u32) -> std::process::Child {
    let payload = home.path().join("payload.bin");
    std::fs::write(&payload, format!("..{PATTERN}..{PATTERN}..").repeat(2)).unwrap();
    Command::new("timeout")
        .args([&secs.to_string(), "ip", "netns", "exec", &pair.ns_b, "hping3", "--udp", "--flood", "-q"])
        .args(["-p", "7777", "-d", "96", "-E"])
        .arg(&payload)
        .arg(&pair.addr_a)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hping3")
}

fn server_config_reaches_the_running_capture(mode: &str) {
    let _flood = util::flood_lock();
    let Some(pair) = NetnsPair::create() else { return };
    for t in ["hping3", "tcpdump", "mergecap"] {
        assert!(util::have(t), "{t} is needed (apt-get install hping3 tcpdump wireshark-common)");
    }
    let home = Home::new();
    let remote = json!({
        "pcap_enabled": false,
        "ioc_patterns": [{"pattern": PATTERN, "attack_name": "probe_botnet", "attack_family": "udp_flood"}],
    });
    let server = server_in_netns(&pair.ns_a, apiserver::flowtriq(remote));
    let pcaps = home.path().join("pcaps");
    let cfg = home.write_config(json!({
        "interface": pair.veth_a,
        "pcap_mode": mode,
        "pcap_dir": pcaps,
        "sample_interval_ms": 200,
        "grace_period_s": 3,
        "dynamic_threshold": false,
        "min_pps_threshold": 2000,
        "holddown_ticks": 10,
        "log_file": home.path().join("agent.log"),
        "log_level": "DEBUG",
        "api_key": "ftk_test_0123456789abcdef",
        "node_uuid": "node-it-live",
        "api_base": format!("{}/api/v1", server.base),
    }));
    let mut agent = pair.spawn_agent(&home, &cfg);
    let start = util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(15));
    assert_eq!(start.map(|e| e["mode"].clone()), Some(json!(format!("capture-{mode}"))), "{}", log(&home));
    let applied = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        log(&home).contains("applying agent config from the API")
    });
    assert!(applied, "the API's config was not applied; log:\n{}", log(&home));
    std::thread::sleep(Duration::from_millis(3500)); // past the grace period; the matcher compiled
    let mut flood = ioc_flood(&pair, &home, 3);
    let resolve = util::wait_for_event(&home.events_file(), "incident_resolve", Duration::from_secs(25));
    let _ = flood.wait();
    std::thread::sleep(Duration::from_millis(1500)); // a merge would run after the resolve
    let status = util::terminate(&mut agent, Duration::from_secs(8));
    let resolve = resolve.unwrap_or_else(|| panic!("no incident_resolve; log:\n{}", log(&home)));
    assert_eq!(resolve["attack_tool"], "probe_botnet", "the server's IOC was not hit: {resolve}");
    assert!(resolve.get("pcap_file").is_none_or(Value::is_null), "pcap_enabled off, yet {resolve}");
    let kept: Vec<_> = std::fs::read_dir(&pcaps)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "pcap")).collect())
        .unwrap_or_default();
    assert!(kept.is_empty(), "evidence written with pcap_enabled off: {kept:?}");
    assert!(status.is_some_and(|s| s.success()), "exit 0 on SIGTERM; log:\n{}", log(&home));
}

#[cfg(feature = "capture-scapy")]
#[test]
fn server_ioc_and_pcap_enabled_reach_the_running_in_process_capture() {
    server_config_reaches_the_running_capture("scapy");
}

#[cfg(feature = "capture-tcpdump")]
#[test]
fn server_ioc_and_pcap_enabled_reach_the_running_tcpdump_capture() {
    server_config_reaches_the_running_capture("tcpdump");
}

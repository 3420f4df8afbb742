//! Capture builds against real inputs: `--analyze` on the real attack captures (counts checked
//! with `capinfos`), malformed files, and the agent capturing a real SYN flood across a veth
//! pair — privileged (classified from packets, PCAP evidence) and as `nobody` (counters only).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::{self, Home, NetnsPair};

use crate::util::{capinfos_count, captures as capture_dir};

fn analyze_json(path: &Path) -> Value {
    let home = Home::new();
    let out = util::run(home.command().arg("--analyze").arg(path).arg("--json"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn analyze_real_captures_matches_capinfos_and_labels() {
    let Some(dir) = capture_dir() else { return };
    let cases = [
        ("pkt.TCP.synflood.spoofed.pcap", "syn_flood", None),
        ("amp.UDP.snmp.src161.pcapng", "udp_flood", Some("snmp_amplification")),
        ("amp.dns.RRSIG.fragmented.pcap", "udp_flood", Some("dns_amplification")),
        ("CIC-DDoS-2019-SynFlood.pcap", "syn_flood", None),
    ];
    for (file, family, subtype) in cases {
        let path = dir.join(file);
        let j = analyze_json(&path);
        assert_eq!(j["packets"].as_u64(), Some(capinfos_count(&path)), "{file}");
        assert_eq!(j["attack_family"], family, "{file}: {j}");
        assert_eq!(j["attack_subtype"].as_str(), subtype, "{file}");
        assert_eq!(j["malformed_packets"], 0, "{file}");
        for key in [
            "bytes",
            "duration_s",
            "pps",
            "bps",
            "protocol_breakdown",
            "tcp_flags",
            "top_src_ips",
            "source_ip_count",
            "top_dst_ports",
            "top_src_ports",
            "confidence",
            "ioc_hits",
        ] {
            assert!(j.get(key).is_some(), "{file}: no {key}");
        }
        eprintln!("{file}: {} packets, {family}/{subtype:?}, confidence {}", j["packets"], j["confidence"]);
    }
    let spoofed = analyze_json(&dir.join("pkt.TCP.synflood.spoofed.pcap"));
    let est = spoofed["source_ip_count"].as_f64().unwrap();
    assert!((est - 37_623.0).abs() / 37_623.0 < 0.05, "distinct sources {est}");
    assert_eq!(spoofed["top_dst_ports"][0]["port"], 25565);
    let rrsig = analyze_json(&dir.join("amp.dns.RRSIG.fragmented.pcap"));
    assert_eq!(rrsig["fragments"]["count"], 1209, "fragments noted in the evidence");
    assert!(
        rrsig["protocol_breakdown"]["ipv6"].as_u64() > Some(0) && rrsig["protocol_breakdown"]["gre"].as_u64() > Some(0)
    );
    let cic = analyze_json(&dir.join("CIC-DDoS-2019-SynFlood.pcap"));
    assert_eq!(cic["top_src_ips"][0]["ip"], "172.16.0.5");
}

#[test]
fn analyze_text_summary_names_the_attack() {
    let Some(dir) = capture_dir() else { return };
    let home = Home::new();
    let out = util::run(home.command().arg("--analyze").arg(dir.join("amp.UDP.snmp.src161.pcapng")));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("4373 packets") && text.contains("udp_flood / snmp_amplification"), "{text}");
}

#[test]
fn analyze_rejects_truncated_and_non_capture_files() {
    let home = Home::new();
    let junk = home.path().join("notes.txt");
    std::fs::write(&junk, "this is not a capture\n").unwrap();
    let empty = home.path().join("empty.pcap");
    std::fs::write(&empty, "").unwrap();
    let mut cases = vec![
        (junk, "not a capture file"),
        (empty, "not a capture file"),
        (home.path().join("missing.pcap"), "No such file"),
    ];
    if let Some(dir) = capture_dir() {
        let bytes = std::fs::read(dir.join("CIC-DDoS-2019-SynFlood.pcap")).unwrap();
        let cut = home.path().join("cut.pcap");
        std::fs::write(&cut, &bytes[..bytes.len() / 2 + 7]).unwrap();
        cases.push((cut, "truncated at byte"));
    }
    for (path, msg) in cases {
        let out = util::run(home.command().arg("--analyze").arg(&path).arg("--json"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", path.display());
        assert!(err.contains(msg) && err.contains(&path.display().to_string()), "{}: {err}", path.display());
        assert!(out.stdout.is_empty());
    }
}

fn flood_config(home: &Home, pair: &NetnsPair) -> PathBuf {
    home.write_config(serde_json::json!({
        "interface": pair.veth_a,
        "sample_interval_ms": 200,
        "baseline_window_s": 10,
        "grace_period_s": 3,
        "holddown_ticks": 10,
        // Large enough to still hold the pings sent before the flood when the incident opens.
        "pcap_ring_packets": 200_000,
        "pcap_max_packets": 5000,
        "pcap_dir": home.path().join("pcaps"),
    }))
}

/// Start the agent, wait for `agent_start`, SYN-flood it for 3 s; returns (events, stderr).
fn flood_run(pair: &NetnsPair, home: &Home, mut agent_cmd: Command) -> (Vec<Value>, String) {
    let log = home.path().join("stderr.log");
    let mut agent =
        agent_cmd.stdin(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().expect("spawn agent");
    let started = util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(10));
    assert!(started.is_some(), "agent_start; stderr: {}", std::fs::read_to_string(&log).unwrap_or_default());
    // Ordinary traffic before the attack (5 echo requests), for the pre-attack ring.
    let _ = Command::new("ip")
        .args(["netns", "exec", &pair.ns_b, "hping3", "--icmp", "-c", "5", "-i", "u100000", "-q", &pair.addr_a])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    // Past the grace period (3 s from start): a flood during it would be learned as normal.
    let ready = util::event_time(started.as_ref().unwrap()) + Duration::from_millis(4000);
    if let Ok(d) = ready.duration_since(std::time::SystemTime::now()) {
        std::thread::sleep(d);
    }
    let mut flood = pair.syn_flood(3, 80);
    let _ = util::wait_for_event(&home.events_file(), "incident_resolve", Duration::from_secs(25));
    let _ = flood.wait();
    let status = util::terminate(&mut agent, Duration::from_secs(6));
    assert!(status.is_some_and(|s| s.success()), "agent exits 0 on SIGTERM");
    (home.events(), std::fs::read_to_string(&log).unwrap_or_default())
}

#[test]
fn veth_syn_flood_is_classified_from_packets_with_pcap_evidence() {
    let _flood = util::flood_lock();
    let Some(pair) = NetnsPair::create() else { return };
    assert!(util::have("hping3") && util::have("capinfos"), "needs hping3 and capinfos (wireshark-common)");
    let home = Home::new();
    let cfg = flood_config(&home, &pair);
    let mut cmd = NetnsPair::exec(&pair.ns_a, &util::bin());
    cmd.args(["--no-update-check", "--config"]).arg(&cfg).env("HOME", home.path());
    let (events, stderr) = flood_run(&pair, &home, cmd);
    let find = |n: &str| {
        events.iter().find(|e| e["event"] == n).cloned().unwrap_or_else(|| panic!("no {n}: {stderr} {events:?}"))
    };
    assert_eq!(find("agent_start")["mode"], "capture-scapy", "{stderr}");
    let open = find("incident_open");
    assert_eq!(
        (open["attack_family"].as_str(), open["classified_by"].as_str()),
        (Some("syn_flood"), Some("packets")),
        "{open}"
    );
    assert_eq!(open["top_src_ips"][0]["ip"], pair.addr_b.as_str(), "{open}");
    assert_eq!(open["top_dst_ports"][0]["port"], 80);
    assert!(open["tcp_flag_breakdown"]["syn"].as_u64() > Some(100), "{open}");
    let resolve = find("incident_resolve");
    assert_eq!(resolve["attack_family"], "syn_flood");
    assert!(resolve["confidence"].as_u64() >= Some(90), "{resolve}");
    let pcap = PathBuf::from(resolve["pcap_file"].as_str().expect("pcap_file"));
    let name = pcap.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with(&format!("{}_", open["incident_id"].as_str().unwrap())) && name.ends_with("Z.pcap"),
        "{name}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&pcap).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(pcap.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    // The ring, then up to pcap_max_packets (5000) incident packets: more than 5000 only with the
    // ring; in time order; the pings sent before the flood (pre-attack context) are in it.
    let count = capinfos_count(&pcap);
    assert!(count > 5000 && count <= 200_000 + 5000, "{count} packets in {}", pcap.display());
    let onset = humantime::parse_rfc3339(open["started_at"].as_str().unwrap()).unwrap();
    let onset_ns = onset.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut reader =
        ftagent::input::capture::pcapfile::CaptureReader::new(std::fs::File::open(&pcap).unwrap()).unwrap();
    let (mut last, mut n, mut pings_before) = (0u64, 0u64, 0u64);
    while let Some(f) = reader.next_frame().unwrap() {
        assert!(f.ts_ns >= last, "frames in time order");
        last = f.ts_ns;
        n += 1;
        let p =
            ftagent::input::capture::engine::parse::parse(ftagent::input::capture::LinkType::Ethernet, f.data).unwrap();
        if matches!(p.transport, ftagent::input::capture::engine::parse::Transport::Icmp { icmp_type: 8, .. })
            && f.ts_ns < onset_ns
        {
            pings_before += 1;
        }
    }
    assert_eq!(n, count);
    assert!(pings_before >= 1, "no pre-attack packets (pings before the onset) in the file");
    let before = pings_before;
    eprintln!("veth SYN flood: {count} packets in {}, {before} pre-attack pings from the ring", pcap.display());
}

#[test]
fn unprivileged_run_logs_why_and_detects_from_counters() {
    let _flood = util::flood_lock();
    let Some(pair) = NetnsPair::create() else { return };
    assert!(util::have("hping3") && util::have("setpriv"), "needs hping3 and setpriv");
    let home = Home::new();
    let cfg = flood_config(&home, &pair);
    std::fs::create_dir_all(home.state()).unwrap();
    util::chown_tree(home.path(), util::NOBODY);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &pair.ns_a, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--"])
        .arg(util::bin())
        .args(["--no-update-check", "--config"])
        .arg(&cfg)
        .env("HOME", home.path());
    let (events, stderr) = flood_run(&pair, &home, cmd);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("packet capture off")).collect();
    assert_eq!(lines.len(), 1, "one line saying why: {stderr}");
    assert!(lines[0].contains("CAP_NET_RAW") && lines[0].contains("setcap cap_net_raw+ep"), "{}", lines[0]);
    let start = events.iter().find(|e| e["event"] == "agent_start").expect("agent_start");
    assert_eq!(start["mode"], "limited");
    let open = events.iter().find(|e| e["event"] == "incident_open").unwrap_or_else(|| panic!("no incident: {stderr}"));
    assert_eq!(open["classified_by"], "counters");
    assert_eq!(open["attack_family"], "tcp_flood");
    assert!(events.iter().any(|e| e["event"] == "incident_resolve"));
}

/// §5.6: 3000 SYN/s keeps total PPS under its 5000 floor but is over the 2000/s SYN floor.
#[test]
fn syn_flood_under_the_total_floor_opens_on_the_syn_threshold() {
    let _flood = util::flood_lock();
    let Some(pair) = NetnsPair::create() else { return };
    let home = Home::new();
    let cfg = home.write_config(serde_json::json!({
        "interface": pair.veth_a,
        "grace_period_s": 3,
        "pcap_enabled": false,
    }));
    let log = home.path().join("stderr.log");
    let mut agent = NetnsPair::exec(&pair.ns_a, &util::bin())
        .args(["--no-update-check", "--config"])
        .arg(&cfg)
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn agent");
    let started = util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(10));
    assert_eq!(started.map(|s| s["mode"].clone()), Some(serde_json::json!("capture-scapy")));
    std::thread::sleep(Duration::from_millis(3500));
    let onset = std::time::SystemTime::now();
    let mut syn = pair.paced_syn(3000, 4, 80);
    let open = util::wait_for_event(&home.events_file(), "incident_open", Duration::from_secs(6));
    let sent = syn.wait();
    let status = util::terminate(&mut agent, Duration::from_secs(6));
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let open = open.unwrap_or_else(|| panic!("no incident for {sent} SYNs in 4 s: {stderr}"));
    let latency = util::latency_since(onset, &open);
    assert_eq!(open["trigger"], "syn", "{open}");
    assert!(open["pps"].as_f64() < Some(5000.0), "total PPS stayed under its floor: {open}");
    assert!(open["protocol_pps"]["syn"].as_f64() > Some(2000.0), "{open}");
    assert_eq!(open["protocol_threshold_pps"]["syn"], 2000.0, "{open}");
    assert!(latency < Duration::from_secs(1), "opened {latency:?} after onset");
    assert!(status.is_some_and(|s| s.success()), "agent exits 0 on SIGTERM");
    eprintln!("3000 SYN/s under the total floor: incident_open {latency:?} after onset: {open}");
}

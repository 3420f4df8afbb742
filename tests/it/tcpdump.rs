//! tcpdump capture mode against the real `tcpdump`, `mergecap` and `capinfos`: a SYN flood
//! across a veth pair, the ring over more than 100 s, a killed child, a tcpdump that exits at
//! once, and the package install path with a fake package manager on `PATH`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ftagent::input::capture::pcapfile::CaptureReader;
use serde_json::{json, Value};

use crate::util::{self, Home, NetnsPair};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Namespaces, tcpdump and friends, and a fresh home; None (reason printed) where unavailable.
fn netns_with_tools() -> Option<(NetnsPair, Home)> {
    let pair = NetnsPair::create()?;
    tools_present().then(|| (pair, Home::new()))
}

fn tools_present() -> bool {
    for t in ["tcpdump", "mergecap", "capinfos", "hping3"] {
        if !util::have(t) {
            util::skip(&format!("{t} is not installed (apt-get install tcpdump wireshark-common hping3)"));
            return false;
        }
    }
    true
}

/// The agent in namespace `a` of `pair`, tcpdump mode, logging to `<home>/agent.log`.
fn start_agent(pair: &NetnsPair, home: &Home, extra: Value) -> Child {
    let mut cfg = json!({
        "interface": pair.veth_a,
        "pcap_mode": "tcpdump",
        "sample_interval_ms": 200,
        "baseline_window_s": 10,
        "grace_period_s": 3,
        "holddown_ticks": 10,
        "log_file": home.path().join("agent.log"),
        "log_level": "DEBUG",
    });
    if let (Value::Object(a), Value::Object(b)) = (&mut cfg, extra) {
        a.extend(b);
    }
    let cfg = home.write_config(cfg);
    let agent = pair.spawn_agent(home, &cfg);
    let start = util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(15));
    assert_eq!(start.map(|e| e["mode"].clone()), Some(json!("capture-tcpdump")), "log: {}", log(home));
    agent
}

fn log(home: &Home) -> String {
    std::fs::read_to_string(home.path().join("agent.log")).unwrap_or_default()
}

/// Steady traffic from `b` to `a`: ICMP echo at about 100 packets/s for `secs`.
fn steady(pair: &NetnsPair, secs: u32) -> Child {
    Command::new("timeout")
        .args([&secs.to_string(), "ip", "netns", "exec", &pair.ns_b, "hping3", "-1", "-q", "-i", "u10000"])
        .arg(&pair.addr_a)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hping3")
}

/// `capinfos -T -r -S -c -a -e`: packets, first and last packet time (epoch seconds).
fn capinfos(file: &Path) -> (u64, f64, f64) {
    let out = Command::new("capinfos").args(["-T", "-r", "-S", "-c", "-a", "-e"]).arg(file).output().unwrap();
    assert!(out.status.success(), "capinfos {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let f: Vec<&str> = text.trim().split('\t').collect();
    (f[1].parse().unwrap(), f[2].parse().unwrap(), f[3].parse().unwrap())
}

#[test]
fn syn_flood_in_tcpdump_mode_is_syn_flood_with_a_merged_pcap_holding_pre_open_packets() {
    let _flood = util::flood_lock();
    let Some((pair, home)) = netns_with_tools() else { return };
    let mut agent = start_agent(&pair, &home, json!({}));
    let mut background = steady(&pair, 30);
    std::thread::sleep(Duration::from_millis(4000)); // past the grace period, ring filling
    let mut flood = pair.syn_flood(3, 80);
    let open = util::wait_for_event(&home.events_file(), "incident_open", Duration::from_secs(8));
    let resolve = util::wait_for_event(&home.events_file(), "incident_resolve", Duration::from_secs(30));
    let _ = flood.wait();
    let _ = background.kill();
    let _ = background.wait();
    // The merge runs after the resolve; give it a moment before stopping.
    let pcap = resolve.as_ref().and_then(|r| r["pcap_file"].as_str().map(PathBuf::from));
    let deadline = Instant::now() + Duration::from_secs(10);
    while pcap.as_ref().is_some_and(|p| !p.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = util::terminate(&mut agent, Duration::from_secs(6));
    let open = open.unwrap_or_else(|| panic!("incident_open; log: {}", log(&home)));
    let resolve = resolve.expect("incident_resolve");
    assert_eq!(open["attack_family"], "syn_flood", "{open}");
    assert_eq!(open["classified_by"], "packets");
    assert_eq!(resolve["attack_family"], "syn_flood", "{resolve}");
    assert_eq!(resolve["top_src_ips"][0]["ip"], pair.addr_b.as_str(), "{resolve}");
    let pcap = pcap.expect("pcap_file in incident_resolve");
    assert!(pcap.starts_with(home.state().join("pcaps")), "{}", pcap.display());
    let name = pcap.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(open["incident_id"].as_str().unwrap()) && name.ends_with("Z.pcap"), "{name}");
    assert_eq!(std::fs::metadata(&pcap).unwrap().permissions().mode() & 0o777, 0o600);
    let (packets, first, last) = capinfos(&pcap);
    let opened = util::event_time(&open).duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(packets > 1000, "{packets} packets");
    assert!(first < opened - 1.0, "first packet {first} is not from before the open at {opened}");
    assert!(last > opened, "last packet {last} is not from the incident (open at {opened})");
    assert!(status.is_some_and(|s| s.success()), "agent exits 0 on SIGTERM");
    eprintln!("tcpdump mode: {packets} packets merged, {:.1} s before the open", opened - first);
}

/// First and last packet time (ns) of each ring file, read with the engine's reader.
fn ring_spans(dir: &Path, spans: &mut BTreeMap<String, (u64, u64)>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(f) = std::fs::File::open(e.path()) else { continue };
        let Ok(mut r) = CaptureReader::new(std::io::BufReader::new(f)) else { continue };
        let (mut first, mut last) = (None, 0);
        while let Ok(Some(fr)) = r.next_frame() {
            first.get_or_insert(fr.ts_ns);
            last = fr.ts_ns;
        }
        if let Some(first) = first {
            spans.insert(e.file_name().to_string_lossy().into_owned(), (first, last));
        }
    }
}

#[test]
fn ring_runs_over_100_s_without_a_gap_and_keeps_at_most_three_files() {
    let _flood = util::flood_lock();
    let Some((pair, home)) = netns_with_tools() else { return };
    let mut agent = start_agent(&pair, &home, json!({}));
    let ring = home.state().join("pcaps/ring");
    let mut traffic = steady(&pair, 112);
    let started = Instant::now();
    let mut spans = BTreeMap::new();
    let mut most = 0;
    while started.elapsed() < Duration::from_secs(110) {
        most = most.max(std::fs::read_dir(&ring).map(|d| d.count()).unwrap_or(0));
        ring_spans(&ring, &mut spans);
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = traffic.wait();
    ring_spans(&ring, &mut spans);
    util::terminate(&mut agent, Duration::from_secs(6));
    assert!(spans.len() >= 4, "at least 4 ring files in 110 s: {spans:?}");
    assert!(most <= 3, "{most} ring files were on disk at once");
    let v: Vec<(&String, &(u64, u64))> = spans.iter().collect();
    for w in v.windows(2) {
        let gap_ns = w[1].1 .0.saturating_sub(w[0].1 .1);
        assert!(gap_ns < 1_000_000_000, "{} ms between {} and {}", gap_ns / 1_000_000, w[0].0, w[1].0);
    }
    assert!(!log(&home).contains("ring capture ended"), "the ring child never restarts: {}", log(&home));
    let worst = v.windows(2).map(|w| w[1].1 .0.saturating_sub(w[0].1 .1)).max().unwrap_or(0);
    eprintln!("ring: {} files, at most {most} on disk, largest gap {} ms", spans.len(), worst / 1_000_000);
}

/// The pid of the ring tcpdump writing into `ring_dir`.
fn ring_pid(ring_dir: &Path) -> Option<i32> {
    let needle = ring_dir.join("ring_").display().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        String::from_utf8_lossy(&cmd).contains(&needle).then_some(pid)
    })
}

#[test]
fn a_killed_tcpdump_is_restarted_and_the_reason_logged() {
    let _flood = util::flood_lock();
    let Some((pair, home)) = netns_with_tools() else { return };
    let mut agent = start_agent(&pair, &home, json!({}));
    let ring = home.state().join("pcaps/ring");
    let first = ring_pid(&ring).expect("ring tcpdump running");
    // SAFETY: kill(2) with a pid read from /proc and a valid signal number.
    unsafe { libc::kill(first, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut second = None;
    while Instant::now() < deadline {
        second = ring_pid(&ring).filter(|p| *p != first);
        if second.is_some() && log(&home).contains("restarted") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    util::terminate(&mut agent, Duration::from_secs(6));
    let text = log(&home);
    assert!(second.is_some(), "no new tcpdump after the kill; log: {text}");
    assert!(text.contains("tcpdump ring capture ended") && text.contains("SIGKILL"), "{text}");
    assert!(text.contains("tcpdump ring capture restarted"), "{text}");
    assert!(ring_pid(&ring).is_none(), "tcpdump stopped with the agent");
}

/// A directory to use as the whole `PATH`, with shell scripts in it.
fn fake_path(scripts: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, body) in scripts {
        let p = d.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// Run the agent (as given by `cmd`) on `lo` until `agent_start`, a few seconds more, then stop it.
fn run_briefly(home: &Home, mut cmd: Command, path: &Path) -> Value {
    let cfg = home.write_config(json!({
        "interface": "lo",
        "pcap_mode": "tcpdump",
        "log_file": home.path().join("agent.log"),
    }));
    util::chown_tree(home.path(), if cmd.get_program() == "/usr/bin/setpriv" { util::NOBODY } else { 0 });
    let mut agent = cmd
        .args(["--no-update-check", "--config"])
        .arg(&cfg)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn agent");
    let start = util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(3));
    util::terminate(&mut agent, Duration::from_secs(6));
    start.unwrap_or_else(|| panic!("agent_start; log: {}", log(home)))
}

fn expected_fallback_mode() -> &'static str {
    if cfg!(feature = "capture-scapy") {
        "capture-scapy"
    } else {
        "limited"
    }
}

#[test]
fn a_tcpdump_that_exits_at_once_ends_in_one_logged_fallback_not_a_loop() {
    if !is_root() {
        util::skip("capture needs root (CI runs as root)");
        return;
    }
    let home = Home::new();
    let runs = home.path().join("tcpdump-runs");
    let bin = fake_path(&[("tcpdump", &format!("echo run >> {}\necho 'tcpdump: broken' >&2\nexit 1", runs.display()))]);
    let start = run_briefly(&home, Command::new(util::bin()), bin.path());
    assert_eq!(start["mode"], expected_fallback_mode(), "{start}");
    let text = log(&home);
    assert_eq!(text.matches("tcpdump capture unavailable").count(), 1, "{text}");
    assert!(text.contains("exited at once") && text.contains("tcpdump: broken"), "{text}");
    let n = std::fs::read_to_string(&runs).unwrap_or_default().lines().count();
    assert_eq!(n, 1, "tcpdump was started {n} times");
}

#[test]
fn missing_tcpdump_is_installed_as_root_and_never_otherwise() {
    if !is_root() || !Path::new("/usr/bin/setpriv").exists() {
        util::skip("needs root and setpriv (CI runs as root)");
        return;
    }
    // A fake apt-get that records its command and "installs" a tcpdump that cannot capture.
    let calls = tempfile::tempdir().unwrap();
    std::fs::set_permissions(calls.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let record = calls.path().join("apt-get.calls");
    let bin = fake_path(&[]);
    let script = format!(
        "#!/bin/sh\necho \"$@\" >> {record}\nprintf '#!/bin/sh\\necho no capture >&2\\nexit 1\\n' > {dir}/tcpdump\n\
         /bin/chmod 755 {dir}/tcpdump\n",
        record = record.display(),
        dir = bin.path().display()
    );
    std::fs::write(bin.path().join("apt-get"), script).unwrap();
    std::fs::set_permissions(bin.path().join("apt-get"), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Not root, but allowed to capture (CAP_NET_RAW): must not install.
    let user = Home::new();
    let mut cmd = Command::new("/usr/bin/setpriv");
    cmd.args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps", "+net_raw", "--ambient-caps"])
        .args(["+net_raw", "--"])
        .arg(util::bin())
        .env("HOME", user.path());
    let start = run_briefly(&user, cmd, bin.path());
    assert!(!record.exists(), "the non-root agent ran the package manager");
    assert!(log(&user).contains("tcpdump is not installed"), "{}", log(&user));
    assert_eq!(start["mode"], expected_fallback_mode(), "{start}");

    // Root: installs with apt-get, then finds the installed tcpdump (which fails here) and falls back.
    let root = Home::new();
    let start = run_briefly(&root, Command::new(util::bin()), bin.path());
    let calls = std::fs::read_to_string(&record).unwrap_or_default();
    assert_eq!(calls, "install -y -q tcpdump wireshark-common\n", "{}", log(&root));
    assert!(log(&root).contains("installing it with `apt-get"), "{}", log(&root));
    assert_eq!(start["mode"], expected_fallback_mode(), "{start}");
}

#[test]
fn retention_and_the_disk_cap_count_ring_files() {
    let _flood = util::flood_lock();
    let Some((pair, home)) = netns_with_tools() else { return };
    let pcaps = home.state().join("pcaps");
    std::fs::create_dir_all(pcaps.join("ring")).unwrap();
    // An incident file past retention, a recent one, and an old ring file from an earlier run
    // that alone is over the 1 MiB cap.
    let old = pcaps.join("old_20261101T000000Z.pcap");
    let recent = pcaps.join("recent_20261121T000000Z.pcap");
    let old_ring = pcaps.join("ring/ring_20261120T000000.pcap");
    std::fs::write(&old, [0u8; 100]).unwrap();
    std::fs::write(&recent, [0u8; 100]).unwrap();
    std::fs::write(&old_ring, vec![0u8; 2 << 20]).unwrap();
    for (file, age) in [(&old, "10 days ago"), (&old_ring, "1 day ago")] {
        assert!(Command::new("touch").args(["-d", age]).arg(file).status().unwrap().success());
    }
    let mut agent = start_agent(&pair, &home, json!({"pcap_retention_days": 7, "pcap_max_disk_mb": 1}));
    std::thread::sleep(Duration::from_secs(2));
    util::terminate(&mut agent, Duration::from_secs(6));
    assert!(!old.exists(), "a file past pcap_retention_days is deleted");
    assert!(!old_ring.exists(), "ring files count toward pcap_max_disk_mb, oldest first");
    assert!(recent.exists(), "under the cap once the ring file went: {}", log(&home));
}

/// Sizes under `dir`: (largest ring file, total of every capture file, size-rotated ring files).
fn disk_use(dir: &Path) -> (u64, u64, usize) {
    let (mut largest, mut total, mut rotated) = (0, 0, 0);
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.metadata() else { continue };
            let name = e.file_name().to_string_lossy().into_owned();
            if m.is_dir() {
                dirs.push(e.path());
            } else if name.contains(".pcap") {
                total += m.len();
                if name.starts_with("ring_") {
                    largest = largest.max(m.len());
                    rotated += usize::from(!name.ends_with(".pcap"));
                }
            }
        }
    }
    (largest, total, rotated)
}

#[test]
fn ring_files_rotate_by_size_and_the_disk_cap_holds_during_a_flood() {
    let _flood = util::flood_lock();
    let Some((pair, home)) = netns_with_tools() else { return };
    // No incident: the ring alone against a 5 MiB cap (ring files of 1 MB, `-C 1`).
    let extra =
        json!({"pcap_max_disk_mb": 5, "dynamic_threshold": false, "min_pps_threshold": 1e9, "min_bps_threshold": 1e15});
    let mut agent = start_agent(&pair, &home, extra);
    let pcaps = home.state().join("pcaps");
    let cmdline = ring_pid(&pcaps.join("ring")).and_then(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok());
    let args: Vec<String> =
        cmdline.unwrap_or_default().split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    // About 10 MB/s of 1000-byte UDP payloads for 6 s: 60 MB against the 5 MiB cap.
    let mut flood = Command::new("timeout")
        .args(["6", "ip", "netns", "exec", &pair.ns_b, "hping3", "--udp", "-q", "-i", "u100", "-d", "1000", "-p", "9"])
        .arg(&pair.addr_a)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hping3");
    let (mut largest, mut peak, mut rotated) = (0, 0, 0);
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        let (l, t, r) = disk_use(&pcaps);
        (largest, peak, rotated) = (largest.max(l), peak.max(t), rotated.max(r));
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = flood.wait();
    let status = util::terminate(&mut agent, Duration::from_secs(6));
    assert!(args.iter().any(|a| a == "-p"), "non-promiscuous by default: {args:?}");
    assert!(args.windows(2).any(|w| w[0] == "-C" && w[1] == "1"), "rotates by size: {args:?}");
    assert!(rotated >= 3, "the ring rotated by size ({rotated} files); log: {}", log(&home));
    assert!(largest <= 1_000_000 + 70_000, "a ring file of {largest} bytes outgrew -C 1");
    let cap = 5 << 20;
    assert!(peak <= cap + 2_000_000, "{peak} bytes on disk against a cap of {cap}; log: {}", log(&home));
    assert!(status.is_some_and(|s| s.success()));
    eprintln!("disk cap: peak {peak} bytes (cap {cap}), largest ring file {largest}, {rotated} size rotations");
}

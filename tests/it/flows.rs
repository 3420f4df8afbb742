//! The flow collector (§12) against real exporters: softflowd (NetFlow v5, v9, IPFIX) and
//! pmacctd (sFlow v5 through `sfprobe`, NetFlow through `nfprobe`) watching a veth that carries a
//! real flood, and replaying the vendored attack captures; and hostile datagrams over a real UDP
//! socket (counted, never a panic, memory flat).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ftagent::config::flows::{Exporter, FlowsConfig};
use ftagent::input::flows::{self, FlowRecord, FlowSink, FlowSource, Flows};

use crate::util::{captures, flood_lock, have, skip, NetnsPair, Reap, Side};

/// Records as they arrive, with their arrival time.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<(FlowRecord, u64)>>>);

impl FlowSink for Shared {
    fn record(&mut self, rec: &FlowRecord, arrived_ms: u64) {
        let mut v = self.0.lock().unwrap();
        if v.len() < 2_000_000 {
            v.push((rec.clone(), arrived_ms));
        }
    }
}

impl Shared {
    fn records(&self) -> Vec<FlowRecord> {
        self.0.lock().unwrap().iter().map(|(r, _)| r.clone()).collect()
    }

    fn first_arrival(&self, f: impl Fn(&FlowRecord) -> bool) -> Option<u64> {
        self.0.lock().unwrap().iter().filter(|(r, _)| f(r)).map(|(_, t)| *t).min()
    }

    /// Scaled packets of records matching `f`.
    fn packets(&self, f: impl Fn(&FlowRecord) -> bool) -> u64 {
        self.0.lock().unwrap().iter().filter(|(r, _)| f(r)).map(|(r, _)| r.packets).sum()
    }
}

/// Start the collector inside namespace `ns` (its sockets live there) on `addrs`.
fn start_in(ns: &str, cfg: FlowsConfig, addrs: Vec<SocketAddr>, sink: Shared) -> Flows {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns file");
        // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns {ns}");
        flows::start_on(&cfg, &addrs, Box::new(sink)).expect("start collector").expect("listening")
    })
    .join()
    .expect("collector start thread")
}

fn now_ms() -> u64 {
    flows::listen::now_ms()
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

fn need(tools: &[&str]) -> bool {
    for t in tools {
        if !have(t) {
            skip(&format!("`{t}` is not installed (.ci/run installs it)"));
            return false;
        }
    }
    true
}

#[test]
fn softflowd_v5_v9_ipfix_on_a_veth_report_the_flood() {
    if !need(&["softflowd", "ip"]) {
        return;
    }
    let _g = flood_lock();
    let Some(pair) = NetnsPair::create() else { return };
    let sink = Shared::default();
    let exporter: IpAddr = pair.addr_a.parse().unwrap();
    let cfg = FlowsConfig {
        exporters: vec![Exporter { address: exporter, name: Some("softflowd".into()), sampling_rate: None }],
        ..FlowsConfig::default()
    };
    let addrs: Vec<SocketAddr> = (0..3).map(|_| format!("{}:0", pair.addr_b).parse().unwrap()).collect();
    let collector = start_in(&pair.ns_b, cfg, addrs, sink.clone());
    let ports: Vec<u16> = collector.local_addrs().iter().map(|a| a.port()).collect();
    let tmp = tempfile::tempdir().unwrap();
    let mut exporters = Vec::new();
    for (i, v) in ["5", "9", "10"].iter().enumerate() {
        let child = Command::new("ip")
            .args(["netns", "exec", &pair.ns_a, "softflowd", "-d", "-i", &pair.veth_a, "-v", v])
            .args(["-n", &format!("{}:{}", pair.addr_b, ports[i]), "-t", "maxlife=1", "-t", "expint=1", "-t", "udp=1"])
            .arg("-p")
            .arg(tmp.path().join(format!("sf{i}.pid")))
            .arg("-c")
            .arg(tmp.path().join(format!("sf{i}.ctl")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("softflowd");
        exporters.push(Reap(child));
    }
    // Each softflowd has opened its capture once its control socket exists.
    let ctls: Vec<_> = (0..3).map(|i| tmp.path().join(format!("sf{i}.ctl"))).collect();
    assert!(wait_until(Duration::from_secs(10), || ctls.iter().all(|c| c.exists())), "softflowd did not start");
    std::thread::sleep(Duration::from_millis(300));
    let onset = now_ms();
    let sent = pair.paced_udp(Side::Outside, 2000, 3).wait();
    let victim: IpAddr = pair.addr_a.parse().unwrap();
    let flood =
        |src: FlowSource| move |r: &FlowRecord| r.source == src && r.dst == victim && r.dst_port == 9 && r.proto == 17;
    let all = [FlowSource::NetflowV5, FlowSource::NetflowV9, FlowSource::Ipfix];
    // softflowd expires flows on the clock of the packets it sees: a trickle the other way keeps
    // that clock going after the flood, so the flood's last flow times out and is exported.
    let mut trickle = pair.paced_udp(Side::Agent, 20, 6);
    wait_until(Duration::from_secs(6), || all.iter().all(|s| sink.packets(flood(*s)) >= sent * 95 / 100));
    trickle.wait();
    for (i, src) in all.iter().enumerate() {
        // What softflowd itself says it exported, against what we decoded from it: every UDP
        // packet of every expired flow. (softflowd processes fewer packets than libpcap hands it
        // at this rate, so it, not `sent`, is the ground truth of what was exported.)
        let stats = Command::new("softflowctl").arg("-c").arg(&ctls[i]).arg("statistics").output().unwrap();
        let stats = String::from_utf8_lossy(&stats.stdout).to_string();
        let exported: u64 = stats
            .lines()
            .find(|l| l.trim_start().starts_with("udp (17):"))
            .and_then(|l| l.split_whitespace().nth(3).and_then(|n| n.parse().ok()))
            .unwrap_or_else(|| panic!("no UDP line in softflowd statistics:\n{stats}"));
        let udp = |r: &FlowRecord| r.source == *src && r.proto == 17;
        wait_until(Duration::from_secs(3), || sink.packets(udp) >= exported);
        let got = sink.packets(flood(*src));
        eprintln!(
            "{src}: {got} of {sent} packets sent; softflowd exported {exported} UDP packets, we decoded {}",
            sink.packets(udp)
        );
        assert_eq!(sink.packets(udp), exported, "{src}");
        assert!(got >= sent * 7 / 10 && got <= sent, "{src}: {got} packets decoded of {sent} sent");
        let first = sink.first_arrival(flood(*src)).unwrap();
        eprintln!("{src}: first record {} ms after the flood began", first - onset);
        for r in sink.records().iter().filter(|r| flood(*src)(r)) {
            assert_eq!((r.src, r.exporter, r.sampling_rate), (pair.addr_b.parse().unwrap(), exporter, 1));
            // The flow interval is on our clock, inside the flood (± the export delay).
            assert!(r.start_ms + 1000 >= onset && r.end_ms <= now_ms() && r.start_ms <= r.end_ms, "{r:?}");
        }
    }
    drop(exporters);
    let ex = collector.exporters();
    assert_eq!(ex.len(), 1);
    assert_eq!((ex[0].name.as_deref(), ex[0].parse_errors, ex[0].template_misses), (Some("softflowd"), 0, 0));
    collector.stop();
}

/// pmacctd's config for a probe plugin on `iface` (or a capture file) sending to `to`.
fn pmacct_conf(dir: &Path, name: &str, input: &str, lines: &[String]) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.conf"));
    let mut text = format!("daemonize: false\n{input}\n");
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn pmacctd_sfprobe_and_nfprobe_on_a_veth_report_the_flood() {
    if !need(&["pmacctd", "ip"]) {
        return;
    }
    let _g = flood_lock();
    let Some(pair) = NetnsPair::create() else { return };
    let sink = Shared::default();
    let addrs: Vec<SocketAddr> = (0..2).map(|_| format!("{}:0", pair.addr_b).parse().unwrap()).collect();
    let collector = start_in(&pair.ns_b, FlowsConfig::default(), addrs, sink.clone());
    let ports: Vec<u16> = collector.local_addrs().iter().map(|a| a.port()).collect();
    let tmp = tempfile::tempdir().unwrap();
    let conf = pmacct_conf(
        tmp.path(),
        "probe",
        &format!("pcap_interface: {}", pair.veth_a),
        &[
            "plugins: sfprobe[s], nfprobe[n]".into(),
            format!("sfprobe_receiver[s]: {}:{}", pair.addr_b, ports[0]),
            "sampling_rate[s]: 100".into(),
            format!("nfprobe_receiver[n]: {}:{}", pair.addr_b, ports[1]),
            "nfprobe_version[n]: 10".into(),
            "nfprobe_timeouts[n]: maxlife=1:expint=1:udp=1".into(),
        ],
    );
    let mut probe = Reap(
        Command::new("ip")
            .args(["netns", "exec", &pair.ns_a, "pmacctd", "-f"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pmacctd"),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let sent = pair.paced_udp(Side::Outside, 5000, 3).wait();
    let victim: IpAddr = pair.addr_a.parse().unwrap();
    let flood =
        |src: FlowSource| move |r: &FlowRecord| r.source == src && r.dst == victim && r.dst_port == 9 && r.proto == 17;
    wait_until(Duration::from_secs(6), || sink.packets(flood(FlowSource::Ipfix)) >= sent * 95 / 100);
    // SIGTERM: pmacctd stops its plugin processes too (SIGKILL would leave them running).
    crate::util::terminate(&mut probe.0, Duration::from_secs(3));
    let ipfix = sink.packets(flood(FlowSource::Ipfix));
    eprintln!(
        "nfprobe IPFIX {ipfix} of {sent}; sFlow {}; {:?}",
        sink.packets(flood(FlowSource::Sflow)),
        collector.exporters()
    );
    assert!(ipfix >= sent * 9 / 10 && ipfix <= sent + 50, "nfprobe IPFIX: {ipfix} of {sent}");
    let samples: Vec<FlowRecord> = sink.records().into_iter().filter(|r| flood(FlowSource::Sflow)(r)).collect();
    let ex = collector.exporters();
    // 1 in 100: each sample stands for 100 packets; the estimate is within sampling error.
    let est: u64 = samples.iter().map(|r| r.packets).sum();
    assert!(samples.iter().all(|r| r.sampling_rate == 100 && r.family.as_deref() == Some("udp_flood")));
    assert!(
        est >= sent * 6 / 10 && est <= sent * 14 / 10,
        "sFlow estimate {est} of {sent} ({} samples)",
        samples.len()
    );
    assert!(ex.iter().all(|e| e.parse_errors == 0), "{ex:?}");
    eprintln!("sFlow: {} samples, estimate {est} of {sent} packets; nfprobe IPFIX {ipfix}", samples.len());
    collector.stop();
}

/// softflowd reading a capture file: it exports when told to shut down over its control socket.
fn softflowd_replay(pcap: &Path, version: &str, port: u16, dir: &Path) {
    let ctl = dir.join(format!("replay-{version}.ctl"));
    let child = Command::new("softflowd")
        .args(["-d", "-m", "100000", "-v", version, "-n", &format!("127.0.0.1:{port}"), "-r"])
        .arg(pcap)
        .arg("-p")
        .arg(dir.join(format!("replay-{version}.pid")))
        .arg("-c")
        .arg(&ctl)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("softflowd");
    let _reap = Reap(child);
    wait_until(Duration::from_secs(5), || ctl.exists());
    // softflowd 1.1 reads the file once its control socket has served a command.
    for cmd in ["statistics", "shutdown"] {
        let _ = Command::new("softflowctl").arg("-c").arg(&ctl).arg(cmd).stdout(Stdio::null()).status();
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn softflowd_and_sfprobe_replaying_the_vendored_captures() {
    if !need(&["softflowd", "softflowctl", "pmacctd"]) {
        return;
    }
    let Some(dir) = captures() else { return };
    let sink = Shared::default();
    let addrs: Vec<SocketAddr> = (0..3).map(|_| "127.0.0.1:0".parse().unwrap()).collect();
    let collector = flows::start_on(&FlowsConfig::default(), &addrs, Box::new(sink.clone())).unwrap().unwrap();
    let ports: Vec<u16> = collector.local_addrs().iter().map(|a| a.port()).collect();
    let tmp = tempfile::tempdir().unwrap();
    // The SNMP reflection capture (4,373 packets): NetFlow v9 and IPFIX carry every packet.
    let snmp = dir.join("amp.UDP.snmp.src161.pcapng");
    softflowd_replay(&snmp, "9", ports[0], tmp.path());
    softflowd_replay(&snmp, "10", ports[1], tmp.path());
    let total = crate::util::capinfos_count(&snmp);
    for src in [FlowSource::NetflowV9, FlowSource::Ipfix] {
        wait_until(Duration::from_secs(5), || sink.packets(|r| r.source == src) >= total);
        let all = sink.packets(|r| r.source == src);
        let amp = sink.packets(|r| r.source == src && r.proto == 17 && r.src_port == 161);
        assert_eq!(all, total, "{src}");
        // What NetFlow can tell: UDP from source port 161 dominates (the amplification's port).
        assert!(amp * 100 / all >= 85, "{src}: {amp} of {all} from UDP/161");
    }
    // sfprobe at 1 in 10 over the SYN-flood capture: the engine's label on the samples is the
    // one `--analyze` gives the file (syn_flood).
    let conf = pmacct_conf(
        tmp.path(),
        "replay",
        &format!("pcap_savefile: {}", dir.join("pkt.TCP.synflood.spoofed.pcap").display()),
        &["plugins: sfprobe".into(), format!("sfprobe_receiver: 127.0.0.1:{}", ports[2]), "sampling_rate: 10".into()],
    );
    let _ = Command::new("timeout")
        .args(["20", "pmacctd", "-f"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let syn_total = crate::util::capinfos_count(&dir.join("pkt.TCP.synflood.spoofed.pcap"));
    wait_until(Duration::from_secs(3), || sink.packets(|r| r.source == FlowSource::Sflow) * 10 >= syn_total * 9);
    let sflow: Vec<FlowRecord> = sink.records().into_iter().filter(|r| r.source == FlowSource::Sflow).collect();
    assert!(!sflow.is_empty());
    let est: u64 = sflow.iter().map(|r| r.packets).sum();
    assert!(est.abs_diff(syn_total) * 100 <= syn_total * 10, "sFlow estimate {est} of {syn_total}");
    let mut fam: BTreeMap<String, u64> = BTreeMap::new();
    for r in &sflow {
        *fam.entry(r.family.clone().unwrap_or_default()).or_default() += r.packets;
    }
    assert!(fam.get("syn_flood").copied().unwrap_or(0) * 100 / est >= 95, "{fam:?}");
    collector.stop();
}

/// VmRSS of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok()))
        .unwrap_or(0)
}

fn be16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}
fn be32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}

/// An IPFIX message of one set.
fn ipfix(domain: u32, set_id: u16, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    be16(&mut v, 10);
    be16(&mut v, (20 + body.len()) as u16);
    be32(&mut v, (now_ms() / 1000) as u32);
    be32(&mut v, 0);
    be32(&mut v, domain);
    be16(&mut v, set_id);
    be16(&mut v, (body.len() + 4) as u16);
    v.extend_from_slice(body);
    v
}

/// The hostile datagram number `i`: each kind in turn.
fn hostile(i: u32, real: &[Vec<u8>]) -> Vec<u8> {
    match i % 6 {
        // A template flood: 40 new templates of 64 fields each, new ids and domains every time.
        0 => {
            let mut body = Vec::new();
            for t in 0..40u16 {
                be16(&mut body, 256 + ((i as u16).wrapping_mul(40).wrapping_add(t) % 65_000));
                be16(&mut body, 64);
                for f in 0..64u16 {
                    be16(&mut body, f + 1);
                    be16(&mut body, 4);
                }
            }
            ipfix(i, 2, &body)
        }
        // Truncated real datagrams.
        1 => {
            let d = &real[i as usize % real.len()];
            d[..d.len() * (i as usize % 7 + 1) / 9].to_vec()
        }
        // Zero-length fields and sets.
        2 => ipfix(i, 2, &[1, 0, 0, 1, 0, 8, 0, 0]),
        3 => {
            let mut v = ipfix(i, 300, &[]);
            v[18] = 0;
            v[19] = 0;
            v
        }
        // A sampling rate of 0 in options data (sampling options template, then its data).
        4 => {
            let mut t = Vec::new();
            for x in [256u16, 2, 1, 149, 4, 305, 4] {
                be16(&mut t, x);
            }
            let mut m = ipfix(7, 3, &t);
            let mut data = Vec::new();
            be32(&mut data, 7);
            be32(&mut data, 0);
            let mut tmpl = Vec::new();
            for x in [400u16, 2, 8, 4, 12, 4] {
                be16(&mut tmpl, x);
            }
            let d2 = ipfix(7, 256, &data);
            let d3 = ipfix(7, 2, &tmpl);
            let d4 = ipfix(7, 400, &[192, 0, 2, 1, 198, 51, 100, 1]);
            // One message of four sets.
            for part in [&d2, &d3, &d4] {
                m.extend_from_slice(&part[16..]);
            }
            let len = m.len() as u16;
            m[2..4].copy_from_slice(&len.to_be_bytes());
            m
        }
        // Unknown versions and garbage.
        _ => (0..64).map(|k| (i as u8).wrapping_mul(31).wrapping_add(k)).collect(),
    }
}

#[test]
fn hostile_datagrams_are_counted_and_memory_stays_flat() {
    let _g = flood_lock();
    let sink = Shared::default();
    let cfg = FlowsConfig {
        exporters: vec![Exporter { address: "127.0.0.1".parse().unwrap(), name: None, sampling_rate: None }],
        ..FlowsConfig::default()
    };
    let collector = flows::start_on(&cfg, &["127.0.0.1:0".parse().unwrap()], Box::new(sink.clone())).unwrap().unwrap();
    let to = collector.local_addrs()[0];
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = UdpSocket::bind("127.0.0.2:0").unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/flows");
    let real: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| std::fs::read(e.path()).unwrap())
        .filter(|d| d.len() > 40)
        .collect();
    let mut sent = 0u64;
    let mut blast = |n: u32, from: u32| {
        for i in from..from + n {
            tx.send_to(&hostile(i, &real), to).unwrap();
            sent += 1;
            if i % 200 == 0 {
                // Let the listener keep up so the counts can be compared exactly.
                let want = sent;
                wait_until(Duration::from_secs(5), || collector.totals().datagrams >= want * 98 / 100);
            }
        }
    };
    blast(3_000, 0);
    let before = rss_kib();
    blast(30_000, 3_000);
    for i in 0..500u32 {
        stranger.send_to(&hostile(i, &real), to).unwrap();
    }
    wait_until(Duration::from_secs(5), || collector.totals().unlisted_datagrams >= 450);
    let after = rss_kib();
    let t = collector.totals();
    let ex = collector.exporters();
    eprintln!("hostile: {t:?}; exporter {:?}; RSS {before} → {after} KiB", ex[0]);
    assert_eq!(ex.len(), 1, "the unlisted source must not get an entry");
    assert!(t.unlisted_datagrams >= 450 && t.unlisted_datagrams <= 500);
    assert!(t.templates <= ftagent::input::flows::templates::MAX_TEMPLATES_PER_EXPORTER);
    let e = &ex[0];
    assert!(e.datagrams >= sent * 95 / 100, "{} of {sent}", e.datagrams);
    assert!(e.parse_errors > 10_000 && e.rate_zero > 1000 && e.template_misses > 0 && e.templates_refused > 10_000);
    // The template flood alone would hold 11,000 × 40 templates of 64 fields (> 100 MiB).
    assert!(after.saturating_sub(before) < 16 * 1024, "RSS grew {before} → {after} KiB");
    collector.stop();
}

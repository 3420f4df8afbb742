//! Step definitions for `features/capture.feature`: the real capture build in network
//! namespaces, privileged and as `nobody`, and `--analyze` on the shared real captures.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use cucumber::{given, then, when, World};
use serde_json::Value;

use crate::util::{self, Home, NetnsPair};

#[derive(Debug, Default, World)]
pub struct CaptureWorld {
    pair: Option<NetnsPairBox>,
    home: Option<Home>,
    cfg: Option<PathBuf>,
    agent: Option<Child>,
    started: Option<SystemTime>,
    output: Option<Output>,
    file: Option<PathBuf>,
}

/// NetnsPair has no Debug; the world needs one.
struct NetnsPairBox(NetnsPair);

impl std::fmt::Debug for NetnsPairBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NetnsPair({}, {})", self.0.ns_a, self.0.ns_b)
    }
}

impl Drop for CaptureWorld {
    fn drop(&mut self) {
        if let Some(a) = self.agent.as_mut() {
            util::terminate(a, Duration::from_secs(6));
        }
    }
}

impl CaptureWorld {
    fn pair(&self) -> &NetnsPair {
        &self.pair.as_ref().expect("namespaces").0
    }

    fn home(&self) -> &Home {
        self.home.as_ref().expect("home")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home().path().join("stderr.log")).unwrap_or_default()
    }

    fn event(&self, name: &str, secs: u64) -> Value {
        util::wait_for_event(&self.home().events_file(), name, Duration::from_secs(secs))
            .unwrap_or_else(|| panic!("no {name}; log: {}", self.log()))
    }

    fn spawn(&mut self, mut cmd: Command) {
        let log = std::fs::File::create(self.home().path().join("stderr.log")).unwrap();
        self.agent = Some(cmd.stdin(Stdio::null()).stderr(log).spawn().expect("spawn agent"));
        let start = self.event("agent_start", 10);
        self.started = Some(util::event_time(&start));
    }

    /// Wait until the grace period (3 s from start) is over.
    fn past_grace(&self) {
        let ready = self.started.expect("started") + Duration::from_millis(4000);
        if let Ok(d) = ready.duration_since(SystemTime::now()) {
            std::thread::sleep(d);
        }
    }
}

#[given("a capture build of ftagent")]
async fn capture_build(_w: &mut CaptureWorld) {
    // The runner only runs this feature in builds with `capture-scapy`.
}

#[given("two network namespaces joined by a veth pair")]
async fn namespaces(w: &mut CaptureWorld) {
    w.pair = Some(NetnsPairBox(NetnsPair::create().expect("network namespaces (the runner checks for root)")));
}

#[given(expr = "a config that monitors the veth with a {int} second grace period and keeps PCAP files")]
async fn config(w: &mut CaptureWorld, grace_s: u64) {
    let home = Home::new();
    let cfg = home.write_config(serde_json::json!({
        "interface": w.pair().veth_a,
        "pcap_mode": "scapy",
        "pcap_enabled": true,
        "sample_interval_ms": 200,
        "baseline_window_s": 10,
        "grace_period_s": grace_s,
        "holddown_ticks": 10,
        "pcap_dir": home.path().join("pcaps"),
    }));
    w.home = Some(home);
    w.cfg = Some(cfg);
}

#[given("the agent runs as root on the veth")]
async fn runs_as_root(w: &mut CaptureWorld) {
    let mut cmd = NetnsPair::exec(&w.pair().ns_a, &util::bin());
    cmd.args(["--no-update-check", "--config"]).arg(w.cfg.as_ref().unwrap()).env("HOME", w.home().path());
    w.spawn(cmd);
}

#[given("the agent runs as the user nobody, without capabilities")]
async fn runs_as_nobody(w: &mut CaptureWorld) {
    std::fs::create_dir_all(w.home().state()).unwrap();
    util::chown_tree(w.home().path(), util::NOBODY);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &w.pair().ns_a, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .args(["--inh-caps=-all", "--"])
        .arg(util::bin())
        .args(["--no-update-check", "--config"])
        .arg(w.cfg.as_ref().unwrap())
        .env("HOME", w.home().path());
    w.spawn(cmd);
    // The log file was created by root before the switch; the agent only writes to stderr here.
    w.past_grace();
}

#[given("the grace period is over")]
async fn grace_over(w: &mut CaptureWorld) {
    w.past_grace();
}

#[when(expr = "the other namespace sends a SYN flood to port {int} for {int} seconds")]
async fn syn_flood(w: &mut CaptureWorld, port: u16, secs: u32) {
    let mut flood = w.pair().syn_flood(secs, port);
    let _ = flood.wait();
}

#[then(expr = "the event log has an {string} with attack_family {string} classified by {string}")]
async fn open_with_family(w: &mut CaptureWorld, name: String, family: String, by: String) {
    let e = w.event(&name, 5);
    assert_eq!((e["attack_family"].as_str(), e["classified_by"].as_str()), (Some(&*family), Some(&*by)), "{e}");
}

#[then("its top source address is the flooding namespace's address")]
async fn top_source(w: &mut CaptureWorld) {
    assert_eq!(w.event("incident_open", 1)["top_src_ips"][0]["ip"], w.pair().addr_b.as_str());
}

#[then(expr = "its top destination port is {int}")]
async fn top_port(w: &mut CaptureWorld, port: u64) {
    assert_eq!(w.event("incident_open", 1)["top_dst_ports"][0]["port"], port);
}

#[then(expr = "the {string} names a PCAP file {string}")]
async fn names_pcap(w: &mut CaptureWorld, name: String, _pattern: String) {
    let resolve = w.event(&name, 25);
    let id = w.event("incident_open", 1)["incident_id"].as_str().unwrap().to_string();
    let file = PathBuf::from(resolve["pcap_file"].as_str().unwrap_or_else(|| panic!("no pcap_file: {resolve}")));
    let fname = file.file_name().unwrap().to_string_lossy().to_string();
    // <incident id>_<UTC yyyymmddThhmmssZ>.pcap
    let stamp = fname.strip_prefix(&format!("{id}_")).and_then(|s| s.strip_suffix(".pcap")).unwrap_or("");
    assert!(stamp.len() == 16 && stamp.as_bytes()[8] == b'T' && stamp.ends_with('Z'), "{fname}");
    w.file = Some(file);
}

#[then("capinfos reads that file, which starts with the packets held before the incident opened")]
async fn capinfos_reads(w: &mut CaptureWorld) {
    let file = w.file.clone().expect("pcap file");
    // The file gets its final name once the writer has finished it, just after the resolve.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(util::capinfos_count(&file) > 0);
    let out = Command::new("capinfos").args(["-a", "-S", "-T", "-r"]).arg(&file).output().expect("capinfos");
    let text = String::from_utf8_lossy(&out.stdout);
    let first: f64 = text.split('\t').nth(1).and_then(|v| v.trim().parse().ok()).unwrap_or_else(|| panic!("{text}"));
    let open = util::event_time(&w.event("incident_open", 1));
    let open_s = open.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(first < open_s, "first packet {first} is not before the open at {open_s}");
}

#[then("the file is readable by its owner only, in a directory only its owner can enter")]
async fn private_file(w: &mut CaptureWorld) {
    let file = w.file.clone().expect("pcap file");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
}

#[then("the log has exactly one line saying packet capture is off because there is no CAP_NET_RAW")]
async fn one_reason_line(w: &mut CaptureWorld) {
    let log = w.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("packet capture off")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("CAP_NET_RAW"), "{}", lines[0]);
}

#[then(expr = "that line tells how to enable it with {string}")]
async fn tells_how(w: &mut CaptureWorld, hint: String) {
    assert!(w.log().lines().any(|l| l.contains("packet capture off") && l.contains(&hint)), "{}", w.log());
}

#[then(expr = "the {string} event has mode {string}")]
async fn start_mode(w: &mut CaptureWorld, name: String, mode: String) {
    assert_eq!(w.event(&name, 1)["mode"], mode.as_str());
}

#[then(expr = "the event log has an {string} classified by {string}")]
async fn classified_by(w: &mut CaptureWorld, name: String, by: String) {
    assert_eq!(w.event(&name, 5)["classified_by"], by.as_str());
}

#[when(expr = "I run {string}")]
async fn i_run(w: &mut CaptureWorld, line: String) {
    let home = w.home();
    let pcaps = util::captures().expect("the attack captures in tests/data (the runner checks)");
    let notes = home.path().join("notes.txt");
    std::fs::write(&notes, "meeting notes, not a capture\n").unwrap();
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("ftagent"));
    let mut cmd = home.command();
    for word in words {
        match word {
            "notes.txt" => cmd.arg(&notes),
            w if w.ends_with(".pcap") || w.ends_with(".pcapng") => cmd.arg(pcaps.join(w)),
            w => cmd.arg(w),
        };
        if word.contains(".pcap") {
            w.file = Some(pcaps.join(word));
        }
    }
    w.output = Some(cmd.output().expect("run ftagent"));
}

#[then("it exits 0 and prints one JSON object")]
async fn exits_0_json(w: &mut CaptureWorld) {
    let out = w.output.as_ref().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|v| v.is_object()));
}

fn json(w: &CaptureWorld) -> Value {
    serde_json::from_slice(&w.output.as_ref().unwrap().stdout).unwrap()
}

#[then(expr = "{string} equals what capinfos counts in the file")]
async fn equals_capinfos(w: &mut CaptureWorld, key: String) {
    assert_eq!(json(w)[&key].as_u64(), Some(util::capinfos_count(w.file.as_ref().unwrap())));
}

#[then(expr = "{string} is {string}")]
async fn key_is(w: &mut CaptureWorld, key: String, value: String) {
    assert_eq!(json(w)[&key], value.as_str());
}

#[then(expr = "it exits {int}")]
async fn exits(w: &mut CaptureWorld, code: i32) {
    assert_eq!(w.output.as_ref().unwrap().status.code(), Some(code));
}

#[then("the error names the file and says it is not a capture file")]
async fn names_file(w: &mut CaptureWorld) {
    let err = String::from_utf8_lossy(&w.output.as_ref().unwrap().stderr).into_owned();
    assert!(err.contains("notes.txt") && err.contains("not a capture file"), "{err}");
}

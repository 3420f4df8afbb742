//! The ExaBGP example hook (`contrib/exabgp`) run by the agent against a real `exabgp` (in the
//! agent's namespace) peering with a real `gobgpd` (in the other): the RTBH /32 and the FlowSpec
//! rule appear in gobgp's RIB when the incident opens and are withdrawn when it resolves.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::mitigation::{pair, replay_snmp, start};
use crate::util::{self, Home, NetnsPair};

/// A daemon in its own process group, stopped (group and all) on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this test created.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGTERM) };
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: as above.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn daemon(ns: &str, argv: &[&str], env: &[(&str, &str)], log: &Path) -> Daemon {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(argv).envs(env.iter().copied()).process_group(0);
    c.stdin(Stdio::null()).stdout(std::fs::File::create(log).unwrap()).stderr(Stdio::null());
    Daemon(c.spawn().unwrap_or_else(|e| panic!("{argv:?}: {e}")))
}

fn contrib(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib/exabgp").join(name)
}

fn gobgp(pair: &NetnsPair, args: &[&str]) -> String {
    let out = Command::new("ip").args(["netns", "exec", &pair.ns_b, "gobgp"]).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_rib(pair: &NetnsPair, limit: Duration, pred: impl Fn(&str, &str) -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        let (uni, flow) =
            (gobgp(pair, &["global", "rib", "-j"]), gobgp(pair, &["global", "rib", "-a", "ipv4-flowspec", "-j"]));
        if pred(&uni, &flow) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn configs(dir: &Path, pair: &NetnsPair, fifo: &Path) -> (PathBuf, PathBuf) {
    let gobgpd = dir.join("gobgpd.toml");
    std::fs::write(
        &gobgpd,
        format!(
            "[global.config]\n  as = 65002\n  router-id = \"{b}\"\n[[neighbors]]\n  [neighbors.config]\n    \
             neighbor-address = \"{a}\"\n    peer-as = 65001\n  [[neighbors.afi-safis]]\n    \
             [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n  [[neighbors.afi-safis]]\n    \
             [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-flowspec\"\n",
            a = pair.addr_a,
            b = pair.addr_b
        ),
    )
    .unwrap();
    let exabgp = dir.join("exabgp.conf");
    std::fs::write(
        &exabgp,
        format!(
            "process ftagent {{\n  run {relay} {fifo};\n  encoder text;\n}}\nneighbor {b} {{\n  router-id {a};\n  \
             local-address {a};\n  local-as 65001;\n  peer-as 65002;\n  family {{ ipv4 unicast; ipv4 flow; }}\n  \
             api {{ processes [ ftagent ]; }}\n}}\n",
            relay = contrib("ftagent-exabgp-relay").display(),
            fifo = fifo.display(),
            a = pair.addr_a,
            b = pair.addr_b
        ),
    )
    .unwrap();
    (gobgpd, exabgp)
}

#[test]
fn exabgp_hook_announces_rtbh_and_flowspec_at_open_and_withdraws_at_resolve() {
    let _flood = util::flood_lock();
    let Some(pair) = pair() else { return };
    for t in ["exabgp", "gobgpd", "gobgp"] {
        assert!(util::have(t), "needs {t} (packages exabgp, gobgpd)");
    }
    let home = Home::new();
    let fifo = home.path().join("exabgp.cmd");
    let (gobgpd_conf, exabgp_conf) = configs(home.path(), &pair, &fifo);
    let g = gobgpd_conf.to_string_lossy().to_string();
    let _gobgpd = daemon(
        &pair.ns_b,
        &["gobgpd", "-f", &g, "--api-hosts", "127.0.0.1:50051", "--pprof-disable", "-p"],
        &[],
        &home.path().join("gobgpd.log"),
    );
    let e = exabgp_conf.to_string_lossy().to_string();
    let env = [
        ("exabgp_daemon_user", "root"),
        ("exabgp_daemon_drop", "false"),
        ("exabgp_log_destination", "stdout"),
        ("exabgp_api_cli", "false"),
    ];
    let _exabgp = daemon(&pair.ns_a, &["exabgp", &e], &env, &home.path().join("exabgp.log"));
    let t0 = Instant::now();
    while !gobgp(&pair, &["neighbor"]).contains("Establ") {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "BGP session never came up: {}",
            std::fs::read_to_string(home.path().join("exabgp.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let hook = json!({"argv": [contrib("ftagent-exabgp-hook"), fifo], "timeout_s": 5});
    let r = start(&pair, home, json!({"mode": "enforce", "ttl_s": 2, "hook": hook}));
    let prefix = format!("{}/32", pair.addr_a);
    let mut replay = replay_snmp(&pair, 30_000, 20);
    let open = r.wait("incident_open", Duration::from_secs(3), |_| true);
    let announced = wait_rib(&pair, Duration::from_secs(3), |uni, flow| {
        uni.contains(&prefix) && flow.contains(&prefix) && flow.contains("161")
    });
    let at_open = Instant::now();
    assert!(announced, "no RTBH/FlowSpec route in gobgp's RIB: {}", r.stderr());
    let uni: Value = serde_json::from_str(&gobgp(&pair, &["global", "rib", "-j"])).unwrap();
    assert!(
        uni.to_string().contains("65535:666") || uni.to_string().contains("4294902426"),
        "BLACKHOLE community: {uni}"
    );
    let _ = replay.wait();
    r.wait("incident_resolve", Duration::from_secs(15), |e| e["incident_id"] == open["incident_id"]);
    let withdrawn =
        wait_rib(&pair, Duration::from_secs(5), |uni, flow| !uni.contains(&prefix) && !flow.contains(&prefix));
    eprintln!("ExaBGP hook: routes in gobgp's RIB at open, withdrawn {} ms after", at_open.elapsed().as_millis());
    assert!(withdrawn, "routes still in gobgp's RIB after the resolve: {}", gobgp(&pair, &["global", "rib"]));
    r.stop();
}

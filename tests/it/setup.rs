//! `--setup` driven through the real binary's stdin: limited user setup, root setup in an
//! injected root, re-runs keeping extra keys, a key without node UUID re-prompted, a bad
//! interface warned about, the 0600 file from its first byte, and a non-interactive limited
//! setup followed by a run.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::{self, Home};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Run `cmd` with `input` on stdin.
fn feed(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn user_config(home: &Home) -> std::path::PathBuf {
    home.path().join(".config/ftagent/config.json")
}

#[test]
fn limited_user_setup_writes_a_private_limited_config() {
    let home = Home::new();
    // Empty key = local mode, interface 0 = auto, no service.
    let out = feed(home.unprivileged().args(["--setup", "--limited"]), "\n0\nn\n");
    assert!(out.status.success(), "{}", text(&out));
    let cfg = user_config(&home);
    assert_eq!(mode(&cfg), 0o600);
    assert_eq!(mode(cfg.parent().unwrap()), 0o700);
    let v = read_json(&cfg);
    assert_eq!(v["limited"], true);
    assert_eq!(v["api_key"], "");
    assert_eq!(v["interface"], "auto");
    assert!(text(&out).contains("local mode"), "{}", text(&out));
}

#[test]
fn key_without_node_uuid_is_asked_again_and_the_key_is_never_printed() {
    let home = Home::new();
    let key = "ftk_live_0123456789abcdefXYZ9";
    let input = format!("{key}\n\n  \nnode-77\nhttp://127.0.0.1:9/api/v1/\n0\nn\n");
    let out = feed(home.unprivileged().args(["--setup", "--limited"]), &input);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert_eq!(t.matches("A node UUID is required with an API key.").count(), 2, "{t}");
    assert!(!t.contains(key), "the key must not be printed: {t}");
    assert!(t.contains("ftk_live...XYZ9"), "masked key shown: {t}");
    let v = read_json(&user_config(&home));
    assert_eq!((v["api_key"].as_str(), v["node_uuid"].as_str()), (Some(key), Some("node-77")));
    assert_eq!(v["api_base"], "http://127.0.0.1:9/api/v1");
}

#[test]
fn rerun_keeps_keys_it_does_not_ask_about_and_warns_about_a_bad_interface() {
    let home = Home::new();
    let cfg = user_config(&home);
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    let before = serde_json::json!({
        "api_key": "abcdefgh-1234-5678-wxyz", "node_uuid": "n-1", "interface": "auto",
        "webhook_url": "http://127.0.0.1:9/hook", "holddown_ticks": 25,
        "ioc_patterns": [{"pattern": "mirai", "attack_name": "mirai_botnet"}], "legacy_python_key": "x"
    });
    std::fs::write(&cfg, before.to_string()).unwrap();
    // Keep key, uuid, base; a made-up interface twice (warned, then kept); no service.
    let out = feed(home.unprivileged().arg("--setup"), "\n\n\nnosuch0\nnosuch0\nn\n");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("warning: interface `nosuch0` is not on this host now"), "{t}");
    let v = read_json(&cfg);
    assert_eq!(v["interface"], "nosuch0");
    assert_eq!(v["api_key"], before["api_key"]);
    for k in ["webhook_url", "holddown_ticks", "ioc_patterns", "legacy_python_key"] {
        assert_eq!(v[k], before[k], "{k} kept");
    }
    assert_eq!(v["limited"], true, "a non-root setup is limited");
    assert_eq!(mode(&cfg), 0o600);
}

#[test]
fn root_setup_writes_etc_config_for_the_service_user() {
    if !is_root() {
        util::skip("root setup needs euid 0 (CI runs as root)");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::write(
        root.path().join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nftagent:x:4242:4243::/var/lib/ftagent:/usr/sbin/nologin\n",
    )
    .unwrap();
    let home = Home::new();
    let capture = cfg!(any(feature = "capture-scapy", feature = "capture-tcpdump"));
    let pcap = if capture { "y\ntcpdump\n" } else { "" };
    let input = format!("key-0123456789abcdef\nnode-1\n\n0\n{pcap}n\n");
    let out = feed(home.command().arg("--setup").env("FTAGENT_ROOT", root.path()), &input);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let cfg = root.path().join("etc/ftagent/config.json");
    let meta = std::fs::metadata(&cfg).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4242, 4243), "handed to the ftagent user");
    assert_eq!(mode(&cfg), 0o600);
    let v = read_json(&cfg);
    assert_eq!(v["limited"], false);
    assert_eq!(v["api_base"], "https://flowtriq.com/api/v1");
    if capture {
        assert_eq!((v["pcap_enabled"].as_bool(), v["pcap_mode"].as_str()), (Some(true), Some("tcpdump")));
    } else {
        assert!(v.get("pcap_mode").is_none(), "no capture question without capture: {v}");
    }
    assert!(!home.path().join(".config").exists(), "root setup writes no per-user file");
}

#[test]
fn config_is_created_0600_from_the_first_byte() {
    if !util::have("strace") {
        util::skip("strace is not installed (apt-get install strace)");
        return;
    }
    let home = Home::new();
    let trace = home.path().join("trace");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-e", "trace=openat,open,creat,rename,renameat,renameat2,chmod,fchmod", "-o"])
        .arg(&trace)
        .arg(util::bin())
        .args(["--setup", "--limited"])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .env("XDG_STATE_HOME", home.path().join(".local/state"));
    let out = feed(&mut cmd, "\n0\nn\n");
    if !out.status.success() && text(&out).contains("ptrace") {
        util::skip("ptrace is not permitted here");
        return;
    }
    assert!(out.status.success(), "{}", text(&out));
    let log = std::fs::read_to_string(&trace).unwrap();
    let creates: Vec<&str> = log.lines().filter(|l| l.contains("config.json") && l.contains("O_CREAT")).collect();
    assert_eq!(creates.len(), 1, "exactly one create of the config (a temp file):\n{log}");
    assert!(creates[0].contains("O_EXCL") && creates[0].contains("0600"), "{}", creates[0]);
    assert!(creates[0].contains(".config.json.tmp."), "written to a temp file first: {}", creates[0]);
    assert!(log.lines().any(|l| l.contains("rename") && l.contains(".config.json.tmp.")), "then renamed:\n{log}");
}

#[test]
fn non_interactive_limited_setup_then_the_agent_runs_with_it() {
    let home = Home::new();
    let out = home
        .unprivileged()
        .args(["--setup", "--limited", "--non-interactive", "--interface", "lo"])
        .env("FTAGENT_API_KEY", "")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let cfg = user_config(&home);
    assert_eq!(read_json(&cfg)["interface"], "lo");
    let mut agent =
        home.unprivileged().arg("--no-update-check").arg("--config").arg(&cfg).stderr(Stdio::null()).spawn().unwrap();
    let log = home.path().join(".local/state/ftagent/events.jsonl");
    let start = util::wait_for_event(&log, "agent_start", Duration::from_secs(10));
    let status = util::terminate(&mut agent, Duration::from_secs(5));
    assert_eq!(start.expect("agent_start in the event log")["interface"], "lo");
    assert!(status.is_some_and(|s| s.success()));
}

#[test]
fn non_interactive_key_without_uuid_is_a_usage_error() {
    let home = Home::new();
    let out = home
        .command()
        .args(["--setup", "--limited", "--non-interactive"])
        .env("FTAGENT_API_KEY", "k-0123456789abcdef")
        .env_remove("FTAGENT_NODE_UUID")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("FTAGENT_NODE_UUID"));
    assert!(!user_config(&home).exists());
}

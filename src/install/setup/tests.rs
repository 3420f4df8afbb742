//! Wizard logic on in-memory input: answers, re-prompts, merge, file mode.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn env_for(home: &Path) -> Env {
    Env { euid: 1000, home: Some(home.into()), root: "/nonexistent-root".into(), ..Env::default() }
}

fn run_with(input: &str, opts: &Options, env: &Env) -> (Result<u8>, String) {
    let mut inp = input.as_bytes();
    let mut out = Vec::new();
    let r = run(opts, env, &mut Prompter::new(&mut inp, &mut out, false), Path::new("/usr/bin/ftagent"));
    (r, String::from_utf8(out).unwrap())
}

fn write_fake_proc(dir: &Path) -> PathBuf {
    let proc_root = dir.join("proc");
    std::fs::create_dir_all(proc_root.join("net")).unwrap();
    std::fs::write(
        proc_root.join("net/dev"),
        "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes\n\
         lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n\
         eth0: 3221225472 900 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n",
    )
    .unwrap();
    proc_root
}

#[test]
fn user_setup_with_key_writes_limited_0600_config() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_for(dir.path());
    // key, empty uuid (re-prompted), uuid, api base default, interface 0 = auto, no service.
    let (r, out) = run_with("sk_live_1234567890abcdef\n\nnode-42\n\n0\nn\n", &Options::default(), &env);
    assert_eq!(r.unwrap(), 0, "{out}");
    assert!(out.contains("A node UUID is required with an API key."), "{out}");
    assert!(!out.contains("sk_live_1234567890abcdef"), "key must never be shown: {out}");
    let path = dir.path().join(".config/ftagent/config.json");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["api_key"], "sk_live_1234567890abcdef");
    assert_eq!(v["node_uuid"], "node-42");
    assert_eq!(v["interface"], "auto");
    assert_eq!(v["limited"], true);
}

#[test]
fn rerun_keeps_unasked_keys_and_offers_current_values() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_for(dir.path());
    let proc_root = write_fake_proc(dir.path());
    let cfg_dir = dir.path().join(".config/ftagent");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let cfg = serde_json::json!({"api_key": "abcdefgh12345678wxyz", "node_uuid": "n1", "webhook_url": "http://127.0.0.1:9/h",
        "sample_interval_ms": 500, "procfs_root": proc_root, "python_only_key": 1});
    std::fs::write(cfg_dir.join("config.json"), cfg.to_string()).unwrap();
    // Enter keeps key, uuid, base; "2" picks eth0 from the fake /proc; no service.
    let (r, out) = run_with("\n\n\n2\nn\n", &Options::default(), &env);
    assert_eq!(r.unwrap(), 0, "{out}");
    assert!(out.contains("abcdefgh...wxyz"), "{out}");
    assert!(out.contains("eth0") && out.contains("3.0 GiB"), "{out}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(cfg_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["api_key"], "abcdefgh12345678wxyz");
    assert_eq!(v["interface"], "eth0");
    assert_eq!(v["webhook_url"], "http://127.0.0.1:9/h");
    assert_eq!(v["sample_interval_ms"], 500);
    assert_eq!(v["python_only_key"], 1);
}

#[test]
fn unknown_interface_is_warned_about_and_kept_only_when_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_for(dir.path());
    let (r, out) = run_with("\nbad/name\neth9\neth9\nn\n", &Options::default(), &env);
    assert_eq!(r.unwrap(), 0, "{out}");
    assert!(out.contains("`bad/name` is not an interface name"), "{out}");
    assert!(out.contains("warning: interface `eth9` is not on this host now"), "{out}");
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(".config/ftagent/config.json")).unwrap())
            .unwrap();
    assert_eq!(v["interface"], "eth9");
    assert_eq!(v["api_key"], "");
}

#[test]
fn input_ending_early_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_for(dir.path());
    let (r, _) = run_with("key-without-uuid-given\n", &Options::default(), &env);
    assert!(r.unwrap_err().to_string().contains("nothing was written"));
    assert!(!dir.path().join(".config/ftagent/config.json").exists());
}

#[test]
fn non_interactive_takes_env_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_for(dir.path());
    let opts = Options {
        non_interactive: true,
        api_key_env: Some("k-123456789012345".into()),
        node_uuid_env: Some("u-1".into()),
        api_base: Some("http://127.0.0.1:1/api/".into()),
        interface: Some("auto".into()),
        ..Options::default()
    };
    let (r, out) = run_with("", &opts, &env);
    assert_eq!(r.unwrap(), 0, "{out}");
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(".config/ftagent/config.json")).unwrap())
            .unwrap();
    assert_eq!(v["api_base"], "http://127.0.0.1:1/api");
    assert_eq!(v["node_uuid"], "u-1");
    let missing = Options { node_uuid_env: None, ..opts };
    let dir2 = tempfile::tempdir().unwrap();
    let (r, _) = run_with("", &missing, &env_for(dir2.path()));
    assert!(matches!(r, Err(Error::Usage(m)) if m.contains("FTAGENT_NODE_UUID")));
}

#[test]
fn broken_existing_config_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.json");
    std::fs::write(&p, "{\n  \"api_key\": ,\n}").unwrap();
    let err = read_raw(&p).unwrap_err();
    assert!(matches!(err, Error::ConfigSyntax { line: 2, .. }), "{err}");
}

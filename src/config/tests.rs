use super::*;
use crate::config::paths::{Env, Paths};

fn paths() -> Paths {
    Paths::resolve(&Env { euid: 1000, home: Some("/home/u".into()), root: "/".into(), ..Env::default() }, false)
}

fn parse(text: &str) -> Result<Settings> {
    Settings::from_json(text, Some(Path::new("/etc/ftagent/config.json")), &paths())
}

#[test]
fn empty_object_gives_documented_defaults() {
    let s = parse("{}").unwrap();
    assert_eq!(s.api_base, DEFAULT_API_BASE);
    assert_eq!(s.interface, "auto");
    assert_eq!(s.detect, DetectConfig::default());
    assert_eq!(s.heartbeat_interval, Duration::from_secs(30));
    assert_eq!(s.metrics_interval, Duration::from_secs(10));
    assert_eq!(s.state_dir, PathBuf::from("/home/u/.local/state/ftagent"));
    assert_eq!(s.events_file, Some(PathBuf::from("/home/u/.local/state/ftagent/events.jsonl")));
    assert_eq!(s.pcap_dir, PathBuf::from("/home/u/.local/state/ftagent/pcaps"));
    assert_eq!(s.log_file, Some(PathBuf::from("/home/u/.local/state/ftagent/ftagent.log")));
    assert_eq!(s.prometheus_textfile, None);
    assert_eq!(s.procfs_root, PathBuf::from("/proc"));
    assert_eq!(s.pcap_mode, PcapMode::Scapy);
    assert_eq!(s.spool_max_mb, 64);
    assert!(!s.api_enabled());
}

#[test]
fn every_key_is_read() {
    let s = parse(
        r#"{"api_key":"k-1234567890abcdef","node_uuid":"n1","api_base":"http://127.0.0.1:9/api/",
        "interface":"eth0.100","limited":true,"pcap_enabled":false,"pcap_mode":"tcpdump",
        "pcap_dir":"/p","pcap_snaplen":96,"pcap_ring_packets":5,"pcap_max_packets":7,
        "pcap_retention_days":2,"pcap_max_disk_mb":3,"dynamic_threshold":false,
        "threshold_multiplier":4.5,"min_pps_threshold":100,"min_bps_threshold":2000,
        "baseline_window_s":10,"grace_period_s":3,"sample_interval_ms":100,"confirm_ticks":3,
        "holddown_ticks":4,"cooldown_s":5,"heartbeat_interval":6,"metrics_interval":7,
        "auto_update":false,"update_url":"http://u","log_file":"","log_level":"debug",
        "state_dir":"/s","events_file":"","spool_max_mb":9,"webhook_url":"http://w",
        "prometheus_textfile":"/t.prom","ioc_patterns":[{"pattern":"abc","attack_name":"mirai_botnet","attack_family":"udp_flood"}],
        "procfs_root":"/host/proc"}"#,
    )
    .unwrap();
    assert_eq!(s.api_base, "http://127.0.0.1:9/api");
    assert_eq!(s.interface, "eth0.100");
    assert!(s.limited && !s.pcap_enabled && !s.auto_update && !s.detect.dynamic_threshold);
    assert_eq!(s.pcap_mode, PcapMode::Tcpdump);
    assert_eq!((s.pcap_snaplen, s.pcap_ring_packets, s.pcap_max_packets), (96, 5, 7));
    assert_eq!((s.pcap_retention_days, s.pcap_max_disk_mb, s.spool_max_mb), (2, 3, 9));
    assert_eq!(s.detect.threshold_multiplier, 4.5);
    assert_eq!(s.detect.min_pps_threshold, 100.0);
    assert_eq!(s.detect.min_bits_per_s_threshold, 2000.0);
    assert_eq!(s.detect.baseline_window, Duration::from_secs(10));
    assert_eq!(s.detect.grace_period, Duration::from_secs(3));
    assert_eq!(s.detect.sample_interval, Duration::from_millis(100));
    assert_eq!((s.detect.confirm_ticks, s.detect.holddown_ticks), (3, 4));
    assert_eq!(s.detect.cooldown, Duration::from_secs(5));
    assert_eq!(s.log_file, None);
    assert_eq!(s.events_file, None);
    assert_eq!(s.log_level, LevelFilter::Debug);
    assert_eq!(s.state_dir, PathBuf::from("/s"));
    assert_eq!(s.pcap_dir, PathBuf::from("/p"));
    assert_eq!(s.prometheus_textfile, Some(PathBuf::from("/t.prom")));
    assert_eq!(s.ioc_patterns[0].attack_name, "mirai_botnet");
    assert_eq!(s.procfs_root, PathBuf::from("/host/proc"));
    assert_eq!(s.masked_api_key(), "k-123456...cdef");
}

#[test]
fn unknown_keys_are_kept_and_listed() {
    let s = parse(r#"{"pcap_filter":"udp","legacy_thing":1}"#).unwrap();
    assert_eq!(s.unknown_keys, vec!["legacy_thing", "pcap_filter"]);
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let err = parse("{\n  \"interface\": \"eth0\"\n  \"limited\": true\n}").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("/etc/ftagent/config.json: invalid JSON at line 3, column 3"), "{msg}");
    assert_eq!(err.exit_code(), crate::error::EXIT_CONFIG);
}

#[test]
fn wrong_type_names_key_and_position() {
    let err = parse("{\n  \"confirm_ticks\": \"two\"\n}").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("key `confirm_ticks` (line 2, column 3)"), "{msg}");
    assert!(msg.contains("invalid type"), "{msg}");
}

#[test]
fn out_of_range_names_the_accepted_range() {
    let msg = parse(r#"{"sample_interval_ms": 50}"#).unwrap_err().to_string();
    assert!(msg.contains("sample_interval_ms") && msg.contains("100..=10000"), "{msg}");
}

#[test]
fn key_without_node_uuid_is_rejected() {
    let msg = parse(r#"{"api_key":"abc"}"#).unwrap_err().to_string();
    assert!(msg.contains("node_uuid"), "{msg}");
}

#[test]
fn non_object_and_bad_enums_are_rejected() {
    assert!(parse("[1,2]").is_err());
    assert!(parse(r#"{"pcap_mode":"pf_ring"}"#).unwrap_err().to_string().contains("pcap_mode"));
    assert!(parse(r#"{"log_level":"LOUD"}"#).unwrap_err().to_string().contains("log_level"));
    assert!(parse(r#"{"api_base":"ftp://x"}"#).unwrap_err().to_string().contains("api_base"));
}

#[test]
fn missing_default_file_means_defaults_but_missing_explicit_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = Paths { config: dir.path().join("nope.json"), ..paths() };
    assert!(Settings::load(None, &p).is_ok());
    let err = Settings::load(Some(&dir.path().join("nope.json")), &p).unwrap_err();
    assert!(err.to_string().contains("nope.json"));
    assert_eq!(err.exit_code(), crate::error::EXIT_CONFIG);
}

#[test]
fn short_keys_are_fully_masked() {
    assert_eq!(mask_key("abc"), "***");
    assert_eq!(mask_key(""), "");
}

#[test]
fn access_logs_are_read_and_checked() {
    use crate::config::accesslog::{AccessLog, Format};
    let s = parse(
        r#"{"access_logs": [{"path": "/var/log/nginx/access.log"}, {"path": "/srv/caddy.log", "format": "caddy"}],
        "http_min_rps_threshold": 800}"#,
    )
    .unwrap();
    assert_eq!(
        s.access_logs,
        vec![
            AccessLog { path: "/var/log/nginx/access.log".into(), format: Format::Combined },
            AccessLog { path: "/srv/caddy.log".into(), format: Format::Caddy },
        ]
    );
    assert_eq!(s.http_min_rps_threshold, 800.0);
    assert!(parse("{}").unwrap().access_logs.is_empty());
    assert_eq!(parse("{}").unwrap().http_min_rps_threshold, 500.0);
    for (text, says) in [
        (r#"{"access_logs": [{"path": "/a", "format": "apache"}]}"#, "unknown variant `apache`"),
        (r#"{"access_logs": [{"path": "logs/a"}]}"#, "absolute"),
        (r#"{"access_logs": [{"path": "/a"}, {"path": "/a"}]}"#, "listed twice"),
        (r#"{"access_logs": [{"path": "/a", "fmt": "json"}]}"#, "unknown field `fmt`"),
        (r#"{"access_logs": {"path": "/a"}}"#, "sequence"),
    ] {
        let e = parse(text).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_CONFIG);
        let msg = e.to_string();
        assert!(msg.contains("key `access_logs`") && msg.contains(says), "{msg}");
    }
    let e = parse(r#"{"http_min_rps_threshold": 0}"#).unwrap_err().to_string();
    assert!(e.contains("key `http_min_rps_threshold`") && e.contains("accepted: 1..=1000000000"), "{e}");
}

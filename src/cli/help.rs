//! The long help after the flags (`--help` and the man page's extra section, generated from
//! clap): signals, the operator interfaces of §6.6 and their config keys, exit codes. Text only.

pub const AFTER_LONG_HELP: &str = "\
With no flags, runs the agent in the foreground until SIGTERM/SIGINT. SIGHUP makes it reopen the log file and the event log (the packages' logrotate file sends it after rotating).

STATE FILE, --status AND --top: the running agent rewrites <state dir>/status.json (mode 0600) every second: mode, interface, rates against the thresholds, baseline quality and grace time left, the open incident, mitigations, spool depth, last API success and two minutes of per-second rates. --status prints it (--json for scripts); --top shows it live (q, Esc or Ctrl-C quits) or, when stdout is not a terminal, prints one line per second. Both exit 3 when no agent is running for the config: no state file, its pid is not an ftagent process, or the file was not rewritten for 5 s.

metrics_listen (config key, default \"\" = off): serve Prometheus metrics at http://ADDR/metrics, e.g. \"127.0.0.1:9311\" (a bare port binds 127.0.0.1). The metrics are those of prometheus_textfile plus ftagent_threshold_bps, ftagent_baseline_quality (0 learning, 1 low, 2 medium, 3 high), ftagent_detection_active and ftagent_packets_per_second / ftagent_bytes_per_second with direction=\"rx\"|\"tx\". Alert rules and a Grafana dashboard ship in the source tree under contrib/.

webhook_format (config key): json (default: the event plus a one-line text), slack (an incoming-webhook message), discord (content plus an embed) or pagerduty (Events API v2: trigger on open, resolve on resolve, dedup_key = the incident id; needs pagerduty_routing_key, the integration key).

webhook_secret (config key): sign every webhook body. Headers: X-Ftagent-Timestamp: <unix seconds> and X-Ftagent-Signature: sha256=<hex HMAC-SHA256 of \"<timestamp>.<body>\" under the secret>. Check it with: printf '%s.%s' \"$TS\" \"$BODY\" | openssl dgst -sha256 -hmac \"$SECRET\"

Exit status: 0 success; 1 runtime failure; 2 usage error; 3 no agent running (--status, --top); 78 invalid config.";

//! `webhook_format` and `webhook_secret` (§6.6) against the loopback server: `ftagent --test`
//! sends a synthetic open and resolve through the real webhook sink. Slack bodies carry `text`
//! (plus mrkdwn blocks), Discord bodies `content` (≤ 2000 chars, plus an embed), PagerDuty
//! Events API v2 a trigger and a resolve with the same `dedup_key` (the incident id); the
//! signature of every request verifies with `openssl dgst -sha256 -hmac`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::apiserver::{self, Recorded, Server};
use crate::util::{self, Home};

/// Run `--test` with a webhook of this format; the requests the hook received.
fn hooks(extra: Value) -> Vec<Recorded> {
    let home = Home::new();
    let server = Server::http(0, Box::new(|_r: &Recorded| apiserver::ok("ok")));
    let mut cfg = json!({ "webhook_url": format!("{}/hook", server.base) });
    cfg.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let cfg = home.write_config(cfg);
    let out = util::run(home.command().args(["--test", "--config"]).arg(cfg));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let reqs = server.to("/hook");
    assert_eq!(reqs.len(), 2, "open and resolve");
    reqs
}

#[test]
fn slack_bodies_are_incoming_webhook_messages() {
    let reqs = hooks(json!({ "webhook_format": "slack" }));
    for r in &reqs {
        let b = r.json();
        let text = b["text"].as_str().expect("Slack needs `text`");
        assert!(text.starts_with("[TEST] DDoS incident "), "{b}");
        assert_eq!(b["blocks"][0]["type"], "section", "{b}");
        assert_eq!(b["blocks"][0]["text"]["type"], "mrkdwn", "{b}");
        assert!(b.get("event").is_none(), "no agent fields at the top level: {b}");
    }
    assert!(reqs[0].json()["text"].as_str().unwrap().contains("opened"));
    assert!(reqs[1].json()["text"].as_str().unwrap().contains("resolved"));
}

#[test]
fn discord_bodies_have_content_and_an_embed() {
    let reqs = hooks(json!({ "webhook_format": "discord" }));
    for r in &reqs {
        let b = r.json();
        let content = b["content"].as_str().expect("Discord needs `content`");
        assert!(!content.is_empty() && content.chars().count() <= 2000, "{b}");
        let embed = &b["embeds"][0];
        assert!(embed["title"].as_str().is_some_and(|t| t.len() <= 256), "{b}");
        assert!(embed["color"].is_u64() && embed["timestamp"].is_string(), "{b}");
        assert_eq!(b["allowed_mentions"]["parse"], json!([]), "no @everyone from a body: {b}");
    }
}

#[test]
fn pagerduty_triggers_then_resolves_with_the_incident_id_as_dedup_key() {
    let reqs =
        hooks(json!({ "webhook_format": "pagerduty", "pagerduty_routing_key": "R0UT1NGKEY0123456789abcdef012345" }));
    let (trigger, resolve) = (reqs[0].json(), reqs[1].json());
    assert_eq!(trigger["event_action"], "trigger", "{trigger}");
    assert_eq!(resolve["event_action"], "resolve", "{resolve}");
    for b in [&trigger, &resolve] {
        assert_eq!(b["routing_key"], "R0UT1NGKEY0123456789abcdef012345");
    }
    let dedup = trigger["dedup_key"].as_str().expect("dedup_key");
    assert_eq!(dedup.len(), 36, "the incident id: {dedup}");
    assert_eq!(resolve["dedup_key"], dedup);
    let p = &trigger["payload"];
    assert!(p["summary"].as_str().is_some_and(|s| !s.is_empty() && s.len() <= 1024), "{p}");
    assert!(p["source"].as_str().is_some_and(|s| !s.is_empty()), "{p}");
    assert!(["critical", "error", "warning", "info"].contains(&p["severity"].as_str().unwrap_or("")), "{p}");
    assert_eq!(p["custom_details"]["incident_id"], dedup, "{p}");
}

#[test]
fn pagerduty_without_a_routing_key_is_a_config_error() {
    let home = Home::new();
    let cfg = home.write_config(json!({ "webhook_url": "http://127.0.0.1:9/x", "webhook_format": "pagerduty" }));
    let out = util::run(home.command().args(["--test", "--config"]).arg(cfg));
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pagerduty_routing_key"));
    let cfg = home.write_config(json!({ "webhook_format": "teams" }));
    let out = util::run(home.command().args(["--test", "--config"]).arg(cfg));
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("webhook_format"));
}

/// `printf '%s.%s' TS BODY | openssl dgst -sha256 -hmac SECRET`, as a receiver would check.
fn openssl_hmac(secret: &str, ts: &str, body: &[u8]) -> String {
    let mut c = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret, "-r"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    let mut input = format!("{ts}.").into_bytes();
    input.extend_from_slice(body);
    c.stdin.take().unwrap().write_all(&input).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

#[test]
fn every_body_is_signed_and_verifies_with_openssl() {
    assert!(util::have("openssl"), "openssl is needed (apt-get install openssl)");
    let secret = "whsec_0123456789";
    let reqs = hooks(json!({ "webhook_secret": secret }));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for r in &reqs {
        let ts = r.header("x-ftagent-timestamp").expect("X-Ftagent-Timestamp");
        let age = now.abs_diff(ts.parse::<u64>().expect("unix seconds"));
        assert!(age < 60, "timestamp {ts} is the send time");
        let sig = r.header("x-ftagent-signature").expect("X-Ftagent-Signature");
        let hex = openssl_hmac(secret, ts, &r.body);
        assert_eq!(hex.len(), 64, "openssl said {hex:?}");
        assert_eq!(sig, format!("sha256={hex}"), "signature of {}", String::from_utf8_lossy(&r.body));
        assert_ne!(openssl_hmac("wrong", ts, &r.body), hex);
    }
    let unsigned = hooks(json!({}));
    assert!(unsigned[0].header("x-ftagent-signature").is_none(), "no secret, no signature");
}

/// The running agent's spooled path: a flood on a fake /proc tree opens and resolves an
/// incident; PagerDuty gets a signed trigger and a signed resolve whose `dedup_key` is the
/// incident id of the event log.
#[test]
fn a_running_agent_sends_signed_pagerduty_trigger_and_resolve_for_a_real_incident() {
    use crate::fakeproc::{self, FakeProc};
    use crate::reporting::{flood, merge, start_agent};
    let home = Home::new();
    let fake = FakeProc::start(home.path(), 100);
    let hook = Server::http(0, Box::new(|_r: &Recorded| apiserver::ok("{\"status\":\"success\"}")));
    let secret = "pd-secret-42";
    let extra = json!({
        "webhook_url": format!("{}/v2/enqueue", hook.base), "webhook_format": "pagerduty",
        "pagerduty_routing_key": "R0UT1NGKEY", "webhook_secret": secret,
    });
    let cfg = home.write_config(merge(fakeproc::agent_config(&fake), extra));
    let mut agent = start_agent(&home, &cfg);
    std::thread::sleep(Duration::from_millis(1500));
    let open = flood(&home, &fake, 1, Duration::from_millis(800));
    assert!(hook.wait_until(Duration::from_secs(10), |r| r.len() >= 2), "{:?}", hook.requests());
    util::terminate(&mut agent, Duration::from_secs(5));
    let reqs = hook.requests();
    let actions: Vec<Value> = reqs.iter().map(|r| r.json()["event_action"].clone()).collect();
    assert_eq!(actions, [json!("trigger"), json!("resolve")]);
    for r in &reqs {
        assert_eq!(r.json()["dedup_key"], open["incident_id"], "{}", String::from_utf8_lossy(&r.body));
        let ts = r.header("x-ftagent-timestamp").expect("timestamp");
        let sig = r.header("x-ftagent-signature").expect("signature");
        assert_eq!(sig, format!("sha256={}", openssl_hmac(secret, ts, &r.body)));
    }
}

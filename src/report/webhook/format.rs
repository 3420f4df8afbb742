//! `webhook_format` and `webhook_secret` (§6.6): the webhook body shaped for its receiver
//! (Slack and Discord incoming webhooks, PagerDuty Events API v2) and the HMAC-SHA256 signature
//! headers. Pure: the shaped body is what the spool stores; signing happens per attempt (the
//! timestamp is the send time), in the sender.
//!
//! Signature: `X-Ftagent-Timestamp: <unix seconds>` and
//! `X-Ftagent-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. The timestamp is
//! part of the signed string so a receiver that rejects old timestamps also rejects replays.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::config::operator::WebhookFormat;
use crate::event::{Event, EventBody};

/// What the shaping needs besides the event.
#[derive(Debug, Clone, Default)]
pub struct Shape {
    pub format: WebhookFormat,
    pub routing_key: String,
}

/// The body to send for an incident open/resolve, given the §6.4 JSON body (with `text`).
pub fn shape(shape: &Shape, e: &Event, json_body: Value, host: &str) -> Value {
    let text = json_body["text"].as_str().unwrap_or_default().to_string();
    match shape.format {
        WebhookFormat::Json => json_body,
        WebhookFormat::Slack => slack(&text, e),
        WebhookFormat::Discord => discord(&text, e),
        WebhookFormat::Pagerduty => pagerduty(&shape.routing_key, &text, e, json_body, host),
    }
}

/// Slack incoming webhook: `text` (shown in notifications) plus one section block.
fn slack(text: &str, e: &Event) -> Value {
    let icon = if matches!(e.body, EventBody::IncidentOpen(_)) { ":rotating_light:" } else { ":white_check_mark:" };
    json!({
        "text": text,
        "blocks": [{ "type": "section", "text": { "type": "mrkdwn", "text": format!("{icon} {}", slack_escape(text)) } }],
    })
}

/// Slack's mrkdwn needs only `&`, `<` and `>` escaped.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Discord webhook: `content` (≤ 2000 characters) plus one embed.
fn discord(text: &str, e: &Event) -> Value {
    let (title, colour) = match &e.body {
        EventBody::IncidentOpen(_) => ("DDoS incident opened", 0xE0_1E_37),
        _ => ("DDoS incident resolved", 0x2E_B8_6E),
    };
    let content: String = text.chars().take(2000).collect();
    json!({
        "username": "ftagent",
        "content": content,
        "allowed_mentions": { "parse": [] },
        "embeds": [{
            "title": title,
            "description": text.chars().take(4096).collect::<String>(),
            "color": colour,
            "timestamp": e.ts,
            "footer": { "text": format!("incident {}", e.incident_id().unwrap_or_default()) },
        }],
    })
}

/// PagerDuty Events API v2: trigger on open, resolve on resolve, `dedup_key` = incident id.
fn pagerduty(routing_key: &str, text: &str, e: &Event, details: Value, host: &str) -> Value {
    let dedup = e.incident_id().unwrap_or_default();
    match &e.body {
        EventBody::IncidentOpen(o) => json!({
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": dedup,
            "client": "ftagent",
            "payload": {
                "summary": text.chars().take(1024).collect::<String>(),
                "source": host,
                "severity": pagerduty_severity(&o.severity),
                "timestamp": e.ts,
                "component": o.interface,
                "group": "ftagent",
                "class": o.class.attack_family,
                "custom_details": details,
            },
        }),
        _ => json!({ "routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup }),
    }
}

/// Our severities onto PagerDuty's (critical, error, warning, info).
fn pagerduty_severity(ours: &str) -> &'static str {
    match ours {
        "critical" => "critical",
        "high" => "error",
        _ => "warning",
    }
}

/// The signature headers for `body` sent at `unix_s`.
pub fn signature_headers(secret: &str, unix_s: u64, body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("X-Ftagent-Timestamp".into(), unix_s.to_string()),
        ("X-Ftagent-Signature".into(), format!("sha256={}", sign(secret, unix_s, body))),
    ]
}

/// Hex HMAC-SHA256 of `"<unix_s>.<body>"` under `secret`.
pub fn sign(secret: &str, unix_s: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(unix_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_timestamp_dot_body() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        let want = "1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940";
        assert_eq!(sign("s3cret", 1_700_000_000, br#"{"a":1}"#), want);
        assert_ne!(sign("s3cret", 1_700_000_001, br#"{"a":1}"#), want, "the timestamp is signed");
    }

    #[test]
    fn pagerduty_severity_mapping() {
        assert_eq!(pagerduty_severity("critical"), "critical");
        assert_eq!(pagerduty_severity("high"), "error");
        assert_eq!(pagerduty_severity("medium"), "warning");
    }
}

//! Config keys of the operator interfaces (§6.6): `metrics_listen`, `webhook_format`,
//! `webhook_secret`, `pagerduty_routing_key`. Parsed and validated here (exit 78 naming the key);
//! used by `report::sinks`. Pure.

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::Reader;
use crate::error::Result;

/// The keys this block adds (beside [`super::KNOWN_KEYS`]).
pub const KEYS: &[&str] = &["metrics_listen", "webhook_format", "webhook_secret", "pagerduty_routing_key"];

/// How webhook bodies are shaped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The §6.1 event plus `text` (§6.4).
    #[default]
    Json,
    /// Slack incoming webhook: `{"text": ...}` (plus blocks).
    Slack,
    /// Discord webhook: `{"content": ...}` (plus an embed).
    Discord,
    /// PagerDuty Events API v2: trigger on open, resolve on resolve, `dedup_key` = incident id.
    Pagerduty,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpsConfig {
    /// Where `/metrics` is served; None = off.
    pub metrics_listen: Option<SocketAddr>,
    pub webhook_format: WebhookFormat,
    /// HMAC-SHA256 key for `X-Ftagent-Signature`; empty = unsigned.
    pub webhook_secret: String,
    /// PagerDuty integration key; required with `"webhook_format": "pagerduty"`.
    pub pagerduty_routing_key: String,
}

pub(super) fn read(r: &Reader) -> Result<OpsConfig> {
    let listen: String = r.get("metrics_listen", String::new())?;
    let metrics_listen = match listen.trim() {
        "" => None,
        text => Some(parse_listen(text).ok_or_else(|| {
            r.invalid("metrics_listen", "must be IP:PORT, e.g. \"127.0.0.1:9311\", or a port (bound on 127.0.0.1)")
        })?),
    };
    let webhook_format = r
        .get("webhook_format", WebhookFormat::Json)
        .map_err(|_| r.invalid("webhook_format", "accepted: \"json\", \"slack\", \"discord\", \"pagerduty\""))?;
    let pagerduty_routing_key: String = r.get("pagerduty_routing_key", String::new())?;
    if webhook_format == WebhookFormat::Pagerduty && pagerduty_routing_key.trim().is_empty() {
        return Err(r.invalid(
            "pagerduty_routing_key",
            "required with \"webhook_format\": \"pagerduty\" (the integration key of an Events API v2 service)",
        ));
    }
    Ok(OpsConfig {
        metrics_listen,
        webhook_format,
        webhook_secret: r.get("webhook_secret", String::new())?,
        pagerduty_routing_key: pagerduty_routing_key.trim().to_string(),
    })
}

/// `IP:PORT`, `[v6]:PORT`, `:PORT` or `PORT` (the last two on 127.0.0.1). Port 0 is refused.
fn parse_listen(text: &str) -> Option<SocketAddr> {
    let addr = match text.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            let port: u16 = text.strip_prefix(':').unwrap_or(text).parse().ok()?;
            SocketAddr::from((Ipv4Addr::LOCALHOST, port))
        }
    };
    (addr.port() != 0).then_some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::paths::{Env, Paths};
    use crate::config::Settings;

    fn parse(text: &str) -> crate::error::Result<Settings> {
        let env = Env { euid: 1000, home: Some("/home/u".into()), root: "/".into(), ..Env::default() };
        Settings::from_json(text, Some(std::path::Path::new("/c.json")), &Paths::resolve(&env, false))
    }

    #[test]
    fn defaults_are_off_json_unsigned() {
        let s = parse("{}").unwrap();
        assert_eq!(s.ops, OpsConfig::default());
        assert!(s.unknown_keys.is_empty());
    }

    #[test]
    fn keys_parse_and_bad_values_name_the_key() {
        let s = parse(r#"{"metrics_listen": "9311", "webhook_format": "slack", "webhook_secret": "k"}"#).unwrap();
        assert_eq!(s.ops.metrics_listen, Some("127.0.0.1:9311".parse().unwrap()));
        assert_eq!((s.ops.webhook_format, s.ops.webhook_secret.as_str()), (WebhookFormat::Slack, "k"));
        assert!(s.unknown_keys.is_empty(), "{:?}", s.unknown_keys);
        let err = parse(r#"{"metrics_listen": "localhost"}"#).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_CONFIG);
        assert!(err.to_string().contains("metrics_listen") && err.to_string().contains("127.0.0.1:9311"), "{err}");
        let err = parse(r#"{"webhook_format": "teams"}"#).unwrap_err().to_string();
        assert!(err.contains("webhook_format") && err.contains("pagerduty"), "{err}");
    }

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen("127.0.0.1:9311"), Some("127.0.0.1:9311".parse().unwrap()));
        assert_eq!(parse_listen("9311"), Some("127.0.0.1:9311".parse().unwrap()));
        assert_eq!(parse_listen(":9311"), Some("127.0.0.1:9311".parse().unwrap()));
        assert_eq!(parse_listen("[::1]:9311"), Some("[::1]:9311".parse().unwrap()));
        assert_eq!(parse_listen("localhost:x"), None);
        assert_eq!(parse_listen("127.0.0.1:0"), None);
    }
}

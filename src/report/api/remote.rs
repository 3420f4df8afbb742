//! `GET /agent/config` (§6.2): parse the service's answer (pure), cache it in the state dir,
//! apply it at start and hand it to the running agent as a [`Control`] message, which the run
//! loop drains with `try_recv` and applies (it never blocks on it). Knows nothing of the agent.
//!
//! `pending_commands` are never executed: the agent runs no command a server sends. Values of a
//! wrong type or out of range are ignored with a warning naming the field.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use log::warn;
use serde_json::Value;

use crate::config::{DetectConfig, IocPattern, Settings};
use crate::report::api::client::Reply;
use crate::util::fs as fsutil;

/// How often the config is asked for.
pub const CONFIG_EVERY: Duration = Duration::from_secs(300);
/// After a transport failure, ask again this soon.
const CONFIG_RETRY: Duration = Duration::from_secs(30);
/// The cached last answer, under the state dir.
pub const CACHE_FILE: &str = "agent_config.json";

/// What the service may tune. Durations are in the service's 1-second ticks / seconds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RemoteConfig {
    pub pps_threshold: Option<f64>,
    pub dynamic_threshold: Option<bool>,
    pub confirm_s: Option<u32>,
    pub holddown_s: Option<u32>,
    pub cooldown_s: Option<u64>,
    pub ioc_patterns: Option<Vec<IocPattern>>,
    pub pcap_enabled: Option<bool>,
    /// Commands the server asked for; counted and logged, never run.
    pub pending_commands: usize,
}

/// What is wrong with the service's answer.
fn invalid(why: String) -> crate::error::Error {
    crate::error::Error::Invalid { what: "agent config", why }
}

/// Parse the answer: the object itself, or wrapped in `config` / `data`.
pub fn parse(body: &[u8]) -> crate::error::Result<RemoteConfig> {
    let v: Value = serde_json::from_slice(body).map_err(|e| invalid(format!("agent config is not JSON: {e}")))?;
    let obj = ["config", "data"].iter().find_map(|k| v.get(k).filter(|x| x.is_object())).unwrap_or(&v);
    let Value::Object(m) = obj else { return Err(invalid("agent config is not a JSON object".into())) };
    let num = |k: &str, max: f64| -> Option<f64> {
        let x = m.get(k)?;
        match x.as_f64() {
            Some(n) if (0.0..=max).contains(&n) => Some(n),
            _ => {
                warn!("agent config: ignoring `{k}`: {x} is not a number in 0..={max}");
                None
            }
        }
    };
    let boolean = |k: &str| -> Option<bool> {
        let x = m.get(k)?;
        x.as_bool().or_else(|| {
            warn!("agent config: ignoring `{k}`: {x} is not true/false");
            None
        })
    };
    let ioc_patterns = m.get("ioc_patterns").and_then(|x| match serde_json::from_value::<Vec<IocPattern>>(x.clone()) {
        Ok(p) => Some(p),
        Err(e) => {
            warn!("agent config: ignoring `ioc_patterns`: {e}");
            None
        }
    });
    let pending_commands = match m.get("pending_commands") {
        Some(Value::Array(a)) => a.len(),
        Some(Value::Null) | None => 0,
        Some(_) => 1,
    };
    Ok(RemoteConfig {
        pps_threshold: num("pps_threshold", 1e12),
        dynamic_threshold: boolean("dynamic_threshold"),
        confirm_s: num("confirm_ticks", 10_000.0).map(|n| n.round() as u32),
        holddown_s: num("attack_holddown", 86_400.0).map(|n| n.round() as u32),
        cooldown_s: num("attack_cooldown", 86_400.0).map(|n| n.round() as u64),
        ioc_patterns,
        pcap_enabled: boolean("pcap_enabled"),
        pending_commands,
    })
}

/// Seconds (the service's 1-second ticks) → samples at our interval, at least one. Right for
/// the holddown (an open incident is sampled every interval), not for the confirmation, whose
/// samples come every quarter interval: that one becomes a duration.
fn to_samples(secs: u32, interval: Duration) -> u32 {
    let ms = interval.as_millis().max(1) as u64;
    ((u64::from(secs) * 1000).div_ceil(ms)).clamp(1, 1_000_000) as u32
}

impl RemoteConfig {
    /// The detection tuning with the service's values applied.
    pub fn detect(&self, base: &DetectConfig) -> DetectConfig {
        let mut d = base.clone();
        if let Some(p) = self.pps_threshold {
            d.min_pps_threshold = p;
        }
        if let Some(b) = self.dynamic_threshold {
            d.dynamic_threshold = b;
        }
        if let Some(s) = self.confirm_s {
            d.confirm_for = Some(Duration::from_secs(u64::from(s)));
        }
        if let Some(s) = self.holddown_s {
            d.holddown_ticks = to_samples(s, d.sample_interval);
        }
        if let Some(s) = self.cooldown_s {
            d.cooldown = Duration::from_secs(s);
        }
        d
    }

    /// Apply to settings before the agent starts (the cached answer).
    pub fn apply_to(&self, s: &mut Settings) {
        s.detect = self.detect(&s.detect);
        if let Some(p) = &self.ioc_patterns {
            s.ioc_patterns = p.clone();
        }
        if let Some(b) = self.pcap_enabled {
            s.pcap_enabled = b;
        }
    }
}

/// Messages from worker threads to the sampling loop.
#[derive(Debug, Clone)]
pub enum Control {
    Remote(RemoteConfig),
}

pub fn cache_path(state_dir: &Path) -> PathBuf {
    state_dir.join(CACHE_FILE)
}

/// The cached answer; a corrupt cache is moved aside with one warning ([`crate::util::statefile`]).
pub fn load_cache(state_dir: &Path) -> Option<RemoteConfig> {
    crate::util::statefile::load(&cache_path(state_dir), "cached agent config", parse)
}

/// The API sender's config schedule.
pub struct ConfigPoll {
    next: Instant,
    control: mpsc::Sender<Control>,
    cache: PathBuf,
    last: Option<Vec<u8>>,
}

impl ConfigPoll {
    /// Due at once (the start of the run).
    pub fn new(now: Instant, control: mpsc::Sender<Control>, state_dir: &Path) -> Self {
        ConfigPoll { next: now, control, cache: cache_path(state_dir), last: None }
    }

    pub fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// Handle the answer; returns the failure reason when the server could not be asked or
    /// answered with a server error (counts against the breaker).
    pub fn handle(&mut self, now: Instant, r: crate::error::Result<Reply>) -> Option<String> {
        let reply = match r {
            Err(e) => {
                self.next = now + CONFIG_RETRY;
                return Some(format!("agent config: {e}"));
            }
            Ok(r) => r,
        };
        self.next = now + CONFIG_EVERY;
        if !(200..300).contains(&reply.status) {
            let why = format!("agent config: HTTP {}: {}", reply.status, reply.text());
            if reply.status >= 500 || matches!(reply.status, 401 | 403 | 429) {
                return Some(why);
            }
            warn!("{why}");
            return None;
        }
        match parse(&reply.body) {
            Ok(c) => {
                if c.pending_commands > 0 {
                    warn!(
                        "agent config: the server sent {} pending command(s); ftagent never executes server commands (ignored)",
                        c.pending_commands
                    );
                }
                if self.last.as_deref() != Some(&reply.body[..]) {
                    if let Err(e) = fsutil::write_atomic(&self.cache, &reply.body, 0o600) {
                        warn!("cannot cache the agent config: {e}");
                    }
                    self.last = Some(reply.body.clone());
                }
                let _ = self.control.send(Control::Remote(c));
            }
            Err(e) => warn!("{e}; keeping the current settings"),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_values_convert_ticks_and_ignore_bad_fields() {
        let c = parse(
            br#"{"pps_threshold": 1234, "dynamic_threshold": false, "confirm_ticks": 3,
            "attack_holddown": 15, "attack_cooldown": 30, "pcap_enabled": "yes",
            "ioc_patterns": [{"pattern": "abc", "attack_name": "mirai", "attack_family": "udp_flood"}],
            "pending_commands": [{"cmd": "touch /tmp/x"}]}"#,
        )
        .unwrap();
        assert_eq!(c.pcap_enabled, None, "a string is not a bool");
        assert_eq!(c.pending_commands, 1);
        let base = DetectConfig { sample_interval: Duration::from_millis(200), ..DetectConfig::default() };
        let d = c.detect(&base);
        assert_eq!(d.min_pps_threshold, 1234.0);
        assert!(!d.dynamic_threshold);
        assert_eq!(d.confirm_for, Some(Duration::from_secs(3)), "a duration: confirmation samples come faster");
        assert_eq!(d.confirm_ticks, base.confirm_ticks);
        assert_eq!(d.holddown_ticks, 75, "15 s at 200 ms: an open incident is sampled every interval");
        assert_eq!(d.cooldown, Duration::from_secs(30));
        assert_eq!(c.ioc_patterns.unwrap()[0].attack_name, "mirai");
    }

    #[test]
    fn wrapped_answers_and_garbage() {
        assert_eq!(parse(br#"{"data": {"pps_threshold": 5}}"#).unwrap().pps_threshold, Some(5.0));
        assert!(parse(b"<html>").unwrap_err().to_string().contains("not JSON"));
        assert!(parse(b"[1]").is_err());
        assert_eq!(parse(br#"{"pps_threshold": -1}"#).unwrap().pps_threshold, None);
    }

    #[test]
    fn poll_caches_and_forwards_but_not_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel();
        let t0 = Instant::now();
        let mut p = ConfigPoll::new(t0, tx, dir.path());
        assert!(p.due(t0));
        let ok = Reply { status: 200, body: br#"{"pps_threshold": 7}"#.to_vec(), retry_after: None };
        assert_eq!(p.handle(t0, Ok(ok)), None);
        assert!(!p.due(t0 + Duration::from_secs(299)) && p.due(t0 + CONFIG_EVERY));
        let Control::Remote(c) = rx.try_recv().unwrap();
        assert_eq!(c.pps_threshold, Some(7.0));
        assert_eq!(load_cache(dir.path()).unwrap().pps_threshold, Some(7.0));
        let bad = Reply { status: 503, body: b"down".to_vec(), retry_after: None };
        assert!(p.handle(t0, Ok(bad)).unwrap().contains("503"));
        let refused =
            crate::error::Error::Http { url: "http://127.0.0.1:9".into(), status: None, why: "refused".into() };
        assert!(p.handle(t0, Err(refused)).is_some());
        assert!(rx.try_recv().is_err());
    }
}

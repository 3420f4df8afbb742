//! The state-file sink (§6.6): writes [`crate::status`]'s file on the report worker: each [`Outgoing::Status`] from the sampling thread
//! is completed with what only the worker side knows (spool depth, last API success, the open
//! incident's label and evidence from the incident events it has seen) and written atomically
//! with mode 0600. The file is removed when the agent stops. Never runs on the sampling thread.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::event::{rfc3339_ms, Classification, EventBody};
use crate::report::api::spool::Spool;
use crate::report::{Outgoing, Sink};
use crate::status::snapshot::StatusSnapshot;

/// Evidence fields `--top` shows, copied from the incident's latest classification.
const TOP_FIELDS: &[&str] = &["target_ips", "top_src_ips", "top_dst_ports", "top_src_ports", "source_ip_count"];

pub struct StatusSink {
    path: PathBuf,
    spools: Vec<Arc<Spool>>,
    api_enabled: bool,
    /// The open incident's id, label and evidence, from its last open/update event.
    incident: Option<(String, String, Map<String, Value>)>,
    /// Active mitigation rules by rule key, from `mitigation_apply` / `mitigation_remove` (§10).
    mitigations: std::collections::BTreeMap<String, Value>,
}

impl StatusSink {
    pub fn new(path: PathBuf, spools: Vec<Arc<Spool>>, api_enabled: bool) -> Self {
        StatusSink { path, spools, api_enabled, incident: None, mitigations: Default::default() }
    }

    fn remember(&mut self, id: &str, class: &Classification) {
        let label = match &class.attack_subtype {
            Some(sub) => format!("{}/{sub}", class.attack_family),
            None => class.attack_family.clone(),
        };
        let top =
            TOP_FIELDS.iter().filter_map(|k| class.evidence.get(*k).map(|v| (k.to_string(), v.clone()))).collect();
        self.incident = Some((id.to_string(), label, top));
    }

    /// The snapshot as written: completed with the worker-side fields.
    pub fn complete(&self, snap: &StatusSnapshot) -> StatusSnapshot {
        let mut s = snap.clone();
        s.spool.events = self.spools.iter().map(|sp| sp.len()).sum();
        s.api.enabled = self.api_enabled;
        s.api.last_success = crate::report::api::health::last_api_success().map(rfc3339_ms);
        s.mitigations = self.mitigations.values().cloned().collect();
        if let (Some(inc), Some((id, label, top))) = (s.incident.as_mut(), &self.incident) {
            if inc.id == *id {
                inc.label = label.clone();
                inc.top = top.clone();
            }
        }
        s
    }
}

impl Sink for StatusSink {
    fn name(&self) -> String {
        format!("state file {}", self.path.display())
    }

    fn handle(&mut self, msg: &Outgoing) -> Result<()> {
        match msg {
            Outgoing::Event(e) => match &e.body {
                EventBody::IncidentOpen(o) => self.remember(&o.incident_id, &o.class),
                EventBody::IncidentUpdate(u) => self.remember(&u.incident_id, &u.class),
                EventBody::IncidentResolve(_) => self.incident = None,
                EventBody::MitigationApply(m) => {
                    for rule in &m.rules {
                        let key = rule.get("rule").map(|k| k.to_string()).unwrap_or_default();
                        let mut r = rule.clone();
                        if let Value::Object(o) = &mut r {
                            o.remove("nft");
                            o.insert("incident_id".into(), m.incident_id.clone().into());
                            o.insert("mode".into(), m.mode.clone().into());
                        }
                        self.mitigations.insert(key, r);
                    }
                }
                EventBody::MitigationRemove(m) => {
                    for rule in &m.rules {
                        self.mitigations.remove(&rule.get("rule").map(|k| k.to_string()).unwrap_or_default());
                    }
                }
                _ => {}
            },
            Outgoing::Status(snap) => {
                let body = serde_json::to_vec(&self.complete(snap))
                    .map_err(|e| Error::Encode { what: "the state file", source: e })?;
                write_replace(&self.path, &body)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// No agent runs any more: the file goes, so `--status` says so at once.
    fn shutdown(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Atomic replace with mode 0600 from the start. No fsync: the file is rewritten every second
/// and means nothing after a crash (its pid is gone), so it is not worth a disk flush.
pub fn write_replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let r = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    r.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, IncidentOpen};
    use crate::status::snapshot::IncidentNow;
    use std::os::unix::fs::PermissionsExt;
    use std::time::SystemTime;

    fn open_event(id: &str) -> Outgoing {
        let mut class = Classification::unknown();
        class.attack_family = "amplification".into();
        class.attack_subtype = Some("dns".into());
        class.evidence.insert("top_src_ips".into(), serde_json::json!([{"ip": "10.0.0.9", "count": 5}]));
        Outgoing::Event(Event::new(
            SystemTime::now(),
            EventBody::IncidentOpen(IncidentOpen {
                incident_id: id.into(),
                direction: crate::event::Direction::Inbound,
                previous_incident_id: None,
                interface: "eth0".into(),
                pps: 1.0,
                bps: 1.0,
                dropped_pps: 0.0,
                threshold_pps: 1.0,
                threshold_bps: 1.0,
                baseline_pps: 1.0,
                severity: "high".into(),
                trigger: "pps".into(),
                protocol: None,
                test: false,
                started_at: String::new(),
                class,
            }),
        ))
    }

    #[test]
    fn active_mitigations_follow_apply_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = StatusSink::new(dir.path().join("status.json"), vec![], false);
        let rule = |k: &str| serde_json::json!({"rule": k, "action": "drop", "nft": [{"add": {}}]});
        let m = |rules| crate::event::MitigationEvent {
            incident_id: "inc-1".into(),
            mode: "enforce".into(),
            rules,
            expires_at: String::new(),
            reason: "incident_open".into(),
        };
        let ev = |b| Outgoing::Event(Event::new(SystemTime::now(), b));
        sink.handle(&ev(EventBody::MitigationApply(m(vec![rule("a"), rule("b")])))).unwrap();
        let s = sink.complete(&StatusSnapshot::default());
        assert_eq!(s.mitigations.len(), 2);
        assert_eq!(s.mitigations[0]["incident_id"], "inc-1");
        assert!(s.mitigations[0].get("nft").is_none(), "the status shows rules, not nft batches");
        sink.handle(&ev(EventBody::MitigationRemove(m(vec![rule("a")])))).unwrap();
        let s = sink.complete(&StatusSnapshot::default());
        assert_eq!(s.mitigations.len(), 1);
        assert_eq!(s.mitigations[0]["rule"], "b");
    }

    #[test]
    fn writes_0600_with_the_incident_label_and_removes_the_file_at_stop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        let mut sink = StatusSink::new(path.clone(), vec![], false);
        sink.handle(&open_event("inc-1")).unwrap();
        let snap = StatusSnapshot {
            pid: 42,
            incident: Some(IncidentNow { id: "inc-1".into(), label: "unknown".into(), ..Default::default() }),
            ..Default::default()
        };
        sink.handle(&Outgoing::Status(Box::new(snap))).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let back: StatusSnapshot = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let inc = back.incident.unwrap();
        assert_eq!(inc.label, "amplification/dns");
        assert_eq!(inc.top["top_src_ips"][0]["ip"], "10.0.0.9");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left");
        sink.shutdown();
        assert!(!path.exists());
    }

    #[test]
    fn a_label_of_another_incident_is_not_applied() {
        let mut sink = StatusSink::new(PathBuf::from("/nonexistent/status.json"), vec![], true);
        sink.handle(&open_event("old")).unwrap();
        let snap = StatusSnapshot {
            incident: Some(IncidentNow { id: "new".into(), label: "unknown".into(), ..Default::default() }),
            ..Default::default()
        };
        let done = sink.complete(&snap);
        assert_eq!(done.incident.unwrap().label, "unknown");
        assert!(done.api.enabled);
    }
}

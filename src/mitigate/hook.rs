//! The mitigation hook (§10): a local program (argv, never a shell string) run on incident
//! open/update/resolve with the incident and its planned rules as JSON on stdin, on its own
//! thread, killed at its timeout. A hook that hangs delays nothing but later hook runs.
//! Also [`wait_output`], the bounded wait on a child that `nft` runs share.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use serde_json::Value;

use crate::config::mitigation::Hook;

/// Hook runs waiting; past it a run is skipped (with a log line), never waited for.
const QUEUE: usize = 64;

/// Wait for `child` at most `limit`, collecting its output; kill it past the limit.
pub fn wait_output(mut child: Child, limit: Duration) -> crate::error::Result<Output> {
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                // The child leads its own process group: take its children down with it.
                // SAFETY: kill(2) on a process group we created; no memory is involved.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.kill();
                let _ = child.wait();
                return Err(crate::error::Error::Program {
                    program: format!("pid {}", child.id()),
                    why: format!("killed after {} s (timeout)", limit.as_secs_f64()),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                return Err(crate::error::Error::Program { program: format!("pid {}", child.id()), why: e.to_string() })
            }
        }
    };
    Ok(Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() })
}

/// The hook's thread and its queue.
pub struct HookRunner {
    tx: Option<SyncSender<Value>>,
    thread: Option<JoinHandle<()>>,
}

impl HookRunner {
    pub fn spawn(hook: Hook) -> Self {
        let (tx, rx) = mpsc::sync_channel::<Value>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("ftagent-hook".into())
            .spawn(move || {
                for payload in rx {
                    // The outcome is logged by run_once; a failed run changes nothing else.
                    let _ = run_once(&hook, &payload);
                }
            })
            .map_err(|e| warn!("mitigation hook: cannot start its thread: {e}"))
            .ok();
        HookRunner { tx: Some(tx), thread }
    }

    /// Queue one run; never blocks.
    pub fn send(&self, payload: Value) {
        if let Some(tx) = &self.tx {
            if let Err(TrySendError::Full(_)) = tx.try_send(payload) {
                warn!("mitigation hook: {QUEUE} runs already waiting; this one is skipped");
            }
        }
    }

    /// Let queued runs finish within `limit`, then leave the thread to end with the process.
    pub fn stop(mut self, limit: Duration) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            crate::report::join_within(t, limit);
        }
    }
}

/// One run: spawn, JSON on stdin, wait up to the timeout. Outcomes are logged, never fatal.
pub fn run_once(hook: &Hook, payload: &Value) -> crate::error::Result<Output> {
    let what = payload["event"].as_str().unwrap_or("event").to_string();
    let result = spawn_and_wait(hook, payload);
    match &result {
        Ok(out) if out.status.success() => debug!("mitigation hook ran for {what}"),
        Ok(out) => warn!(
            "mitigation hook {} for {what}: {}; stderr: {}",
            hook.argv[0],
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => warn!("mitigation hook {} for {what}: {e}", hook.argv[0]),
    }
    result
}

fn spawn_and_wait(hook: &Hook, payload: &Value) -> crate::error::Result<Output> {
    let mut child = Command::new(&hook.argv[0])
        .args(&hook.argv[1..])
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| crate::error::Error::Program {
            program: hook.argv[0].clone(),
            why: format!("cannot start: {e}"),
        })?;
    let data = serde_json::to_vec(payload).unwrap_or_default();
    if let Some(mut stdin) = child.stdin.take() {
        // Written from a thread: a hook that never reads must not block us past its timeout.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
            let _ = stdin.write_all(b"\n");
        });
    }
    let started = Instant::now();
    let out = wait_output(child, hook.timeout);
    if out.is_ok() {
        info!("mitigation hook {} took {} ms", hook.argv[0], started.elapsed().as_millis());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(script: &str, timeout_ms: u64) -> Hook {
        Hook { argv: vec!["/bin/sh".into(), "-c".into(), script.into()], timeout: Duration::from_millis(timeout_ms) }
    }

    #[test]
    fn hook_reads_the_json_on_stdin() {
        let out = run_once(&hook("cat", 5000), &serde_json::json!({"event": "incident_open", "x": 1})).unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["x"], 1);
    }

    #[test]
    fn a_hanging_hook_is_killed_at_its_timeout() {
        let t0 = Instant::now();
        let err = run_once(&hook("sleep 30", 300), &serde_json::json!({})).unwrap_err().to_string();
        assert!(err.contains("timeout"), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_panic() {
        let h = Hook { argv: vec!["/nonexistent/hook".into()], timeout: Duration::from_secs(1) };
        assert!(run_once(&h, &serde_json::json!({})).unwrap_err().to_string().contains("cannot start"));
    }
}

//! The mitigation hook (§10): a local program (argv, never a shell string) run on incident
//! open/update/resolve with the incident and its planned rules as JSON on stdin, on its own
//! thread, killed at its timeout (`util::child`: the deadline covers its output too, so a hook
//! that leaves a process holding its pipes returns at once). A hook that hangs delays nothing
//! but later hook runs.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use serde_json::Value;

use crate::config::mitigation::Hook;

/// Hook runs waiting; past it a run is skipped (with a log line), never waited for.
const QUEUE: usize = 64;

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
    let mut data = serde_json::to_vec(payload).unwrap_or_default();
    data.push(b'\n');
    let mut cmd = Command::new(&hook.argv[0]);
    cmd.args(&hook.argv[1..]);
    if !hook.keep_capabilities {
        // SAFETY: the closure runs between fork and exec and only makes raw syscalls.
        unsafe { cmd.pre_exec(drop_capabilities) };
    }
    let started = Instant::now();
    let out = crate::util::child::run(&mut cmd, Some(&data), hook.timeout)
        .map_err(|e| crate::error::Error::Program { program: hook.argv[0].clone(), why: e.to_string() });
    if out.is_ok() {
        info!("mitigation hook {} took {} ms", hook.argv[0], started.elapsed().as_millis());
    }
    out
}

/// In the hook's child before exec: no ambient or inheritable capability and an empty bounding
/// set, so the program runs with none, even as root (`hook.keep_capabilities` skips this).
/// Async-signal-safe: raw syscalls only, no allocation.
fn drop_capabilities() -> std::io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const V3: u32 = 0x2008_0522;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) } != 0 {
        let e = std::io::Error::last_os_error();
        // EINVAL: a kernel without ambient capabilities has none to clear.
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
    }
    let mut h = Header { version: V3, pid: 0 };
    let mut d = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
    // SAFETY: capget/capset with a v3 header and two data words, as capget(2) documents.
    unsafe {
        if libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        d[0].inheritable = 0;
        d[1].inheritable = 0;
        if libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments; EINVAL past the last capability, EPERM without
        // CAP_SETPCAP (then there is nothing in the bounding set worth keeping from the hook:
        // without ambient or inheritable capabilities an unprivileged exec gains none).
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(script: &str, timeout_ms: u64) -> Hook {
        Hook {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            timeout: Duration::from_millis(timeout_ms),
            keep_capabilities: false,
        }
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

    /// The hook runs with no capability (the agent here is root, or holds CAP_NET_ADMIN).
    #[test]
    fn the_hook_gets_no_capability_unless_configured() {
        let caps = |keep: bool| {
            let h = Hook { keep_capabilities: keep, ..hook("grep -E '^Cap(Eff|Prm|Amb)' /proc/self/status", 5000) };
            String::from_utf8(run_once(&h, &serde_json::json!({})).unwrap().stdout).unwrap()
        };
        let none = caps(false);
        assert_eq!(none.matches("\t0000000000000000").count(), 3, "{none}");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let kept = caps(true);
            assert!(kept.lines().next().is_some_and(|l| !l.ends_with("0000000000000000")), "{kept}");
        }
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_panic() {
        let h =
            Hook { argv: vec!["/nonexistent/hook".into()], timeout: Duration::from_secs(1), keep_capabilities: false };
        assert!(run_once(&h, &serde_json::json!({})).unwrap_err().to_string().contains("cannot start"));
    }
}

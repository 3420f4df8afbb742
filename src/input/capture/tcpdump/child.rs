//! One running `tcpdump` (or `mergecap`) child: spawned with a private umask and UTC names, its
//! stderr read line by line into the agent's log on a small thread, stopped with SIGTERM (then
//! SIGKILL). Owns no policy: when to start, restart or give up is the supervisor's business.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

/// stderr lines kept to explain an exit.
const KEEP_LINES: usize = 4;

#[derive(Debug, Default)]
struct Stderr {
    listening: bool,
    last: VecDeque<String>,
    /// The last "N packets dropped by kernel" tcpdump printed (on SIGUSR1 or at exit).
    dropped: u64,
}

pub struct Child {
    role: &'static str,
    child: std::process::Child,
    started: Instant,
    stderr: Arc<Mutex<Stderr>>,
    reader: Option<JoinHandle<()>>,
    exited: Option<ExitStatus>,
}

/// How a start-up probe ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Startup {
    Listening,
    Exited(String),
    /// Neither within the limit: still running, presumably fine.
    Quiet,
}

/// A command with the settings every helper process gets: files 0600 (umask 077), UTC times,
/// its own process group (a terminal's Ctrl-C reaches the agent, which then stops it), and
/// SIGTERM when the supervising thread dies.
pub fn command(program: &Path, args: &[OsString]) -> Command {
    let mut c = Command::new(program);
    c.args(args).env("TZ", "UTC").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    c.process_group(0);
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe functions
    // (umask, prctl); it allocates nothing and touches no locks.
    unsafe {
        c.pre_exec(|| {
            libc::umask(0o077);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0);
            Ok(())
        });
    }
    c
}

impl Child {
    /// Start `program args`; `role` names it in log lines (`ring`, `incident`).
    pub fn spawn(program: &Path, args: &[OsString], role: &'static str) -> std::io::Result<Child> {
        let mut child = command(program, args).spawn()?;
        let stderr = Arc::new(Mutex::new(Stderr::default()));
        let pipe = child.stderr.take();
        let shared = Arc::clone(&stderr);
        let reader = pipe.and_then(|pipe| {
            std::thread::Builder::new()
                .name(format!("tcpdump-{role}-err"))
                .spawn(move || read_stderr(BufReader::new(pipe), role, &shared))
                .ok()
        });
        debug!("tcpdump[{role}] started (pid {})", child.id());
        Ok(Child { role, child, started: Instant::now(), stderr, reader, exited: None })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Wait (polling, bounded) until tcpdump says it is listening or exits. Start-up only.
    pub fn wait_listening(&mut self, limit: Duration) -> Startup {
        let deadline = Instant::now() + limit;
        loop {
            if self.stderr.lock().is_ok_and(|s| s.listening) {
                return Startup::Listening;
            }
            if let Some(reason) = self.exit_reason() {
                return Startup::Exited(reason);
            }
            if Instant::now() >= deadline {
                return Startup::Quiet;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// None while running; once it has exited, why (status and its last stderr line).
    pub fn exit_reason(&mut self) -> Option<String> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        let status = self.exited?;
        // Let the reader drain what the process wrote before it died.
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
        let last = self.stderr.lock().ok().and_then(|s| s.last.back().cloned());
        Some(match last {
            Some(line) => format!("{status}; it said: {line}"),
            None => status.to_string(),
        })
    }

    /// Ask tcpdump to print its counters (SIGUSR1 on Linux); read later via [`Child::dropped`].
    pub fn request_stats(&self) {
        if self.exited.is_none() {
            // SAFETY: kill(2) on our own child's pid with a valid signal number.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGUSR1) };
        }
    }

    /// Packets the kernel dropped for this child, as tcpdump last reported.
    pub fn dropped(&self) -> u64 {
        self.stderr.lock().map(|s| s.dropped).unwrap_or(0)
    }

    /// SIGTERM (tcpdump flushes and closes its file), then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.exit_reason().is_none() {
            // SAFETY: kill(2) on our own child's pid with a valid signal number.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + grace;
            while self.exit_reason().is_none() {
                if Instant::now() >= deadline {
                    warn!("tcpdump[{}] ignored SIGTERM for {} ms; killing it", self.role, grace.as_millis());
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.exit_reason();
        self.exited
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

fn read_stderr(pipe: impl BufRead, role: &str, shared: &Mutex<Stderr>) {
    for line in pipe.lines() {
        let Ok(line) = line else { break };
        let line = line.trim().to_string();
        if line.is_empty() {
            continue;
        }
        let Ok(mut s) = shared.lock() else { break };
        if line.contains("listening on") {
            s.listening = true;
            info!("tcpdump[{role}]: {line}");
        } else if let Some(n) = line.strip_suffix("packets dropped by kernel").and_then(leading_number) {
            s.dropped = n;
            debug!("tcpdump[{role}]: {line}");
        } else if line.contains("packets captured") || line.contains("packets received by filter") {
            debug!("tcpdump[{role}]: {line}");
        } else {
            warn!("tcpdump[{role}]: {line}");
        }
        if s.last.len() == KEEP_LINES {
            s.last.pop_front();
        }
        s.last.push_back(line);
    }
}

fn leading_number(s: &str) -> Option<u64> {
    s.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> (std::path::PathBuf, Vec<OsString>) {
        ("/bin/sh".into(), vec!["-c".into(), script.into()])
    }

    #[test]
    fn stderr_is_parsed_and_explains_the_exit() {
        let (p, a) =
            sh("echo 'listening on eth0, link-type EN10MB' >&2; sleep 0.5; echo '7 packets dropped by kernel' >&2; \
                         echo 'tcpdump: eth9: No such device exists' >&2; exit 1");
        let mut c = Child::spawn(&p, &a, "test").unwrap();
        assert_eq!(c.wait_listening(Duration::from_secs(5)), Startup::Listening);
        let deadline = Instant::now() + Duration::from_secs(5);
        let reason = loop {
            if let Some(r) = c.exit_reason() {
                break r;
            }
            assert!(Instant::now() < deadline, "child did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(reason.contains("exit status: 1") && reason.contains("No such device"), "{reason}");
        assert_eq!(c.dropped(), 7);
    }

    #[test]
    fn immediate_exit_is_seen_by_the_probe() {
        let (p, a) = sh("exit 3");
        let mut c = Child::spawn(&p, &a, "test").unwrap();
        match c.wait_listening(Duration::from_secs(5)) {
            Startup::Exited(r) => assert!(r.contains('3'), "{r}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stop_ends_a_running_child_and_files_are_private() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f.pcap");
        let (p, a) = sh(&format!("touch {}; exec sleep 30", f.display()));
        let mut c = Child::spawn(&p, &a, "test").unwrap();
        let t = Instant::now();
        while !f.exists() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let st = c.stop(Duration::from_secs(2)).expect("exited");
        assert!(!st.success());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

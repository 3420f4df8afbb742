//! Run a child with a deadline over the whole run (§13): spawn it in its own process group,
//! write its stdin, read its stdout and stderr, and reap it, all with non-blocking pipes and
//! `poll(2)` on the calling thread. No helper threads, so nothing is left behind and no thread
//! can fail to start.
//!
//! A child that exits while something it started still holds the pipes (`sh -c 'sleep 300 &'`)
//! is given [`LINGER`] for the pipes to close, then its process group is killed and the call
//! returns with the child's own exit status. At the deadline the whole group is killed.
//! Output past [`OUTPUT_CAP`] per stream is read and dropped.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long pipes may stay open after the child itself exited.
pub const LINGER: Duration = Duration::from_millis(250);
/// Bytes kept of each of stdout and stderr.
pub const OUTPUT_CAP: usize = 1 << 20;

#[derive(Debug)]
pub enum ChildError {
    /// It could not be started.
    Spawn(std::io::Error),
    /// It ran past its deadline and was killed with its process group.
    Timeout(Duration),
    /// Waiting on it failed.
    Wait(std::io::Error),
}

impl std::fmt::Display for ChildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildError::Spawn(e) => write!(f, "cannot start: {e}"),
            ChildError::Timeout(d) => write!(f, "killed after {} s (timeout)", d.as_secs_f64()),
            ChildError::Wait(e) => write!(f, "cannot wait for it: {e}"),
        }
    }
}

impl std::error::Error for ChildError {}

/// Run `cmd` with `input` on its stdin (or /dev/null), collecting its output, everything within
/// `limit`. `cmd`'s own stdio settings are replaced.
pub fn run(cmd: &mut Command, input: Option<&[u8]>, limit: Duration) -> Result<Output, ChildError> {
    cmd.process_group(0)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().map_err(ChildError::Spawn)?;
    wait(child, input.unwrap_or_default(), limit)
}

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl on a descriptor we own; no memory is passed.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

fn kill_group(child: &Child) {
    // SAFETY: kill(2) on the process group the child leads (process_group(0)); no memory.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
}

fn wait(mut child: Child, input: &[u8], limit: Duration) -> Result<Output, ChildError> {
    let started = Instant::now();
    let deadline = started + limit;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    for fd in [
        stdin.as_ref().map(|s| s.as_raw_fd()),
        stdout.as_ref().map(|s| s.as_raw_fd()),
        stderr.as_ref().map(|s| s.as_raw_fd()),
    ]
    .into_iter()
    .flatten()
    {
        set_nonblocking(fd);
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut written = 0;
    let mut status: Option<ExitStatus> = None;
    let mut exited_at: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if status.is_none() {
            match child.try_wait() {
                Ok(Some(st)) => {
                    status = Some(st);
                    exited_at = Some(Instant::now());
                    stdin = None;
                }
                Ok(None) => {}
                Err(e) => {
                    kill_group(&child);
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ChildError::Wait(e));
                }
            }
        }
        let now = Instant::now();
        if let (Some(st), true) = (status, stdout.is_none() && stderr.is_none()) {
            return Ok(Output { status: st, stdout: out, stderr: err });
        }
        if let (Some(st), Some(t)) = (status, exited_at) {
            if now >= (t + LINGER).min(deadline) {
                // Pipes held by something the child left behind: end it, keep what was read.
                kill_group(&child);
                return Ok(Output { status: st, stdout: out, stderr: err });
            }
        }
        if now >= deadline {
            kill_group(&child);
            let _ = child.kill();
            let _ = child.wait();
            return Err(ChildError::Timeout(limit));
        }
        let mut fds = Vec::with_capacity(3);
        if let Some(s) = &stdin {
            fds.push(libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLOUT, revents: 0 });
        }
        if let Some(s) = &stdout {
            fds.push(libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        }
        if let Some(s) = &stderr {
            fds.push(libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        }
        // Short slices: the child's exit is noticed by try_wait, not by the pipes.
        let slice = deadline.saturating_duration_since(now).min(Duration::from_millis(20));
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the whole call.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, slice.as_millis().max(1) as i32) };
        if let Some(s) = stdin.as_mut() {
            if written >= input.len() {
                stdin = None; // EOF for the child
            } else {
                match s.write(&input[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => stdin = None, // it closed its stdin: it does not want the rest
                }
                if written >= input.len() {
                    stdin = None;
                }
            }
        }
        drain(&mut stdout, &mut out, &mut buf);
        drain(&mut stderr, &mut err, &mut buf);
    }
}

/// Read what is there now; drop the pipe at EOF or error.
fn drain<R: Read>(pipe: &mut Option<R>, into: &mut Vec<u8>, buf: &mut [u8]) {
    let Some(r) = pipe.as_mut() else { return };
    loop {
        match r.read(buf) {
            Ok(0) => {
                *pipe = None;
                return;
            }
            Ok(n) => {
                let keep = n.min(OUTPUT_CAP.saturating_sub(into.len()));
                into.extend_from_slice(&buf[..keep]);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(_) => {
                *pipe = None;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn input_goes_in_and_output_comes_back() {
        let big = vec![b'x'; 300_000];
        let out = run(&mut sh("cat; echo err >&2"), Some(&big), Duration::from_secs(10)).unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), big.len());
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn a_grandchild_holding_the_pipes_does_not_block_the_caller() {
        let t = Instant::now();
        let out = run(&mut sh("echo hi; sleep 300 & exit 0"), None, Duration::from_secs(5)).unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"hi\n");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[test]
    fn a_child_past_its_deadline_is_killed_with_its_group() {
        let t = Instant::now();
        let e = run(&mut sh("sleep 300 & sleep 300"), None, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, ChildError::Timeout(_)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_child_that_never_reads_its_stdin_cannot_block_the_writer() {
        let big = vec![b'x'; 4 << 20];
        let t = Instant::now();
        let e = run(&mut sh("sleep 300"), Some(&big), Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, ChildError::Timeout(_)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn output_is_capped() {
        let out = run(&mut sh("head -c 3000000 /dev/zero"), None, Duration::from_secs(10)).unwrap();
        assert_eq!(out.stdout.len(), OUTPUT_CAP);
    }
}

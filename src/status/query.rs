//! `--status [--json]`: read the state file of the agent for this config and decide whether that
//! agent is running. "Running" needs all three: the file parses, its pid is alive and is an
//! `ftagent` process, and the file was rewritten within [`FRESH_FOR`] (a hung or killed agent
//! stops refreshing it). Rendering is pure ([`render_text`]); [`print`] is the only I/O.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::snapshot::StatusSnapshot;
use super::{state_file, EXIT_NOT_RUNNING};

/// A state file older than this means the agent is gone or stuck (it is rewritten every second).
pub const FRESH_FOR: Duration = Duration::from_secs(5);

/// Read the state file under `state_dir`: the snapshot of a running agent, or why there is none.
pub fn running(state_dir: &Path, now: SystemTime) -> crate::error::Result<StatusSnapshot> {
    let path = state_file(state_dir);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_running(format!("no state file at {} (the agent is not running)", path.display())))
        }
        Err(e) => return Err(not_running(format!("cannot read {}: {e}", path.display()))),
    };
    let snap: StatusSnapshot = serde_json::from_slice(&text)
        .map_err(|e| not_running(format!("{}: unreadable state file: {e}", path.display())))?;
    check_alive(&snap, now).map_err(|why| not_running(format!("{}: {why}", path.display())))?;
    Ok(snap)
}

fn not_running(why: String) -> crate::error::Error {
    crate::error::Error::NotRunning { why }
}

/// The liveness rules, on a parsed snapshot.
pub fn check_alive(snap: &StatusSnapshot, now: SystemTime) -> crate::error::Result<()> {
    if snap.pid == 0 || !pid_is_ftagent(snap.pid) {
        return Err(not_running(format!("written by pid {}, which is no longer running", snap.pid)));
    }
    let now_ms = now.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let age = Duration::from_millis(now_ms.saturating_sub(snap.updated_unix_ms));
    if age > FRESH_FOR {
        return Err(not_running(format!(
            "last updated {:.0} s ago by pid {}; the agent is not responding",
            age.as_secs_f64(),
            snap.pid
        )));
    }
    Ok(())
}

/// The pid exists (we may lack permission to signal it) and, where /proc says, runs ftagent.
fn pid_is_ftagent(pid: u32) -> bool {
    let Ok(pid_t) = i32::try_from(pid) else { return false };
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let rc = unsafe { libc::kill(pid_t, 0) };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => comm.trim() == "ftagent",
        Err(_) => true,
    }
}

/// A state file this user may not read is an error (exit 1), not "no agent": the agent may well
/// be running as another user.
pub fn check_readable(state_dir: &Path) -> crate::error::Result<()> {
    let path = state_file(state_dir);
    match std::fs::File::open(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(crate::error::Error::PermissionDenied {
            path,
            hint: "run it as root or as the agent's user (the state file is 0600)".into(),
        }),
        _ => Ok(()),
    }
}

/// `--status`: print the state and return the exit code (0, or 3 when no agent runs).
pub fn print(
    state_dir: &Path,
    config_shown: &str,
    json: bool,
    out: &mut dyn std::io::Write,
) -> crate::error::Result<u8> {
    check_readable(state_dir)?;
    let now = SystemTime::now();
    let io = |e: std::io::Error| crate::error::Error::Terminal { what: "writing the status", source: e };
    match running(state_dir, now) {
        Ok(snap) if json => {
            let mut v = serde_json::to_value(&snap).unwrap_or_default();
            v["running"] = true.into();
            writeln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default()).map_err(io)?;
            Ok(0)
        }
        Ok(snap) => {
            write!(out, "{}", render_text(&snap, now)).map_err(io)?;
            Ok(0)
        }
        Err(why) => {
            if json {
                let v = serde_json::json!({ "running": false, "config": config_shown, "reason": why.to_string() });
                writeln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default()).map_err(io)?;
            }
            eprintln!("ftagent: no agent is running for {config_shown}: {why}{}", system_hint(state_dir));
            Ok(EXIT_NOT_RUNNING)
        }
    }
}

/// For a user looking at their own state dir while the system service keeps its state elsewhere.
pub fn system_hint(state_dir: &Path) -> &'static str {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && state_dir != Path::new("/var/lib/ftagent") && Path::new("/var/lib/ftagent").is_dir() {
        "; for the system service, run it as root (sudo ftagent --status)"
    } else {
        ""
    }
}

/// Bits per second as `12.3 Mbit/s`.
pub fn bits(bps: f64) -> String {
    match bps {
        b if b >= 1e9 => format!("{:.2} Gbit/s", b / 1e9),
        b if b >= 1e6 => format!("{:.1} Mbit/s", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kbit/s", b / 1e3),
        b => format!("{b:.0} bit/s"),
    }
}

fn pct(v: f64, of: f64) -> String {
    if of > 0.0 {
        format!("{:.0}%", 100.0 * v / of)
    } else {
        "-".into()
    }
}

/// The human `--status` text.
pub fn render_text(s: &StatusSnapshot, now: SystemTime) -> String {
    let mut lines = rate_lines(s);
    lines.extend(state_lines(s));
    let now_ms = now.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    lines.push(format!("updated     {:.1} s ago", now_ms.saturating_sub(s.updated_unix_ms) as f64 / 1000.0));
    lines.join("\n") + "\n"
}

/// Who runs, where, and the rates against the thresholds.
fn rate_lines(s: &StatusSnapshot) -> Vec<String> {
    let (r, t) = (&s.rates, &s.thresholds);
    vec![
        format!("ftagent {} running (pid {}) since {}", s.version, s.pid, s.started_at),
        format!("mode        {}{}", s.mode, s.capture_reason.as_ref().map(|w| format!(" ({w})")).unwrap_or_default()),
        format!("interface   {}", s.interface),
        format!(
            "rx          {:.0} pps ({} of {:.0}) · {} ({} of {})",
            r.rx_pps,
            pct(r.rx_pps, t.pps),
            t.pps,
            bits(r.rx_bps),
            pct(r.rx_bps, t.bps),
            bits(t.bps)
        ),
        format!("tx          {:.0} pps · {}", r.tx_pps, bits(r.tx_bps)),
    ]
}

/// Baseline, incident, mitigations, spool, API.
fn state_lines(s: &StatusSnapshot) -> Vec<String> {
    let b = &s.baseline;
    let detection = if b.detection_active {
        "detection active".to_string()
    } else {
        format!("grace period, {:.0} s left", b.grace_left_s)
    };
    let restored = if b.restored { ", restored" } else { "" };
    let incident = match &s.incident {
        Some(i) => format!(
            "incident    {} {}, severity {}, open {:.0} s, peak {:.0} pps / {}",
            i.id,
            i.label,
            i.severity,
            i.duration_s,
            i.peak_pps,
            bits(i.peak_bps)
        ),
        None => format!("incident    none ({} since start)", s.incidents_total),
    };
    let mitigations = match s.mitigations.len() {
        0 => "none".to_string(),
        n => format!("{n} active"),
    };
    let api = match (s.api.enabled, &s.api.last_success) {
        (false, _) => "not configured (local mode)".to_string(),
        (true, Some(t)) => format!("last success {t}"),
        (true, None) => "no successful call yet".to_string(),
    };
    vec![
        format!(
            "baseline    quality {}, p99 {:.0} pps, {} samples{restored}; {detection}",
            b.quality, b.p99_pps, b.total_samples
        ),
        incident,
        format!("mitigations {mitigations}"),
        format!("spool       {} event(s) waiting", s.spool.events),
        format!("api         {api}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(pid: u32) -> StatusSnapshot {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        StatusSnapshot { pid, updated_unix_ms: ms, ..Default::default() }
    }

    #[test]
    fn a_dead_pid_is_not_running() {
        // Pid 0 is never ours, and a pid past pid_max cannot exist.
        assert!(check_alive(&fresh(0), SystemTime::now()).is_err());
        assert!(check_alive(&fresh(4_194_304 + 7), SystemTime::now()).is_err());
    }

    #[test]
    fn a_live_pid_of_another_program_is_not_running() {
        // This test binary is alive but is not ftagent.
        let err = check_alive(&fresh(std::process::id()), SystemTime::now()).unwrap_err().to_string();
        assert!(err.contains("no longer running"), "{err}");
    }

    #[test]
    fn missing_and_corrupt_files_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let err = running(dir.path(), SystemTime::now()).unwrap_err().to_string();
        assert!(err.contains("no state file"), "{err}");
        std::fs::write(state_file(dir.path()), b"{not json").unwrap();
        let err = running(dir.path(), SystemTime::now()).unwrap_err().to_string();
        assert!(err.contains("unreadable state file"), "{err}");
    }

    #[test]
    fn text_shows_rates_against_thresholds_and_grace() {
        let mut s = fresh(1);
        s.rates.rx_pps = 2500.0;
        s.thresholds.pps = 5000.0;
        s.thresholds.bps = 50e6;
        s.baseline.grace_left_s = 42.0;
        let text = render_text(&s, SystemTime::now());
        assert!(text.contains("2500 pps (50% of 5000)"), "{text}");
        assert!(text.contains("grace period, 42 s left"), "{text}");
        assert!(text.contains("mitigations none"), "{text}");
    }
}

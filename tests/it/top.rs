//! `--top` (§6.6) in a real terminal: tmux (on a private socket) runs `ftagent --top` in a
//! shell while a veth flood hits the agent in namespace `a`; `capture-pane` must show the flood's
//! rate, `q` (and, in a second session, Ctrl-C) must quit with status 0 and leave the terminal
//! sane (main screen, `stty` back to canonical mode with echo). Without a terminal, `--top` prints
//! one line per second.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{self, Home, NetnsPair, Reap};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pane(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "top"])
    }

    fn wait_pane(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let p = self.pane();
            if pred(&p) || Instant::now() >= deadline {
                return p;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.cmd(&["kill-server"]);
    }
}

/// The packets per second on the screen's `RX` line, if one is shown.
fn rx_on_screen(screen: &str) -> Option<f64> {
    let line = screen.lines().find(|l| l.contains("RX "))?;
    let after = line.split("RX ").nth(1)?;
    after.split_whitespace().next()?.parse().ok()
}

fn shell_line(cfg: &Path) -> String {
    format!(
        "{} --top --config {}; echo TOP_EXIT=$?; echo MODES $(stty -a | tr ' ;' '\\n\\n' | grep -E '^-?(icanon|echo)$') END; sleep 60",
        util::bin().display(),
        cfg.display()
    )
}

#[test]
fn top_in_tmux_shows_the_flood_rate_and_q_restores_the_terminal() {
    let _flood = util::flood_lock();
    let Some(pair) = NetnsPair::create() else { return };
    assert!(util::have("tmux"), "tmux is needed (apt-get install tmux)");
    assert!(util::have("hping3"), "hping3 is needed for the flood (apt-get install hping3)");
    let home = Home::new();
    let cfg = home.write_config(serde_json::json!({
        "interface": pair.veth_a, "baseline_window_s": 10, "grace_period_s": 2, "limited": true,
    }));
    let mut agent = Reap(pair.spawn_agent(&home, &cfg));
    assert!(util::wait_for_event(&home.events_file(), "agent_start", Duration::from_secs(10)).is_some());
    std::thread::sleep(Duration::from_secs(2));
    let tmux = Tmux { socket: format!("fta-top-{}", std::process::id()) };
    let size = ["-x", "110", "-y", "32"];
    tmux.cmd(&[&["new-session", "-d", "-s", "top"][..], &size[..], &["sh", "-c", &shell_line(&cfg)][..]].concat());
    let idle = tmux.wait_pane(Duration::from_secs(5), |p| p.contains("threshold 5000 pps"));
    assert!(idle.contains("threshold 5000 pps"), "{idle}");

    let mut flood = pair.udp_flood(5, 9);
    let busy =
        tmux.wait_pane(Duration::from_secs(5), |p| rx_on_screen(p).is_some_and(|r| r > 5000.0) && p.contains("peak"));
    let incident = tmux.wait_pane(Duration::from_secs(4), |p| p.contains("INCIDENT   udp_flood"));
    tmux.cmd(&["send-keys", "-t", "top", "q"]);
    let after = tmux.wait_pane(Duration::from_secs(5), |p| p.contains(" END"));
    let alt = tmux.cmd(&["display-message", "-p", "-t", "top", "#{alternate_on}"]);
    let _ = flood.wait();
    util::terminate(&mut agent.0, Duration::from_secs(5));

    let rx = rx_on_screen(&busy).unwrap_or_else(|| panic!("no RX rate on screen during the flood:\n{busy}"));
    assert!(rx > 5000.0, "RX {rx} pps on screen during the flood:\n{busy}");
    assert!(busy.contains("peak"), "sparkline title:\n{busy}");
    assert!(incident.contains("INCIDENT   udp_flood"), "{incident}");
    assert!(after.contains("TOP_EXIT=0"), "q did not quit --top with status 0:\n{after}");
    assert!(after.contains("MODES icanon echo END"), "terminal left in raw mode:\n{after}");
    assert_eq!(alt.trim(), "0", "still on the alternate screen after q");
    eprintln!("--top in tmux: RX {rx:.0} pps on screen during the flood");
}

#[test]
fn top_without_a_terminal_prints_one_line_per_second() {
    let home = Home::new();
    // Fixed thresholds: other tests share the loopback, and its traffic must not move them.
    let cfg = home.write_config(serde_json::json!({ "interface": "lo", "limited": true, "dynamic_threshold": false }));
    let mut agent = home.spawn_agent(&cfg);
    assert!(home.wait_state_file(Duration::from_secs(10)), "no state file");
    // --top never ends by itself while the agent runs: `timeout` ends it.
    let out =
        Command::new("timeout").args(["3.5"]).arg(util::bin()).args(["--top", "--config"]).arg(&cfg).output().unwrap();
    util::terminate(&mut agent.0, Duration::from_secs(5));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!((3..=5).contains(&lines.len()), "{} lines in 3.5 s:\n{text}", lines.len());
    assert!(lines.iter().all(|l| l.contains(" lo rx_pps=") && l.contains("threshold_pps=5000")), "{text}");
    assert!(!text.contains('\x1b'), "escape codes in the non-terminal output");
}

#[test]
fn top_in_tmux_quits_on_ctrl_c_and_restores_the_terminal() {
    assert!(util::have("tmux"), "tmux is needed (apt-get install tmux)");
    let home = Home::new();
    let cfg = home.write_config(serde_json::json!({ "interface": "lo", "limited": true, "dynamic_threshold": false }));
    let _agent = home.spawn_agent(&cfg);
    assert!(home.wait_state_file(Duration::from_secs(10)), "no state file");
    let tmux = Tmux { socket: format!("fta-topc-{}", std::process::id()) };
    tmux.cmd(&["new-session", "-d", "-s", "top", "-x", "100", "-y", "30", "sh", "-c", &shell_line(&cfg)]);
    // Wait for the whole first frame: a capture can land while the frame is still being drawn.
    let shown = tmux.wait_pane(Duration::from_secs(5), |p| {
        p.contains("threshold 5000 pps") && p.contains("RX ") && p.contains("q or Ctrl-C quits")
    });
    assert!(shown.contains("RX ") && shown.contains("q or Ctrl-C quits"), "{shown}");
    tmux.cmd(&["send-keys", "-t", "top", "C-c"]);
    let after = tmux.wait_pane(Duration::from_secs(5), |p| p.contains(" END"));
    assert!(after.contains("TOP_EXIT=0"), "Ctrl-C did not quit --top with status 0:\n{after}");
    assert!(after.contains("MODES icanon echo END"), "terminal left in raw mode:\n{after}");
    assert_eq!(tmux.cmd(&["display-message", "-p", "-t", "top", "#{alternate_on}"]).trim(), "0");
}

//! `--top`: the live view of the running agent's state file. On a terminal, a ratatui screen
//! refreshed in place (alternate screen, raw mode; `q`, Esc or Ctrl-C quits and the terminal is
//! restored, also on a panic); otherwise one line per second on stdout. Reads only the state
//! file, so it needs no privilege beyond reading the state dir and never touches the agent.

use std::io::{BufWriter, IsTerminal, Stdout, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

use super::query::running;
use super::top_view;
use super::EXIT_NOT_RUNNING;
use crate::error::{Error, Result};

/// How often the view re-reads the state file.
const REFRESH: Duration = Duration::from_millis(500);

/// Run `--top` until quit; exit 3 when no agent is running at the start.
pub fn run(state_dir: &Path, config_shown: &str) -> Result<u8> {
    super::query::check_readable(state_dir)?;
    if let Err(why) = running(state_dir, SystemTime::now()) {
        eprintln!("ftagent: no agent is running for {config_shown}: {why}{}", super::query::system_hint(state_dir));
        return Ok(EXIT_NOT_RUNNING);
    }
    if std::io::stdout().is_terminal() {
        screen(state_dir)
    } else {
        lines(state_dir, config_shown, &mut std::io::stdout())
    }
}

/// One line per state-file update (once a second) until the agent stops (exit 3) or stdout
/// closes (exit 0).
fn lines(state_dir: &Path, config_shown: &str, out: &mut dyn Write) -> Result<u8> {
    let mut last = 0;
    loop {
        match running(state_dir, SystemTime::now()) {
            Ok(s) if s.updated_unix_ms != last => {
                last = s.updated_unix_ms;
                if writeln!(out, "{}", top_view::one_line(&s)).and_then(|()| out.flush()).is_err() {
                    return Ok(0);
                }
            }
            Ok(_) => {}
            Err(why) => {
                eprintln!("ftagent: the agent for {config_shown} stopped: {why}");
                return Ok(EXIT_NOT_RUNNING);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A terminal whose frames reach the tty in one write each. `Stdout` is line-buffered and a
/// frame has no newline, so ratatui's default terminal sends a frame in 1 KiB pieces and a slow
/// link (ssh) shows half-drawn frames.
type Screen = Terminal<CrosstermBackend<BufWriter<Stdout>>>;

/// The full-screen view. Like `ratatui::init`, it installs a panic hook that restores the
/// terminal first.
fn screen(state_dir: &Path) -> Result<u8> {
    let mut term = enter().map_err(|e| {
        ratatui::restore();
        Error::Terminal { what: "cannot set up the terminal", source: e }
    })?;
    let result = screen_loop(&mut term, state_dir);
    ratatui::restore();
    result.map(|()| 0).map_err(|e| Error::Terminal { what: "terminal", source: e })
}

fn enter() -> std::io::Result<Screen> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        ratatui::restore();
        hook(info);
    }));
    crossterm::terminal::enable_raw_mode()?;
    crossterm::execute!(std::io::stdout(), crossterm::terminal::EnterAlternateScreen)?;
    Terminal::new(CrosstermBackend::new(BufWriter::with_capacity(1 << 16, std::io::stdout())))
}

fn screen_loop(term: &mut Screen, state_dir: &Path) -> std::io::Result<()> {
    let mut last_good = None;
    loop {
        let problem = match running(state_dir, SystemTime::now()) {
            Ok(s) => {
                last_good = Some(s);
                None
            }
            Err(why) => Some(why.to_string()),
        };
        term.draw(|f| top_view::draw(f, last_good.as_ref(), problem.as_deref()))?;
        let until = Instant::now() + REFRESH;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if !event::poll(left)? {
                break;
            }
            if let Event::Key(k) = event::read()? {
                let ctrl_c = k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c');
                if k.kind == KeyEventKind::Press && (ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)) {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_agent_exits_3() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(run(dir.path(), "test config").unwrap(), EXIT_NOT_RUNNING);
    }
}

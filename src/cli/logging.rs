//! Log set-up for the binary: stderr always (timestamps and colours only on a terminal: journald
//! adds its own timestamps, and a redirected stderr must carry no escape codes), plus `log_file`
//! when set, reopened on SIGHUP for logrotate. The library itself only uses `log` macros.

use std::io::IsTerminal;
use std::path::Path;

use log::LevelFilter;
use simplelog::{ColorChoice, CombinedLogger, ConfigBuilder, SharedLogger, TermLogger, TerminalMode, WriteLogger};

/// Shift a level by -v/-q steps.
pub fn adjust(level: LevelFilter, delta: i8) -> LevelFilter {
    const ORDER: [LevelFilter; 6] = [
        LevelFilter::Off,
        LevelFilter::Error,
        LevelFilter::Warn,
        LevelFilter::Info,
        LevelFilter::Debug,
        LevelFilter::Trace,
    ];
    let i = ORDER.iter().position(|l| *l == level).unwrap_or(3) as i8;
    ORDER[(i + delta).clamp(0, 5) as usize]
}

/// Install the loggers once. A log file that cannot be opened is reported on stderr, not fatal.
pub fn init(level: LevelFilter, log_file: Option<&Path>) {
    let tty = std::io::stderr().is_terminal();
    let mut stderr_cfg = ConfigBuilder::new();
    stderr_cfg.set_target_level(LevelFilter::Off).set_thread_level(LevelFilter::Off);
    if !tty {
        stderr_cfg.set_time_level(LevelFilter::Off);
    }
    let mut loggers: Vec<Box<dyn SharedLogger>> =
        vec![TermLogger::new(level, stderr_cfg.build(), TerminalMode::Stderr, colours(tty))];
    let mut file_error = None;
    if let Some(path) = log_file {
        let opened = path
            .parent()
            .map(|d| if d.exists() { Ok(()) } else { crate::util::fs::ensure_private_dir(d) })
            .unwrap_or(Ok(()))
            .and_then(|_| {
                crate::util::reopen::ReopeningFile::open(path, 0o640).map_err(|e| crate::error::Error::io(path, e))
            });
        match opened {
            Ok(f) => {
                let mut cfg = ConfigBuilder::new();
                cfg.set_target_level(LevelFilter::Off);
                let _ = cfg.set_time_offset_to_local();
                loggers.push(WriteLogger::new(level, cfg.build(), f));
            }
            Err(e) => file_error = Some(e),
        }
    }
    let _ = CombinedLogger::init(loggers);
    if let Some(e) = file_error {
        log::warn!("log file disabled: {e}");
    }
}

/// Colours only when stderr is a terminal; simplelog's `Auto` would colour a redirected stderr.
pub fn colours(stderr_is_terminal: bool) -> ColorChoice {
    if stderr_is_terminal {
        ColorChoice::Auto
    } else {
        ColorChoice::Never
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_moves_one_level_per_step() {
        assert_eq!(adjust(LevelFilter::Info, 1), LevelFilter::Debug);
        assert_eq!(adjust(LevelFilter::Info, -2), LevelFilter::Error);
        assert_eq!(adjust(LevelFilter::Info, 9), LevelFilter::Trace);
        assert_eq!(adjust(LevelFilter::Warn, -9), LevelFilter::Off);
    }
}

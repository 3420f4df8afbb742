//! What each command line does: load the config for the right user, set up logging, and run
//! the chosen action. Returns the process exit code; `main` only prints errors. Whether packet
//! capture runs is not decided here: [`crate::input::capture::start`] (the front door) decides it.

use std::path::PathBuf;

use log::warn;

use super::{generate, logging};
use crate::agent::{run, selftest};
use crate::cli::{Action, Cli};
use crate::config::paths::{Env, Paths};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::input::capture::handle::{CaptureStatus, Running};
use crate::install::{service, setup, update};
use crate::report::Sink;

pub fn main_with(cli: Cli) -> Result<u8> {
    let action = cli.action().map_err(Error::Usage)?;
    match action {
        Action::Generate(what) => return generate::generate(&what, &mut std::io::stdout()).map(|()| 0),
        Action::Setup => return setup::run_on_terminal(&setup_options(&cli), &current_exe()?),
        Action::InstallService => {
            return service::install(&setup::env_from_process(), cli.limited, &current_exe()?, &mut std::io::stdout())
        }
        Action::Analyze { file, json } => return analyze(&cli, &file, json),
        Action::Run | Action::Test | Action::Update | Action::Status { .. } | Action::Top => {}
    }
    let env = Env::from_process();
    let paths = Paths::resolve(&env, cli.limited);
    let mut settings = Settings::load(cli.config.as_deref(), &paths)?;
    if cli.limited {
        settings.limited = true;
    }
    let status = match action {
        Action::Status { json } => Some(crate::status::Request::Status { json }),
        Action::Top => Some(crate::status::Request::Top),
        _ => None,
    };
    if let Some(request) = status {
        return crate::status::run(request, &settings, &config_path(&cli));
    }
    let level = logging::adjust(settings.log_level, cli.verbosity_delta());
    let log_file = if action == Action::Run { settings.log_file.clone() } else { None };
    logging::init(level, log_file.as_deref());
    if !settings.unknown_keys.is_empty() {
        warn!(
            "{}: ignoring unknown config keys: {}",
            settings.source.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            settings.unknown_keys.join(", ")
        );
    }
    // The API's cached `/agent/config` (e.g. `pcap_enabled`) is applied before capture starts.
    let wiring = if action == Action::Run { Some(crate::report::sinks::for_run(&mut settings)?) } else { None };
    let Running { status: capture, insight } = if action == Action::Run {
        crate::input::capture::start(&settings, &env)
    } else {
        Running::off(crate::input::capture::status(&settings, &env))
    };
    match action {
        Action::Test => self_test(&settings, capture),
        Action::Update => {
            setup::with_terminal(|p| update::run(&settings.update_url, &setup::env_from_process(), &current_exe()?, p))
        }
        _ => {
            update::check::spawn_daily(&settings, cli.no_update_check);
            let wiring = wiring.expect("built for Run");
            let opts = run::RunOptions {
                capture,
                insight,
                extra_sinks: wiring.sinks,
                control: wiring.control,
                http_gauges: wiring.http_gauges,
            };
            run::run(settings, opts)?;
            Ok(0)
        }
    }
}

fn setup_options(cli: &Cli) -> setup::Options {
    setup::Options {
        limited: cli.limited,
        non_interactive: cli.non_interactive,
        interface: cli.interface.clone(),
        api_base: cli.api_base.clone(),
        config: cli.config.clone(),
        ..setup::Options::default()
    }
    .with_process_env()
}

/// The running binary, which units point at and `--update` replaces.
fn current_exe() -> Result<PathBuf> {
    std::env::current_exe().map_err(|e| Error::io("/proc/self/exe", e))
}

/// `--analyze FILE [--json]`: a capture file or an access log (every build), told apart by the
/// file's first bytes.
fn analyze(cli: &Cli, file: &std::path::Path, json: bool) -> Result<u8> {
    use std::io::Read as _;
    let mut head = Vec::with_capacity(4);
    std::fs::File::open(file).and_then(|f| f.take(4).read_to_end(&mut head)).map_err(|e| Error::io(file, e))?;
    if crate::input::accesslog::analyze::is_capture(&head) {
        analyze_capture(cli, file, json)
    } else {
        crate::input::accesslog::analyze::print(file, json)
    }
}

/// A capture file: the config is read only for its `ioc_patterns` (and not at all by a build
/// without the packet engine, which says so).
fn analyze_capture(cli: &Cli, file: &std::path::Path, json: bool) -> Result<u8> {
    if !crate::input::capture::BUILT {
        return Err(Error::NotBuilt { what: "packet capture", feature: "capture-scapy" });
    }
    let settings = Settings::load(cli.config.as_deref(), &Paths::resolve(&Env::from_process(), cli.limited))?;
    crate::input::capture::analyze::print(file, json, &settings.ioc_patterns)
}

fn self_test(settings: &Settings, capture: CaptureStatus) -> Result<u8> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(p) = &settings.events_file {
        sinks.push(Box::new(crate::report::eventlog::EventLog::open(p)?));
    }
    sinks.extend(crate::report::sinks::for_test(settings)?);
    if sinks.is_empty() {
        return Err(Error::Refused {
            what: "--test",
            why: "no sink is configured (events_file is \"\" and no API key)".into(),
        });
    }
    let events = selftest::synthetic_incident(settings, capture);
    let results = selftest::deliver(&events, &mut sinks);
    let mut ok = true;
    for (name, r) in &results {
        match r {
            Ok(()) => println!("{name}: OK"),
            Err(e) => {
                ok = false;
                println!("{name}: FAILED: {e}");
            }
        }
    }
    Ok(if ok { 0 } else { crate::error::EXIT_FAILURE })
}

/// The config path this invocation would use (for messages).
pub fn config_path(cli: &Cli) -> PathBuf {
    cli.config.clone().unwrap_or_else(|| Paths::resolve(&Env::from_process(), cli.limited).config)
}

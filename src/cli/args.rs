//! Command-line flags (§2), parsed with clap. Flags, not subcommands, as in the product docs.
//!
//! This module only describes and parses; it does no I/O. `main` turns a [`Cli`] into an
//! [`crate::cli::Action`] with [`Cli::action`].

use std::path::PathBuf;

use clap::{ArgAction, Parser};

#[derive(Debug, Parser)]
#[command(
    name = "ftagent",
    version,
    about = "DDoS-detection agent: learns a host's normal traffic and opens an incident within a second of a flood",
    long_about = None,
    after_help = "With no flags, runs the agent in the foreground until SIGTERM/SIGINT.",
    after_long_help = crate::cli::help::AFTER_LONG_HELP
)]
pub struct Cli {
    /// Interactive setup wizard; with --limited it stores "limited": true
    #[arg(long)]
    pub setup: bool,

    /// Run (or set up) without any root-level function: no capture, PCAP, IOC or TCP-flag analysis
    #[arg(long)]
    pub limited: bool,

    /// Send a synthetic detection event through every configured sink; exit 0 only if all accepted it
    #[arg(long)]
    pub test: bool,

    /// Check for a newer release, show the version change, prompt, install
    #[arg(long)]
    pub update: bool,

    /// Skip the automatic daily update check
    #[arg(long)]
    pub no_update_check: bool,

    /// Write and enable the systemd unit (system unit as root, user unit otherwise)
    #[arg(long)]
    pub install_service: bool,

    /// Use this config file instead of the default path
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Summarise a capture file (capture builds) or a web-server access log offline
    #[arg(long, value_name = "FILE")]
    pub analyze: Option<PathBuf>,

    /// With --analyze or --status: print one JSON object instead of text
    #[arg(long)]
    pub json: bool,

    /// Show the running agent's state (rates against thresholds, baseline, incident, spool,
    /// API); exit 3 when no agent is running for this config
    #[arg(long)]
    pub status: bool,

    /// Live view of the running agent (rates with a sparkline, thresholds, protocol mix); q
    /// quits; one line per second when stdout is not a terminal
    #[arg(long)]
    pub top: bool,

    /// With --setup: take answers from flags and FTAGENT_API_KEY / FTAGENT_NODE_UUID, never prompt
    #[arg(long, requires = "setup")]
    pub non_interactive: bool,

    /// With --setup: the interface to monitor (default: auto)
    #[arg(long, value_name = "NAME", requires = "setup")]
    pub interface: Option<String>,

    /// With --setup: the API root (default: https://flowtriq.com/api/v1)
    #[arg(long, value_name = "URL", requires = "setup")]
    pub api_base: Option<String>,

    /// Generate a packaging file on stdout: `man`, `completions SHELL`, `unit system|user`
    #[arg(long, value_name = "WHAT", num_args = 1..=2)]
    pub generate: Option<Vec<String>>,

    /// More log output (repeat for more)
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less log output (repeat for less)
    #[arg(short, long, action = ArgAction::Count)]
    pub quiet: u8,
}

/// What the invocation asks for; exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Run,
    Setup,
    Test,
    Update,
    InstallService,
    Analyze { file: PathBuf, json: bool },
    Generate(Vec<String>),
    Status { json: bool },
    Top,
}

impl Cli {
    /// The single action this command line asks for, or a usage error naming the clash.
    pub fn action(&self) -> Result<Action, String> {
        let mut chosen: Vec<(&str, Action)> = Vec::new();
        if self.setup {
            chosen.push(("--setup", Action::Setup));
        }
        if self.test {
            chosen.push(("--test", Action::Test));
        }
        if self.update {
            chosen.push(("--update", Action::Update));
        }
        if self.install_service {
            chosen.push(("--install-service", Action::InstallService));
        }
        if let Some(file) = &self.analyze {
            let json = self.json;
            chosen.push(("--analyze", Action::Analyze { file: file.clone(), json }));
        }
        if self.status {
            chosen.push(("--status", Action::Status { json: self.json }));
        }
        if self.top {
            chosen.push(("--top", Action::Top));
        }
        if self.json && self.analyze.is_none() && !self.status {
            return Err("--json goes with --analyze or --status".into());
        }
        if let Some(what) = &self.generate {
            chosen.push(("--generate", Action::Generate(what.clone())));
        }
        match chosen.len() {
            0 => Ok(Action::Run),
            1 => Ok(chosen.pop().expect("one element").1),
            _ => {
                let names: Vec<&str> = chosen.iter().map(|(n, _)| *n).collect();
                Err(format!("{} cannot be used together", names.join(" and ")))
            }
        }
    }

    /// Log level from -v/-q around the configured one: each step moves one level.
    pub fn verbosity_delta(&self) -> i8 {
        self.verbose as i8 - self.quiet as i8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("ftagent").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn every_spec_flag_parses() {
        let cli = parse(&["--limited", "--no-update-check", "--config", "/tmp/c.json", "-vv"]);
        assert!(cli.limited && cli.no_update_check);
        assert_eq!(cli.config.as_deref(), Some(std::path::Path::new("/tmp/c.json")));
        assert_eq!(cli.verbosity_delta(), 2);
        assert_eq!(cli.action(), Ok(Action::Run));
        for (flag, action) in [
            ("--setup", Action::Setup),
            ("--test", Action::Test),
            ("--update", Action::Update),
            ("--install-service", Action::InstallService),
        ] {
            assert_eq!(parse(&[flag]).action(), Ok(action), "{flag}");
        }
    }

    #[test]
    fn analyze_and_generate_take_values() {
        let cli = parse(&["--analyze", "x.pcap", "--json"]);
        assert_eq!(cli.action(), Ok(Action::Analyze { file: "x.pcap".into(), json: true }));
        let cli = parse(&["--generate", "completions", "bash"]);
        assert_eq!(cli.action(), Ok(Action::Generate(vec!["completions".into(), "bash".into()])));
    }

    #[test]
    fn two_actions_are_a_usage_error() {
        let err = parse(&["--setup", "--test"]).action().unwrap_err();
        assert!(err.contains("--setup and --test"), "{err}");
    }

    #[test]
    fn json_without_analyze_or_status_is_rejected() {
        let err = parse(&["--json"]).action().unwrap_err();
        assert!(err.contains("--json goes with"), "{err}");
        assert_eq!(parse(&["--status", "--json"]).action(), Ok(Action::Status { json: true }));
        assert_eq!(parse(&["--top"]).action(), Ok(Action::Top));
    }
}

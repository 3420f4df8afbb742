//! The crate's one error type and its mapping to process exit codes.
//!
//! Every fallible library call returns [`Error`]; `main` prints it with `{:#}`-style context and
//! exits with [`Error::exit_code`]. Per-tick failures (a bad counter read, a failed send) are not
//! errors of this kind: they are logged once and counted where they happen.

use std::path::PathBuf;

/// Exit code for a usage error (bad flags), as clap uses.
pub const EXIT_USAGE: u8 = 2;
/// EX_CONFIG from sysexits.h: a config file that cannot be read or is invalid.
pub const EXIT_CONFIG: u8 = 78;
/// A runtime failure (`--test` failed, update failed, ...).
pub const EXIT_FAILURE: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file is not valid JSON.
    #[error("{}: invalid JSON at line {line}, column {column}: {msg}", path.display())]
    ConfigSyntax { path: PathBuf, line: usize, column: usize, msg: String },
    /// A key has a wrong type or an out-of-range value.
    #[error("{}: key `{key}`{}: {msg}", path.display(), location(*line, *column))]
    ConfigValue { path: PathBuf, key: String, line: usize, column: usize, msg: String },
    /// The config file could not be read.
    #[error("{}: cannot read config file: {source}", path.display())]
    ConfigRead { path: PathBuf, source: std::io::Error },
    /// Permission denied on a path; `hint` says how to fix it.
    #[error("{}: permission denied ({hint})", path.display())]
    PermissionDenied { path: PathBuf, hint: String },
    /// Any other I/O failure, with the path it concerned.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A flag this build cannot honour because a Cargo feature is missing.
    #[error("this build has no {what} (feature {feature}); rebuild with `--features {feature}`")]
    NotBuilt { what: &'static str, feature: &'static str },
    /// A flag that parses but whose behaviour is not built yet.
    #[error("{0} is not built yet in this version of ftagent")]
    NotImplemented(&'static str),
    /// A wrong combination of flags.
    #[error("{0}")]
    Usage(String),
    /// Netlink `sock_diag` failed or was refused (the socket census then reads `/proc/net/tcp`).
    #[error("netlink sock_diag: {0}")]
    SockDiag(std::io::Error),
    /// A setting that passed the config reader cannot be used as it is (a URL scheme, a
    /// listen address nobody may bind).
    #[error("config key `{key}`: {why}")]
    Setting { key: &'static str, why: String },
    /// A thread could not be started.
    #[error("cannot start the {what} thread: {source}")]
    Thread { what: &'static str, source: std::io::Error },
    /// Data could not be encoded (JSON for a file or a request).
    #[error("serialising {what}: {source}")]
    Encode { what: &'static str, source: serde_json::Error },
    /// Data read back (a state file, a server's answer, a program's output) is not what it must
    /// be. `what` names the data; `why` says what is wrong with it (and names it again for the
    /// operator).
    #[error("{why}")]
    Invalid { what: &'static str, why: String },
    /// A program the agent runs (tcpdump, mergecap, nft, useradd, the hook, a package manager)
    /// could not be started, failed or timed out.
    #[error("{why}")]
    Program { program: String, why: String },
    /// An HTTP request failed or was refused.
    #[error("{why}")]
    Http { url: String, status: Option<u16>, why: String },
    /// Packet capture cannot run in this mode (the reason goes to the one log line).
    #[error("{why}")]
    CaptureOff { mode: &'static str, why: String },
    /// No agent is running for this config (`--status`, `--top`).
    #[error("{why}")]
    NotRunning { why: String },
    /// The terminal or a standard stream failed.
    #[error("{what}: {source}")]
    Terminal { what: &'static str, source: std::io::Error },
    /// An operation refused to go on (a release that fails verification, a setup without
    /// answers, a `--test` without sinks); `what` names it.
    #[error("{why}")]
    Refused { what: &'static str, why: String },
}

fn location(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" (line {line}, column {column})")
    }
}

impl Error {
    /// Wrap an I/O error with the path it happened on; permission errors get their own variant.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            Error::PermissionDenied {
                path,
                hint: "run as a user that may write there, or point `state_dir`/`--config` elsewhere".into(),
            }
        } else {
            Error::Io { path, source }
        }
    }

    /// The process exit code this error maps to (§2).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::ConfigSyntax { .. } | Error::ConfigValue { .. } | Error::ConfigRead { .. } => EXIT_CONFIG,
            Error::Usage(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The operator's view of a running agent (§6.6): the state file the agent rewrites every second
//! (`<state dir>/status.json`, 0600), `--status` and `--top` that read it.
//!
//! [`snapshot`] is the file's shape (plain data); `crate::report::statefile` writes it on the report
//! worker, never on the sampling thread; [`query`] decides whether an agent is running and prints `--status`;
//! [`top`] is the live view. Nothing here feeds back into detection.

pub mod query;
pub mod snapshot;
pub mod top;
mod top_view;

pub use snapshot::StatusSnapshot;

use std::path::{Path, PathBuf};

/// Exit code of `--status` / `--top` when no agent is running for the config (§6.6).
pub const EXIT_NOT_RUNNING: u8 = 3;

/// Where the state file of the agent with this state dir lives.
pub fn state_file(state_dir: &Path) -> PathBuf {
    state_dir.join("status.json")
}

/// What the operator asked to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `--status` (`--json`: the snapshot as JSON).
    Status { json: bool },
    /// `--top`: the live view.
    Top,
}

/// Run `--status` / `--top` for the agent of this config and return the exit code.
pub fn run(request: Request, settings: &crate::config::Settings, config: &Path) -> crate::error::Result<u8> {
    let shown = config.display().to_string();
    match request {
        Request::Status { json } => query::print(&settings.state_dir, &shown, json, &mut std::io::stdout()),
        Request::Top => top::run(&settings.state_dir, &shown),
    }
}

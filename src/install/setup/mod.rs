//! `--setup` (§8.1): collect the answers (interactively, or from flags and environment with
//! `--non-interactive`), merge them into the existing config so keys the wizard does not ask
//! about survive, and write the file atomically with mode 0600 from the first byte.
//!
//! Root gets `/etc/ftagent/config.json` (under the injected root), handed to the `ftagent`
//! service account; everyone else, and `--limited`, gets the per-user file with
//! `"limited": true`. Questions live in [`questions`]; this module never prints the API key.

mod prompt;
mod questions;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use prompt::Prompter;
pub use questions::{Answers, Current};

use crate::config::mask_key;
use crate::config::paths::{Env, Paths};
use crate::error::{Error, Result};
use crate::input::counters::netdev::{self, NetDev};
use crate::install::{account, service};
use crate::util::fs as fsutil;

/// What the command line said.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub limited: bool,
    pub non_interactive: bool,
    pub interface: Option<String>,
    pub api_base: Option<String>,
    pub config: Option<PathBuf>,
    /// `FTAGENT_API_KEY` (None = unset: keep the current key).
    pub api_key_env: Option<String>,
    /// `FTAGENT_NODE_UUID`.
    pub node_uuid_env: Option<String>,
}

impl Options {
    /// Take the two variables from the process environment.
    pub fn with_process_env(mut self) -> Self {
        self.api_key_env = std::env::var("FTAGENT_API_KEY").ok();
        self.node_uuid_env = std::env::var("FTAGENT_NODE_UUID").ok();
        self
    }
}

/// Run the wizard. `exe` is the binary the service unit should run.
pub fn run(opts: &Options, env: &Env, p: &mut Prompter, exe: &Path) -> Result<u8> {
    let limited = opts.limited || !env.is_root();
    let paths = Paths::resolve(env, opts.limited);
    let path = opts.config.clone().unwrap_or_else(|| paths.config.clone());
    let mut raw = read_raw(&path)?;
    let current = Current::from_raw(&raw);
    let table = read_interfaces(&raw);
    let answers = if opts.non_interactive {
        questions::from_options(opts, &current, &table, p)?
    } else {
        questions::ask(&current, &table, limited, p)?
    };
    answers.merge_into(&mut raw, limited);
    write_config(&path, &raw, paths.system && opts.config.is_none())?;
    if paths.system {
        match account::lookup(env) {
            Some(ids) => account::hand_config_to_service(&path, ids)?,
            None => p.say(&format!(
                "note: the `{}` user does not exist yet; `ftagent --install-service` creates it and hands it this file",
                account::SERVICE_USER
            )),
        }
    }
    let mode = if answers.api_key.is_empty() {
        "local mode (no API key)".to_string()
    } else {
        format!("API key {}, node {}", mask_key(&answers.api_key), answers.node_uuid)
    };
    p.say(&format!("wrote {} (mode 0600): {mode}, interface {}", path.display(), answers.interface));
    offer_service(opts, env, p, exe, limited)
}

fn offer_service(opts: &Options, env: &Env, p: &mut Prompter, exe: &Path, limited: bool) -> Result<u8> {
    let system = env.is_root() && !opts.limited;
    let which = if system { "system" } else { "user" };
    if opts.non_interactive {
        let next = if system {
            "sudo ftagent --install-service".to_string()
        } else if opts.config.is_some() {
            "ftagent --install-service --limited   (the unit reads the default config path)".to_string()
        } else {
            "systemctl --user start ftagent   (or `ftagent --install-service` to enable it at login)".to_string()
        };
        p.say(&format!("next: {next}"));
        return Ok(0);
    }
    if !p.yes_no(&format!("Install and start the {which} service now?"), true)? {
        p.say("Later: ftagent --install-service");
        return Ok(0);
    }
    let mut out = Vec::new();
    let code = service::install(env, limited && !system, exe, &mut out)?;
    p.say(String::from_utf8_lossy(&out).trim_end());
    Ok(code)
}

/// The current file's JSON object; a missing file is an empty one, invalid JSON an error
/// (setup never overwrites a file it cannot read).
pub fn read_raw(path: &Path) -> Result<Map<String, Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(source) => return Err(Error::ConfigRead { path: path.to_path_buf(), source }),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::ConfigSyntax {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            msg: "the config must be a JSON object ({ ... })".into(),
        }),
        Err(e) => Err(Error::ConfigSyntax {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column().max(1),
            msg: e.to_string(),
        }),
    }
}

/// Create the directory (0700 for a per-user one) and write the file atomically, 0600.
fn write_config(path: &Path, raw: &Map<String, Value>, system_dir: bool) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if system_dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        } else if !dir.exists() {
            fsutil::ensure_private_dir(dir)?;
        }
    }
    let mut text = serde_json::to_string_pretty(raw).map_err(|e| Error::Encode { what: "the config", source: e })?;
    text.push('\n');
    fsutil::write_atomic(path, text.as_bytes(), 0o600)
}

/// Interfaces with their counters from `<procfs_root>/net/dev` (the config's, else `/proc`).
fn read_interfaces(raw: &Map<String, Value>) -> NetDev {
    let root = raw.get("procfs_root").and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or("/proc");
    std::fs::read_to_string(Path::new(root).join("net/dev")).map(|t| netdev::parse(&t)).unwrap_or_default()
}

/// `FTAGENT_ROOT` moves every system path (`/etc`, `/var`, `/usr`) under a prefix: for staging
/// images and tests. Unset on a real host.
pub fn env_from_process() -> Env {
    let mut env = Env::from_process();
    if let Some(root) = std::env::var_os("FTAGENT_ROOT").filter(|r| !r.is_empty()) {
        env.root = PathBuf::from(root);
    }
    env
}

/// Run `f` with a prompter on the process's stdin/stdout (no echo for secrets on a terminal).
pub fn with_terminal<T>(f: impl FnOnce(&mut Prompter) -> Result<T>) -> Result<T> {
    use std::io::IsTerminal;
    let tty = std::io::stdin().is_terminal();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut stdout = std::io::stdout();
    let result = f(&mut Prompter::new(&mut input, &mut stdout, tty));
    let _ = stdout.flush();
    result
}

/// `--setup` on the process's stdin/stdout.
pub fn run_on_terminal(opts: &Options, exe: &Path) -> Result<u8> {
    with_terminal(|p| run(opts, &env_from_process(), p, exe))
}

#[cfg(test)]
mod tests;

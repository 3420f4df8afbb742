//! Where things live (§3.1): config file, state dir and log file for root or an ordinary user.
//!
//! [`Env`] gathers every OS input (euid, HOME, XDG variables, systemd's directory variables and a
//! file-system root) so tests and `--setup` can inject a fake one; nothing here touches files.

use std::path::{Path, PathBuf};

/// The OS inputs that decide default paths.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub euid: u32,
    pub home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
    pub xdg_state_home: Option<PathBuf>,
    /// `$STATE_DIRECTORY`, set by systemd's `StateDirectory=`.
    pub state_directory: Option<PathBuf>,
    /// `$LOGS_DIRECTORY`, set by systemd's `LogsDirectory=`.
    pub logs_directory: Option<PathBuf>,
    /// Prefix for system paths (`/` on a real host; a temp dir in tests).
    pub root: PathBuf,
}

impl Env {
    /// The real process environment.
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        Env {
            // SAFETY: geteuid has no preconditions and cannot fail.
            euid: unsafe { libc::geteuid() },
            home: var("HOME"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            xdg_state_home: var("XDG_STATE_HOME"),
            state_directory: var("STATE_DIRECTORY").map(first_of_list),
            logs_directory: var("LOGS_DIRECTORY").map(first_of_list),
            root: PathBuf::from("/"),
        }
    }

    pub fn is_root(&self) -> bool {
        self.euid == 0
    }

    fn home(&self) -> PathBuf {
        self.home.clone().unwrap_or_else(|| self.root.join("tmp"))
    }
}

/// systemd passes several directories colon-separated when a unit lists more than one.
fn first_of_list(p: PathBuf) -> PathBuf {
    let s = p.to_string_lossy();
    PathBuf::from(s.split(':').next().unwrap_or_default())
}

/// Default locations for one kind of run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub config: PathBuf,
    pub state_dir: PathBuf,
    pub log_file: PathBuf,
    /// True for the system (root) layout.
    pub system: bool,
}

impl Paths {
    /// Root without `--limited` gets the system layout; everyone else the per-user XDG one.
    pub fn resolve(env: &Env, limited_flag: bool) -> Self {
        if env.is_root() && !limited_flag {
            let state_dir = env.state_directory.clone().unwrap_or_else(|| env.root.join("var/lib/ftagent"));
            let log_file = match &env.logs_directory {
                Some(d) => d.join("ftagent.log"),
                None => env.root.join("var/log/ftagent.log"),
            };
            Paths { config: env.root.join("etc/ftagent/config.json"), state_dir, log_file, system: true }
        } else {
            let config_home = env.xdg_config_home.clone().unwrap_or_else(|| env.home().join(".config"));
            let state_home = env.xdg_state_home.clone().unwrap_or_else(|| env.home().join(".local/state"));
            let state_dir = env.state_directory.clone().unwrap_or_else(|| state_home.join("ftagent"));
            // The system unit runs as the unprivileged `ftagent` user, so systemd's LogsDirectory=
            // must count here too.
            let log_file = match &env.logs_directory {
                Some(d) => d.join("ftagent.log"),
                None => state_dir.join("ftagent.log"),
            };
            Paths { config: config_home.join("ftagent/config.json"), log_file, state_dir, system: false }
        }
    }

    pub fn config_dir(&self) -> &Path {
        self.config.parent().unwrap_or(Path::new("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_env() -> Env {
        Env { euid: 1000, home: Some("/home/u".into()), root: "/".into(), ..Env::default() }
    }

    #[test]
    fn user_paths_follow_xdg_defaults() {
        let p = Paths::resolve(&user_env(), false);
        assert_eq!(p.config, PathBuf::from("/home/u/.config/ftagent/config.json"));
        assert_eq!(p.state_dir, PathBuf::from("/home/u/.local/state/ftagent"));
        assert_eq!(p.log_file, PathBuf::from("/home/u/.local/state/ftagent/ftagent.log"));
        assert!(!p.system);
    }

    #[test]
    fn user_paths_honour_xdg_variables() {
        let env = Env { xdg_config_home: Some("/x/cfg".into()), xdg_state_home: Some("/x/state".into()), ..user_env() };
        let p = Paths::resolve(&env, false);
        assert_eq!(p.config, PathBuf::from("/x/cfg/ftagent/config.json"));
        assert_eq!(p.state_dir, PathBuf::from("/x/state/ftagent"));
    }

    #[test]
    fn root_gets_system_paths_under_injected_root() {
        let env = Env { euid: 0, root: "/tmp/r".into(), ..Env::default() };
        let p = Paths::resolve(&env, false);
        assert_eq!(p.config, PathBuf::from("/tmp/r/etc/ftagent/config.json"));
        assert_eq!(p.state_dir, PathBuf::from("/tmp/r/var/lib/ftagent"));
        assert_eq!(p.log_file, PathBuf::from("/tmp/r/var/log/ftagent.log"));
        assert!(p.system);
    }

    #[test]
    fn systemd_directories_win_for_the_service() {
        let env = Env {
            euid: 0,
            root: "/".into(),
            state_directory: Some("/var/lib/ftagent".into()),
            logs_directory: Some("/var/log/ftagent".into()),
            ..Env::default()
        };
        let p = Paths::resolve(&env, false);
        assert_eq!(p.log_file, PathBuf::from("/var/log/ftagent/ftagent.log"));
    }

    #[test]
    fn service_user_honours_systemd_directories() {
        let env = Env {
            state_directory: Some("/var/lib/ftagent".into()),
            logs_directory: Some("/var/log/ftagent".into()),
            ..user_env()
        };
        let p = Paths::resolve(&env, false);
        assert_eq!(p.state_dir, PathBuf::from("/var/lib/ftagent"));
        assert_eq!(p.log_file, PathBuf::from("/var/log/ftagent/ftagent.log"));
    }

    #[test]
    fn root_with_limited_flag_uses_the_user_layout() {
        let env = Env { euid: 0, home: Some("/root".into()), root: "/".into(), ..Env::default() };
        assert_eq!(Paths::resolve(&env, true).config, PathBuf::from("/root/.config/ftagent/config.json"));
    }
}

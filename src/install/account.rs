//! The `ftagent` system account the system service runs as: looking it up in `<root>/etc/passwd`,
//! creating it with `useradd` when it is missing on the real root, and handing the system config
//! to it (0600, owned by `ftagent`, so the unprivileged service can read it and nobody else can).
//!
//! The packages create the account in their install scripts; this module only covers a standalone
//! binary. It never edits `/etc/passwd` itself.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use crate::config::paths::Env;
use crate::error::{Error, Result};

/// The dedicated account the system service runs as (the one place that names it).
pub const SERVICE_USER: &str = "ftagent";

/// uid and gid of a passwd entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

/// Find `name` in passwd-format text.
pub fn parse_passwd(text: &str, name: &str) -> Option<Ids> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 4 && f[0] == name {
            Some(Ids { uid: f[2].parse().ok()?, gid: f[3].parse().ok()? })
        } else {
            None
        }
    })
}

/// The service account in the injected root, if it exists.
pub fn lookup(env: &Env) -> Option<Ids> {
    let text = std::fs::read_to_string(env.root.join("etc/passwd")).ok()?;
    parse_passwd(&text, SERVICE_USER)
}

/// The command that creates the account (as the packages do).
pub const USERADD: &[&str] = &[
    "useradd",
    "--system",
    "--user-group",
    "--home-dir",
    "/var/lib/ftagent",
    "--no-create-home",
    "--shell",
    "/usr/sbin/nologin",
    "--comment",
    "ftagent DDoS-detection agent",
    SERVICE_USER,
];

/// Make sure the account exists: create it on the real root, or say how for an injected one.
pub fn ensure(env: &Env, out: &mut dyn Write) -> Result<Option<Ids>> {
    if let Some(ids) = lookup(env) {
        return Ok(Some(ids));
    }
    if env.root != Path::new("/") {
        let _ = writeln!(
            out,
            "user `{SERVICE_USER}` is missing under {}; create it with: {}",
            env.root.display(),
            USERADD.join(" ")
        );
        return Ok(None);
    }
    let status = Command::new(USERADD[0]).args(&USERADD[1..]).status();
    match status {
        Ok(s) if s.success() => {
            let _ = writeln!(out, "created system user `{SERVICE_USER}`");
            Ok(lookup(env))
        }
        Ok(s) => {
            Err(Error::Program { program: "useradd".into(), why: format!("`{}` exited with {s}", USERADD.join(" ")) })
        }
        Err(e) => Err(Error::Program {
            program: "useradd".into(),
            why: format!("cannot run useradd ({e}); create the user with: {}", USERADD.join(" ")),
        }),
    }
}

/// Give the system config to the service account (mode stays 0600).
pub fn hand_config_to_service(config: &Path, ids: Ids) -> Result<()> {
    std::os::unix::fs::chown(config, Some(ids.uid), Some(ids.gid)).map_err(|e| Error::io(config, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_service_account_in_passwd_text() {
        let text = "root:x:0:0:root:/root:/bin/bash\nftagentx:x:5:5::/:/bin/sh\nftagent:x:998:997:ftagent:/var/lib/ftagent:/usr/sbin/nologin\n";
        assert_eq!(parse_passwd(text, "ftagent"), Some(Ids { uid: 998, gid: 997 }));
        assert_eq!(parse_passwd(text, "nobody"), None);
        assert_eq!(parse_passwd("ftagent:x:notanumber:1::/:/bin/sh", "ftagent"), None);
    }

    #[test]
    fn missing_account_under_an_injected_root_prints_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env { euid: 0, root: dir.path().into(), ..Env::default() };
        let mut out = Vec::new();
        assert_eq!(ensure(&env, &mut out).unwrap(), None);
        assert!(String::from_utf8(out).unwrap().contains("useradd --system"));
    }
}

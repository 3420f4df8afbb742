//! tcpdump mode in a build without `capture-tcpdump`: the capture front door sees
//! `BUILT == false` and never starts it. Owns nothing.

use crate::config::paths::Env;
use crate::config::Settings;
use crate::input::capture::handle::PacketInsight;

/// This build has no tcpdump mode.
pub const BUILT: bool = false;

/// Never called (the front door checks [`BUILT`]); fails clearly if it were.
pub fn open(
    _settings: &Settings,
    _env: &Env,
    _interface: Option<String>,
) -> crate::error::Result<Box<dyn PacketInsight>> {
    Err(crate::error::Error::NotBuilt { what: "tcpdump capture", feature: "capture-tcpdump" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::paths::Paths;

    #[test]
    fn never_built_and_open_names_the_feature() {
        const { assert!(!BUILT) };
        let d = tempfile::tempdir().unwrap();
        let env = Env { euid: 1000, home: Some(d.path().into()), root: "/".into(), ..Default::default() };
        let settings = Settings::defaults(&Paths::resolve(&env, false));
        let err = open(&settings, &env, Some("lo".into())).err().expect("the stub never opens");
        assert!(err.to_string().contains("capture-tcpdump"), "{err}");
        assert!(err.to_string().contains("tcpdump capture"), "{err}");
    }
}

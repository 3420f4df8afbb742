//! tcpdump mode in a build without `capture-tcpdump`: the capture front door sees
//! `BUILT == false` and never starts it. Owns nothing.

use crate::config::paths::Env;
use crate::config::Settings;
use crate::input::capture::handle::PacketInsight;

/// This build has no tcpdump mode.
pub const BUILT: bool = false;

/// Never called (the front door checks [`BUILT`]); fails clearly if it were.
pub fn open(_settings: &Settings, _env: &Env, _interface: Option<String>) -> Result<Box<dyn PacketInsight>, String> {
    Err("this build has no tcpdump capture (feature capture-tcpdump)".into())
}

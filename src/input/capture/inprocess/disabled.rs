//! In-process capture in a build without `capture-scapy`: the capture front door sees
//! `BUILT == false` and never starts it. Owns nothing.

use crate::config::Settings;
use crate::input::capture::handle::PacketInsight;

/// This build has no in-process capture.
pub const BUILT: bool = false;

/// Never called (the front door checks [`BUILT`]); fails clearly if it were.
pub fn open(_settings: &Settings, _interface: Option<&str>) -> Result<Box<dyn PacketInsight>, String> {
    Err("this build has no in-process capture (feature capture-scapy)".into())
}

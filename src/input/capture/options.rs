//! Options the API may change while a capture runs (§6.2 `/agent/config`: `ioc_patterns`,
//! `pcap_enabled`): the one place where new IOC patterns are compiled for a running capture,
//! off the sampling and capture threads. Both capture modes use it; it owns no capture state.

use std::sync::Arc;

use log::warn;

use crate::config::IocPattern;
use crate::input::capture::engine::ioc::IocMatcher;

/// Compile `patterns` on a thread of its own (a large list takes a while; neither the sampling
/// nor the capture thread may wait for it), then hand the matcher to `then`. Patterns that do
/// not compile keep the capture as it is, with one warning.
pub fn compile_then(patterns: &[IocPattern], then: impl FnOnce(Option<Arc<IocMatcher>>) + Send + 'static) {
    let patterns = patterns.to_vec();
    let spawned = std::thread::Builder::new().name("ftagent-ioc".into()).spawn(move || {
        match IocMatcher::for_capture(&patterns) {
            Ok(m) => then(m),
            Err(e) => warn!("IOC patterns from the API not applied: {e}"),
        }
    });
    if let Err(e) = spawned {
        warn!("IOC patterns from the API not applied: cannot start a thread: {e}");
    }
}

//! Acceptance specs (`features/*.feature`) run against the real `ftagent` binary.
//! Limited mode: counters from a fake `/proc` tree that a writer thread advances in real time.
//! HTTP floods: an access log that a writer thread fills like a web server would.
//! Capture mode (capture builds, as root): real floods across a veth pair between namespaces.

#[path = "../src/util/skip.rs"]
mod skip;
#[path = "it/util.rs"]
mod util;

mod steps {
    #[cfg(feature = "capture-scapy")]
    pub mod capture;
    pub mod fakeproc;
    pub mod httplog;
    pub mod limited;
}

use cucumber::writer::Stats as _;
use cucumber::World as _;

fn main() {
    let mut failed = false;
    let limited = steps::limited::AgentWorld::cucumber().max_concurrent_scenarios(1).fail_on_skipped();
    let w = futures::executor::block_on(limited.run("features/limited.feature"));
    failed |= w.execution_has_failed() || w.parsing_errors() > 0;
    let http = steps::httplog::HttpWorld::cucumber().max_concurrent_scenarios(1).fail_on_skipped();
    let w = futures::executor::block_on(http.run("features/http_flood.feature"));
    failed |= w.execution_has_failed() || w.parsing_errors() > 0;
    failed |= !run_capture();
    if failed {
        eprintln!("acceptance: some scenarios failed");
        std::process::exit(1);
    }
}

#[cfg(feature = "capture-scapy")]
fn run_capture() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        util::skip("features/capture.feature needs root (network namespaces; CI runs as root)");
        return true;
    }
    if util::captures().is_none() {
        return true;
    }
    let capture = steps::capture::CaptureWorld::cucumber().max_concurrent_scenarios(1).fail_on_skipped();
    let w = futures::executor::block_on(capture.run("features/capture.feature"));
    !(w.execution_has_failed() || w.parsing_errors() > 0)
}

#[cfg(not(feature = "capture-scapy"))]
fn run_capture() -> bool {
    util::note_skip("features/capture.feature: this build has no capture-scapy feature");
    true
}

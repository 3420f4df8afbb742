//! The one integration test binary: the real `ftagent` binary against real inputs (fake /proc
//! trees, network namespaces with veth pairs, loopback servers).

mod util;

mod accesslog;
mod nginx;

mod apiserver;
#[cfg(feature = "capture-scapy")]
mod capture;
#[cfg(feature = "capture-scapy")]
mod capture_stop;
mod cli;
mod detection;
mod fakeproc;
mod limited;
#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
mod live_options;
mod reporting;
mod reporting_netns;
mod selftest_sinks;
mod service;
mod setup;
mod statefiles;
#[cfg(feature = "capture-tcpdump")]
mod tcpdump;
mod update;

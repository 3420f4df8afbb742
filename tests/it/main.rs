//! The one integration test binary: the real `ftagent` binary against real inputs (fake /proc
//! trees, network namespaces with veth pairs, loopback servers).

#[path = "../../src/util/skip.rs"]
mod skip;
mod util;

mod accesslog;
mod bgp;
mod nginx;

#[path = "../../src/report/api/testserver.rs"]
mod apiserver;
mod attribution;
#[cfg(feature = "capture-scapy")]
mod capture;
#[cfg(feature = "capture-scapy")]
mod capture_stop;
mod cli;
mod detection;
mod fakeproc;
mod flows;
mod flows_detect;
mod limited;
mod limited_kernel;
#[cfg(any(feature = "capture-scapy", feature = "capture-tcpdump"))]
mod live_options;
mod logs;
#[cfg(feature = "capture-scapy")]
mod mitigation;
#[cfg(feature = "capture-scapy")]
mod mitigation_bgp;
mod mitigation_config;
#[cfg(feature = "capture-scapy")]
mod mitigation_more;
#[cfg(feature = "capture-scapy")]
mod mitigation_safety;
mod prometheus;
mod reporting;
mod reporting_netns;
mod selftest_sinks;
mod service;
mod setup;
mod sockets;
mod statefiles;
mod status;
mod surfaces;
#[cfg(feature = "capture-tcpdump")]
mod tcpdump;
mod top;
mod update;
mod webhook_formats;

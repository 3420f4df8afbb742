//! The one integration test binary: the real `ftagent` binary against real inputs (fake /proc
//! trees, network namespaces with veth pairs, loopback servers).

mod util;

#[cfg(feature = "capture-scapy")]
mod capture;
mod cli;
mod limited;
#[cfg(feature = "capture-tcpdump")]
mod tcpdump;

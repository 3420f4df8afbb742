//! The one integration test binary: the real `ftagent` binary against real inputs (fake /proc
//! trees, network namespaces with veth pairs, loopback servers).

mod util;

mod cli;
mod limited;
mod service;
mod setup;
mod update;

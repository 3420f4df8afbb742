//! Fuzz the frame parser and the engine: the first byte picks the link type, the rest is the
//! frame. Must never panic.
#![no_main]

use ftagent::capture::parse::{dns_query_name, parse};
use ftagent::capture::{Engine, LinkType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else { return };
    let link = [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::RawIp, LinkType::Null]
        [usize::from(sel) % 5];
    let _ = parse(link, frame);
    let mut name = String::new();
    let _ = dns_query_name(frame, &mut name);
    let mut e = Engine::default();
    e.push(link, 0, frame.len() as u32, frame);
    let _ = e.classification();
});

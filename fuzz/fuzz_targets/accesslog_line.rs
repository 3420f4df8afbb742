//! Fuzz the access-log line parsers and the aggregation: the first byte picks the format, the
//! rest is one line. Must never panic; a malformed line is an `Err`, counted by the caller.
#![no_main]

use ftagent::accesslog::aggregate::Window;
use ftagent::accesslog::parse::{parse_line, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, line)) = data.split_first() else { return };
    let format = [Format::Combined, Format::Common, Format::Json, Format::Caddy][usize::from(sel) % 4];
    let mut w = Window::default();
    match parse_line(format, line) {
        Ok(r) => w.add(&r),
        Err(_) => w.add_malformed(),
    }
    let s = w.summary();
    let _ = (s.subtype(), s.evidence());
});

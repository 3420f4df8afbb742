//! Fuzz the capture-file reader (pcap/pcapng) feeding the engine: a clear error or frames,
//! never a panic, a hang or an unbounded allocation.
#![no_main]

use ftagent::capture::analyze::analyze_reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(engine) = analyze_reader(data, None) {
        let _ = engine.summary_json();
    }
});

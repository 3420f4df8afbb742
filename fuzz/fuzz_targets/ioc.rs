//! Fuzz the IOC matcher: the input is a pattern list (a count, then length-prefixed patterns)
//! and a payload. The filtered matcher must answer exactly as the plain automaton does, with
//! every probe kernel the CPU has.
#![no_main]

use ftagent::capture::gram::Simd;
use ftagent::capture::ioc::ScanHint;
use ftagent::capture::IocMatcher;
use ftagent::config::IocPattern;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&count, mut rest)) = data.split_first() else { return };
    // Large sets only: small ones never take the filter.
    let count = 65 + usize::from(count % 64);
    let mut patterns = Vec::with_capacity(count);
    while patterns.len() < count {
        let Some((&len, tail)) = rest.split_first() else { break };
        let len = 1 + usize::from(len % 24);
        if tail.len() < len {
            break;
        }
        let (bytes, tail) = tail.split_at(len);
        let pattern = bytes.iter().map(|b| format!("\\x{b:02x}")).collect();
        patterns.push(IocPattern { pattern, attack_name: String::new(), attack_family: String::new() });
        rest = tail;
    }
    if patterns.len() < count {
        return;
    }
    let (Ok(Some(fast)), Ok(Some(plain))) = (IocMatcher::build(&patterns, true), IocMatcher::build(&patterns, false))
    else {
        return;
    };
    let want = plain.first_match(rest);
    // Every probe kernel this CPU has, the best first.
    for kernel in [Simd::Avx2, Simd::Scalar] {
        let mut fast = fast.clone();
        fast.limit_simd(kernel);
        assert_eq!(fast.first_match(rest), want, "{}", fast.describe());
        // As the next payload of a stream that switched to wide probes.
        assert_eq!(fast.first_match_hinted(rest, &mut ScanHint::wide()), want, "{}", fast.describe());
    }
});

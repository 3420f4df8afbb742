//! The one bounded thread join: shutdown paths (the report worker, senders, the capture writer,
//! the tcpdump supervisor) give a thread a fixed time to end and then leave it to end with the
//! process. Owns no thread; must not be used where a thread's result is needed.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Join `h` if it ends within `limit`; true when it did. A thread still running is left to end
/// with the process (shutdown must not hang on the network, a disk or a child).
pub fn join_within<T>(h: JoinHandle<T>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !h.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = h.join();
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_a_thread_that_ends_and_leaves_one_that_does_not() {
        assert!(join_within(std::thread::spawn(|| ()), Duration::from_secs(5)));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let stuck = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        assert!(!join_within(stuck, Duration::from_millis(50)));
        drop(tx);
    }
}

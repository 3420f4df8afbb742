//! Acceptance specs (`features/*.feature`) run against the real `ftagent` binary.
//! Counters come from a fake `/proc` tree that a writer thread advances in real time.

#[path = "it/util.rs"]
mod util;

mod steps {
    pub mod fakeproc;
    pub mod limited;
}

use cucumber::World as _;

fn main() {
    let world = steps::limited::AgentWorld::cucumber().max_concurrent_scenarios(1).fail_on_skipped();
    futures::executor::block_on(world.run_and_exit("features"));
}

//! The command line: [`args`] (flags, §2, no I/O) with its long [`help`]; [`app`] (what each
//! invocation does); [`logging`] (the binary's log set-up); [`generate`] (man page, completions,
//! units for packaging). Nothing outside this folder and `main.rs` imports it.

pub mod app;
pub mod args;
pub mod generate;
pub mod help;
pub mod logging;

pub use args::{Action, Cli};

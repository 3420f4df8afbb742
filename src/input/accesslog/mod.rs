//! Layer-7 detection from web-server access logs (§11), no root needed: follow each configured
//! log, aggregate its requests per second, learn a requests/s baseline and open `http_flood`
//! incidents. Always built; runs on its own thread beside the counter sampling (and capture in
//! capture builds), never delaying it.
//!
//! - [`parse`]: line parsers (pure). [`follow`]: the only file reader (rotation, truncation).
//! - [`aggregate`]: bounded per-second figures (the sketches of [`crate::util::sketch`]). [`baseline`], [`detect`]: pure,
//!   virtual time. [`events`]: incidents to §6.1 events. [`gauges`]: the live figures per log.
//!   The thread that drives them is `crate::agent::accesslog` (front door `start`). [`analyze`]: `--analyze` on an access log.

pub mod aggregate;
pub mod analyze;
pub mod baseline;
pub mod detect;
pub mod events;
pub mod follow;
pub mod gauges;
pub mod parse;

pub use crate::config::accesslog::{AccessLog, DEFAULT_MIN_RPS};
pub use parse::Format;

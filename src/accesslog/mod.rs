//! Layer-7 detection from web-server access logs (§11), no root needed: follow each configured
//! log, aggregate its requests per second, learn a requests/s baseline and open `http_flood`
//! incidents. Always built; runs on its own thread beside the counter sampling (and capture in
//! capture builds), never delaying it.
//!
//! - [`parse`]: line parsers (pure). [`follow`]: the only file reader (rotation, truncation).
//! - [`sketch`], [`aggregate`]: bounded per-second figures. [`baseline`], [`detect`]: pure,
//!   virtual time. [`events`]: incidents to §6.1 events. [`worker`]: the thread (front door
//!   [`worker::start`]). [`analyze`]: `--analyze` on an access log.

pub mod aggregate;
pub mod baseline;
pub mod detect;
pub mod follow;
pub mod parse;
pub mod sketch;

//! The pure detection core; every call takes `now`. [`baseline`]: flat window + hour-of-day
//! buckets → thresholds, with the per-protocol windows ([`baseline::protocol`], §5.6).
//! [`detector`]: the incident state machine and the incident types. [`learn`]: one direction's
//! baseline + detector + the settle horizon between them (§5.4, §5.5). [`classify`]: coarse
//! classification from protocol counters (limited mode). [`connflood`]: connection floods
//! from the socket census (§5.7).

pub mod attribution;
pub mod baseline;
pub mod classify;
pub mod connflood;
pub mod detector;
pub mod hosts;
pub mod learn;

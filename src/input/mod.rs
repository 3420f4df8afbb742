//! What the agent reads from outside itself. [`flows`]: the flow collector (§12).

pub mod flows;

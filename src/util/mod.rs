//! Small shared pieces with no knowledge of the agent: outbound HTTP, child processes.

pub mod child;
pub mod http;

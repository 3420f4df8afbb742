//! The flow collector (§12): decoded flow records and where they go.

pub mod record;
pub use record::{CountSink, FlowRecord, FlowSink, FlowSource};

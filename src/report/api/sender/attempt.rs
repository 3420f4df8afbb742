//! What one delivery attempt of a spool item came to, for the sender to settle: shared by the
//! sender's own requests and the PCAP upload.

use crate::report::api::client::Reply;

/// The outcome of one attempt.
pub(super) enum Attempt {
    Reply(crate::error::Result<Reply>),
    /// Not sendable yet for a reason of the item's own: retry it later, send the rest.
    NotReady(String),
    /// Not sendable for a local reason: move to rejected/.
    Local(&'static str),
}

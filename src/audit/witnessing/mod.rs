//! The log's side of witnessing (C2SP tlog-witness): the `add-checkpoint`
//! request body, shared with the witness server (`crate::witness`), and the
//! HTTPS client a log uses to ask a witness for its cosignature, and the
//! node's witnessing (`[[audit.witness]]`): a background task per witness
//! pushing each new checkpoint (`push.rs`), the verified cosignatures kept
//! beside the checkpoint history (`kept.rs`), what the audit API, metrics
//! and `/readyz` read of them (`node.rs`). The cosignature itself is
//! `note::cosignature`.

mod client;
pub mod kept;
#[cfg(test)]
mod kept_tests;
mod node;
mod push;
pub mod request;
#[cfg(test)]
mod tests;

pub use client::{Answer, WitnessCallError, WitnessClient, SIZE_CONTENT_TYPE};
pub use kept::Witnessed;
pub use node::{Overview, WitnessFigures, Witnessing};
pub use request::{AddCheckpoint, RequestError};

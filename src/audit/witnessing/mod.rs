//! The log's side of witnessing (C2SP tlog-witness): the `add-checkpoint`
//! request body, shared with the witness server (`crate::witness`), and the
//! HTTPS client a log uses to ask a witness for its cosignature. The
//! cosignature itself is `note::cosignature`.

mod client;
pub mod request;
#[cfg(test)]
mod tests;

pub use client::{Answer, WitnessCallError, WitnessClient, SIZE_CONTENT_TYPE};
pub use request::{AddCheckpoint, RequestError};

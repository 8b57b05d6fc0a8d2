//! The audit log: every exchange, refusals included, appended to a durable,
//! tamper-evident log before any data leaves the gateway.
//!
//! - [`merkle`]: RFC 6962/9162 Merkle tree hashing, stored-hash layout,
//!   inclusion and consistency proofs.
//! - [`note`]: C2SP signed notes (Ed25519) and tlog checkpoints.

pub mod merkle;
pub mod note;
pub mod segment;
// (log, writer, hashes and error join once merkle and note land.)
